/**
 * The client an app uses: `connect()` returns it connecting in the background, and it keeps observable
 * state right for as long as it runs — the connection state, the conversation list with unread counts,
 * each open conversation's messages (sends in place), typing users and presence — across reconnects,
 * token renewals and node failures. Requests are typed by the protocol's event table.
 */
import { Connection, type ConnectionOptions, type WebSocketConstructor } from './connection.js';
import { ConversationHandle } from './conversation.js';
import { Emitter, type Unsubscribe } from './emitter.js';
import { CaasError } from './errors.js';
import { routeEvent, type EventRoutes } from './events.js';
import { HttpApi, type FetchLike, type UploadOptions } from './http.js';
import { ListSync } from './list-sync.js';
import type { OutboxEntry, SendDraft } from './outbox.js';
import { OutboxDriver } from './outbox-driver.js';
import type * as P from './protocol.js';
import { Signals } from './signals.js';
import { defaultOutboxStorage, type OutboxStorage } from './storage.js';
import { ConversationSync } from './sync.js';
import type { TimelineItem } from './timeline.js';
import type { ConversationSummary } from './unread.js';

export type ClientState = 'connecting' | 'online' | 'offline' | 'resuming';

export interface ClientOptions extends Omit<ConnectionOptions, 'WebSocket' | 'renewToken'> {
  /** Default `globalThis.WebSocket`; under Node 20 pass the `ws` package's `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** The gateway, e.g. `https://chat.example.com`: HTTP routes, and token refresh through `/auth/refresh`. */
  apiUrl?: string;
  fetch?: FetchLike;
  /** Where unfinished sends survive a reload (default IndexedDB when present, else memory); `false`: nowhere. */
  storage?: OutboxStorage | false;
  /** Subscribe to every listed conversation so its last message and unread count stay live (default true). */
  watchConversations?: boolean;
  /** `conversation.list` limit, 1–100 (default 50). */
  conversationLimit?: number;
  /** History page size for open conversations (default 50). */
  pageSize?: number;
  /**
   * The key unfinished sends are stored under. Default `outbox:<user id>` once the first token names the
   * user; set it when the app knows its user before any token (offline start) so sends are kept at once.
   */
  storageKey?: string;
  /**
   * A send accepted this long (ms) ago whose `persisted` ack has not come is confirmed by resending it
   * (same `client_msg_id`; default 30 000). Accepted sends are also confirmed after every reconnect.
   */
  confirmAfterMs?: number;
}

export interface ClientEvents {
  /** `connecting` → `resuming` (connected, catching up) → `online`; `offline` while waiting to retry. */
  state: ClientState;
  ready: P.ReadyData;
  conversations: ConversationSummary[];
  timeline: { conversation_id: string; items: TimelineItem[] };
  typing: { conversation_id: string; user_ids: string[] };
  presence: P.PresenceState;
  /** Any change of an outbox entry (pending → accepted → persisted, or failed). */
  send: OutboxEntry;
  /** Every server event, raw, including those the SDK has no model for (`device_list.changed`, `keys.low`). */
  event: P.EventFrame;
  /** The session was revoked or the user banned: the client stopped. `start()` tries again with a new token. */
  session_ended: { code: string; reason: string };
  /** Seqs the server could not provide (not even by history) were given up on. */
  gap_skipped: { conversation_id: string; from: number; through: number };
  /** Failures of background work (catch-up, list refresh, storage); requests the app makes reject instead. */
  error: Error;
}

/** Requests other than sends wait out this many `rate_limited` refusals of the connection's budget. */
const RATE_LIMIT_RETRIES = 8;

export class CaasClient {
  private readonly emitter = new Emitter<ClientEvents>();
  private readonly connection: Connection;
  private readonly sender: OutboxDriver;
  private readonly lists: ListSync;
  private readonly signals: Signals;
  private readonly syncs = new Map<string, { sync: ConversationSync; handles: number }>();
  private readonly http: HttpApi | undefined;
  private readonly now: () => number;
  private currentState: ClientState = 'offline';
  /** Bumped on every connect and drop, so a catch-up that outlived its connection does not claim `online`. */
  private generation = 0;
  private selfUserId: string | undefined;
  /** What server events change (events.ts). */
  private readonly routes: EventRoutes;

  constructor(private readonly options: ClientOptions) {
    this.now = options.now ?? Date.now;
    const fetchImpl = options.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined);
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WebSocketImpl) throw new Error('no WebSocket: pass one in the options (under Node 20, the ws package)');
    const http = options.apiUrl !== undefined && fetchImpl ? new HttpApi(options.apiUrl, fetchImpl, async () => (await this.token()).token) : undefined;
    this.http = http;
    this.connection = new Connection({
      ...options,
      WebSocket: WebSocketImpl,
      ...(http ? { renewToken: (current: P.TokenResponse) => http.refresh(current.token) } : {}),
    });
    const storage = options.storage === false ? undefined : (options.storage ?? defaultOutboxStorage());
    this.sender = new OutboxDriver(
      { connection: this.connection, now: this.now, changed: (entry) => this.sendChanged(entry), error: (error) => this.emitter.emit('error', error) },
      storage,
      { ...(options.confirmAfterMs !== undefined ? { confirmAfterMs: options.confirmAfterMs } : {}) },
    );
    this.lists = new ListSync({
      requester: this,
      emit: (conversations) => this.emitter.emit('conversations', conversations),
      isOpen: (conversationId) => this.syncs.has(conversationId),
      ...(options.watchConversations !== undefined ? { watch: options.watchConversations } : {}),
      ...(options.conversationLimit !== undefined ? { limit: options.conversationLimit } : {}),
    });
    this.signals = new Signals({
      requester: this,
      // Typing and read marks handle `rate_limited` themselves (dropped / coalesced), not by waiting it out.
      signalRequester: this.connection,
      now: this.now,
      emitTyping: (conversationId, userIds) => this.emitter.emit('typing', { conversation_id: conversationId, user_ids: userIds }),
      emitPresence: (state) => this.emitter.emit('presence', state),
    });
    this.routes = {
      lists: this.lists,
      signals: this.signals,
      sender: this.sender,
      open: (conversationId) => this.syncs.get(conversationId)?.sync,
      upsert: (conversation) => this.upserted(conversation),
      forget: (conversationId) => this.forget(conversationId),
      watchNew: (conversationId) => this.background(this.lists.watchNew(conversationId)),
      background: (work) => this.background(work),
    };
    const events = this.connection.events;
    events.on('status', (status) => this.setState(status === 'ready' ? 'resuming' : status));
    events.on('ready', (ready) => void this.onReady(ready));
    events.on('event', (frame) => {
      this.emitter.emit('event', frame);
      routeEvent(frame, this.routes);
    });
    events.on('down', () => {
      this.generation += 1;
      this.sender.disconnected();
    });
    if (options.storageKey !== undefined) this.sender.useStorageKey(options.storageKey);
    events.on('token', (token) => {
      this.setSelf(token.user.id);
      this.sender.useStorageKey(options.storageKey ?? `outbox:${token.user.id}`);
    });
    events.on('ended', (ended) => this.emitter.emit('session_ended', ended));
  }

  // ------------------------------------------------------------------ lifecycle

  on<K extends keyof ClientEvents>(event: K, listener: (value: ClientEvents[K]) => void): Unsubscribe {
    return this.emitter.on(event, listener);
  }

  get state(): ClientState {
    return this.currentState;
  }

  /** The signed-in user's id, once the first token arrived. */
  get userId(): string | undefined {
    return this.selfUserId;
  }

  /** Starts connecting (again, after `close()` or a session end: then with a token from the provider). */
  start(): this {
    this.connection.start();
    return this;
  }

  /** Closes the socket and stops reconnecting. Open handles keep their messages. */
  close(): void {
    this.connection.stop();
    this.sender.stop();
    this.signals.stop();
  }

  /** Reconnect now rather than after the backoff (when connected: check the socket with a ping). */
  reconnect(): void {
    this.connection.reconnectNow();
  }

  /** The current token, fetched or refreshed first when it is about to expire. */
  token(): Promise<P.TokenResponse> {
    return this.connection.usableToken();
  }

  /** A typed request over the socket; `rate_limited` refusals of the connection's budget are waited out. */
  async request<K extends P.ClientEventType>(type: K, data: P.RequestData<K>): Promise<P.ReplyData<K>> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return await this.connection.request(type, data);
      } catch (error) {
        if (!(error instanceof CaasError) || error.code !== 'rate_limited' || attempt >= RATE_LIMIT_RETRIES) throw error;
        await new Promise((resolve) => setTimeout(resolve, error.retryAfterMs ?? 1000));
      }
    }
  }

  async ping(): Promise<number> {
    return (await this.request('ping', {})).pong;
  }

  // ------------------------------------------------------------------ conversations

  /** The list, newest activity first, with `unread_count` kept current. */
  conversations(): ConversationSummary[] {
    return this.lists.list.list();
  }

  totalUnread(): number {
    return this.lists.list.totalUnread();
  }

  /** Reloads the list from the server (it is reloaded on every reconnect anyway). */
  refreshConversations(): Promise<ConversationSummary[]> {
    return this.lists.refresh();
  }

  async createConversation(request: P.CreateConversationRequest): Promise<P.Conversation> {
    return this.upserted(await this.request('conversation.create', request));
  }

  /** One conversation by id (HTTP `GET /api/v1/conversations/{id}`; needs `apiUrl`). */
  getConversation(conversationId: string): Promise<P.Conversation> {
    return this.requireHttp().conversation(conversationId);
  }

  async renameConversation(conversationId: string, name: string): Promise<P.Conversation> {
    return this.upserted(await this.request('conversation.update', { conversation_id: conversationId, name }));
  }

  members(conversationId: string): Promise<P.MembersReply> {
    return this.request('conversation.members', { conversation_id: conversationId });
  }

  async addMembers(conversationId: string, memberIds: string[], role?: 'member' | 'admin'): Promise<P.Conversation> {
    const request: P.AddMembersRequest = { conversation_id: conversationId, member_ids: memberIds, ...(role ? { role } : {}) };
    return this.upserted(await this.request('conversation.members.add', request));
  }

  async removeMember(conversationId: string, userId: string): Promise<P.Conversation> {
    return this.upserted(await this.request('conversation.members.remove', { conversation_id: conversationId, user_id: userId }));
  }

  async leave(conversationId: string): Promise<P.Conversation> {
    const conversation = await this.request('conversation.leave', { conversation_id: conversationId });
    this.forget(conversationId);
    return conversation;
  }

  /**
   * Opens a conversation: its timeline loads, stays complete across reconnects and is observable
   * through the handle until every handle of it is closed.
   */
  open(conversationId: string): ConversationHandle {
    let open = this.syncs.get(conversationId);
    if (!open) {
      const sync = new ConversationSync(conversationId, this, {
        ...(this.selfUserId !== undefined ? { selfUserId: this.selfUserId } : {}),
        ...(this.options.pageSize !== undefined ? { pageSize: this.options.pageSize } : {}),
        onChange: () => this.emitter.emit('timeline', { conversation_id: conversationId, items: sync.timeline.items() }),
        onMessages: (messages) => this.lists.apply((list) => messages.forEach((message) => list.applyMessage(message))),
        onGapSkipped: (gap) => this.emitter.emit('gap_skipped', { conversation_id: conversationId, ...gap }),
        onError: (error) => this.reportBackground(error),
      });
      sync.timeline.setPending(this.sender.outbox.forConversation(conversationId));
      open = { sync, handles: 0 };
      this.syncs.set(conversationId, open);
      if (this.connection.isReady) this.background(sync.sync());
    }
    open.handles += 1;
    const opened = open;
    return new ConversationHandle(this, opened.sync, () => {
      opened.handles -= 1;
      if (opened.handles > 0 || this.syncs.get(conversationId) !== opened) return;
      // The protocol has no unsubscribe: live events keep coming on this connection and now only
      // update the list.
      opened.sync.close();
      this.syncs.delete(conversationId);
    });
  }

  /** A raw page of history (open conversations page with their handle's `loadOlder`). */
  history(request: P.HistoryRequest): Promise<P.HistoryReply> {
    return this.request('conversation.history', request);
  }

  // ------------------------------------------------------------------ messages

  /** Queues a message: it shows in place at once and is sent (and resent) until the server has it. */
  send(conversationId: string, text: string, options: Omit<SendDraft, 'conversation_id' | 'text'> = {}): OutboxEntry {
    return this.sender.send({ ...options, conversation_id: conversationId, text });
  }

  forward(conversationId: string, sourceConversationId: string, messageId: string): OutboxEntry {
    return this.sender.forward({ conversation_id: conversationId, source_conversation_id: sourceConversationId, message_id: messageId });
  }

  /**
   * Resolves once a send reaches `status` (`accepted`: sequenced, with its `seq`; `persisted`: stored),
   * rejects with the refusal when it fails for good. Sends never need awaiting: this is for flows that
   * must know, e.g. a bot that posts in order across conversations.
   */
  whenSent(clientMsgId: string, status: 'accepted' | 'persisted' = 'accepted'): Promise<OutboxEntry> {
    return this.sender.whenSent(clientMsgId, status);
  }

  /** Sends a failed message again, with the same `client_msg_id`. */
  retrySend(clientMsgId: string): void {
    this.sender.retry(clientMsgId);
  }

  discardSend(clientMsgId: string): void {
    this.sender.discard(clientMsgId);
  }

  /** Every unfinished send (pending, accepted, failed), oldest first. */
  pendingSends(): OutboxEntry[] {
    return this.sender.outbox.snapshot();
  }

  async edit(conversationId: string, messageId: string, text: string): Promise<P.Message> {
    return this.applied(await this.request('message.edit', { conversation_id: conversationId, message_id: messageId, text }));
  }

  async delete(conversationId: string, messageId: string): Promise<P.Message> {
    return this.applied(await this.request('message.delete', { conversation_id: conversationId, message_id: messageId }));
  }

  /** `reaction.add` (or `reaction.remove` with `active` false). */
  async react(conversationId: string, messageId: string, emoji: string, active = true): Promise<P.ReactionReply> {
    const reply = await this.request(active ? 'reaction.add' : 'reaction.remove', { conversation_id: conversationId, message_id: messageId, emoji });
    this.syncs.get(conversationId)?.sync.deliver((timeline) => timeline.applyReaction(reply, reply.active));
    return reply;
  }

  /** The thread under a message, oldest first; page on with `after_seq` = the last reply's seq. */
  replies(conversationId: string, messageId: string, page: { limit?: number; after_seq?: number } = {}): Promise<P.RepliesReply> {
    return this.request('message.replies', { conversation_id: conversationId, message_id: messageId, ...page });
  }

  /**
   * Moves the read horizon (default: to the newest message known) and updates the unread count. Marks
   * are coalesced per conversation; a `rate_limited` one is sent again after the wait the server names.
   */
  async markRead(conversationId: string, seq?: number): Promise<P.ReadHorizon | undefined> {
    const target = seq ?? this.syncs.get(conversationId)?.sync.timeline.lastSeq ?? this.lists.list.get(conversationId)?.last_seq;
    if (target === undefined || target <= 0) return undefined;
    const horizon = await this.signals.markRead(conversationId, target);
    this.lists.apply((list) => list.applyRead(horizon));
    return horizon;
  }

  /**
   * The typing indicator: starts are sent at most every 3 s (they last 5 s); a stop goes after the
   * request on the wire, if any. Best-effort: a `rate_limited` one is dropped (the indicator lapses).
   */
  typing(conversationId: string, isTyping: boolean): Promise<void> {
    return this.signals.sendTyping(conversationId, isTyping);
  }

  typingUsers(conversationId: string): string[] {
    return this.signals.typingUsers(conversationId);
  }

  /** Watches users' presence (again after every reconnect); resolves to those not visible to you. */
  watchPresence(userIds: readonly string[]): Promise<string[]> {
    return this.signals.watch(userIds);
  }

  /** `undefined` for users not watched. */
  presence(userId: string): boolean | undefined {
    return this.signals.presence(userId);
  }

  // ------------------------------------------------------------------ HTTP (needs apiUrl)

  /** Declare → PUT to the blob store (with progress) → complete. Then send with `attachments: [info.id]`. */
  upload(options: UploadOptions): Promise<P.AttachmentInfo> {
    return this.requireHttp().upload(options);
  }

  /** Fresh download URLs for an attachment: `url`, and `thumbnail_url` for images. */
  attachment(attachmentId: string): Promise<P.AttachmentDownload> {
    return this.requireHttp().attachment(attachmentId);
  }

  search(params: P.SearchParams): Promise<P.SearchResult> {
    return this.requireHttp().search(params);
  }

  sessions(): Promise<P.SessionsResponse> {
    return this.requireHttp().sessions();
  }

  endSession(sessionId: string): Promise<P.RevokeResponse> {
    return this.requireHttp().endSession(sessionId);
  }

  /** Ends this session on the server, then stops the client. */
  async logout(): Promise<P.RevokeResponse> {
    const result = await this.requireHttp().logout();
    this.close();
    return result;
  }

  // ------------------------------------------------------------------ internals

  private requireHttp(): HttpApi {
    if (!this.http) throw new Error('this call needs the apiUrl option (and a fetch)');
    return this.http;
  }

  private setState(state: ClientState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emitter.emit('state', state);
  }

  private setSelf(userId: string): void {
    this.selfUserId = userId;
    this.lists.list.setSelfUserId(userId);
    this.signals.setSelfUserId(userId);
    for (const { sync } of this.syncs.values()) sync.timeline.setSelfUserId(userId);
  }

  /**
   * Every (re)connect: sends go out, the list and every open conversation catch up, presence is re-watched;
   * then accepted sends are confirmed.
   */
  private async onReady(ready: P.ReadyData): Promise<void> {
    const generation = ++this.generation;
    this.setSelf(ready.user_id);
    this.emitter.emit('ready', ready);
    this.sender.pump();
    const results = await Promise.allSettled([
      this.lists.refresh(),
      ...[...this.syncs.values()].map(({ sync }) => sync.sync()),
      this.signals.rewatch(),
    ]);
    for (const result of results) if (result.status === 'rejected') this.reportBackground(result.reason);
    if (generation === this.generation && this.connection.isReady) {
      this.setState('online');
      // Caught up: accepted sends whose `persisted` ack may have gone with the last connection are confirmed.
      this.sender.online();
    }
  }

  private sendChanged(entry: OutboxEntry): void {
    const conversationId = entry.conversation_id;
    this.syncs.get(conversationId)?.sync.deliver((timeline) => timeline.setPending(this.sender.outbox.forConversation(conversationId)));
    this.emitter.emit('send', entry);
  }

  private upserted(conversation: P.Conversation): P.Conversation {
    this.lists.apply((list) => list.upsert(conversation));
    return conversation;
  }

  private applied(message: P.Message): P.Message {
    this.lists.apply((list) => list.applyMessage(message));
    this.syncs.get(message.conversation_id)?.sync.deliver((timeline) => timeline.applyMessage(message));
    return message;
  }

  private forget(conversationId: string): void {
    this.lists.apply((list) => list.remove(conversationId));
    this.syncs.get(conversationId)?.sync.close();
    this.syncs.delete(conversationId);
  }

  private background(work: Promise<unknown>): void {
    work.catch((error: unknown) => this.reportBackground(error));
  }

  /** A connection that drops mid-work fails that work; the next `ready` redoes it, so that is no error. */
  private reportBackground(error: unknown): void {
    if (error instanceof CaasError && (error.code === 'disconnected' || error.code === 'closed')) return;
    this.emitter.emit('error', error instanceof Error ? error : new Error(String(error)));
  }
}

/** Creates a client and starts connecting in the background; watch `state`, or await {@link whenOnline}. */
export function connect(options: ClientOptions): CaasClient {
  return new CaasClient(options).start();
}

/** Resolves once the client is online (connected and caught up). */
export function whenOnline(client: CaasClient): Promise<void> {
  if (client.state === 'online') return Promise.resolve();
  return new Promise((resolve) => {
    const off = client.on('state', (state) => {
      if (state === 'online') {
        off();
        resolve();
      }
    });
  });
}
