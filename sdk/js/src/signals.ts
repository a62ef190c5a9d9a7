/**
 * The ephemeral state: who is typing (hidden after `expires_in_ms` unless renewed) and who is online
 * (watched users, re-watched after every reconnect since watches live on the connection).
 */
import type { PresenceState, TypingNotice } from './protocol.js';
import type { Requester } from './sync.js';
import { TypingTracker } from './typing.js';

export interface SignalsOptions {
  requester: Requester;
  now: () => number;
  emitTyping: (conversationId: string, userIds: string[]) => void;
  emitPresence: (state: PresenceState) => void;
}

/** `typing.start` lasts 5 s on the server; renewing every 3 s keeps it up within the 5-a-second budget. */
const TYPING_RENEW_MS = 3000;
const PRESENCE_BATCH = 500;

export class Signals {
  private readonly typing = new TypingTracker();
  private readonly presenceState = new Map<string, boolean>();
  private readonly lastStart = new Map<string, number>();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly options: SignalsOptions) {}

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

  /** Starts are throttled to one per 3 s per conversation; stops go at once. */
  async sendTyping(conversationId: string, isTyping: boolean): Promise<void> {
    const now = this.options.now();
    if (isTyping && now - (this.lastStart.get(conversationId) ?? -Infinity) < TYPING_RENEW_MS) return;
    if (isTyping) this.lastStart.set(conversationId, now);
    else this.lastStart.delete(conversationId);
    try {
      await this.options.requester.request(isTyping ? 'typing.start' : 'typing.stop', { conversation_id: conversationId });
    } catch (error) {
      this.lastStart.delete(conversationId);
      throw error;
    }
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

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
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
    this.stop();
    const next = this.typing.nextExpiry();
    if (next === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      for (const conversationId of this.typing.expire(this.options.now())) this.emitTyping(conversationId);
      this.scheduleExpiry();
    }, Math.max(0, next - this.options.now()));
  }
}
