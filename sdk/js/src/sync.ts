/**
 * Keeps one open conversation's timeline complete across reconnects (docs/protocol.md, "Reconnecting
 * without gaps"): on every (re)connect it subscribes with `since_seq` (the highest contiguous seq held)
 * and `epoch`, merges the replay while `has_more`, reloads the newest page after an epoch change, and
 * pages history forward when the server could not replay. Live events that arrive while a subscribe is
 * in flight are held back and applied after its reply, so a replay is never mistaken for a gap.
 */
import type { CaasError } from './errors.js';
import type { SeqSpan } from './coverage.js';
import type { ClientEventType, Message, ReplyData, RequestData } from './protocol.js';
import { Timeline } from './timeline.js';

export interface Requester {
  request<K extends ClientEventType>(type: K, data: RequestData<K>): Promise<ReplyData<K>>;
}

export interface SyncOptions {
  selfUserId?: string;
  /** Messages of the newest page and of `loadOlder` (default 50). */
  pageSize?: number;
  /**
   * A catch-up longer than this many messages is not replayed: the timeline restarts from the newest
   * page and older messages load on demand (default 2,000).
   */
  maxCatchUp?: number;
  /** How long a hole left by live deliveries may stay before it is fetched (default 1 s). */
  gapGraceMs?: number;
  onChange: () => void;
  /** Messages learnt from replays and pages (for the conversation list). */
  onMessages?: (messages: readonly Message[]) => void;
  onGapSkipped?: (gap: SeqSpan) => void;
  onError?: (error: CaasError | Error) => void;
}

const FORWARD_PAGE = 200;
/** A hole that survives this many fetches is declared void (the server has nothing for it). */
const MAX_GAP_ATTEMPTS = 3;

export class ConversationSync {
  readonly timeline: Timeline;
  private subscribing = false;
  private held: Array<() => void> = [];
  private running: Promise<void> | undefined;
  private rerun = false;
  private gapTimer: ReturnType<typeof setTimeout> | undefined;
  private gapAttempts = new Map<string, number>();
  private closed = false;

  constructor(
    readonly conversationId: string,
    private readonly requester: Requester,
    private readonly options: SyncOptions,
  ) {
    this.timeline = new Timeline(conversationId, options.selfUserId === undefined ? {} : { selfUserId: options.selfUserId });
  }

  /** Applies a live event now, or after the subscribe reply in flight. */
  deliver(apply: (timeline: Timeline) => void): void {
    if (this.closed) return;
    if (this.subscribing) {
      this.held.push(() => apply(this.timeline));
      return;
    }
    apply(this.timeline);
    this.options.onChange();
    this.watchGap();
  }

  /** Catches up; concurrent calls share one run (and ask it to go round once more). */
  sync(): Promise<void> {
    if (this.running) {
      this.rerun = true;
      return this.running;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          this.rerun = false;
          await this.catchUp();
        } while (this.rerun && !this.closed);
      } finally {
        this.running = undefined;
      }
      this.watchGap();
    };
    this.running = run();
    return this.running;
  }

  /** Resolves once caught up: waits for the run in progress, or starts one if nothing is loaded yet. */
  settled(): Promise<void> {
    if (this.running) return this.running;
    return this.timeline.loaded ? Promise.resolve() : this.sync();
  }

  /** Pages back: returns whether still older messages exist. */
  async loadOlder(limit = this.options.pageSize ?? 50): Promise<boolean> {
    const before = this.timeline.oldestSeq;
    if (before === undefined) {
      await this.sync();
      return this.timeline.hasOlder;
    }
    if (!this.timeline.hasOlder) return false;
    const page = await this.requester.request('conversation.history', { conversation_id: this.conversationId, before_seq: before, limit });
    this.timeline.applyHistoryPage({ before_seq: before }, page);
    this.options.onMessages?.(page.messages);
    this.options.onChange();
    return this.timeline.hasOlder;
  }

  close(): void {
    this.closed = true;
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    this.held = [];
  }

  private async catchUp(): Promise<void> {
    // Bounded: each round either finishes, or moves the contiguous end up by a replay page.
    for (let round = 0; round < 100 && !this.closed; round += 1) {
      const resume = this.timeline.resumePoint();
      this.subscribing = true;
      let outcome: ReturnType<Timeline['applySubscribeReply']>;
      let lastSeq: number;
      try {
        const reply = await this.requester.request('conversation.subscribe', { conversation_id: this.conversationId, ...(resume ?? {}) });
        outcome = this.timeline.applySubscribeReply(reply, resume?.since_seq);
        lastSeq = reply.last_seq;
        this.options.onMessages?.(reply.messages);
      } finally {
        this.release();
      }
      switch (outcome.status) {
        case 'needs_latest':
        case 'reset':
          await this.loadLatest();
          return;
        case 'resumed':
          if (!outcome.has_more) return;
          if (lastSeq - outcome.since_seq > (this.options.maxCatchUp ?? 2000)) return this.restartFromLatest();
          continue;
        case 'not_recovered':
          if (outcome.last_seq - outcome.after_seq > (this.options.maxCatchUp ?? 2000)) return this.restartFromLatest();
          await this.pageForward(outcome.after_seq);
          return;
      }
    }
  }

  /** Applies the live events held back during a subscribe. */
  private release(): void {
    this.subscribing = false;
    const held = this.held;
    this.held = [];
    for (const apply of held) apply();
    this.options.onChange();
  }

  private async loadLatest(): Promise<void> {
    const page = await this.requester.request('conversation.history', {
      conversation_id: this.conversationId,
      limit: this.options.pageSize ?? 50,
    });
    this.timeline.applyHistoryPage({}, page);
    this.options.onMessages?.(page.messages);
    this.options.onChange();
  }

  /** Too much was missed to replay it all: show the newest page; older ones load on demand. */
  private async restartFromLatest(): Promise<void> {
    this.timeline.reset(this.timeline.epoch);
    await this.loadLatest();
  }

  /** The server could not replay after `afterSeq`: history pages from there are authoritative instead. */
  private async pageForward(afterSeq: number): Promise<void> {
    let cursor = afterSeq;
    for (let page = 0; page < 100 && !this.closed; page += 1) {
      const reply = await this.requester.request('conversation.history', {
        conversation_id: this.conversationId,
        after_seq: cursor,
        limit: FORWARD_PAGE,
      });
      this.timeline.applyHistoryPage({ after_seq: cursor }, reply);
      this.options.onMessages?.(reply.messages);
      this.options.onChange();
      const last = reply.messages.at(-1);
      if (!reply.has_more || !last) break;
      cursor = last.seq;
    }
  }

  /**
   * A hole left by live deliveries usually closes by itself (deliveries from different nodes can
   * overtake each other). One still open after the grace period is fetched by resubscribing from the
   * contiguous end; one that survives several fetches is one the server has nothing for, and is skipped
   * so the resume point can move on.
   */
  private watchGap(): void {
    if (this.closed || this.gapTimer || this.running) return;
    if (!this.timeline.firstGap()) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      const gap = this.timeline.firstGap();
      if (!gap || this.closed) return;
      const key = `${gap.from}-${gap.through}`;
      const attempts = (this.gapAttempts.get(key) ?? 0) + 1;
      this.gapAttempts.set(key, attempts);
      if (attempts > MAX_GAP_ATTEMPTS) {
        this.gapAttempts.delete(key);
        this.timeline.skipGap(gap);
        this.options.onGapSkipped?.(gap);
        this.options.onChange();
        this.watchGap();
        return;
      }
      this.sync().catch((error: unknown) => this.options.onError?.(error instanceof Error ? error : new Error(String(error))));
    }, this.options.gapGraceMs ?? 1000);
  }
}
