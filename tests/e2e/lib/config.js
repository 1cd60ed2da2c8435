// Shared constants for the e2e suite.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// tests/e2e/lib -> repo root is three directories up from this file.
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = process.env.BROKER_BIN || path.join(REPO, 'build', 'broker');

// Optional command the binary runs under, e.g. BROKER_WRAPPER="valgrind --tool=memcheck ..." (see
// scripts/valgrind-e2e.sh). Split on whitespace, no quoting; BIN and its args are appended.
export const WRAPPER = (process.env.BROKER_WRAPPER ?? '').trim().split(/\s+/).filter(Boolean);

// Multiplier for failure-guard timeouts (e.g. BROKER_E2E_SLOWDOWN=4 under ASan).
// Never used for "must be faster than" assertions: only for how long we wait before giving up.
// BROKER_SANITIZED=1 (set by `make test` for the ASan+UBSan build) defaults it to 4.
export const SLOW = Math.max(1, Number(process.env.BROKER_E2E_SLOWDOWN) || (process.env.BROKER_SANITIZED ? 4 : 1));
export const ms = (n) => Math.round(n * SLOW);

// A known, strong (>= 32 bytes) secret for tests that forge or verify tokens.
export const SECRET = 'e2e-test-secret-0123456789abcdef-0123456789abcdef';
