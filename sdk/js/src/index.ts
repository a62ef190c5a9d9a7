/** @caas/client — the TypeScript client of the CaaS chat backend. */
export { CaasClient, connect, whenOnline, type ClientEvents, type ClientOptions, type ClientState } from './client.js';
export { ConversationHandle } from './conversation.js';
export { Connection, type ConnectionEvents, type ConnectionOptions, type ConnectionStatus, type WebSocketConstructor, type WebSocketLike } from './connection.js';
export { CaasError, isTransient, type ClientErrorCode } from './errors.js';
export { Emitter, type Unsubscribe } from './emitter.js';
export { HttpApi, type FetchLike, type UploadBody, type UploadOptions } from './http.js';
export { Timeline, type ReplayOutcome, type TimelineItem, type TimelineMessage, type TimelineOptions } from './timeline.js';
export { SeqCoverage, type SeqSpan } from './coverage.js';
export { ReactionLedger } from './reactions.js';
export {
  FINAL_SEND_ERRORS,
  Outbox,
  randomClientMsgId,
  toRequest,
  type ForwardDraft,
  type ForwardEntry,
  type OutboxEntry,
  type OutboxOptions,
  type OutboxRequest,
  type OutboxState,
  type SendDraft,
  type SendEntry,
} from './outbox.js';
export { Backoff, DEFAULT_BACKOFF, UrlRotation, backoffDelay, type BackoffOptions } from './backoff.js';
export { ConversationList, type ConversationSummary } from './unread.js';
export { TypingTracker } from './typing.js';
export { ConversationSync, type Requester, type SyncOptions } from './sync.js';
export { IndexedDbOutboxStorage, MemoryOutboxStorage, defaultOutboxStorage, type OutboxStorage } from './storage.js';
export * from './protocol.js';
