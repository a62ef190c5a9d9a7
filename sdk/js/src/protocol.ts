/**
 * Wire types of the CaaS native WebSocket protocol (`/ws`, docs/protocol.md) and of the HTTP routes an
 * end-user client calls (README.md, "HTTP API"). Field names are exactly the server's (snake_case) so
 * frames can be passed through without renaming; ids are strings, timestamps Unix milliseconds unless a
 * field says otherwise (the token's `expires_at` is in seconds).
 */

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
 * `{code, message}` of a failed reply, an `error` event, or an HTTP error body. `retry_after_ms` is
 * documented for `rate_limited`; the socket currently puts the wait only into `message` ("retry in N
 * ms"), so readers go through {@link retryAfterMs} rather than this field alone.
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
// Domain shapes
// ---------------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------------
// HTTP API
// ---------------------------------------------------------------------------------------------------

export interface TokenUser {
  id: string;
  external_id: string;
  display_name: string | null;
}

/** `POST /api/v1/auth/sdk/token` (from the app's backend) and `POST /api/v1/auth/refresh`. */
export interface TokenResponse {
  token: string;
  /** Unix **seconds**. */
  expires_at: number;
  session_id: string;
  user: TokenUser;
  socket_urls: string[];
}

export interface SessionInfo {
  session_id: string;
  created_at: number;
  /** Unix seconds, the expiry of the session's newest token. */
  expires_at: number;
  /** The session of the token that asked. */
  current: boolean;
}

export interface SessionsResponse {
  sessions: SessionInfo[];
}

export interface RevokeResponse {
  session_id: string;
  revoked: true;
}

export interface UploadRequest {
  conversation_id: string;
  filename: string;
  content_type: string;
  size: number;
  /** 1–3600, default 900. */
  expires_in_secs?: number;
}

/** A presigned PUT: send the bytes to `url` with exactly `headers`. `expires_at` is Unix ms. */
export interface UploadTicket {
  upload_id: string;
  url: string;
  method: string;
  headers: Record<string, string>;
  expires_at: number;
}

export interface AttachmentInfo {
  id: string;
  conversation_id: string;
  uploader_id: string;
  filename: string;
  content_type: string;
  size: number;
  status: 'pending' | 'complete';
  has_thumbnail: boolean;
  created_at: number;
  completed_at: number | null;
}

/** `GET /api/v1/media/{id}`: 5-minute presigned GETs of the original and, for images, the thumbnail. */
export interface AttachmentDownload extends AttachmentInfo {
  url: string;
  expires_at: number;
  thumbnail_url?: string;
}

export interface SearchParams {
  /** Required, ≤ 256 characters: words, "a phrase", prefix*. */
  q: string;
  conversation_id?: string;
  sender_id?: string;
  /** Inclusive, Unix ms on `created_at`. */
  from?: number;
  to?: number;
  has_attachment?: boolean;
  sort?: 'relevance' | 'recent';
  /** 1–100, default 20. */
  limit?: number;
  /** `next_cursor` of the previous page. */
  cursor?: string;
}

export interface SearchHit {
  message_id: string;
  conversation_id: string;
  sender_id: string;
  seq: number;
  created_at: number;
  edited_at?: number;
  text: string;
  /** HTML-escaped text with matches in `<mark>…</mark>`: safe to insert as HTML. */
  highlight: string;
  /** Present with `sort=relevance`. */
  score?: number;
}

export interface SearchResult {
  hits: SearchHit[];
  next_cursor: string | null;
}
