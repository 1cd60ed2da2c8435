// Raw socket helpers (node:net / node:tls) for tests where exact bytes matter.
import net from 'node:net';
import tls from 'node:tls';
import { ms } from './config.js';

/** Open a raw connection to the broker (TLS if the broker is secure, unless plain: true). */
export function connect(b, { plain = false } = {}) {
  return new Promise((resolve, reject) => {
    const opts = { host: b.host, port: b.port };
    const sock = b.secure && !plain
      ? tls.connect({ ...opts, ca: b.ca, servername: 'localhost' }, () => resolve(sock))
      : net.connect(opts, () => resolve(sock));
    sock.once('error', reject);
  });
}

/**
 * Connect, write `data` (string | Buffer | array of them, written in order), and collect everything
 * the server sends until it closes the connection or `timeoutMs` passes (then we close it).
 * Resolves { data: Buffer, text, closedByServer, error, status (number|undefined) }.
 */
export async function exchange(b, data, { timeoutMs = ms(5000), plain = false, half = false, until } = {}) {
  const sock = await connect(b, { plain });
  return new Promise((resolve) => {
    const chunks = [];
    let done = false;
    let closedByServer = false;
    let error;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const buf = Buffer.concat(chunks);
      const text = buf.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ data: buf, text, closedByServer, error, status: m ? Number(m[1]) : undefined });
    };
    const timer = setTimeout(finish, timeoutMs);
    sock.on('data', (c) => {
      chunks.push(c);
      if (until && until(Buffer.concat(chunks).toString('latin1'))) finish();
    });
    sock.on('end', () => { closedByServer = true; finish(); });
    sock.on('close', () => { closedByServer = true; finish(); });
    sock.on('error', (e) => { error = e; closedByServer = true; finish(); });
    for (const part of [].concat(data)) sock.write(part);
    if (half) sock.end();
  });
}

/** True once `text` holds one complete HTTP response (headers + Content-Length body). */
export function hasCompleteResponse(text) {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const m = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
  if (!m) return true;
  return Buffer.byteLength(text.slice(end + 4), 'latin1') >= Number(m[1]);
}
