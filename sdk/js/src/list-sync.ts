/**
 * Keeps the conversation list live: loads `conversation.list` (the authority on unread counts) on
 * every (re)connect, and subscribes each listed conversation no open timeline covers — resuming from the
 * list's `last_seq`, so whatever arrived between the list read and the subscription comes in the replay.
 * Changes that race a list read are held and applied on top of it (the list counts each seq once).
 */
import type { Requester } from './sync.js';
import { ConversationList, type ConversationSummary } from './unread.js';

export interface ListSyncOptions {
  requester: Requester;
  emit: (conversations: ConversationSummary[]) => void;
  /** Whether an open timeline already subscribes the conversation (with its own resume point). */
  isOpen: (conversationId: string) => boolean;
  /** Subscribe to listed conversations (default true); without it only open ones update live. */
  watch?: boolean;
  limit?: number;
}

/** Subscribes in small batches: the connection's budget is 20 requests a second, bursts of 40. */
const SUBSCRIBE_CONCURRENCY = 4;

export class ListSync {
  readonly list = new ConversationList();
  private held: Array<() => void> | undefined;

  constructor(private readonly options: ListSyncOptions) {}

  /** Applies a change now, or after the list read in flight. */
  apply(change: (list: ConversationList) => unknown): void {
    if (this.held) {
      this.held.push(() => change(this.list));
      return;
    }
    change(this.list);
    this.options.emit(this.list.list());
  }

  async refresh(): Promise<ConversationSummary[]> {
    this.held ??= [];
    try {
      const reply = await this.options.requester.request('conversation.list', { limit: this.options.limit ?? 50 });
      this.list.load(reply.conversations);
    } finally {
      const held = this.held ?? [];
      this.held = undefined;
      for (const change of held) change();
      this.options.emit(this.list.list());
    }
    if (this.options.watch ?? true) await this.watchListed();
    return this.list.list();
  }

  private async watchListed(): Promise<void> {
    const queue = this.list.list().filter((entry) => !this.options.isOpen(entry.id));
    const worker = async (): Promise<void> => {
      for (let entry = queue.shift(); entry; entry = queue.shift()) {
        const reply = await this.options.requester.request('conversation.subscribe', {
          conversation_id: entry.id,
          since_seq: entry.last_seq,
          epoch: entry.epoch,
        });
        if (reply.recovered && reply.messages.length > 0) {
          this.apply((list) => reply.messages.forEach((message) => list.applyMessage(message)));
        }
      }
    };
    await Promise.all(Array.from({ length: SUBSCRIBE_CONCURRENCY }, worker));
  }
}
