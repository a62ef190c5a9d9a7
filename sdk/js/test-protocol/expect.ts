/**
 * What the recorded samples (generated/samples.ts) must satisfy: the SDK's own wire types. Type-checked
 * with tsconfig.samples.json, never compiled into the recorder (it pulls in ../src).
 */
import type {
  AttachmentDownload,
  AttachmentInfo,
  ClientEvents,
  Conversation,
  RevokeResponse,
  SearchResult,
  ServerEvents,
  SessionsResponse,
  TokenResponse,
  UploadTicket,
} from '../src/protocol.js';

/** The reply `data` of every client event: non-optional, so a client event the scenario skips fails. */
export type Replies = { [K in keyof ClientEvents]: ClientEvents[K]['reply'] };

/** Events seen (the allow-list check is separate); an event type the SDK does not know fails. */
export type SeenEvents = { [K in keyof ServerEvents]?: ServerEvents[K] };

/** Further samples of a kind, where their shape differs from the first. */
export type SomeOf<T> = { [K in keyof T]?: Array<T[K]> };

/** The bodies `HttpApi` (src/http.ts) reads, by route. */
export interface HttpResponses {
  'POST /api/v1/auth/sdk/token': TokenResponse;
  'POST /api/v1/auth/refresh': TokenResponse;
  'POST /api/v1/auth/logout': RevokeResponse;
  'GET /api/v1/auth/sessions': SessionsResponse;
  'DELETE /api/v1/auth/sessions/{id}': RevokeResponse;
  'GET /api/v1/conversations/{id}': Conversation;
  'GET /api/v1/search/messages': SearchResult;
  'POST /api/v1/media/uploads': UploadTicket;
  'POST /api/v1/media/uploads/{id}/complete': AttachmentInfo;
  'GET /api/v1/media/{id}': AttachmentDownload;
}
