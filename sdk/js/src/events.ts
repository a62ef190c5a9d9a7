/**
 * What each server event changes in the client's state. Message events go to the conversation list
 * (last message, unread) and, when the conversation is open, to its timeline, which places, dedupes and
 * version-orders them; the rest go to the list, the typing/presence state or the outbox.
 */
import type { ListSync } from './list-sync.js';
import type { OutboxDriver } from './outbox-driver.js';
import type * as P from './protocol.js';
import type { Signals } from './signals.js';
import type { ConversationSync } from './sync.js';

export interface EventRoutes {
  lists: ListSync;
  signals: Signals;
  sender: OutboxDriver;
  /** The open conversation's sync, if it is open. */
  open: (conversationId: string) => ConversationSync | undefined;
  upsert: (conversation: P.Conversation) => void;
  forget: (conversationId: string) => void;
  /** Subscribe a conversation the user just got (created, joined) so the list follows it. */
  watchNew: (conversationId: string) => void;
  background: (work: Promise<unknown>) => void;
}

export function routeEvent(frame: P.EventFrame, routes: EventRoutes): void {
  switch (frame.type) {
    case 'message.new':
    case 'message.updated':
    case 'message.deleted': {
      const message = frame.data as P.Message;
      // A deletion event is news for unread counts; a tombstone met in a replay may not be.
      routes.lists.apply((list) => (frame.type === 'message.deleted' ? list.applyDeleted(message) : list.applyMessage(message)));
      routes.open(message.conversation_id)?.deliver((timeline) => timeline.applyMessage(message));
      if (frame.type === 'message.new') routes.signals.onMessage(message.conversation_id, message.sender_id);
      return;
    }
    case 'reaction.added':
    case 'reaction.removed': {
      const reaction = frame.data as P.ReactionEventData;
      routes.open(reaction.conversation_id)?.deliver((timeline) => timeline.applyReaction(reaction, frame.type === 'reaction.added'));
      return;
    }
    case 'read':
      return routes.lists.apply((list) => list.applyRead(frame.data as P.ReadHorizon));
    case 'typing':
      return routes.signals.onTyping(frame.data as P.TypingNotice);
    case 'presence':
      return routes.signals.onPresence(frame.data as P.PresenceState);
    case 'ack':
      return routes.sender.persisted(frame.data as P.Ack);
    case 'conversation.created':
    case 'conversation.joined':
    case 'conversation.updated': {
      const conversation = frame.data as P.Conversation;
      routes.upsert(conversation);
      const sync = routes.open(conversation.id);
      // A new epoch voids what an open timeline holds: its catch-up sees the change and reloads.
      if (sync?.timeline.epoch !== undefined && sync.timeline.epoch !== conversation.epoch) routes.background(sync.sync());
      if (frame.type !== 'conversation.updated' && !sync) routes.watchNew(conversation.id);
      return;
    }
    case 'conversation.removed':
      return routes.forget((frame.data as P.ConversationRemovedData).conversation_id);
    default:
      // session.*, error, device_list.changed, keys.low: the connection or the app handles them.
      return;
  }
}
