/**
 * Keeps the conversation list live: loads `conversation.list` (the authority on unread counts) on
 * every (re)connect, and subscribes each listed conversation no open timeline covers — resuming from the
 * list's `last_seq`, so whatever arrived between the list read and the subscription comes in the replay.
 * A conversation the user gets later (`conversation.created`, `.joined`) is subscribed by
 * {@link ListSync.watchNew}. Changes that race a list read are held and applied on top of it (the list
 * counts each seq once).
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

interface Held {
  /** Where it goes among the held changes: a change's arrival, or a list read's start (+0.5). */
  at: number;
  run: () => void;
}

export class ListSync {
  readonly list = new ConversationList();
  /** List reads in flight; while there are any, changes are held. */
  private reads = 0;
  private held: Held[] = [];
  private arrivals = 0;
  /** Conversations whose entries are to be reloaded from `conversation.list` (see {@link watchNew}). */
  private readonly reloadWanted = new Set<string>();
  private reloading: Promise<void> | undefined;

  constructor(private readonly options: ListSyncOptions) {}

  /** Applies a change now, or after the list reads in flight. */
  apply(change: (list: ConversationList) => unknown): void {
    if (this.reads > 0) {
      this.held.push({ at: ++this.arrivals, run: () => change(this.list) });
      return;
    }
    change(this.list);
    this.options.emit(this.list.list());
  }

  async refresh(): Promise<ConversationSummary[]> {
    await this.read(async () => {
      const reply = await this.options.requester.request('conversation.list', { limit: this.limit });
      return () => this.list.load(reply.conversations);
    });
    if (this.options.watch ?? true) await this.watchListed();
    return this.list.list();
  }

  /**
   * Follows a conversation the user just got (`conversation.created` / `.joined`; not open). The
   * subscription starts live delivery only, so messages sent before it never arrive: when the reply's
   * `last_seq` shows seqs the list has not accounted for, the conversation's entry is reloaded from
   * `conversation.list` — its preview and unread count are then the server's (a joined group's history is
   * not replayed and counted here). No `since_seq`: the created/joined event carries no seq to resume
   * from, and replaying from 0 would count a joined group's whole history one by one.
   */
  async watchNew(conversationId: string): Promise<void> {
    if (!(this.options.watch ?? true)) return;
    const reply = await this.options.requester.request('conversation.subscribe', { conversation_id: conversationId });
    if (reply.last_seq > 0 && !this.list.covers(conversationId, reply.last_seq)) await this.reload(conversationId);
  }

  private get limit(): number {
    return this.options.limit ?? 50;
  }

  /**
   * A list read: changes arriving while any read is in flight are held; when the last one is answered,
   * each read's result (`load`) is applied in the order the reads started, among the held changes in
   * the order they arrived.
   */
  private async read(work: () => Promise<() => void>): Promise<void> {
    const at = this.arrivals + 0.5;
    this.reads += 1;
    let load: (() => void) | undefined;
    try {
      load = await work();
    } finally {
      this.reads -= 1;
      if (load) this.held.push({ at, run: load });
      if (this.reads === 0) {
        const held = this.held.sort((a, b) => a.at - b.at);
        this.held = [];
        for (const change of held) change.run();
        this.options.emit(this.list.list());
      }
    }
  }

  /** Reloads entries from one `conversation.list` read; conversations asked for meanwhile share the next. */
  private reload(conversationId: string): Promise<void> {
    this.reloadWanted.add(conversationId);
    this.reloading ??= this.reloadAll();
    return this.reloading;
  }

  private async reloadAll(): Promise<void> {
    try {
      while (this.reloadWanted.size > 0) {
        const wanted = new Set(this.reloadWanted);
        this.reloadWanted.clear();
        await this.read(async () => {
          const reply = await this.options.requester.request('conversation.list', { limit: this.limit });
          // Newest activity first: a conversation with a message just now is on the first page, unless
          // `limit` others had newer ones (then it is left as it is until the next reconnect's reload).
          const entries = reply.conversations.filter((entry) => wanted.has(entry.id));
          return () => entries.forEach((entry) => this.list.reload(entry));
        });
      }
    } finally {
      this.reloading = undefined;
    }
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
