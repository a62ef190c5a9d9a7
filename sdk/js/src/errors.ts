/**
 * The one error type the SDK rejects with. `code` is the server's code (see `KnownErrorCode`) or one of
 * the client's own: `disconnected` (the socket closed before the reply), `timeout` (no reply in time),
 * `closed` (the client was closed), `network` (an HTTP request never got an answer), `http_<status>`
 * (an HTTP error without a JSON body).
 */
import { retryAfterMs, type ErrorBody, type ErrorCode } from './protocol.js';

export type ClientErrorCode = 'disconnected' | 'timeout' | 'closed' | 'network';

export class CaasError extends Error {
  override readonly name = 'CaasError';

  constructor(
    readonly code: ErrorCode | ClientErrorCode,
    message: string,
    /** For `rate_limited`: how long to wait before trying again. */
    readonly retryAfterMs?: number,
    /** The HTTP status, for errors from HTTP routes. */
    readonly status?: number,
    readonly correlationId?: string,
  ) {
    super(message);
  }

  static fromBody(body: ErrorBody, status?: number): CaasError {
    const wait = body.code === 'rate_limited' ? retryAfterMs(body) : undefined;
    return new CaasError(body.code, body.message, wait, status, body.correlation_id);
  }

  /** The wire shape, for the outbox's records. */
  toBody(): ErrorBody {
    return { code: this.code, message: this.message, ...(this.retryAfterMs !== undefined ? { retry_after_ms: this.retryAfterMs } : {}) };
  }
}

/** Failures that say nothing about the request itself: the same request may be made again. */
export function isTransient(error: unknown): boolean {
  return error instanceof CaasError && ['disconnected', 'timeout', 'unavailable', 'network', 'rate_limited'].includes(error.code);
}
