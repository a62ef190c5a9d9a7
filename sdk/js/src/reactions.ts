/**
 * Reactions of one message: the counts of the last history read plus the live `reaction.added` /
 * `reaction.removed` events since. Live events carry no version and history carries counts, not
 * users, so this keeps, per emoji and user, the state the first event implies the user had before
 * (an add implies "not counted yet", a remove implies "counted") and the state the latest event gives.
 * Repeated events are then harmless (the server repeats adds freely), and an add followed by a remove
 * nets to zero. For the signed-in user `mine` says exactly whether the read counted them.
 */
import type { ReactionCount } from './protocol.js';

interface UserChange {
  before: boolean;
  now: boolean;
}

export class ReactionLedger {
  private readonly base = new Map<string, ReactionCount>();
  private readonly changes = new Map<string, Map<string, UserChange>>();

  constructor(
    snapshot: readonly ReactionCount[],
    private readonly selfUserId: string | undefined,
  ) {
    for (const count of snapshot) this.base.set(count.emoji, { ...count });
  }

  apply(emoji: string, userId: string, active: boolean): void {
    const users = this.changes.get(emoji) ?? new Map<string, UserChange>();
    const known = users.get(userId);
    if (known) known.now = active;
    else {
      const before = userId === this.selfUserId ? (this.base.get(emoji)?.mine ?? false) : !active;
      users.set(userId, { before, now: active });
    }
    this.changes.set(emoji, users);
  }

  /** Current counts, emoji in first-seen order, emoji nobody holds any more left out. */
  counts(): ReactionCount[] {
    const emojis = new Set([...this.base.keys(), ...this.changes.keys()]);
    const result: ReactionCount[] = [];
    for (const emoji of emojis) {
      const base = this.base.get(emoji);
      let count = base?.count ?? 0;
      let mine = base?.mine ?? false;
      for (const [user, change] of this.changes.get(emoji) ?? []) {
        count += Number(change.now) - Number(change.before);
        if (user === this.selfUserId) mine = change.now;
      }
      if (count > 0) result.push({ emoji, count, mine });
    }
    return result;
  }
}
