/**
 * Wire types of the CaaS native WebSocket protocol (`/ws`, docs/protocol.md) and of the HTTP routes an
 * end-user client calls (README.md, "HTTP API"). Field names are exactly the server's (snake_case) so
 * frames can be passed through without renaming; ids are strings, timestamps Unix milliseconds unless a
 * field says otherwise (the token's `expires_at` is in seconds).
 */
import type { Conversation, ConversationKind, ConversationListEntry, HistoryMessage, Member, Message } from './model.js';

export * from './model.js';
export * from './api-types.js';

// ---------------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------------

/** Every error code the socket and HTTP API document. Unknown future codes still type-check as strings. */
export type KnownErrorCode =
  | 'invalid_json'
  | 'validation_failed'
  | 'unknown_event'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'unavailable'
  | 'internal'
  | 'content_blocked'
  | 'user_muted'
  | 'user_banned'
  | 'rate_limited'
  | 'limit_exceeded'
  | 'payload_too_large'
  | 'legal_hold'
  | 'route_not_found'
  | 'method_not_allowed';

/** `(string & {})` keeps editor completion for the known codes while accepting new ones. */
export type ErrorCode = KnownErrorCode | (string & {});

/**
 * `{code, message}` of a failed reply, an `error` event, or an HTTP error body. `rate_limited` carries
 * `retry_after_ms` (socket replies and HTTP 429 bodies alike); readers still go through
 * {@link retryAfterMs}, which falls back to the wait named in `message` for servers that omit it.
 * `correlation_id` comes with HTTP error bodies.
 */
export interface ErrorBody {
  code: ErrorCode;
  message: string;
  retry_after_ms?: number;
  correlation_id?: string;
}

/**
 * How long a `rate_limited` refusal asks the caller to wait: the explicit field when present, else the
 * number in "retry in N ms", else the interval implied by "at most N a second", else one second.
 */
export function retryAfterMs(error: Pick<ErrorBody, 'message' | 'retry_after_ms'>, fallbackMs = 1000): number {
  if (typeof error.retry_after_ms === 'number' && Number.isFinite(error.retry_after_ms) && error.retry_after_ms >= 0) {
    return error.retry_after_ms;
  }
  const explicit = /retry in (\d+)\s*ms/i.exec(error.message);
  if (explicit?.[1] !== undefined) return Number(explicit[1]);
  const rate = /at most (\d+(?:\.\d+)?) a second/i.exec(error.message);
  if (rate?.[1] !== undefined && Number(rate[1]) > 0) return Math.ceil(1000 / Number(rate[1]));
  return fallbackMs;
}

// ---------------------------------------------------------------------------------------------------
// Client events: request data and reply data
// ---------------------------------------------------------------------------------------------------

export interface ConversationRef {
  conversation_id: string;
}

export interface MessageRef extends ConversationRef {
  message_id: string;
}

export interface CreateConversationRequest {
  kind: ConversationKind;
  member_ids: string[];
  name?: string;
}

export interface SubscribeRequest extends ConversationRef {
  /** The highest seq held; with `epoch`, the reply replays what came after it. */
  since_seq?: number;
  epoch?: string;
}

export interface SubscribeReply {
  conversation_id: string;
  epoch: string;
  last_seq: number;
  /** `false`: the epoch changed, no `since_seq` was given, or a gap stayed open; reload with history. */
  recovered: boolean;
  /** Every message after `since_seq`, ascending, when recovered. */
  messages: Message[];
  /** The replay page was cut: subscribe again from its last message. */
  has_more: boolean;
}

export interface HistoryRequest extends ConversationRef {
  /** The page right before this seq (paging back). */
  before_seq?: number;
  /** The page right after this seq (paging forward); wins over `before_seq`. */
  after_seq?: number;
  /** 1–200, default 50. */
  limit?: number;
}

export interface HistoryReply {
  conversation_id: string;
  /** Ascending by seq. */
  messages: HistoryMessage[];
  /** Full or cut to 256 KiB: ask again from the first (backward) or last (forward) seq. */
  has_more: boolean;
}

export interface SendRequest extends ConversationRef {
  /** 1–128 characters; the idempotency key of the send across every node. */
  client_msg_id: string;
  text: string;
  reply_to?: string;
  /** Up to 10 ids of uploads the sender completed in this conversation. */
  attachments?: string[];
}

export type AckStatus = 'accepted' | 'persisted';

/** The reply to `message.send` / `message.forward` (`accepted`) and the later `ack` event (`persisted`). */
export interface Ack {
  conversation_id: string;
  client_msg_id: string;
  message_id: string;
  seq: number;
  status: AckStatus;
  /** The send repeated an earlier `client_msg_id`: nothing new was created. */
  duplicate?: boolean;
}

export interface EditRequest extends MessageRef {
  text: string;
}

export interface ForwardRequest extends ConversationRef {
  client_msg_id: string;
  source_conversation_id: string;
  message_id: string;
}

export interface RepliesRequest extends MessageRef {
  limit?: number;
  /** The last reply's seq of the previous page. */
  after_seq?: number;
}

export interface RepliesReply {
  conversation_id: string;
  message_id: string;
  /** Oldest first. */
  messages: HistoryMessage[];
  has_more: boolean;
}

export interface ReactionRequest extends MessageRef {
  emoji: string;
}

export interface ReactionReply extends ReactionRequest {
  user_id: string;
  active: boolean;
}

export interface ReadMarkRequest extends ConversationRef {
  seq: number;
}

/** The reply to `read.mark` and the `read` event: the horizon as now stored. */
export interface ReadHorizon extends ConversationRef {
  user_id: string;
  seq: number;
}

/** The reply to `typing.*` and the `typing` event. */
export interface TypingNotice extends ConversationRef {
  user_id: string;
  typing: boolean;
  /** Hide the indicator after this long unless renewed; 0 when `typing` is false. */
  expires_in_ms: number;
}

export interface PresenceState {
  user_id: string;
  online: boolean;
}

export interface PresenceSubscribeReply {
  presence: PresenceState[];
  /** Users who share no conversation with the caller: never watched. */
  not_visible: string[];
}

export interface MembersReply {
  conversation_id: string;
  members: Member[];
}

export interface AddMembersRequest extends ConversationRef {
  member_ids: string[];
  role?: 'member' | 'admin';
}

export interface RemoveMemberRequest extends ConversationRef {
  user_id: string;
}

export interface RenameRequest extends ConversationRef {
  name: string;
}

/** The in-band `auth` frame's reply; a renewal also says the connection's new expiry (Unix s). */
export interface AuthReply {
  authenticated: boolean;
  expires_at?: number;
}

/** Every client event: its request `data` and the `data` of its successful reply. */
export interface ClientEvents {
  ping: { request: Record<string, never>; reply: { pong: number } };
  'conversation.create': { request: CreateConversationRequest; reply: Conversation };
  'conversation.list': { request: { limit?: number }; reply: { conversations: ConversationListEntry[] } };
  'conversation.members': { request: ConversationRef; reply: MembersReply };
  'conversation.members.add': { request: AddMembersRequest; reply: Conversation };
  'conversation.members.remove': { request: RemoveMemberRequest; reply: Conversation };
  'conversation.leave': { request: ConversationRef; reply: Conversation };
  'conversation.update': { request: RenameRequest; reply: Conversation };
  'conversation.subscribe': { request: SubscribeRequest; reply: SubscribeReply };
  'conversation.history': { request: HistoryRequest; reply: HistoryReply };
  'message.send': { request: SendRequest; reply: Ack };
  'message.edit': { request: EditRequest; reply: Message };
  'message.delete': { request: MessageRef; reply: Message };
  'message.forward': { request: ForwardRequest; reply: Ack };
  'message.replies': { request: RepliesRequest; reply: RepliesReply };
  'reaction.add': { request: ReactionRequest; reply: ReactionReply };
  'reaction.remove': { request: ReactionRequest; reply: ReactionReply };
  'read.mark': { request: ReadMarkRequest; reply: ReadHorizon };
  'typing.start': { request: ConversationRef; reply: TypingNotice };
  'typing.stop': { request: ConversationRef; reply: TypingNotice };
  'presence.subscribe': { request: { user_ids: string[] }; reply: PresenceSubscribeReply };
}

export type ClientEventType = keyof ClientEvents;
export type RequestData<K extends ClientEventType> = ClientEvents[K]['request'];
export type ReplyData<K extends ClientEventType> = ClientEvents[K]['reply'];

// ---------------------------------------------------------------------------------------------------
// Server events
// ---------------------------------------------------------------------------------------------------

export interface ReadyData {
  user_id: string;
  app_id: string;
  correlation_id: string;
  device_id?: string;
  one_time_key_counts?: { signed_curve25519: number };
}

export interface ConversationRemovedData {
  app_id: string;
  conversation_id: string;
  user_id: string;
}

/** `{conversation_id, message_id, emoji, user_id}`: no version, so the client dedupes by user. */
export interface ReactionEventData extends ReactionRequest {
  user_id: string;
}

export interface SessionEndedData {
  reason: string;
}

/** Every server event type and its `data`. */
export interface ServerEvents {
  ready: ReadyData;
  'conversation.created': Conversation;
  'conversation.joined': Conversation;
  'conversation.updated': Conversation;
  'conversation.removed': ConversationRemovedData;
  'message.new': Message;
  'message.updated': Message;
  'message.deleted': Message;
  'reaction.added': ReactionEventData;
  'reaction.removed': ReactionEventData;
  read: ReadHorizon;
  typing: TypingNotice;
  presence: PresenceState;
  ack: Ack;
  'session.revoked': SessionEndedData;
  /** Not in the event table but sent when the token lapses without an in-band renewal (then close 1008). */
  'session.expired': SessionEndedData;
  'device_list.changed': { user_id: string };
  'keys.low': { device_id: string; count: number };
  error: ErrorBody;
}

export type ServerEventType = keyof ServerEvents;

// ---------------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------------

export interface RequestFrame {
  id: string;
  type: string;
  data?: unknown;
  correlation_id?: string;
  /** Only in `auth` frames. */
  token?: string;
}

export type ReplyFrame =
  | { reply_to: string | null; ok: true; data: unknown }
  | { reply_to: string | null; ok: false; error: ErrorBody };

export interface EventFrame {
  type: string;
  data: unknown;
}

export type ServerFrame = { kind: 'reply'; frame: ReplyFrame } | { kind: 'event'; frame: EventFrame };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Classifies one text frame from the server. Only the envelope is checked: payloads are trusted to have
 * the documented shape (the server is the source of truth; validating every field would duplicate it).
 * Returns `undefined` for anything that is neither a reply nor an event.
 */
export function parseServerFrame(text: string): ServerFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  if ('reply_to' in value && typeof value.ok === 'boolean') {
    const replyTo = typeof value.reply_to === 'string' ? value.reply_to : null;
    if (value.ok) return { kind: 'reply', frame: { reply_to: replyTo, ok: true, data: value.data } };
    const error = isRecord(value.error) ? value.error : {};
    return {
      kind: 'reply',
      frame: {
        reply_to: replyTo,
        ok: false,
        error: {
          ...error,
          code: typeof error.code === 'string' ? error.code : 'internal',
          message: typeof error.message === 'string' ? error.message : '',
        },
      },
    };
  }
  if (typeof value.type === 'string') return { kind: 'event', frame: { type: value.type, data: value.data } };
  return undefined;
}

/** WebSocket close codes the server uses, and what they mean for a client. */
export const CloseCodes = {
  /** Server shutting down (SIGTERM) or heartbeat timeout: reconnect, to another node if possible. */
  GoingAway: 1001,
  /** Refused: bad token, ban, session ended or expired, too many connections. */
  PolicyViolation: 1008,
  /** The client read too slowly and its queue overflowed: reconnect and resume with `since_seq`. */
  TryAgainLater: 1013,
} as const;

