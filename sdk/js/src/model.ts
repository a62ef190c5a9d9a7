/**
 * The domain shapes every wire carries (socket replies and events, HTTP bodies): conversations, members,
 * messages and their annotations. Field names are the server's; timestamps are Unix ms.
 */

export type ConversationKind = 'direct' | 'group';
export type Role = 'owner' | 'admin' | 'member';

/** A conversation as every reply and `conversation.*` event carries it. */
export interface Conversation {
  id: string;
  app_id: string;
  kind: ConversationKind;
  /** `null` when the conversation was never named. */
  name: string | null;
  created_by: string;
  member_ids: string[];
  /** Changes when the seq numbering can no longer be proven continuous: held seqs are then void. */
  epoch: string;
  created_at: number;
  correlation_id: string;
}

/** One entry of `conversation.list`: the conversation with its newest message and the caller's horizon. */
export interface ConversationListEntry extends Conversation {
  last_message: Message | null;
  last_seq: number;
  /** The caller's read horizon (moved by `read.mark` and by the caller's own sends). */
  read_seq: number;
  /** Non-deleted messages from others after `read_seq`, capped at 1,000. */
  unread_count: number;
}

export interface Member {
  user_id: string;
  role: Role;
  joined_at: number;
  id?: string;
  app_id?: string;
  conversation_id?: string;
  correlation_id?: string;
}

export interface MessageAttachment {
  id: string;
  filename: string;
  content_type: string;
  size: number;
}

export interface ForwardedFrom {
  conversation_id: string;
  message_id: string;
}

/**
 * A message as `message.new`, `message.updated`, `message.deleted` and replays carry it. `version` is
 * 0 as sent and grows with each edit or deletion; the highest version is the current state. A deletion
 * is a tombstone: `deleted_at` set, `text` empty, `attachments` gone, `seq` kept.
 */
export interface Message {
  id: string;
  app_id: string;
  conversation_id: string;
  seq: number;
  sender_id: string;
  client_msg_id: string;
  text: string;
  /** The id of the message this one replies to (a thread parent), in the same conversation. */
  reply_to?: string;
  created_at: number;
  correlation_id: string;
  version: number;
  edited_at?: number;
  deleted_at?: number;
  forwarded_from?: ForwardedFrom;
  attachments?: MessageAttachment[];
}

export interface ReactionCount {
  emoji: string;
  count: number;
  /** Whether the reading user is one of the reactors. */
  mine: boolean;
}

/** A message as history pages and `message.replies` carry it: annotated with its thread and reactions. */
export interface HistoryMessage extends Message {
  reply_count: number;
  reactions: ReactionCount[];
}

export function isDeleted(message: Pick<Message, 'deleted_at'>): boolean {
  return message.deleted_at !== undefined && message.deleted_at !== null;
}
