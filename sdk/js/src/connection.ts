/**
 * One logical connection to the socket nodes, kept up for as long as the client runs: opens a socket to
 * one of the token's `socket_urls`, authenticates, matches replies to requests, keeps the token fresh
 * in band, watches liveness, and reconnects with jittered backoff (rotating URLs) when anything breaks.
 * What the connection is *for* — resubscribing, sending — is the client's job, on each `ready`.
 */
import { Backoff, UrlRotation, type BackoffOptions } from './backoff.js';
import { Emitter } from './emitter.js';
import { TokenKeeper } from './tokens.js';
import { CaasError } from './errors.js';
import {
  CloseCodes,
  parseServerFrame,
  type AuthReply,
  type ClientEventType,
  type EventFrame,
  type ReadyData,
  type ReplyData,
  type RequestData,
  type TokenResponse,
} from './protocol.js';

/** A method signature's parameters are checked bivariantly: lets both DOM's and `ws`'s handler types fit. */
type Handler<Event> = { bivarianceHack(event: Event): void }['bivarianceHack'];

/** What the SDK needs of a WebSocket: the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export type ConnectionStatus = 'connecting' | 'ready' | 'offline';

export interface ConnectionEvents {
  status: ConnectionStatus;
  /** Authenticated; `ready` data from the server. Resubscribe now. */
  ready: ReadyData;
  /** Every server event after `ready` (and `error` events before it). */
  event: EventFrame;
  /** The socket closed; replies still outstanding were rejected with `disconnected`. */
  down: { code: number; reason: string; wasReady: boolean };
  /** The session is over (revoked, banned): no more reconnects until `start()` is called again. */
  ended: { code: string; reason: string };
  /** A new token was adopted (after a refresh or from the provider). */
  token: TokenResponse;
}

export interface ConnectionOptions {
  /** Returns a token response from your backend (which calls `POST /api/v1/auth/sdk/token`). */
  tokenProvider: () => Promise<TokenResponse>;
  /** Refreshes a live token (e.g. `POST /api/v1/auth/refresh`); falls back to `tokenProvider` when it fails. */
  renewToken?: (current: TokenResponse) => Promise<TokenResponse>;
  /** Overrides the token's `socket_urls`. */
  socketUrls?: readonly string[];
  WebSocket: WebSocketConstructor;
  /**
   * `auth_frame` (default): the token goes in the first frame, so it never lands in URL logs of proxies
   * and balancers; `query`: `?token=` on the URL (the documented alternative for browsers).
   */
  tokenTransport?: 'auth_frame' | 'query';
  /** Names this device for the key directory (`?device_id=`). */
  deviceId?: string;
  backoff?: BackoffOptions;
  random?: () => number;
  now?: () => number;
  /** Default 20 s. */
  requestTimeoutMs?: number;
  /** From opening the socket to `ready`; default 10 s (the server's own limit). */
  handshakeTimeoutMs?: number;
  /** Ping after this much silence to find dead sockets (default 25 s; 0 disables). */
  pingIntervalMs?: number;
  /** A ping unanswered this long drops the socket (default 10 s). */
  pingTimeoutMs?: number;
  /** Renew the token this long before it expires (default 60 s, at most half its lifetime). */
  refreshBeforeExpiryMs?: number;
  /** Reconnect at once on `online` and when the page becomes visible (default: when `document` exists). */
  browserHooks?: boolean;
}

interface Pending {
  resolve: (data: unknown) => void;
  reject: (error: CaasError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Attempt {
  wasReady: boolean;
  fatal?: { code: string; reason: string };
  /** The token was refused or expired: ask the provider for a new one. */
  newToken: boolean;
  /** Reconnect without waiting (a deliberate close, e.g. to switch tokens). */
  immediate: boolean;
}

/** setTimeout's delay is a signed 32-bit number of ms: longer ones fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

export class Connection {
  readonly events = new Emitter<ConnectionEvents>();
  private readonly tokens: TokenKeeper;
  private socket: WebSocketLike | undefined;
  private ready = false;
  private running = false;
  private nextRequestId = 0;
  private readonly pending = new Map<string, Pending>();
  private wake: (() => void) | undefined;
  private drop: ((immediate: boolean) => void) | undefined;
  private timers: Array<ReturnType<typeof setTimeout>> = [];
  private lastHeardAt = 0;
  private readonly backoff: Backoff;
  private readonly rotation = new UrlRotation([]);
  private readonly now: () => number;
  private detachBrowserHooks: (() => void) | undefined;

  constructor(private readonly options: ConnectionOptions) {
    this.backoff = new Backoff(options.backoff, options.random);
    this.now = options.now ?? Date.now;
    this.tokens = new TokenKeeper({
      tokenProvider: options.tokenProvider,
      ...(options.renewToken ? { renewToken: options.renewToken } : {}),
      ...(options.refreshBeforeExpiryMs !== undefined ? { refreshBeforeExpiryMs: options.refreshBeforeExpiryMs } : {}),
      now: this.now,
      adopted: (token) => {
        this.rotation.replace(options.socketUrls ?? token.socket_urls);
        this.events.emit('token', token);
      },
    });
  }

  get isReady(): boolean {
    return this.ready;
  }

  get currentToken(): TokenResponse | undefined {
    return this.tokens.current;
  }

  /** A token that will not expire before the renewal margin (fetched or renewed first when needed). */
  usableToken(): Promise<TokenResponse> {
    return this.tokens.usable();
  }

  /** Starts (or, after `ended` or `stop()`, restarts with a fresh token) the connect loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.tokens.forget();
    this.attachBrowserHooks();
    void this.run();
  }

  stop(): void {
    this.running = false;
    this.detachBrowserHooks?.();
    this.detachBrowserHooks = undefined;
    this.drop?.(false);
    this.wake?.();
    this.setStatus('offline');
  }

  /** Try now: skip a backoff wait, or, when connected, check with a ping that the socket still lives. */
  reconnectNow(): void {
    if (this.ready) {
      void this.request('ping', {}, { timeoutMs: this.options.pingTimeoutMs ?? 10_000 }).catch(() => this.drop?.(true));
    } else {
      this.wake?.();
    }
  }

  request<K extends ClientEventType>(type: K, data: RequestData<K>, options: { timeoutMs?: number } = {}): Promise<ReplyData<K>> {
    return this.send(type, data, undefined, options.timeoutMs) as Promise<ReplyData<K>>;
  }

  private send(type: string, data: unknown, token: string | undefined, timeoutMs?: number): Promise<unknown> {
    const socket = this.socket;
    if (!this.ready || !socket) return Promise.reject(new CaasError('disconnected', 'not connected'));
    const id = `r${++this.nextRequestId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new CaasError('timeout', `no reply to ${type} in time`));
      }, timeoutMs ?? this.options.requestTimeoutMs ?? 20_000);
      this.pending.set(id, { resolve, reject, timer });
      try {
        socket.send(JSON.stringify(token === undefined ? { id, type, data } : { id, type, token }));
      } catch {
        // A socket already closing (`ws` throws, browsers drop the frame): the close event follows.
        clearTimeout(timer);
        this.pending.delete(id);
        reject(new CaasError('disconnected', 'the socket is closing'));
      }
    });
  }

  // ------------------------------------------------------------------ the connect loop

  private async run(): Promise<void> {
    while (this.running) {
      let attempt: Attempt;
      try {
        const token = await this.usableToken();
        const url = this.rotation.current();
        if (url === undefined) throw new CaasError('validation_failed', 'no socket URL: the token has no socket_urls');
        attempt = await this.attempt(url, token);
      } catch (error) {
        // The token provider failed (offline, backend down): back off like a failed connect.
        attempt = { wasReady: false, newToken: false, immediate: false };
        if (error instanceof CaasError && error.code === 'user_banned') attempt.fatal = { code: error.code, reason: error.message };
      }
      if (!this.running) break;
      if (attempt.fatal) {
        this.running = false;
        this.setStatus('offline');
        this.events.emit('ended', attempt.fatal);
        break;
      }
      if (attempt.newToken) this.tokens.forget();
      this.backoff.disconnected(this.now());
      const delay = attempt.immediate ? 0 : this.backoff.next();
      this.setStatus('offline');
      await this.sleep(delay);
    }
  }

  private setStatus(status: ConnectionStatus): void {
    this.events.emit('status', status);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wake = undefined;
        resolve();
      }
      this.wake = done;
    });
  }

  /** One socket, from opening to closing. Resolves when it is closed, saying what to do next. */
  private attempt(url: string, token: TokenResponse): Promise<Attempt> {
    return new Promise((resolve) => {
      const outcome: Attempt = { wasReady: false, newToken: false, immediate: false };
      const viaFrame = (this.options.tokenTransport ?? 'auth_frame') === 'auth_frame';
      let socket: WebSocketLike;
      try {
        socket = new this.options.WebSocket(socketUrl(url, viaFrame ? undefined : token.token, this.options.deviceId));
      } catch {
        this.rotation.rotate();
        resolve(outcome);
        return;
      }
      this.setStatus('connecting');
      let finished = false;
      const finish = (code: number, reason: string): void => {
        if (finished) return;
        finished = true;
        this.clearTimers();
        this.ready = false;
        this.socket = undefined;
        this.drop = undefined;
        socket.onopen = socket.onmessage = socket.onclose = null;
        // Not null: `ws` reports closing a socket that was still connecting as an error event, which
        // without a listener would be thrown as an uncaught exception.
        socket.onerror = () => {};
        for (const [id, pending] of this.pending) {
          clearTimeout(pending.timer);
          pending.reject(new CaasError('disconnected', `connection closed (${code}) before the reply`));
          this.pending.delete(id);
        }
        // A node that refused us, or is going away, is not the one to try next.
        if (!outcome.wasReady || code === CloseCodes.GoingAway) this.rotation.rotate();
        this.events.emit('down', { code, reason, wasReady: outcome.wasReady });
        resolve(outcome);
      };
      this.drop = (immediate) => {
        outcome.immediate = immediate;
        try {
          socket.close(1000, 'client closed');
        } catch {
          // Already closing: nothing more to do.
        }
        // A dead socket may take a long time to report its close: do not wait for it.
        finish(1006, 'dropped by the client');
      };
      this.timers.push(setTimeout(() => this.drop?.(false), this.options.handshakeTimeoutMs ?? 10_000));
      const authId = `auth${++this.nextRequestId}`;
      socket.onopen = () => {
        this.socket = socket;
        if (viaFrame) socket.send(JSON.stringify({ id: authId, type: 'auth', token: token.token, ...deviceData(this.options.deviceId) }));
      };
      socket.onerror = () => {
        // Always followed by a close event, which does the work.
      };
      socket.onclose = (event) => finish(event.code, event.reason);
      socket.onmessage = (event) => {
        if (typeof event.data !== 'string') return;
        const parsed = parseServerFrame(event.data);
        if (!parsed) return;
        this.lastHeardAt = this.now();
        if (parsed.kind === 'reply') {
          const reply = parsed.frame;
          if (reply.reply_to === authId) {
            if (!reply.ok && reply.error.code === 'unauthorized') outcome.newToken = true;
            return;
          }
          const pending = reply.reply_to === null ? undefined : this.pending.get(reply.reply_to);
          if (!pending || reply.reply_to === null) return;
          this.pending.delete(reply.reply_to);
          clearTimeout(pending.timer);
          if (reply.ok) pending.resolve(reply.data);
          else pending.reject(CaasError.fromBody(reply.error));
          return;
        }
        const frame = parsed.frame;
        this.noteSessionEvent(frame, outcome);
        if (frame.type === 'ready') {
          this.clearTimers();
          this.socket = socket;
          this.ready = true;
          outcome.wasReady = true;
          this.backoff.connected(this.now());
          this.scheduleHeartbeat();
          this.scheduleRenewal(token);
          this.setStatus('ready');
          this.events.emit('ready', frame.data as ReadyData);
          return;
        }
        this.events.emit('event', frame);
      };
    });
  }

  /** Session endings decide how the loop goes on after the close that follows them. */
  private noteSessionEvent(frame: EventFrame, outcome: Attempt): void {
    const data = (frame.data ?? {}) as { code?: string; reason?: string; message?: string };
    if (frame.type === 'session.revoked') outcome.fatal = { code: 'session_revoked', reason: data.reason ?? '' };
    if (frame.type === 'session.expired') outcome.newToken = true;
    if (frame.type === 'error' && data.code === 'unauthorized') outcome.newToken = true;
    if (frame.type === 'error' && data.code === 'user_banned') outcome.fatal = { code: 'user_banned', reason: data.message ?? '' };
  }

  // ------------------------------------------------------------------ liveness and token renewal

  private scheduleHeartbeat(): void {
    const interval = this.options.pingIntervalMs ?? 25_000;
    if (interval <= 0) return;
    const check = (): void => {
      if (!this.ready) return;
      // Any frame proves the socket alive; only silence costs a ping (which the server also counts as a frame).
      if (this.now() - this.lastHeardAt >= interval) this.reconnectNow();
      this.timers.push(setTimeout(check, interval));
    };
    this.timers.push(setTimeout(check, interval));
  }

  private scheduleRenewal(token: TokenResponse): void {
    const due = this.tokens.renewalDue(token);
    this.timers.push(setTimeout(() => void this.renewInBand(token), Math.min(MAX_TIMER_MS, Math.max(0, due))));
  }

  /**
   * Hands the connection a fresh token without reconnecting (`auth` frame). A token of another session
   * (the provider started a new one) is refused in band: then reconnect with it instead.
   */
  private async renewInBand(current: TokenResponse): Promise<void> {
    let fresh: TokenResponse;
    try {
      fresh = await this.tokens.fresh(current);
    } catch {
      // Try again later; if the token lapses first, the server says `session.expired` and we reconnect.
      const left = current.expires_at * 1000 - this.now();
      if (left > 1000) this.timers.push(setTimeout(() => void this.renewInBand(current), Math.min(30_000, left / 2)));
      return;
    }
    this.tokens.adopt(fresh);
    try {
      const reply = (await this.send('auth', undefined, fresh.token)) as AuthReply;
      if (reply.authenticated) this.scheduleRenewal(fresh);
    } catch (error) {
      if (error instanceof CaasError && error.code !== 'disconnected') this.drop?.(true);
    }
  }

  private clearTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
  }

  private attachBrowserHooks(): void {
    const hooks = this.options.browserHooks ?? typeof document !== 'undefined';
    if (!hooks || typeof addEventListener !== 'function' || typeof document === 'undefined') return;
    const onOnline = (): void => this.reconnectNow();
    const onVisible = (): void => {
      if (document.visibilityState === 'visible') this.reconnectNow();
    };
    addEventListener('online', onOnline);
    document.addEventListener('visibilitychange', onVisible);
    this.detachBrowserHooks = () => {
      removeEventListener('online', onOnline);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }
}

function socketUrl(base: string, token: string | undefined, deviceId: string | undefined): string {
  const url = new URL(base);
  if (token !== undefined) url.searchParams.set('token', token);
  if (deviceId !== undefined) url.searchParams.set('device_id', deviceId);
  return url.toString();
}

function deviceData(deviceId: string | undefined): { data?: { device_id: string } } {
  return deviceId === undefined ? {} : { data: { device_id: deviceId } };
}
