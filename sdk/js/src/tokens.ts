/**
 * The SDK token the connection and the HTTP calls use: kept until it nears expiry, then renewed (the
 * refresh route when there is one, else the app's provider), one fetch at a time.
 */
import type { TokenResponse } from './protocol.js';

export interface TokenKeeperOptions {
  tokenProvider: () => Promise<TokenResponse>;
  renewToken?: (current: TokenResponse) => Promise<TokenResponse>;
  /** Renew this long before expiry (default 60 s, at most half the token's remaining lifetime). */
  refreshBeforeExpiryMs?: number;
  now: () => number;
  /** A new token was adopted. */
  adopted: (token: TokenResponse) => void;
}

export class TokenKeeper {
  private token: TokenResponse | undefined;
  private fetching: Promise<TokenResponse> | undefined;

  constructor(private readonly options: TokenKeeperOptions) {}

  get current(): TokenResponse | undefined {
    return this.token;
  }

  /** Drops the token: the next `usable()` asks for a new one (it was refused, or the session ended). */
  forget(): void {
    this.token = undefined;
  }

  /** A token that will not expire within the renewal margin. */
  usable(): Promise<TokenResponse> {
    const current = this.token;
    if (current && current.expires_at * 1000 - this.options.now() > this.margin(current)) return Promise.resolve(current);
    // One fetch at a time: HTTP calls and the connect loop may both need a token at once.
    this.fetching ??= this.fresh(current)
      .then((fresh) => this.adopt(fresh))
      .finally(() => {
        this.fetching = undefined;
      });
    return this.fetching;
  }

  /** A new token: renewed while the current one is still valid, else (or if that fails) from the provider. */
  async fresh(current: TokenResponse | undefined = this.token): Promise<TokenResponse> {
    if (current && this.options.renewToken && current.expires_at * 1000 > this.options.now()) {
      try {
        return await this.options.renewToken(current);
      } catch {
        // The session may be gone (logged out elsewhere): the app's backend decides whether to start a new one.
      }
    }
    return this.options.tokenProvider();
  }

  adopt(token: TokenResponse): TokenResponse {
    this.token = token;
    this.options.adopted(token);
    return token;
  }

  /** Milliseconds until `token` should be renewed. */
  renewalDue(token: TokenResponse): number {
    return token.expires_at * 1000 - this.margin(token) - this.options.now();
  }

  private margin(token: TokenResponse): number {
    const lifetime = token.expires_at * 1000 - this.options.now();
    return Math.min(this.options.refreshBeforeExpiryMs ?? 60_000, Math.max(0, lifetime / 2));
  }
}
