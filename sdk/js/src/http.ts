/**
 * The HTTP routes an end-user client needs (README.md, "HTTP API"): token refresh, sessions and logout,
 * a conversation by id, attachments (declare → presigned PUT → complete, then download URLs and
 * thumbnails) and message search. Every call carries the current SDK token as a bearer token.
 */
import { CaasError } from './errors.js';
import type {
  AttachmentDownload,
  AttachmentInfo,
  Conversation,
  ErrorBody,
  RevokeResponse,
  SearchParams,
  SearchResult,
  SessionsResponse,
  TokenResponse,
  UploadRequest,
  UploadTicket,
} from './protocol.js';

/** `fetch` as browsers and Node 18+ have it; inject another (a test double, a polyfill) through the options. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export type UploadBody = Blob | ArrayBuffer | ArrayBufferView;

export interface UploadOptions {
  conversation_id: string;
  body: UploadBody;
  /** Default: the `File`'s name, else "upload". */
  filename?: string;
  /** Default: the `Blob`'s type, else `application/octet-stream` (which the server may refuse). */
  content_type?: string;
  expires_in_secs?: number;
  /** Bytes sent so far. With XMLHttpRequest (browsers) it is called as the upload goes; with fetch only at the end. */
  onProgress?: (sent: number, total: number) => void;
}

export class HttpApi {
  private readonly base: string;

  constructor(
    apiUrl: string,
    private readonly fetchImpl: FetchLike,
    /** The token to send; asked for on every call so a refreshed token is used at once. */
    private readonly token: () => Promise<string>,
  ) {
    // Accept the gateway's origin with or without the `/api/v1` prefix.
    this.base = apiUrl.replace(/\/+$/, '').replace(/\/api\/v1$/, '');
  }

  /** `POST /api/v1/auth/refresh`: a new token for the same session with a later expiry. */
  refresh(currentToken: string): Promise<TokenResponse> {
    return this.call('POST', '/api/v1/auth/refresh', undefined, currentToken);
  }

  /** `POST /api/v1/auth/logout`: ends this session; live sockets get `session.revoked`. */
  logout(): Promise<RevokeResponse> {
    return this.call('POST', '/api/v1/auth/logout');
  }

  /** `GET /api/v1/auth/sessions`: the user's active sessions (`current` marks this one). */
  sessions(): Promise<SessionsResponse> {
    return this.call('GET', '/api/v1/auth/sessions');
  }

  /** `DELETE /api/v1/auth/sessions/{id}`: ends another of the user's sessions. */
  endSession(sessionId: string): Promise<RevokeResponse> {
    return this.call('DELETE', `/api/v1/auth/sessions/${encodeURIComponent(sessionId)}`);
  }

  /** `GET /api/v1/conversations/{id}` (there is no socket event for one conversation). */
  conversation(conversationId: string): Promise<Conversation> {
    return this.call('GET', `/api/v1/conversations/${encodeURIComponent(conversationId)}`);
  }

  /** `GET /api/v1/search/messages`: the caller's conversations only; page on with `next_cursor`. */
  search(params: SearchParams): Promise<SearchResult> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params) as Array<[string, string | number | boolean | undefined]>) {
      if (value !== undefined) query.set(key, String(value));
    }
    return this.call('GET', `/api/v1/search/messages?${query.toString()}`);
  }

  /** Step 1 of an upload: the server checks limits and hands out a presigned PUT. */
  startUpload(request: UploadRequest): Promise<UploadTicket> {
    return this.call('POST', '/api/v1/media/uploads', request);
  }

  /** Step 3: the server verifies the stored object, makes a thumbnail for images, and marks it complete. */
  completeUpload(uploadId: string): Promise<AttachmentInfo> {
    return this.call('POST', `/api/v1/media/uploads/${encodeURIComponent(uploadId)}/complete`);
  }

  /** Fresh 5-minute download URLs: `url` and, for images, `thumbnail_url`. */
  attachment(attachmentId: string): Promise<AttachmentDownload> {
    return this.call('GET', `/api/v1/media/${encodeURIComponent(attachmentId)}`);
  }

  /** All three steps; send a message with `attachments: [result.id]` afterwards. */
  async upload(options: UploadOptions): Promise<AttachmentInfo> {
    const size = byteSize(options.body);
    const blob = typeof Blob !== 'undefined' && options.body instanceof Blob ? options.body : undefined;
    const fileName = blob && 'name' in blob && typeof blob.name === 'string' ? blob.name : undefined;
    const ticket = await this.startUpload({
      conversation_id: options.conversation_id,
      filename: options.filename ?? fileName ?? 'upload',
      content_type: options.content_type ?? (blob?.type || 'application/octet-stream'),
      size,
      ...(options.expires_in_secs !== undefined ? { expires_in_secs: options.expires_in_secs } : {}),
    });
    await this.put(ticket, options.body, size, options.onProgress);
    return this.completeUpload(ticket.upload_id);
  }

  /** Step 2: the bytes go straight to the blob store, with exactly the signed headers. */
  async put(ticket: UploadTicket, body: UploadBody, size: number, onProgress?: (sent: number, total: number) => void): Promise<void> {
    if (onProgress && typeof XMLHttpRequest !== 'undefined') return putWithXhr(ticket, body, onProgress);
    let response: Response;
    try {
      response = await this.fetchImpl(ticket.url, { method: ticket.method, headers: ticket.headers, body: body as BodyInit });
    } catch (error) {
      throw new CaasError('network', `upload failed: ${String(error)}`);
    }
    if (!response.ok) throw new CaasError(`http_${response.status}`, `the blob store refused the upload (${response.status})`, undefined, response.status);
    onProgress?.(size, size);
  }

  private async call<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
    const bearer = token ?? (await this.token());
    const headers: Record<string, string> = { authorization: `Bearer ${bearer}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetchImpl(this.base + path, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
    } catch (error) {
      throw new CaasError('network', `${method} ${path} failed: ${String(error)}`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const error = (parsed as { error?: ErrorBody } | undefined)?.error;
      if (error && typeof error.code === 'string') throw CaasError.fromBody(error, response.status);
      throw new CaasError(`http_${response.status}`, `${method} ${path}: ${response.status}`, undefined, response.status);
    }
    return parsed as T;
  }
}

function byteSize(body: UploadBody): number {
  return 'byteLength' in body ? body.byteLength : body.size;
}

function putWithXhr(ticket: UploadTicket, body: UploadBody, onProgress: (sent: number, total: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(ticket.method, ticket.url);
    for (const [name, value] of Object.entries(ticket.headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded, event.total);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        const size = byteSize(body);
        onProgress(size, size);
        resolve();
      } else {
        reject(new CaasError(`http_${xhr.status}`, `the blob store refused the upload (${xhr.status})`, undefined, xhr.status));
      }
    };
    xhr.onerror = () => reject(new CaasError('network', 'upload failed'));
    xhr.send(body as XMLHttpRequestBodyInit);
  });
}
