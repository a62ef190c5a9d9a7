/**
 * A handle on one open conversation: its timeline as it changes, paging back, and the actions a chat
 * screen needs, bound to the conversation. Several handles of one conversation share one timeline;
 * closing the last one stops tracking it.
 */
import type { CaasClient } from './client.js';
import type { Unsubscribe } from './emitter.js';
import type { OutboxEntry, SendDraft } from './outbox.js';
import type { ReadHorizon } from './protocol.js';
import type { ConversationSync } from './sync.js';
import type { TimelineItem, TimelineMessage } from './timeline.js';

export class ConversationHandle {
  private closed = false;
  private readonly unsubscribes: Unsubscribe[] = [];

  constructor(
    private readonly client: CaasClient,
    private readonly sync: ConversationSync,
    private readonly release: () => void,
  ) {}

  get conversationId(): string {
    return this.sync.conversationId;
  }

  /** Messages in seq order with unconfirmed sends in place; a new array only when something changed. */
  items(): TimelineItem[] {
    return this.sync.timeline.items();
  }

  messages(): TimelineMessage[] {
    return this.sync.timeline.messages();
  }

  /** Calls `listener` with the items after every change. */
  onChange(listener: (items: TimelineItem[]) => void): Unsubscribe {
    const off = this.client.on('timeline', (change) => {
      if (change.conversation_id === this.conversationId) listener(change.items);
    });
    this.unsubscribes.push(off);
    return off;
  }

  /** Users typing here now (the signed-in user excluded). */
  typingUsers(): string[] {
    return this.client.typingUsers(this.conversationId);
  }

  onTyping(listener: (userIds: string[]) => void): Unsubscribe {
    const off = this.client.on('typing', (change) => {
      if (change.conversation_id === this.conversationId) listener(change.user_ids);
    });
    this.unsubscribes.push(off);
    return off;
  }

  /** Whether messages older than those held exist. */
  get hasOlder(): boolean {
    return this.sync.timeline.hasOlder;
  }

  /** Loads the page before the oldest message held; resolves to whether more remain. */
  loadOlder(limit?: number): Promise<boolean> {
    return this.sync.loadOlder(limit);
  }

  /** Resolves when the timeline has caught up (useful right after opening); rejects while offline. */
  synced(): Promise<void> {
    return this.sync.settled();
  }

  send(text: string, options: Omit<SendDraft, 'conversation_id' | 'text'> = {}): OutboxEntry {
    return this.client.send(this.conversationId, text, options);
  }

  markRead(seq?: number): Promise<ReadHorizon | undefined> {
    return this.client.markRead(this.conversationId, seq);
  }

  typing(isTyping: boolean): Promise<void> {
    return this.client.typing(this.conversationId, isTyping);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.unsubscribes) off();
    this.release();
  }
}
