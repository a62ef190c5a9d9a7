/**
 * Bodies of the HTTP routes an end-user client calls (README.md, "HTTP API"). Timestamps are Unix ms
 * unless a field says seconds.
 */

export interface TokenUser {
  id: string;
  external_id: string;
  /**
   * `null` when the app's backend gave none. Absent from a `POST /api/v1/auth/refresh` answer (the
   * server builds that from the token's claims, which carry no name): keep the one from the first token.
   */
  display_name?: string | null;
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
