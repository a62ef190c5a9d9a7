/**
 * Who is typing where. `typing` events say `expires_in_ms`: an indicator not renewed within that time
 * goes away by itself (the sender may have closed the tab without `typing.stop`). Pure: the caller
 * passes `now` and schedules {@link TypingTracker.nextExpiry} itself.
 */
import type { TypingNotice } from './protocol.js';

export class TypingTracker {
  /** conversation id → user id → expiry (ms). */
  private readonly typing = new Map<string, Map<string, number>>();

  constructor(private selfUserId: string | undefined = undefined) {}

  setSelfUserId(userId: string): void {
    this.selfUserId = userId;
  }

  /** Applies a `typing` event; returns whether the conversation's typing users changed. */
  apply(notice: TypingNotice, now: number): boolean {
    if (notice.user_id === this.selfUserId) return false; // your own other devices: not shown
    const users = this.typing.get(notice.conversation_id) ?? new Map<string, number>();
    const was = users.has(notice.user_id);
    if (notice.typing && notice.expires_in_ms > 0) users.set(notice.user_id, now + notice.expires_in_ms);
    else users.delete(notice.user_id);
    if (users.size > 0) this.typing.set(notice.conversation_id, users);
    else this.typing.delete(notice.conversation_id);
    return was !== users.has(notice.user_id);
  }

  /** Drops lapsed indicators; returns the conversations whose typing users changed. */
  expire(now: number): string[] {
    const changed: string[] = [];
    for (const [conversationId, users] of this.typing) {
      let removed = false;
      for (const [userId, expiresAt] of users) {
        if (expiresAt <= now) {
          users.delete(userId);
          removed = true;
        }
      }
      if (users.size === 0) this.typing.delete(conversationId);
      if (removed) changed.push(conversationId);
    }
    return changed;
  }

  /** A user who sent a message has stopped typing it. */
  stopped(conversationId: string, userId: string): boolean {
    const users = this.typing.get(conversationId);
    if (!users?.delete(userId)) return false;
    if (users.size === 0) this.typing.delete(conversationId);
    return true;
  }

  /** Users typing in a conversation at `now`, in the order they started. */
  users(conversationId: string, now: number): string[] {
    const users = this.typing.get(conversationId);
    if (!users) return [];
    return [...users].filter(([, expiresAt]) => expiresAt > now).map(([userId]) => userId);
  }

  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const users of this.typing.values()) {
      for (const expiresAt of users.values()) if (next === undefined || expiresAt < next) next = expiresAt;
    }
    return next;
  }

  clear(): void {
    this.typing.clear();
  }
}
