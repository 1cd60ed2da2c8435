// src/errors.js: BrokerError, the one error type the client throws (failed calls) and reports
// (a subscription's lastError), so callers branch on `status` / `code` instead of parsing messages.

export class BrokerError extends Error {
  /**
   * @param {string} message  the server's {"error"} text when there is one
   * @param {{status?: number, code?: string, retryAfter?: number, reason?: string, exp?: number, cause?: unknown}} [info]
   */
  constructor(message, info = {}) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.name = 'BrokerError';
    // HTTP status of the refusal, 0 when the server was not reached (or did not answer with a status).
    this.status = info.status ?? 0;
    // 'http' (an error status), 'network' (no answer), 'stream' (the EventSource was refused or
    // dropped), 'token_expiring' (a warning: renew), 'revoked' (the server closed the stream for good).
    this.code = info.code ?? (this.status ? 'http' : 'network');
    if (info.retryAfter !== undefined) this.retryAfter = info.retryAfter;
    if (info.reason !== undefined) this.reason = info.reason;
    if (info.exp !== undefined) this.exp = info.exp;
  }
}
