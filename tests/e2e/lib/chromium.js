// Headless Chromium for the browser suites (playwright-core driving /usr/bin/chromium or
// $CHROMIUM_BIN, the way browser.test.js does): one browser per call, always closed, and a page
// wrapper that collects uncaught page errors (console errors are kept apart: a refused connection
// while a broker restarts is one, and expected).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chromium } from 'playwright-core';
import { ms } from './config.js';
import { withTimeout } from './util.js';

export const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A launched browser (not a persistent context, so several isolated contexts can share it). */
export async function withChromium(fn) {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is required for this suite and is missing at ${CHROMIUM} ` +
    '(scripts/deps.sh installs it: apt-get install chromium)');
  let browser;
  try {
    // launch() gives every context a fresh, temporary profile and removes it on close.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: ms(30000) });
    return await fn(browser);
  } finally {
    if (browser) await withTimeout(browser.close(), ms(15000), 'closing Chromium').catch(() => {});
  }
}

/** A new page in `context`: { page, problems (uncaught errors), consoleErrors }. */
export async function newPage(context) {
  const page = await context.newPage();
  const problems = [];
  const consoleErrors = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  return { page, problems, consoleErrors };
}
