/**
 * The client an app uses: `connect()` returns it connected-in-the-background, and it keeps observable
 * state right for as long as it runs — the connection state, the conversation list with unread counts,
 * each open conversation's messages (sends in place), typing users and presence — across reconnects,
 * token renewals and node failures. Requests are typed by the protocol's event table.
 */
import { Connection, type ConnectionOptions, type WebSocketConstructor } from './connection.js';
import { ConversationHandle } from './conversation.js';
import { Emitter, type Unsubscribe } from './emitter.js';
import { CaasError } from './errors.js';
import { HttpApi, type FetchLike, type UploadOptions } from './http.js';
import { Outbox, type OutboxEntry, type SendDraft } from './outbox.js';
import type * as P from './protocol.js';
import { defaultOutboxStorage, type OutboxStorage } from './storage.js';
import { ConversationSync } from './sync.js';
import type { TimelineItem } from './timeline.js';
import { TypingTracker } from './typing.js';
import { ConversationList, type ConversationSummary } from './unread.js';

export type ClientState = 'connecting' | 'online' | 'offline' | 'resuming';

export interface ClientOptions extends Omit<ConnectionOptions, 'WebSocket' | 'renewToken'> {
  /** Default `globalThis.WebSocket`; under Node 20 pass the `ws` package's `WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** The gateway, e.g. `https://chat.example.com` (HTTP routes; token refresh through `/auth/refresh`). */
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
}

export interface ClientEvents {
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
  session_ended: { code: string; reason: string };
  gap_skipped: { conversation_id: string; from: number; through: number };
  /** Failures of background work (resync, list refresh, storage); requests the app makes reject instead. */
  error: CaasError | Error;
}

/** Requests other than sends are retried this many times when the connection's budget refuses them. */
const RATE_LIMIT_RETRIES = 5;

export class CaasClient {
  private readonly emitter = new Emitter<ClientEvents>();
  private readonly connection: Connection;
  private readonly outbox = new Outbox();
  private readonly list = new ConversationList();
  private readonly typingTracker = new TypingTracker();
  private readonly presenceState = new Map<string, boolean>();
  private readonly syncs = new Map<string, { sync: ConversationSync; handles: number }>();
  private readonly http: HttpApi | undefined;
  private readonly storage: OutboxStorage | undefined;
  private readonly now: () => number;
  private currentState: ClientState = 'offline';
  private generation = 0;
  private selfUserId: string | undefined;
  private storageKey: string | undefined;
  private saving: Promise<void> = Promise.resolve();
  private outboxTimer: ReturnType<typeof setTimeout> | undefined;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;
  private listBuffer: Array<() => void> | undefined;
  private readonly lastTypingStart = new Map<string, number>();

  constructor(private readonly options: ClientOptions) {
    this.now = options.now ?? Date.now;
    const fetchImpl = options.fetch ?? (typeof fetch === 'function' ? fetch.bind(globalThis) : undefined);
    if (options.apiUrl !== undefined && fetchImpl) {
      this.http = new HttpApi(options.apiUrl, fetchImpl, async () => (await this.token()).token);
    }
    this.storage = options.storage === false ? undefined : (options.storage ?? defaultOutboxStorage());
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WebSocketImpl) throw new Error('no WebSocket: pass one in the options (under Node, the ws package)');
    const http = this.http;
    this.connection = new Connection({
      ...options,
      WebSocket: WebSocketImpl,
      ...(http ? { renewToken: (current: P.TokenResponse) => http.refresh(current.token) } : {}),
    });
    this.connection.events.on('status', (status) => this.onStatus(status));
    this.connection.events.on('ready', (ready) => void this.onReady(ready));
    this.connection.events.on('event', (frame) => this.onEvent(frame));
    this.connection.events.on('down', () => this.onDown());
    this.connection.events.on('token', (token) => this.onToken(token));
    this.connection.events.on('ended', (ended) => this.emitter.emit('session_ended', ended));
  }

  // ------------------------------------------------------------------ lifecycle and observation

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

  start(): this {
    this.connection.start();
    return this;
  }

  /** Closes the socket and stops reconnecting; `start()` connects again. */
  close(): void {
    this.connection.stop();
    for (const { sync } of this.syncs.values()) sync.close();
    if (this.outboxTimer) clearTimeout(this.outboxTimer);
    if (this.typingTimer) clearTimeout(this.typingTimer);
  }

  /** Reconnect now rather than after the backoff (or check a connected socket with a ping). */
  reconnect(): void {
    this.connection.reconnectNow();
  }

  /** The current token (fetched or refreshed when needed). */
  token(): Promise<P.TokenResponse> {
    const current = this.connection.currentToken;
    if (current && current.expires_at * 1000 > this.now() + 5000) return Promise.resolve(current);
    return this.options.tokenProvider();
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

  // ------------------------------------------------------------------ conversations

  conversations(): ConversationSummary[] {
    return this.list.list();
  }

  totalUnread(): number {
    return this.list.totalUnread();
  }

  /** Reloads the list (counts from the server) and, unless disabled, watches every listed conversation. */
  async refreshConversations(): Promise<ConversationSummary[]> {
    this.listBuffer ??= [];
    try {
      const reply = await this.request('conversation.list', { limit: this.options.conversationLimit ?? 50 });
      this.list.load(reply.conversations);
    } finally {
      // Events that raced the list read go on top of it (the list counts each seq once).
      const buffered = this.listBuffer ?? [];
      this.listBuffer = undefined;
      for (const apply of buffered) apply();
      this.emitConversations();
    }
    if (this.options.watchConversations ?? true) await this.watchListed();
    return this.list.list();
  }

  async createConversation(request: P.CreateConversationRequest): Promise<P.Conversation> {
    return this.upserted(await this.request('conversation.create', request));
  }

  /** One conversation by id (HTTP; needs `apiUrl`). */
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
   * Opens a conversation: its timeline is loaded, kept complete across reconnects and observable
   * through the handle until every handle of it is closed.
   */
  open(conversationId: string): ConversationHandle {
    let open = this.syncs.get(conversationId);
    if (!open) {
      const sync = new ConversationSync(conversationId, this, {
        ...(this.selfUserId !== undefined ? { selfUserId: this.selfUserId } : {}),
        ...(this.options.pageSize !== undefined ? { pageSize: this.options.pageSize } : {}),
        onChange: () => this.emitter.emit('timeline', { conversation_id: conversationId, items: sync.timeline.items() }),
        onMessages: (messages) => this.toList(() => messages.forEach((message) => this.list.applyMessage(message))),
        onGapSkipped: (gap) => this.emitter.emit('gap_skipped', { conversation_id: conversationId, ...gap }),
        onError: (error) => this.emitter.emit('error', error),
      });
      sync.timeline.setPending(this.outbox.forConversation(conversationId));
      open = { sync, handles: 0 };
      this.syncs.set(conversationId, open);
      if (this.connection.isReady) this.background(sync.sync());
    }
    open.handles += 1;
    const opened = open;
    return new ConversationHandle(this, opened.sync, () => {
      opened.handles -= 1;
      if (opened.handles === 0 && this.syncs.get(conversationId) === opened) {
        opened.sync.close();
        this.syncs.delete(conversationId);
      }
    });
  }

  /** A page of history, raw (open conversations page with their handle's `loadOlder`). */
  history(request: P.HistoryRequest): Promise<P.HistoryReply> {
    return this.request('conversation.history', request);
  }

  // ------------------------------------------------------------------ messages

  /** Queues a message: it shows in place at once and is sent (and resent) until the server has it. */
  send(conversationId: string, text: string, options: Omit<SendDraft, 'conversation_id' | 'text'> = {}): OutboxEntry {
    const entry = this.outbox.send({ ...options, conversation_id: conversationId, text }, this.now());
    this.outboxChanged(entry);
    return entry;
  }

  forward(conversationId: string, sourceConversationId: string, messageId: string): OutboxEntry {
    const draft = { conversation_id: conversationId, source_conversation_id: sourceConversationId, message_id: messageId };
    const entry = this.outbox.forward(draft, this.now());
    this.outboxChanged(entry);
    return entry;
  }

  /** Sends a failed message again (same `client_msg_id`). */
  retrySend(clientMsgId: string): void {
    const entry = this.outbox.retry(clientMsgId, this.now());
    if (entry) this.outboxChanged(entry);
  }

  discardSend(clientMsgId: string): void {
    const entry = this.outbox.get(clientMsgId);
    if (entry && this.outbox.discard(clientMsgId)) this.outboxChanged(entry);
  }

  pendingSends(): OutboxEntry[] {
    return this.outbox.snapshot();
  }

  async edit(conversationId: string, messageId: string, text: string): Promise<P.Message> {
    return this.applied(await this.request('message.edit', { conversation_id: conversationId, message_id: messageId, text }));
  }

  async delete(conversationId: string, messageId: string): Promise<P.Message> {
    return this.applied(await this.request('message.delete', { conversation_id: conversationId, message_id: messageId }));
  }

  async react(conversationId: string, messageId: string, emoji: string, active = true): Promise<P.ReactionReply> {
    const request = { conversation_id: conversationId, message_id: messageId, emoji };
    const reply = await this.request(active ? 'reaction.add' : 'reaction.remove', request);
    this.syncs.get(conversationId)?.sync.deliver((timeline) => timeline.applyReaction(reply, reply.active));
    return reply;
  }

  replies(conversationId: string, messageId: string, page: { limit?: number; after_seq?: number } = {}): Promise<P.RepliesReply> {
    return this.request('message.replies', { conversation_id: conversationId, message_id: messageId, ...page });
  }

  /** Moves the read horizon (default: to the newest message known) and updates the unread count. */
  async markRead(conversationId: string, seq?: number): Promise<P.ReadHorizon | undefined> {
    const target = seq ?? this.syncs.get(conversationId)?.sync.timeline.lastSeq ?? this.list.get(conversationId)?.last_seq;
    if (target === undefined || target <= 0) return undefined;
    const horizon = await this.request('read.mark', { conversation_id: conversationId, seq: target });
    this.list.applyRead(horizon);
    this.emitConversations();
    return horizon;
  }

  /** Typing indicator; starts are sent at most every 3 s (they last 5 s), stops at once. */
  async typing(conversationId: string, isTyping: boolean): Promise<void> {
    const last = this.lastTypingStart.get(conversationId) ?? -Infinity;
    if (isTyping && this.now() - last < 3000) return;
    if (isTyping) this.lastTypingStart.set(conversationId, this.now());
    else this.lastTypingStart.delete(conversationId);
    await this.request(isTyping ? 'typing.start' : 'typing.stop', { conversation_id: conversationId });
  }

  typingUsers(conversationId: string): string[] {
    return this.typingTracker.users(conversationId, this.now());
  }

  /** Watches users' presence (re-sent after every reconnect); returns those not visible to you. */
  async watchPresence(userIds: readonly string[]): Promise<string[]> {
    for (const userId of userIds) if (!this.presenceState.has(userId)) this.presenceState.set(userId, false);
    return this.subscribePresence([...userIds]);
  }

  presence(userId: string): boolean | undefined {
    return this.presenceState.get(userId);
  }

  async ping(): Promise<number> {
    return (await this.request('ping', {})).pong;
  }

  // ------------------------------------------------------------------ HTTP

  upload(options: UploadOptions): Promise<P.AttachmentInfo> {
    return this.requireHttp().upload(options);
  }

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

  /** @internal the outbox's sends for one conversation, for handles. */
  sendsFor(conversationId: string): OutboxEntry[] {
    return this.outbox.forConversation(conversationId);
  }

  private requireHttp(): HttpApi {
    if (!this.http) throw new Error('this call needs the apiUrl option (and a fetch)');
    return this.http;
  }

  private setState(state: ClientState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emitter.emit('state', state);
  }

  private onStatus(status: 'connecting' | 'ready' | 'offline'): void {
    if (status === 'connecting') this.setState('connecting');
    else if (status === 'offline') this.setState('offline');
    else this.setState('resuming');
  }

  private onToken(token: P.TokenResponse): void {
    this.setSelf(token.user.id);
    const key = `outbox:${token.user.id}`;
    if (!this.storage || this.storageKey === key) return;
    this.storageKey = key;
    this.storage.load(key).then(
      (entries) => {
        this.outbox.adopt(entries);
        for (const entry of entries) this.outboxChanged(entry, false);
      },
      (error: unknown) => this.emitter.emit('error', error instanceof Error ? error : new Error(String(error))),
    );
  }

  private setSelf(userId: string): void {
    this.selfUserId = userId;
    this.list.setSelfUserId(userId);
    this.typingTracker.setSelfUserId(userId);
    for (const { sync } of this.syncs.values()) sync.timeline.setSelfUserId(userId);
  }

  /** Every (re)connect: sends go out, the list and every open conversation catch up, presence is re-watched. */
  private async onReady(ready: P.ReadyData): Promise<void> {
    const generation = ++this.generation;
    this.setSelf(ready.user_id);
    this.emitter.emit('ready', ready);
    this.pumpOutbox();
    const watched = [...this.presenceState.keys()];
    const work = [
      this.refreshConversations(),
      ...[...this.syncs.values()].map(({ sync }) => sync.sync()),
      ...(watched.length > 0 ? [this.subscribePresence(watched)] : []),
    ];
    const results = await Promise.allSettled(work);
    for (const result of results) {
      if (result.status === 'rejected' && !isDisconnect(result.reason)) this.emitter.emit('error', toError(result.reason));
    }
    if (generation === this.generation && this.connection.isReady) this.setState('online');
  }

  private onDown(): void {
    this.generation += 1;
    this.outbox.disconnected();
  }

  private onEvent(frame: P.EventFrame): void {
    this.emitter.emit('event', frame);
    const open = (id: string): ConversationSync | undefined => this.syncs.get(id)?.sync;
    switch (frame.type) {
      case 'message.new':
      case 'message.updated':
      case 'message.deleted': {
        const message = frame.data as P.Message;
        const deleted = frame.type === 'message.deleted';
        this.toList(() => (deleted ? this.list.applyDeleted(message) : this.list.applyMessage(message)));
        open(message.conversation_id)?.deliver((timeline) => timeline.applyMessage(message));
        if (frame.type === 'message.new' && this.typingTracker.stopped(message.conversation_id, message.sender_id)) {
          this.emitTyping(message.conversation_id);
        }
        return;
      }
      case 'reaction.added':
      case 'reaction.removed': {
        const reaction = frame.data as P.ReactionEventData;
        open(reaction.conversation_id)?.deliver((timeline) => timeline.applyReaction(reaction, frame.type === 'reaction.added'));
        return;
      }
      case 'read':
        return this.toList(() => this.list.applyRead(frame.data as P.ReadHorizon));
      case 'typing': {
        const notice = frame.data as P.TypingNotice;
        if (this.typingTracker.apply(notice, this.now())) this.emitTyping(notice.conversation_id);
        return this.scheduleTypingExpiry();
      }
      case 'presence': {
        const presence = frame.data as P.PresenceState;
        this.presenceState.set(presence.user_id, presence.online);
        return this.emitter.emit('presence', presence);
      }
      case 'ack': {
        const persisted = this.outbox.persisted(frame.data as P.Ack);
        if (persisted) this.outboxChanged(persisted);
        return;
      }
      case 'conversation.created':
      case 'conversation.joined':
      case 'conversation.updated': {
        const conversation = this.upserted(frame.data as P.Conversation);
        const sync = open(conversation.id);
        // A new epoch voids what the open timeline holds: the next sync sees it and reloads.
        if (sync && sync.timeline.epoch !== undefined && sync.timeline.epoch !== conversation.epoch) this.background(sync.sync());
        if (frame.type !== 'conversation.updated' && (this.options.watchConversations ?? true) && !sync) {
          this.background(this.request('conversation.subscribe', { conversation_id: conversation.id }));
        }
        return;
      }
      case 'conversation.removed':
        return this.forget((frame.data as P.ConversationRemovedData).conversation_id);
      default:
        return;
    }
  }

  /** Subscribes listed conversations that no open timeline covers, resuming from the list's last seq. */
  private async watchListed(): Promise<void> {
    const pending = this.list
      .list()
      .filter((entry) => !this.syncs.has(entry.id))
      .map(async (entry) => {
        const reply = await this.request('conversation.subscribe', { conversation_id: entry.id, since_seq: entry.last_seq, epoch: entry.epoch });
        // Whatever arrived between the list read and the subscription.
        if (reply.recovered) this.toList(() => reply.messages.forEach((message) => this.list.applyMessage(message)));
      });
    await Promise.all(pending);
  }

  private async subscribePresence(userIds: string[]): Promise<string[]> {
    const notVisible: string[] = [];
    for (let start = 0; start < userIds.length; start += 500) {
      const reply = await this.request('presence.subscribe', { user_ids: userIds.slice(start, start + 500) });
      for (const state of reply.presence) {
        this.presenceState.set(state.user_id, state.online);
        this.emitter.emit('presence', state);
      }
      notVisible.push(...reply.not_visible);
    }
    return notVisible;
  }

  // ------------------------------------------------------------------ outbox

  private pumpOutbox(): void {
    if (this.outboxTimer) clearTimeout(this.outboxTimer);
    this.outboxTimer = undefined;
    for (const dropped of this.outbox.prune(this.now())) this.outboxChanged(dropped);
    if (!this.connection.isReady) return;
    for (const { entry, request } of this.outbox.takeDue(this.now())) {
      this.outboxChanged(entry, false);
      const reply =
        request.type === 'message.send'
          ? this.connection.request('message.send', request.data)
          : this.connection.request('message.forward', request.data);
      reply
        .then(
          (ack) => this.outbox.accepted(ack, this.now()),
          (error: unknown) => {
            const failure = error instanceof CaasError ? error : new CaasError('internal', String(error));
            if (failure.code === 'disconnected') return this.outbox.get(entry.client_msg_id);
            if (failure.code === 'timeout') return this.outbox.timedOut(entry.client_msg_id, this.now());
            return this.outbox.refused(entry.client_msg_id, failure.toBody(), this.now());
          },
        )
        .then((updated) => {
          if (updated) this.outboxChanged(updated);
          this.pumpOutbox();
        }, (error: unknown) => this.emitter.emit('error', toError(error)));
    }
    const due = this.outbox.nextDueAt();
    if (due !== undefined) this.outboxTimer = setTimeout(() => this.pumpOutbox(), Math.max(0, due - this.now()));
  }

  private outboxChanged(entry: OutboxEntry, pump = true): void {
    this.syncs.get(entry.conversation_id)?.sync.deliver((timeline) => timeline.setPending(this.outbox.forConversation(entry.conversation_id)));
    this.emitter.emit('send', entry);
    if (this.storage && this.storageKey) {
      const storage = this.storage;
      const key = this.storageKey;
      // Chained so saves land in order; each writes the whole (small) outbox as it is now.
      this.saving = this.saving
        .then(() => storage.save(key, this.outbox.snapshot()))
        .catch((error: unknown) => this.emitter.emit('error', toError(error)));
    }
    if (pump) this.pumpOutbox();
  }

  // ------------------------------------------------------------------ helpers

  private upserted(conversation: P.Conversation): P.Conversation {
    this.toList(() => this.list.upsert(conversation));
    return conversation;
  }

  private applied(message: P.Message): P.Message {
    this.toList(() => this.list.applyMessage(message));
    this.syncs.get(message.conversation_id)?.sync.deliver((timeline) => timeline.applyMessage(message));
    return message;
  }

  private forget(conversationId: string): void {
    this.toList(() => this.list.remove(conversationId));
    const open = this.syncs.get(conversationId);
    open?.sync.close();
    this.syncs.delete(conversationId);
  }

  /** Applies a change to the list now, or after the `conversation.list` reply in flight. */
  private toList(apply: () => unknown): void {
    if (this.listBuffer) {
      this.listBuffer.push(apply);
      return;
    }
    apply();
    this.emitConversations();
  }

  private emitConversations(): void {
    this.emitter.emit('conversations', this.list.list());
  }

  private emitTyping(conversationId: string): void {
    this.emitter.emit('typing', { conversation_id: conversationId, user_ids: this.typingUsers(conversationId) });
  }

  private scheduleTypingExpiry(): void {
    if (this.typingTimer) clearTimeout(this.typingTimer);
    const next = this.typingTracker.nextExpiry();
    if (next === undefined) return;
    this.typingTimer = setTimeout(() => {
      this.typingTimer = undefined;
      for (const conversationId of this.typingTracker.expire(this.now())) this.emitTyping(conversationId);
      this.scheduleTypingExpiry();
    }, Math.max(0, next - this.now()));
  }

  private background(work: Promise<unknown>): void {
    work.catch((error: unknown) => {
      if (!isDisconnect(error)) this.emitter.emit('error', toError(error));
    });
  }
}

/** Creates a client and starts connecting in the background; watch `state` or await `whenOnline`. */
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

function isDisconnect(error: unknown): boolean {
  return error instanceof CaasError && (error.code === 'disconnected' || error.code === 'closed');
}

function toError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
