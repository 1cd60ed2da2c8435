// Self-signed certificate for the TLS tests (openssl CLI).
import { execFileSync } from 'node:child_process';
import path from 'node:path';

/** Create key.pem / cert.pem for CN=localhost (SAN localhost + 127.0.0.1) in `dir`. */
export function makeCert(dir) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', key, '-out', cert,
  ], { stdio: 'pipe', timeout: 60000 });
  return { key, cert };
}
