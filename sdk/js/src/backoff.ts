/**
 * Reconnect pacing: jittered exponential backoff and rotation across the token's `socket_urls`.
 * Pure: the caller passes `now` and a random source, and owns the timers.
 */

export interface BackoffOptions {
  /** Smallest delay, ms (default 250). */
  minMs?: number;
  /** Largest delay, ms (default 20,000). */
  maxMs?: number;
  /** Growth of the ceiling per failed attempt (default 2). */
  factor?: number;
  /** A connection that stayed up this long resets the attempt count when it drops (default 10,000 ms). */
  stableAfterMs?: number;
}

export const DEFAULT_BACKOFF: Required<BackoffOptions> = {
  minMs: 250,
  maxMs: 20_000,
  factor: 2,
  stableAfterMs: 10_000,
};

/**
 * The delay before retry number `attempt` (0 for the first retry): uniform between `minMs` and a ceiling
 * that doubles per attempt up to `maxMs` ("full jitter"). Spreading every attempt over the whole range,
 * not just adding a little noise, is what keeps thousands of clients dropped by one node from coming
 * back in lockstep; the floor keeps a flapping network from turning into a busy loop.
 */
export function backoffDelay(attempt: number, random: number, options: BackoffOptions = {}): number {
  const { minMs, maxMs, factor } = { ...DEFAULT_BACKOFF, ...options };
  const exponent = Math.max(0, Math.floor(attempt)) + 1;
  const ceiling = Math.min(maxMs, minMs * Math.pow(factor, exponent));
  const unit = Math.min(1, Math.max(0, random));
  return Math.round(minMs + unit * Math.max(0, ceiling - minMs));
}

/** Counts consecutive failures and turns them into delays; a stable connection starts the count over. */
export class Backoff {
  private failures = 0;
  private connectedAt: number | undefined;
  private readonly options: Required<BackoffOptions>;

  constructor(
    options: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.options = { ...DEFAULT_BACKOFF, ...options };
  }

  /** Failed attempts since the last reset. */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next attempt; counts one more failure. */
  next(): number {
    const delay = backoffDelay(this.failures, this.random(), this.options);
    this.failures += 1;
    return delay;
  }

  /** The connection is up (authenticated). */
  connected(now: number): void {
    this.connectedAt = now;
  }

  /**
   * The connection dropped. Only a connection that stayed up `stableAfterMs` resets the count: one that
   * is accepted and then closed at once (a node that refuses after the handshake, a flapping proxy)
   * keeps backing off instead of reconnecting at the floor forever.
   */
  disconnected(now: number): void {
    if (this.connectedAt !== undefined && now - this.connectedAt >= this.options.stableAfterMs) this.failures = 0;
    this.connectedAt = undefined;
  }

  reset(): void {
    this.failures = 0;
  }
}

/**
 * Which socket URL to try next. A failed attempt moves on to the next URL, so a dead node costs one
 * attempt rather than every attempt; a fresh list (a new token) keeps the current URL when it is still
 * offered, so a token refresh does not move a healthy connection's next reconnect elsewhere.
 */
export class UrlRotation {
  private urls: string[];
  private index = 0;

  constructor(urls: readonly string[]) {
    this.urls = dedupe(urls);
  }

  current(): string | undefined {
    return this.urls[this.index];
  }

  /** Moves to the next URL (wrapping) and returns it. */
  rotate(): string | undefined {
    if (this.urls.length > 0) this.index = (this.index + 1) % this.urls.length;
    return this.current();
  }

  replace(urls: readonly string[]): void {
    const current = this.current();
    this.urls = dedupe(urls);
    const kept = current === undefined ? -1 : this.urls.indexOf(current);
    this.index = kept >= 0 ? kept : 0;
  }

  get size(): number {
    return this.urls.length;
  }
}

function dedupe(urls: readonly string[]): string[] {
  return [...new Set(urls.filter((url) => url.length > 0))];
}
