/**
 * The conversation list: each conversation with its newest message, the user's read horizon and an
 * unread count kept right as events arrive. Pure: the client feeds it `conversation.list` replies and
 * events.
 *
 * The server's `unread_count` (others' non-deleted messages after `read_seq`) is a snapshot; after it,
 * the list counts by seq: every message from someone else above the snapshot's `last_seq` is remembered
 * by seq (so a message seen twice — replay and live — counts once), own messages move the horizon (the
 * server moves `read_seq` on your own sends), and a `read` event for this user, from any device, moves
 * the horizon and recounts. Messages inside the snapshot's range are not known one by one, so when the
 * horizon moves into that range the snapshot's share is estimated as at most the seqs left in it.
 */
import type { Conversation, ConversationListEntry, Message, ReadHorizon } from './protocol.js';
import { isDeleted } from './protocol.js';

export interface ConversationSummary extends ConversationListEntry {
  /** Other members' read horizons seen in `read` events since the list was loaded. */
  member_reads: Record<string, number>;
}

interface Tracker {
  entry: ConversationSummary;
  /** The snapshot's unread count, which covers seqs in (`baselineRead`, `baselineThrough`]. */
  baselineUnread: number;
  baselineRead: number;
  baselineThrough: number;
  /** Others' messages above `baselineThrough`, not deleted. */
  othersAbove: Set<number>;
  /** Every seq above `baselineThrough` seen, whoever sent it (what {@link ConversationList.covers} asks). */
  seenAbove: Set<number>;
  /** Seqs whose deletion was already taken into account (so a repeated tombstone counts once). */
  deletedSeen: Set<number>;
}

export class ConversationList {
  private readonly trackers = new Map<string, Tracker>();
  private cached: ConversationSummary[] | undefined;

  constructor(private selfUserId: string | undefined = undefined) {}

  setSelfUserId(userId: string): void {
    this.selfUserId = userId;
  }

  /** A `conversation.list` reply: the authority. Replaces every tracked count. */
  load(entries: readonly ConversationListEntry[]): void {
    this.trackers.clear();
    for (const entry of entries) this.track(entry);
    this.changed();
  }

  /**
   * One conversation's entry of a `conversation.list` reply: the authority for it, as {@link load} is for
   * all (other members' horizons seen in `read` events are kept). Adds it when not listed yet.
   */
  reload(entry: ConversationListEntry): void {
    const memberReads = this.trackers.get(entry.id)?.entry.member_reads ?? {};
    this.track(entry).entry.member_reads = memberReads;
    this.changed();
  }

  /**
   * Whether the list has accounted for every seq up to `throughSeq`: inside the range a server
   * snapshot counted, or seen one by one since. False for a conversation not listed.
   */
  covers(conversationId: string, throughSeq: number): boolean {
    const tracker = this.trackers.get(conversationId);
    if (!tracker) return false;
    if (throughSeq - tracker.baselineThrough > tracker.seenAbove.size) return false;
    for (let seq = tracker.baselineThrough + 1; seq <= throughSeq; seq += 1) if (!tracker.seenAbove.has(seq)) return false;
    return true;
  }

  /** `conversation.created`, `.joined`, `.updated` (or a create/rename reply): keeps counts, updates the rest. */
  upsert(conversation: Conversation): void {
    const tracker = this.trackers.get(conversation.id);
    if (tracker) {
      const { last_message, last_seq, read_seq, unread_count, member_reads } = tracker.entry;
      tracker.entry = { ...conversation, last_message, last_seq, read_seq, unread_count, member_reads };
    } else {
      this.track({ ...conversation, last_message: null, last_seq: 0, read_seq: 0, unread_count: 0 });
    }
    this.changed();
  }

  /** `conversation.removed` for this user, or a leave. */
  remove(conversationId: string): void {
    if (this.trackers.delete(conversationId)) this.changed();
  }

  has(conversationId: string): boolean {
    return this.trackers.has(conversationId);
  }

  /**
   * Any message seen (live, replay or a history page) in any state. Returns false when the conversation
   * is not in the list (the caller may want to load it).
   */
  applyMessage(message: Message): boolean {
    const tracker = this.trackers.get(message.conversation_id);
    if (!tracker) return false;
    const entry = tracker.entry;
    const own = this.selfUserId !== undefined && message.sender_id === this.selfUserId;
    if (message.seq > entry.last_seq) {
      entry.last_seq = message.seq;
      entry.last_message = message;
    } else if (entry.last_message?.id === message.id && message.version > entry.last_message.version) {
      entry.last_message = message;
    }
    if (message.seq > tracker.baselineThrough) tracker.seenAbove.add(message.seq);
    if (own) {
      // The server moves the sender's horizon to its own message: everything before it counts as read.
      entry.read_seq = Math.max(entry.read_seq, message.seq);
    } else if (message.seq > tracker.baselineThrough) {
      if (isDeleted(message)) tracker.othersAbove.delete(message.seq);
      else if (!tracker.deletedSeen.has(message.seq)) tracker.othersAbove.add(message.seq);
    }
    if (isDeleted(message)) tracker.deletedSeen.add(message.seq);
    this.recount(tracker);
    this.changed();
    return true;
  }

  /**
   * A `message.deleted` event. Unlike a tombstone met in a replay or a page (which may have been deleted
   * before the snapshot, and so never counted), an event is news: a deleted unread message inside the
   * snapshot's range stops counting. Repeats of the same deletion count once.
   */
  applyDeleted(message: Message): boolean {
    const tracker = this.trackers.get(message.conversation_id);
    if (!tracker) return false;
    const own = this.selfUserId !== undefined && message.sender_id === this.selfUserId;
    const inBaseline = message.seq > tracker.baselineRead && message.seq <= tracker.baselineThrough;
    if (!own && inBaseline && !tracker.deletedSeen.has(message.seq)) {
      tracker.baselineUnread = Math.max(0, tracker.baselineUnread - 1);
    }
    return this.applyMessage(message);
  }

  /** A `read` event or a `read.mark` reply. This user's horizon never moves back. */
  applyRead(horizon: ReadHorizon): void {
    const tracker = this.trackers.get(horizon.conversation_id);
    if (!tracker) return;
    if (this.selfUserId !== undefined && horizon.user_id === this.selfUserId) {
      tracker.entry.read_seq = Math.max(tracker.entry.read_seq, horizon.seq);
      this.recount(tracker);
    } else {
      const previous = tracker.entry.member_reads[horizon.user_id] ?? 0;
      tracker.entry.member_reads = { ...tracker.entry.member_reads, [horizon.user_id]: Math.max(previous, horizon.seq) };
    }
    this.changed();
  }

  get(conversationId: string): ConversationSummary | undefined {
    const tracker = this.trackers.get(conversationId);
    return tracker ? { ...tracker.entry } : undefined;
  }

  /** Newest activity first (the last message's time, else the conversation's creation). */
  list(): ConversationSummary[] {
    if (!this.cached) {
      this.cached = [...this.trackers.values()]
        .map((tracker) => ({ ...tracker.entry }))
        .sort((a, b) => activity(b) - activity(a));
    }
    return this.cached;
  }

  totalUnread(): number {
    let total = 0;
    for (const tracker of this.trackers.values()) total += tracker.entry.unread_count;
    return total;
  }

  private track(entry: ConversationListEntry): Tracker {
    const tracker: Tracker = {
      entry: { ...entry, member_reads: {} },
      baselineUnread: entry.unread_count,
      baselineRead: entry.read_seq,
      baselineThrough: Math.max(entry.last_seq, entry.read_seq),
      othersAbove: new Set(),
      seenAbove: new Set(),
      deletedSeen: new Set(),
    };
    this.trackers.set(entry.id, tracker);
    return tracker;
  }

  private recount(tracker: Tracker): void {
    const readSeq = tracker.entry.read_seq;
    let baseline: number;
    if (readSeq >= tracker.baselineThrough) baseline = 0;
    else if (readSeq <= tracker.baselineRead) baseline = tracker.baselineUnread;
    else baseline = Math.min(tracker.baselineUnread, tracker.baselineThrough - readSeq);
    let above = 0;
    for (const seq of tracker.othersAbove) if (seq > readSeq) above += 1;
    tracker.entry.unread_count = baseline + above;
  }

  private changed(): void {
    this.cached = undefined;
  }
}

function activity(entry: ConversationSummary): number {
  return entry.last_message?.created_at ?? entry.created_at;
}
