/**
 * An in-process stand-in for a socket node, speaking the native protocol over a real WebSocket (the
 * `ws` package): auth frame, ready, subscribe with replay pages, history pages, idempotent sends with
 * accepted replies and persisted acks (a resend of a stored message is answered `persisted`), reads,
 * list with unread counts. Enough of docs/protocol.md to drive the client through reconnects; not a
 * reimplementation of the server's rules.
 */
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { AddressInfo } from 'node:net';
import type { Conversation, ConversationListEntry, HistoryMessage, Message, TokenResponse } from '../src/protocol.js';

interface Room {
  conversation: Conversation;
  messages: Message[];
  reads: Map<string, number>;
}

interface Peer {
  socket: WebSocket;
  userId: string | undefined;
  subscriptions: Set<string>;
}

export interface RecordedRequest {
  userId: string | undefined;
  type: string;
  data: Record<string, unknown>;
  token?: string;
}

export class FakeServer {
  readonly requests: RecordedRequest[] = [];
  /** Replay pages hold at most this many messages (small, so has_more is exercised). */
  replayPage = 7;
  /** Called after a subscribe reply went out (to inject races). */
  afterSubscribe: ((peer: Peer, conversationId: string, sinceSeq: number | undefined) => void) | undefined;
  /**
   * When a new message is stored, 5 ms after its send: `ack` tells the sender's open connections
   * (`ack` event); `silent` stores it but the event is lost (as to a socket that dropped); `held` does
   * not store it until `persistHeld()`; `ack-before-reply` stores it at once and writes the `ack` event
   * and then the send's reply in one socket write; `reply-then-ack` writes the reply and the event in one.
   */
  persistence: 'ack' | 'silent' | 'held' | 'ack-before-reply' | 'reply-then-ack' = 'ack';
  private readonly wss: WebSocketServer;
  private readonly rooms = new Map<string, Room>();
  private readonly peers = new Set<Peer>();
  private readonly sends = new Map<string, Message>();
  /** Send keys whose message the store has (a resend of one is answered `persisted`). */
  private readonly stored = new Set<string>();
  private readonly held: Array<() => void> = [];
  private readonly tokens = new Map<string, string>();
  private clock = 1_700_000_000_000;

  private constructor(wss: WebSocketServer) {
    this.wss = wss;
    wss.on('connection', (socket) => this.accept(socket));
  }

  static async start(): Promise<FakeServer> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    return new FakeServer(wss);
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}/ws`;
  }

  issueToken(userId: string, lifetimeSecs = 3600, token = `tok-${userId}-${this.tokens.size}`): TokenResponse {
    this.tokens.set(token, userId);
    return {
      token,
      expires_at: Math.floor(Date.now() / 1000) + lifetimeSecs,
      session_id: `session-${userId}`,
      user: { id: userId, external_id: userId, display_name: null },
      socket_urls: [this.url],
    };
  }

  createRoom(id: string, members: string[], epoch = 'e1'): Room {
    const room: Room = {
      conversation: { id, app_id: 'app', kind: 'group', name: id, created_by: members[0] ?? '', member_ids: members, epoch, created_at: 1, correlation_id: 'c' },
      messages: [],
      reads: new Map(),
    };
    this.rooms.set(id, room);
    return room;
  }

  /** A message from `senderId`, sequenced and delivered live to every subscriber. */
  post(conversationId: string, senderId: string, text: string, clientMsgId = `srv-${Math.random()}`): Message {
    const room = this.room(conversationId);
    const message: Message = {
      id: `${conversationId}-m${room.messages.length + 1}`,
      app_id: 'app',
      conversation_id: conversationId,
      seq: room.messages.length + 1,
      sender_id: senderId,
      client_msg_id: clientMsgId,
      text,
      created_at: ++this.clock,
      correlation_id: 'c',
      version: 0,
    };
    room.messages.push(message);
    room.reads.set(senderId, Math.max(room.reads.get(senderId) ?? 0, message.seq));
    this.broadcast(conversationId, 'message.new', message);
    return message;
  }

  /** Renumbers a conversation under a new epoch (what a lost sequence forces on the real server). */
  bumpEpoch(conversationId: string, epoch: string): void {
    const room = this.room(conversationId);
    room.conversation = { ...room.conversation, epoch };
  }

  messages(conversationId: string): Message[] {
    return this.room(conversationId).messages;
  }

  /** Stores the messages `persistence: 'held'` kept back, telling their senders as `ack` does. */
  persistHeld(): void {
    for (const persist of this.held.splice(0)) persist();
  }

  /** Drops every socket of a user without a close frame, as a crashed node would. */
  kill(userId: string): void {
    for (const peer of this.peers) if (peer.userId === userId) peer.socket.terminate();
  }

  /** Closes every socket of a user with a close frame. */
  closeUser(userId: string, code: number, reason: string): void {
    for (const peer of this.peers) if (peer.userId === userId) peer.socket.close(code, reason);
  }

  connectedCount(userId: string): number {
    return [...this.peers].filter((peer) => peer.userId === userId).length;
  }

  /** Sends an event to every connection of a user. */
  tell(userId: string, type: string, data: unknown): void {
    for (const peer of this.peers) if (peer.userId === userId) peer.socket.send(JSON.stringify({ type, data }));
  }

  send(peer: Peer, type: string, data: unknown): void {
    peer.socket.send(JSON.stringify({ type, data }));
  }

  async close(): Promise<void> {
    for (const peer of this.peers) peer.socket.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private room(id: string): Room {
    const room = this.rooms.get(id);
    if (!room) throw new Error(`no room ${id}`);
    return room;
  }

  private broadcast(conversationId: string, type: string, data: unknown): void {
    for (const peer of this.peers) if (peer.subscriptions.has(conversationId)) this.send(peer, type, data);
  }

  private accept(socket: WebSocket): void {
    const peer: Peer = { socket, userId: undefined, subscriptions: new Set() };
    this.peers.add(peer);
    socket.on('close', () => this.peers.delete(peer));
    socket.on('message', (raw) => {
      const frame = JSON.parse(String(raw)) as { id: string; type: string; data?: Record<string, unknown>; token?: string };
      this.requests.push({ userId: peer.userId, type: frame.type, data: frame.data ?? {}, ...(frame.token ? { token: frame.token } : {}) });
      const reply = (data: unknown): void => socket.send(JSON.stringify({ reply_to: frame.id, ok: true, data }));
      const fail = (code: string, message: string): void => socket.send(JSON.stringify({ reply_to: frame.id, ok: false, error: { code, message } }));
      if (frame.type === 'auth') {
        const userId = frame.token === undefined ? undefined : this.tokens.get(frame.token);
        if (!userId || (peer.userId !== undefined && userId !== peer.userId)) {
          fail('unauthorized', 'bad token');
          if (peer.userId === undefined) socket.close(1008, 'unauthorized');
          return;
        }
        const first = peer.userId === undefined;
        peer.userId = userId;
        reply({ authenticated: true, ...(first ? {} : { expires_at: 0 }) });
        if (first) this.send(peer, 'ready', { user_id: userId, app_id: 'app', correlation_id: 'corr' });
        return;
      }
      if (peer.userId === undefined) return void socket.close(1008, 'unauthorized');
      this.dispatch(peer, frame.type, frame.data ?? {}, reply, fail);
    });
  }

  private dispatch(peer: Peer, type: string, data: Record<string, unknown>, reply: (data: unknown) => void, fail: (code: string, message: string) => void): void {
    const userId = peer.userId ?? '';
    const conversationId = String(data.conversation_id ?? '');
    switch (type) {
      case 'ping':
        return reply({ pong: Date.now() });
      case 'conversation.list': {
        const entries: ConversationListEntry[] = [...this.rooms.values()]
          .filter((room) => room.conversation.member_ids.includes(userId))
          .map((room) => {
            const read = room.reads.get(userId) ?? 0;
            const last = room.messages.at(-1) ?? null;
            const unread = room.messages.filter((m) => m.seq > read && m.sender_id !== userId && m.deleted_at === undefined).length;
            return { ...room.conversation, last_message: last, last_seq: last?.seq ?? 0, read_seq: read, unread_count: unread };
          });
        return reply({ conversations: entries });
      }
      case 'conversation.subscribe': {
        const room = this.room(conversationId);
        peer.subscriptions.add(conversationId);
        const since = typeof data.since_seq === 'number' ? data.since_seq : undefined;
        const base = { conversation_id: conversationId, epoch: room.conversation.epoch, last_seq: room.messages.length };
        if (since === undefined || (data.epoch !== undefined && data.epoch !== room.conversation.epoch)) {
          reply({ ...base, recovered: false, messages: [], has_more: false });
        } else {
          const after = room.messages.filter((m) => m.seq > since);
          reply({ ...base, recovered: true, messages: after.slice(0, this.replayPage), has_more: after.length > this.replayPage });
        }
        this.afterSubscribe?.(peer, conversationId, since);
        return;
      }
      case 'conversation.history': {
        const room = this.room(conversationId);
        const limit = typeof data.limit === 'number' ? data.limit : 50;
        let page: Message[];
        if (typeof data.after_seq === 'number') page = room.messages.filter((m) => m.seq > (data.after_seq as number)).slice(0, limit);
        else if (typeof data.before_seq === 'number') page = room.messages.filter((m) => m.seq < (data.before_seq as number)).slice(-limit);
        else page = room.messages.slice(-limit);
        const messages: HistoryMessage[] = page.map((m) => ({ ...m, reply_count: 0, reactions: [] }));
        return reply({ conversation_id: conversationId, messages, has_more: page.length === limit });
      }
      case 'message.send': {
        if (String(data.text).includes('BLOCKED')) return fail('content_blocked', 'the message contains blocked terms: BLOCKED');
        const key = `${conversationId}:${userId}:${String(data.client_msg_id)}`;
        const existing = this.sends.get(key);
        const message = existing ?? this.post(conversationId, userId, String(data.text), String(data.client_msg_id));
        this.sends.set(key, message);
        const ack = { conversation_id: conversationId, client_msg_id: message.client_msg_id, message_id: message.id, seq: message.seq };
        if (existing) return reply({ ...ack, status: this.stored.has(key) ? 'persisted' : 'accepted', duplicate: true });
        const persisted = (): void => {
          this.stored.add(key);
          if (this.persistence !== 'silent') this.tell(userId, 'ack', { ...ack, status: 'persisted' });
        };
        const accepted = (): void => reply({ ...ack, status: 'accepted', duplicate: false });
        if (this.persistence === 'ack-before-reply' || this.persistence === 'reply-then-ack') {
          // One write, so the client reads both frames at once (`ws` then handles both before any promise continuation).
          const tcp = (peer.socket as unknown as { _socket: Socket })._socket;
          tcp.cork();
          if (this.persistence === 'ack-before-reply') (persisted(), accepted());
          else (accepted(), persisted());
          process.nextTick(() => tcp.uncork());
          return;
        }
        accepted();
        if (this.persistence === 'held') this.held.push(persisted);
        else setTimeout(persisted, 5);
        return;
      }
      case 'read.mark': {
        const room = this.room(conversationId);
        const seq = Math.min(Math.max(room.reads.get(userId) ?? 0, Number(data.seq)), room.messages.length);
        room.reads.set(userId, seq);
        const horizon = { conversation_id: conversationId, user_id: userId, seq };
        this.broadcast(conversationId, 'read', horizon);
        return reply(horizon);
      }
      default:
        return fail('unknown_event', `unknown event type "${type}"`);
    }
  }
}
