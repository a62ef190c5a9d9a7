/**
 * The ephemeral state: who is typing (hidden after `expires_in_ms` unless renewed) and who is online
 * (watched users, re-watched after every reconnect since watches live on the connection); and the two
 * requests that draw on the connection's signals budget (`typing.*` and `read.mark`, 5 a second):
 *
 * - typing is best-effort and lapses by itself, so a `rate_limited` typing request is dropped, never
 *   retried (a retried start could land after a later stop and show "typing…" for 5 s more). Per
 *   conversation one typing request is on the wire at a time and only the latest intent waits behind
 *   it, so a stop is never overtaken by an earlier start;
 * - read marks are coalesced: per conversation one is on the wire at a time, later ones wait behind it
 *   and only the highest seq is sent; a `rate_limited` one is kept and sent once the wait the server
 *   named (`retry_after_ms`) has passed.
 */
import { CaasError } from './errors.js';
import type { PresenceState, ReadHorizon, TypingNotice } from './protocol.js';
import type { Requester } from './sync.js';
import { TypingTracker } from './typing.js';

/** Runs `callback` after `ms`; returns what cancels it. */
export type Schedule = (callback: () => void, ms: number) => () => void;

export interface SignalsOptions {
  requester: Requester;
  /**
   * Sends `typing.*` and `read.mark`. It should not wait out `rate_limited` itself (the `Connection`,
   * not the client's retrying `request`): the refusals are handled here. Default: `requester`.
   */
  signalRequester?: Requester;
  now: () => number;
  /** Timers (default `setTimeout`); injectable for tests. */
  schedule?: Schedule;
  emitTyping: (conversationId: string, userIds: string[]) => void;
  emitPresence: (state: PresenceState) => void;
}

/** `typing.start` lasts 5 s on the server; renewing every 3 s keeps it up within the 5-a-second budget. */
const TYPING_RENEW_MS = 3000;
/** How long a start may show at the other side when its reply did not say (`expires_in_ms`). */
const TYPING_TTL_MS = 5000;
/** The shortest wait after a `rate_limited` refusal (a `retry_after_ms` of 0 must not spin). */
const MIN_RATE_WAIT_MS = 50;
const PRESENCE_BATCH = 500;

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

interface TypingLane {
  /** The typing request on the wire: `true` a start, `false` a stop. */
  inFlight: boolean | undefined;
  /** The latest intent, sent once the request on the wire is answered; superseded intents resolve. */
  queued: { typing: boolean; waiters: Array<Waiter<void>> } | undefined;
  /** Until when a start that went out may show at the other side (a stop that got through ends it). */
  shownUntil: number;
  /** When the last start went out: renewals are throttled to one per 3 s. */
  lastStart: number;
}

interface ReadLane {
  /** The read mark on the wire and who waits for its reply. */
  inFlight: { seq: number; waiters: Array<Waiter<ReadHorizon>> } | undefined;
  /** The highest seq asked for since (0: none) and who waits for it. */
  wanted: number;
  waiters: Array<Waiter<ReadHorizon>>;
  /** Cancels the timer waiting out a `rate_limited` refusal. */
  cancelWait: (() => void) | undefined;
}

export class Signals {
  private readonly typing = new TypingTracker();
  private readonly presenceState = new Map<string, boolean>();
  private readonly typingLanes = new Map<string, TypingLane>();
  private readonly readLanes = new Map<string, ReadLane>();
  /** Until when the signals budget is spent (the last `rate_limited` refusal's wait). */
  private quietUntil = -Infinity;
  private cancelExpiry: (() => void) | undefined;
  private readonly schedule: Schedule;

  constructor(private readonly options: SignalsOptions) {
    this.schedule =
      options.schedule ??
      ((callback, ms) => {
        const timer = setTimeout(callback, ms);
        return () => clearTimeout(timer);
      });
  }

  setSelfUserId(userId: string): void {
    this.typing.setSelfUserId(userId);
  }

  typingUsers(conversationId: string): string[] {
    return this.typing.users(conversationId, this.options.now());
  }

  onTyping(notice: TypingNotice): void {
    if (this.typing.apply(notice, this.options.now())) this.emitTyping(notice.conversation_id);
    this.scheduleExpiry();
  }

  /** A message from a user ends their typing indicator. */
  onMessage(conversationId: string, senderId: string): void {
    if (this.typing.stopped(conversationId, senderId)) this.emitTyping(conversationId);
  }

  /**
   * The own typing indicator. Starts are throttled to one per 3 s per conversation and dropped while
   * the signals budget is spent; a stop goes once the request on the wire (if any) is answered, and
   * not at all when no start may be showing. Resolves when the intent was sent, dropped (`rate_limited`)
   * or superseded by a later one; rejects with other failures.
   */
  sendTyping(conversationId: string, isTyping: boolean): Promise<void> {
    const now = this.options.now();
    const lane = this.typingLane(conversationId);
    const latest = lane.queued?.typing ?? lane.inFlight ?? now < lane.shownUntil;
    if (isTyping) {
      // The budget is spent: the start would be refused, and the indicator lapses by itself anyway.
      if (now < this.quietUntil) return Promise.resolve();
      if (latest && lane.queued === undefined && now - lane.lastStart < TYPING_RENEW_MS) return Promise.resolve();
    } else if (!latest) {
      return Promise.resolve(); // nothing to stop, or a stop already on its way
    }
    if (lane.inFlight === undefined) return this.typingRequest(conversationId, lane, isTyping);
    // One typing request on the wire per conversation: the latest intent waits for its answer.
    if (lane.queued && lane.queued.typing !== isTyping) {
      for (const waiter of lane.queued.waiters) waiter.resolve();
      lane.queued = undefined;
    }
    const queued = (lane.queued ??= { typing: isTyping, waiters: [] });
    return new Promise((resolve, reject) => queued.waiters.push({ resolve, reject }));
  }

  /**
   * Moves the read horizon to `seq`: coalesced per conversation (one `read.mark` on the wire, then the
   * highest seq asked for meanwhile), and a `rate_limited` refusal is waited out, not failed. Resolves
   * with the horizon the server stored (of a mark at or above `seq`).
   */
  markRead(conversationId: string, seq: number): Promise<ReadHorizon> {
    const lane = this.readLane(conversationId);
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject };
      if (lane.inFlight && seq <= lane.inFlight.seq) {
        lane.inFlight.waiters.push(waiter);
        return;
      }
      lane.wanted = Math.max(lane.wanted, seq);
      lane.waiters.push(waiter);
      this.nextReadMark(conversationId, lane);
    });
  }

  presence(userId: string): boolean | undefined {
    return this.presenceState.get(userId);
  }

  onPresence(state: PresenceState): void {
    this.presenceState.set(state.user_id, state.online);
    this.options.emitPresence(state);
  }

  /** Watches users (remembered for reconnects); returns those the server will not show (`not_visible`). */
  async watch(userIds: readonly string[]): Promise<string[]> {
    for (const userId of userIds) if (!this.presenceState.has(userId)) this.presenceState.set(userId, false);
    return this.subscribe([...userIds]);
  }

  /** After a reconnect: the watches were the old connection's. */
  async rewatch(): Promise<void> {
    if (this.presenceState.size > 0) await this.subscribe([...this.presenceState.keys()]);
  }

  /** The client closed: timers stop; read marks still waiting out a refusal are rejected (`closed`). */
  stop(): void {
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
    for (const lane of this.readLanes.values()) {
      if (!lane.cancelWait) continue;
      lane.cancelWait();
      lane.cancelWait = undefined;
      const waiters = lane.waiters;
      lane.waiters = [];
      lane.wanted = 0;
      for (const waiter of waiters) waiter.reject(new CaasError('closed', 'the client was closed'));
    }
  }

  private async subscribe(userIds: string[]): Promise<string[]> {
    const notVisible: string[] = [];
    for (let start = 0; start < userIds.length; start += PRESENCE_BATCH) {
      const reply = await this.options.requester.request('presence.subscribe', { user_ids: userIds.slice(start, start + PRESENCE_BATCH) });
      for (const state of reply.presence) this.onPresence(state);
      notVisible.push(...reply.not_visible);
    }
    return notVisible;
  }

  private emitTyping(conversationId: string): void {
    this.options.emitTyping(conversationId, this.typingUsers(conversationId));
  }

  private scheduleExpiry(): void {
    this.cancelExpiry?.();
    this.cancelExpiry = undefined;
    const next = this.typing.nextExpiry();
    if (next === undefined) return;
    this.cancelExpiry = this.schedule(() => {
      this.cancelExpiry = undefined;
      for (const conversationId of this.typing.expire(this.options.now())) this.emitTyping(conversationId);
      this.scheduleExpiry();
    }, Math.max(0, next - this.options.now()));
  }

  private get signalRequester(): Requester {
    return this.options.signalRequester ?? this.options.requester;
  }

  /** A `rate_limited` refusal from the signals budget: nothing more goes out before its wait passed. */
  private spent(error: CaasError): void {
    const wait = Math.max(MIN_RATE_WAIT_MS, error.retryAfterMs ?? 1000);
    this.quietUntil = Math.max(this.quietUntil, this.options.now() + wait);
  }

  private typingLane(conversationId: string): TypingLane {
    let lane = this.typingLanes.get(conversationId);
    if (!lane) {
      lane = { inFlight: undefined, queued: undefined, shownUntil: -Infinity, lastStart: -Infinity };
      this.typingLanes.set(conversationId, lane);
    }
    return lane;
  }

  private async typingRequest(conversationId: string, lane: TypingLane, isTyping: boolean): Promise<void> {
    const sentAt = this.options.now();
    lane.inFlight = isTyping;
    const lastStart = lane.lastStart;
    if (isTyping) lane.lastStart = sentAt;
    try {
      const notice = await this.signalRequester.request(isTyping ? 'typing.start' : 'typing.stop', { conversation_id: conversationId });
      lane.shownUntil = isTyping ? sentAt + (notice.expires_in_ms > 0 ? notice.expires_in_ms : TYPING_TTL_MS) : -Infinity;
    } catch (error) {
      if (isRateLimited(error)) {
        // Dropped, not retried: a late start would outlive a later stop; the indicator lapses anyway.
        this.spent(error);
        lane.lastStart = lastStart;
        return;
      }
      // Unknown whether it got through: a later stop is sent to be sure, a later start is not throttled.
      if (isTyping) {
        lane.shownUntil = Math.max(lane.shownUntil, sentAt + TYPING_TTL_MS);
        lane.lastStart = -Infinity;
      }
      throw error;
    } finally {
      lane.inFlight = undefined;
      this.nextTyping(conversationId, lane);
    }
  }

  /** The request on the wire was answered: the queued intent goes, if it still changes anything. */
  private nextTyping(conversationId: string, lane: TypingLane): void {
    const queued = lane.queued;
    if (!queued) return;
    lane.queued = undefined;
    const now = this.options.now();
    const shown = now < lane.shownUntil;
    const needed = queued.typing ? now >= this.quietUntil && !(shown && now - lane.lastStart < TYPING_RENEW_MS) : shown;
    const sent = needed ? this.typingRequest(conversationId, lane, queued.typing) : Promise.resolve();
    sent.then(
      () => queued.waiters.forEach((waiter) => waiter.resolve()),
      (error: unknown) => queued.waiters.forEach((waiter) => waiter.reject(error)),
    );
  }

  private readLane(conversationId: string): ReadLane {
    let lane = this.readLanes.get(conversationId);
    if (!lane) {
      lane = { inFlight: undefined, wanted: 0, waiters: [], cancelWait: undefined };
      this.readLanes.set(conversationId, lane);
    }
    return lane;
  }

  /** Sends the highest read mark asked for, unless one is on the wire or the budget is spent. */
  private nextReadMark(conversationId: string, lane: ReadLane): void {
    if (lane.inFlight || lane.cancelWait || lane.waiters.length === 0) return;
    const wait = this.quietUntil - this.options.now();
    if (wait > 0) {
      lane.cancelWait = this.schedule(() => {
        lane.cancelWait = undefined;
        this.nextReadMark(conversationId, lane);
      }, wait);
      return;
    }
    const mark = { seq: lane.wanted, waiters: lane.waiters };
    lane.inFlight = mark;
    lane.wanted = 0;
    lane.waiters = [];
    this.signalRequester.request('read.mark', { conversation_id: conversationId, seq: mark.seq }).then(
      (horizon) => {
        lane.inFlight = undefined;
        for (const waiter of mark.waiters) waiter.resolve(horizon);
        this.nextReadMark(conversationId, lane);
      },
      (error: unknown) => {
        lane.inFlight = undefined;
        if (isRateLimited(error)) {
          // Kept: merged with what was asked for meanwhile, sent once the named wait has passed.
          this.spent(error);
          lane.wanted = Math.max(lane.wanted, mark.seq);
          lane.waiters = [...mark.waiters, ...lane.waiters];
        } else {
          for (const waiter of mark.waiters) waiter.reject(error);
        }
        this.nextReadMark(conversationId, lane);
      },
    );
  }
}

function isRateLimited(error: unknown): error is CaasError {
  return error instanceof CaasError && error.code === 'rate_limited';
}
