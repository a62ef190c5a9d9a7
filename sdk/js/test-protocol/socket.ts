/**
 * A raw WebSocket client of the native protocol (docs/protocol.md), no SDK code: `{id, type, data}` out,
 * `{reply_to, ok, data | error}` and `{type, data}` in. Every frame it receives goes to the
 * {@link Recorder}; replies are matched to their request by id (and a `reply_to: null` to the oldest
 * raw frame still waiting).
 */
import { WebSocket, type RawData } from 'ws';
import type { Recorder } from './recorder.js';

export const WAIT_MS = 10_000;

export interface ErrorData {
  code: string;
  message: string;
  [key: string]: unknown;
}

export class RequestFailed extends Error {
  constructor(
    readonly type: string,
    readonly error: ErrorData,
  ) {
    super(`${type} was refused: ${JSON.stringify(error)}`);
  }
}

interface Pending {
  type: string;
  resolve: (frame: Record<string, unknown>) => void;
  reject: (error: Error) => void;
}

interface Received {
  type: string;
  data: unknown;
}

// The `data` of replies and events is the server's business; the scenario reads a few ids from it.
export type Json = any;

export class Socket {
  readonly events: Received[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly pending = new Map<string, Pending>();
  private readonly rawPending: Pending[] = [];
  private readonly waiters = new Set<() => void>();
  private nextId = 1;

  private constructor(
    readonly name: string,
    private readonly ws: WebSocket,
    private readonly recorder: Recorder,
  ) {
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        const failure = new Error(`${name}: the connection closed (${code} ${reason.toString()})`);
        for (const pending of [...this.pending.values(), ...this.rawPending]) pending.reject(failure);
        this.pending.clear();
        this.rawPending.length = 0;
        this.wake();
        resolve({ code, reason: reason.toString() });
      });
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return;
      this.receive(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data as ArrayBuffer).toString('utf8'));
    });
  }

  /** Opens `url` (with `?token=` or not) and resolves once the upgrade succeeded. */
  static open(name: string, url: string, recorder: Recorder, headers: Record<string, string> = {}): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      // Frames may arrive right after the upgrade: the socket must listen before 'open' resolves.
      const socket = new Socket(name, ws, recorder);
      ws.once('open', () => resolve(socket));
      ws.once('error', (error) => reject(new Error(`${name}: ${error.message}`)));
      ws.once('unexpected-response', (_request, response) =>
        reject(new Error(`${name}: the upgrade was answered HTTP ${response.statusCode}`)),
      );
    });
  }

  private receive(text: string): void {
    let frame: Record<string, unknown>;
    try {
      frame = JSON.parse(text) as Record<string, unknown>;
    } catch {
      this.recorder.frame(text, undefined);
      return;
    }
    if (typeof frame === 'object' && frame !== null && 'reply_to' in frame) {
      const id = frame.reply_to;
      const pending = typeof id === 'string' ? this.pending.get(id) : this.rawPending.shift();
      if (typeof id === 'string') this.pending.delete(id);
      this.recorder.frame(text, pending?.type);
      pending?.resolve(frame);
      return;
    }
    this.recorder.frame(text, undefined);
    if (typeof frame === 'object' && frame !== null && typeof frame.type === 'string') {
      this.events.push({ type: frame.type, data: frame.data });
      this.wake();
    }
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private send(id: string | undefined, type: string, text: string): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const pending = { type, resolve, reject };
      if (id === undefined) this.rawPending.push(pending);
      else this.pending.set(id, pending);
      this.ws.send(text, (error) => {
        if (error) reject(new Error(`${this.name}: sending ${type} failed: ${error.message}`));
      });
      setTimeout(() => reject(new Error(`${this.name}: no reply to ${type} within ${WAIT_MS} ms`)), WAIT_MS).unref();
    });
  }

  /** The whole reply frame to one request (success or failure). */
  frame(type: string, data: unknown, extra: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = `${this.name}-${this.nextId++}`;
    return this.send(id, type, JSON.stringify({ id, type, data, ...extra }));
  }

  /** A request that must succeed: its reply's `data`. */
  async request(type: string, data: unknown): Promise<Json> {
    const reply = await this.frame(type, data);
    if (reply.ok !== true) throw new RequestFailed(type, reply.error as ErrorData);
    return reply.data;
  }

  /** A request that must fail: its error body (and with `code`, that code). */
  async refused(type: string, data: unknown, code?: string): Promise<ErrorData> {
    const reply = await this.frame(type, data);
    if (reply.ok !== false) throw new Error(`${this.name}: ${type} ${JSON.stringify(data)} should have been refused, got ${JSON.stringify(reply)}`);
    const error = reply.error as ErrorData;
    if (code !== undefined && error.code !== code) throw new Error(`${this.name}: ${type} refused with ${error.code}, expected ${code}: ${JSON.stringify(error)}`);
    return error;
  }

  /** The in-band `auth` frame (`token` beside `data`). */
  async auth(token: string, data?: unknown): Promise<Json> {
    const reply = await this.frame('auth', data, { token });
    if (reply.ok !== true) throw new RequestFailed('auth', reply.error as ErrorData);
    return reply.data;
  }

  /** A text frame as is (e.g. not JSON): its reply, which says `reply_to: null`. */
  raw(text: string): Promise<Record<string, unknown>> {
    return this.send(undefined, 'raw', text);
  }

  /** The first event of `type` (received so far or later) that `match` accepts. */
  waitEvent(type: string, match: (data: Json) => boolean = () => true, timeoutMs = WAIT_MS): Promise<Json> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.events.find((event) => event.type === type && match(event.data));
        if (found) {
          this.waiters.delete(check);
          clearTimeout(timer);
          resolve(found.data);
          return true;
        }
        if (this.ws.readyState === WebSocket.CLOSED) {
          this.waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`${this.name}: closed before a ${type} event arrived; got ${this.seen()}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.name}: no matching ${type} event within ${timeoutMs} ms; got ${this.seen()}`));
      }, timeoutMs);
      timer.unref();
      if (!check()) this.waiters.add(check);
    });
  }

  private seen(): string {
    return JSON.stringify(this.events.map((event) => event.type));
  }

  close(): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState !== WebSocket.CLOSED) this.ws.close(1000);
    return this.closed;
  }
}
