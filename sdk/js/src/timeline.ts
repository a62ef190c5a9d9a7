/**
 * One conversation's messages as the user should see them, merged from every source the protocol has —
 * live `message.*` events, subscribe replays, history pages, the outbox — arriving in any order and any
 * number of times. Pure (no I/O, no timers): the client feeds inputs and asks what to fetch next.
 *
 * Rules, all from docs/protocol.md:
 * - `seq` orders a conversation and is unique within an epoch: one message per seq, ascending.
 * - The highest `version` of a message is its state: edits and tombstones replace lower versions,
 *   never the other way round, whatever order they arrive in.
 * - A new `epoch` voids every held seq: the timeline empties and the client reloads.
 * - Coverage (which seqs are known: held, or shown not to exist by an authoritative page) gives the
 *   resume point (`since_seq`) and the holes to fetch.
 */
import { SeqCoverage, type SeqSpan } from './coverage.js';
import type { OutboxEntry } from './outbox.js';
import type { HistoryMessage, HistoryReply, Message, ReactionCount, ReactionEventData, SubscribeReply } from './protocol.js';
import { ReactionLedger } from './reactions.js';

/** A message as shown: the newest known state, with its thread size and reactions. */
export interface TimelineMessage extends Message {
  reply_count?: number;
  reactions: ReactionCount[];
}

export type TimelineItem =
  | { kind: 'message'; message: TimelineMessage }
  /** A send not confirmed yet (pending, accepted or failed), shown where it will land. */
  | { kind: 'pending'; send: OutboxEntry };

/** What a subscribe reply asks the client to do next. */
export type ReplayOutcome =
  /** Nothing is held yet: load the newest history page. */
  | { status: 'needs_latest' }
  /** The epoch changed: everything held was dropped; load the newest history page. */
  | { status: 'reset' }
  /** The replay was merged; with `has_more`, subscribe again from `since_seq`. */
  | { status: 'resumed'; has_more: boolean; since_seq: number }
  /** The server could not replay (a gap it could not close): page forward with history from `after_seq`. */
  | { status: 'not_recovered'; after_seq: number; last_seq: number };

export interface TimelineOptions {
  /** The signed-in user: decides which confirmed messages replace pending sends, and reactions' `mine`. */
  selfUserId?: string;
  /** Most out-of-window updates and reactions kept for messages not loaded yet (default 500). */
  maxParked?: number;
}

interface Held {
  message: Message & { reply_count?: number };
  reactions: ReactionLedger;
}

export class Timeline {
  /** The epoch the held seqs belong to; `undefined` until the first subscribe reply. */
  epoch: string | undefined;
  private readonly bySeq = new Map<number, Held>();
  private readonly seqById = new Map<string, number>();
  private sortedSeqs: number[] = [];
  private readonly coverage = new SeqCoverage();
  /** Every seq above `floor` up to the contiguous end is known; `undefined` until a page was loaded. */
  private floor: number | undefined;
  /** Updates (whole messages) for messages below the loaded window or before anything was loaded. */
  private readonly parkedMessages = new Map<string, Message>();
  private readonly parkedReactions = new Map<string, Array<{ event: ReactionEventData; active: boolean }>>();
  private pending: OutboxEntry[] = [];
  private readonly confirmedClientIds = new Set<string>();
  private cached: TimelineItem[] | undefined;
  private readonly maxParked: number;

  constructor(
    readonly conversationId: string,
    private readonly options: TimelineOptions = {},
  ) {
    this.maxParked = options.maxParked ?? 500;
  }

  /** The signed-in user, once known (it comes with the token); affects only what arrives afterwards. */
  setSelfUserId(userId: string): void {
    this.options.selfUserId = userId;
  }

  // ------------------------------------------------------------------ queries

  /** Whether a page has been loaded (so a resume point exists). */
  get loaded(): boolean {
    return this.floor !== undefined;
  }

  /** The highest seq up to which every message is held (or known not to exist): the `since_seq` to resume from. */
  get contiguousSeq(): number | undefined {
    return this.floor === undefined ? undefined : this.coverage.contiguousFrom(this.floor + 1);
  }

  /** What `conversation.subscribe` should carry after a reconnect; `undefined` when nothing is held yet. */
  resumePoint(): { since_seq: number; epoch: string } | undefined {
    const since = this.contiguousSeq;
    return since === undefined || this.epoch === undefined ? undefined : { since_seq: since, epoch: this.epoch };
  }

  /** The first run of seqs known to exist (something above them is held) but not held: fetch it. */
  firstGap(): SeqSpan | undefined {
    return this.floor === undefined ? undefined : this.coverage.firstHole(this.floor + 1);
  }

  /** Whether older history exists below what is held (page back with `before_seq` = {@link oldestSeq}). */
  get hasOlder(): boolean {
    return this.floor !== undefined && this.floor > 0;
  }

  /** The `before_seq` of the next older page. */
  get oldestSeq(): number | undefined {
    return this.floor === undefined ? undefined : this.floor + 1;
  }

  get lastSeq(): number | undefined {
    return this.sortedSeqs.at(-1);
  }

  message(id: string): TimelineMessage | undefined {
    const seq = this.seqById.get(id);
    const held = seq === undefined ? undefined : this.bySeq.get(seq);
    return held ? this.view(held) : undefined;
  }

  /** Confirmed messages (ascending seq) with unconfirmed sends in place; the same array until something changes. */
  items(): TimelineItem[] {
    if (this.cached) return this.cached;
    const items: TimelineItem[] = [];
    const unconfirmed = this.pending.filter((send) => !this.confirmedClientIds.has(send.client_msg_id));
    // Accepted sends know their seq: they sit where their message will land. The rest follow the last message.
    const placed = unconfirmed.filter((send) => send.seq !== undefined).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    const trailing = unconfirmed.filter((send) => send.seq === undefined);
    let next = 0;
    for (const seq of this.sortedSeqs) {
      while (next < placed.length && (placed[next]?.seq ?? 0) < seq) items.push({ kind: 'pending', send: placed[next++]! });
      const held = this.bySeq.get(seq);
      if (held) items.push({ kind: 'message', message: this.view(held) });
    }
    while (next < placed.length) items.push({ kind: 'pending', send: placed[next++]! });
    for (const send of trailing) items.push({ kind: 'pending', send });
    this.cached = items;
    return items;
  }

  /** Only the confirmed messages, ascending. */
  messages(): TimelineMessage[] {
    return this.sortedSeqs.flatMap((seq) => {
      const held = this.bySeq.get(seq);
      return held ? [this.view(held)] : [];
    });
  }

  // ------------------------------------------------------------------ inputs

  /**
   * A `conversation.subscribe` reply. `sinceSeq` is what the request carried (`undefined` for a plain
   * subscribe). A replay is authoritative for its range: every message after `sinceSeq` up to the last
   * one it carries, so seqs missing in between do not exist.
   */
  applySubscribeReply(reply: SubscribeReply, sinceSeq: number | undefined): ReplayOutcome {
    if (this.epoch !== undefined && reply.epoch !== this.epoch) {
      this.reset(reply.epoch);
      return { status: 'reset' };
    }
    this.epoch = reply.epoch;
    if (sinceSeq === undefined || !this.loaded) return { status: 'needs_latest' };
    if (!reply.recovered) return { status: 'not_recovered', after_seq: sinceSeq, last_seq: reply.last_seq };
    const last = reply.messages.at(-1);
    for (const message of reply.messages) this.insertOrMerge(message, undefined);
    if (last) this.coverage.add(sinceSeq + 1, last.seq);
    this.drainParked();
    this.changed();
    return { status: 'resumed', has_more: reply.has_more, since_seq: this.contiguousSeq ?? sinceSeq };
  }

  /**
   * A `conversation.history` page and the request that asked for it. Pages are authoritative for the
   * range they span: forward pages from `after_seq` to their last message, backward pages from their
   * first message to `before_seq`, and a backward or newest page without `has_more` down to seq 1.
   */
  applyHistoryPage(request: { after_seq?: number; before_seq?: number }, reply: HistoryReply): void {
    const messages = reply.messages;
    const first = messages[0];
    const last = messages.at(-1);
    for (const message of messages) this.insertOrMerge(message, message.reactions);
    if (request.after_seq !== undefined) {
      if (last) this.coverage.add(request.after_seq + 1, last.seq);
      if (this.floor === undefined) this.floor = request.after_seq;
    } else {
      // Backward or newest page: it is complete from its first message up (to `before_seq`, or to its
      // last message), and without `has_more` nothing older exists.
      const top = request.before_seq !== undefined ? request.before_seq - 1 : (last?.seq ?? 0);
      const bottom = reply.has_more ? (first?.seq ?? top + 1) : 1;
      this.coverage.add(bottom, top);
      const pageFloor = bottom - 1;
      this.floor = this.floor === undefined ? pageFloor : Math.min(this.floor, pageFloor);
    }
    this.drainParked();
    this.changed();
  }

  /**
   * The client gave up on a hole the server could not fill (a replay refused and history returned nothing
   * for it): those seqs are treated as not existing, so resuming can move past them.
   */
  skipGap(gap: SeqSpan): void {
    this.coverage.add(gap.from, gap.through);
    this.changed();
  }

  /** `message.new`, `message.updated` or `message.deleted`: each carries the whole message. */
  applyMessage(message: Message): void {
    if (message.conversation_id !== this.conversationId) return;
    this.insertOrMerge(message, undefined);
    this.changed();
  }

  /** `reaction.added` / `reaction.removed`. A reaction to a message not held yet waits for it. */
  applyReaction(event: ReactionEventData, active: boolean): void {
    const seq = this.seqById.get(event.message_id);
    const held = seq === undefined ? undefined : this.bySeq.get(seq);
    if (held) {
      held.reactions.apply(event.emoji, event.user_id, active);
      this.changed();
      return;
    }
    const parked = this.parkedReactions.get(event.message_id) ?? [];
    parked.push({ event, active });
    this.parkedReactions.set(event.message_id, parked);
    trimOldest(this.parkedReactions, this.maxParked);
  }

  /** The outbox entries of this conversation, in the order they were made. */
  setPending(entries: readonly OutboxEntry[]): void {
    this.pending = entries.filter((entry) => entry.conversation_id === this.conversationId && entry.state !== 'persisted');
    this.changed();
  }

  /** Drops everything held (a new epoch): the numbering the held seqs belonged to is void. Pending sends stay. */
  reset(epoch: string | undefined): void {
    this.epoch = epoch;
    this.bySeq.clear();
    this.seqById.clear();
    this.sortedSeqs = [];
    this.coverage.clear();
    this.floor = undefined;
    this.parkedMessages.clear();
    this.parkedReactions.clear();
    this.confirmedClientIds.clear();
    this.changed();
  }

  // ------------------------------------------------------------------ merging

  private insertOrMerge(incoming: Message | HistoryMessage, reactions: ReactionCount[] | undefined): void {
    const knownSeq = this.seqById.get(incoming.id);
    const held = this.bySeq.get(knownSeq ?? incoming.seq);
    if (held) {
      this.merge(held, incoming, reactions);
      return;
    }
    if (this.floor === undefined || incoming.seq <= this.floor) {
      // Below the loaded window, or nothing loaded yet: keep the newest state until a page brings it in.
      const parked = this.parkedMessages.get(incoming.id);
      if (!parked || incoming.version > parked.version) this.parkedMessages.set(incoming.id, stripAnnotations(incoming));
      trimOldest(this.parkedMessages, this.maxParked);
      return;
    }
    const parked = this.parkedMessages.get(incoming.id);
    this.parkedMessages.delete(incoming.id);
    // An update that arrived before its message (kept above) wins when its version is higher.
    const base = parked && parked.version > incoming.version ? parked : incoming;
    const entry: Held = {
      message: { ...stripAnnotations(base), ...replyCountOf(incoming) },
      reactions: new ReactionLedger(reactions ?? [], this.options.selfUserId),
    };
    this.bySeq.set(incoming.seq, entry);
    this.seqById.set(incoming.id, incoming.seq);
    insertSorted(this.sortedSeqs, incoming.seq);
    this.coverage.add(incoming.seq, incoming.seq);
    this.noteConfirmed(entry.message);
    for (const { event, active } of this.parkedReactions.get(incoming.id) ?? []) {
      entry.reactions.apply(event.emoji, event.user_id, active);
    }
    this.parkedReactions.delete(incoming.id);
  }

  private merge(held: Held, incoming: Message | HistoryMessage, reactions: ReactionCount[] | undefined): void {
    if (incoming.id !== held.message.id) return; // another message at a held seq: impossible within an epoch
    if (incoming.version > held.message.version) {
      // A newer state replaces the content wholesale (a tombstone drops text and attachments); the
      // annotations only history carries are kept unless this copy has fresher ones.
      held.message = { ...stripAnnotations(incoming), ...replyCountOf(held.message), ...replyCountOf(incoming) };
    } else if (incoming.version === held.message.version) {
      Object.assign(held.message, replyCountOf(incoming));
    } else {
      return; // stale copy: neither its content nor its annotations are trusted
    }
    // A history page is a fresh read of the reactions: it replaces what live events had built up.
    if (reactions) held.reactions = new ReactionLedger(reactions, this.options.selfUserId);
  }

  private drainParked(): void {
    if (this.floor === undefined) return;
    for (const [id, message] of [...this.parkedMessages]) {
      if (this.seqById.has(id) || message.seq > this.floor) {
        this.parkedMessages.delete(id);
        this.insertOrMerge(message, undefined);
      }
    }
  }

  private noteConfirmed(message: Message): void {
    const self = this.options.selfUserId;
    if (self === undefined || message.sender_id === self) this.confirmedClientIds.add(message.client_msg_id);
  }

  private view(held: Held): TimelineMessage {
    return { ...held.message, reactions: held.reactions.counts() };
  }

  private changed(): void {
    this.cached = undefined;
  }
}

function stripAnnotations(message: Message | HistoryMessage): Message {
  const { reply_count: _replies, reactions: _reactions, ...rest } = message as HistoryMessage;
  return rest;
}

function replyCountOf(message: Message | (Message & { reply_count?: number })): { reply_count?: number } {
  const count = (message as { reply_count?: unknown }).reply_count;
  return typeof count === 'number' ? { reply_count: count } : {};
}

function insertSorted(sorted: number[], value: number): void {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if ((sorted[mid] ?? 0) < value) low = mid + 1;
    else high = mid;
  }
  if (sorted[low] !== value) sorted.splice(low, 0, value);
}

/** Maps keep insertion order: past the bound, the oldest entries go first. */
function trimOldest<V>(map: Map<string, V>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next();
    if (oldest.done) return;
    map.delete(oldest.value);
  }
}
