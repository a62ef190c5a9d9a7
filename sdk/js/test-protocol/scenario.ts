/**
 * The fixed scenario: four users of one app on raw sockets (and the HTTP routes the SDK calls), arranged
 * so that the server answers every client event of `ClientEvents` and sends every server event it can
 * without a fault. Each step waits for what it provokes, so a step that stops working fails by name.
 */
import { deflateSync } from 'node:zlib';
import { Device, withExpiry } from './keys.js';
import type { Recorder } from './recorder.js';
import type { DevServer } from './server.js';
import { Socket, type ErrorData, type Json } from './socket.js';

export class HttpFailed extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
    what: string,
  ) {
    super(`${what}: HTTP ${status} ${JSON.stringify(body)}`);
  }
}

/** The HTTP API; a label ("GET /api/v1/auth/sessions") records the successful body under that route. */
class Api {
  constructor(
    private readonly base: string,
    private readonly recorder: Recorder,
  ) {}

  async call(label: string | undefined, method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<Json> {
    const { status, body } = await this.send(method, path, options);
    if (status < 200 || status > 299) throw new HttpFailed(status, body, `${method} ${path}`);
    if (label !== undefined) this.recorder.http.add(label, body);
    return body;
  }

  /** A call that must fail: its `error` body (recorded). */
  async refused(method: string, path: string, options: { token?: string; body?: unknown } = {}): Promise<ErrorData> {
    const { status, body } = await this.send(method, path, options);
    const error = (body as { error?: ErrorData } | undefined)?.error;
    if (status < 400 || error === undefined) throw new HttpFailed(status, body, `${method} ${path} should have been refused with an error body`);
    return error;
  }

  private async send(method: string, path: string, options: { token?: string; body?: unknown }): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = {};
    if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(this.base + path, {
      method,
      headers,
      ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (response.status >= 400) {
      const error = (body as { error?: unknown } | undefined)?.error;
      if (error !== undefined) this.recorder.error(error);
    }
    return { status: response.status, body };
  }
}

/** A 4×4 truecolour PNG, so the upload gets a thumbnail like a real picture. */
function tinyPng(): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (bytes: Buffer): number => {
    let c = 0xffffffff;
    for (const byte of bytes) c = (crcTable[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'ascii');
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
    return Buffer.concat([head, data, crc]);
  };
  const size = 4;
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows: number[] = [];
  for (let y = 0; y < size; y += 1) {
    rows.push(0);
    for (let x = 0; x < size; x += 1) rows.push(60 * x, 60 * y, 200);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.from(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const sleep = (ms: number): Promise<void> => new Promise((wake) => setTimeout(wake, ms));

/** Runs `step`, naming it in the error when it fails. */
async function step<T>(name: string, log: (line: string) => void, run: () => Promise<T>): Promise<T> {
  log(`step: ${name}`);
  try {
    return await run();
  } catch (error) {
    throw new Error(`step "${name}" failed: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}

export async function runScenario(server: DevServer, recorder: Recorder, log: (line: string) => void): Promise<void> {
  const api = new Api(server.apiUrl, recorder);
  const sockets: Socket[] = [];
  const open = async (name: string, query: string, headers: Record<string, string> = {}): Promise<Socket> => {
    const socket = await Socket.open(name, `${server.wsUrl}${query}`, recorder, headers);
    sockets.push(socket);
    return socket;
  };
  try {
    await scenario(server, api, recorder, open, log);
  } finally {
    await Promise.all(sockets.map((socket) => socket.close()));
  }
}

async function scenario(
  server: DevServer,
  api: Api,
  recorder: Recorder,
  open: (name: string, query: string, headers?: Record<string, string>) => Promise<Socket>,
  log: (line: string) => void,
): Promise<void> {
  // ------------------------------------------------------------------ app, users, connections
  const app = await step('create the app', log, () =>
    api.call(undefined, 'POST', '/api/v1/admin/apps', { token: server.adminToken, body: { name: 'protocol' } }),
  );
  const token = (external: string, displayName?: string): Promise<Json> =>
    api.call('POST /api/v1/auth/sdk/token', 'POST', '/api/v1/auth/sdk/token', {
      body: { app_id: app.app_id, app_secret: app.app_secret, user_external_id: external, ...(displayName ? { display_name: displayName } : {}) },
    });
  const [alice, bob, carol, dave, erin] = await step('tokens for five users', log, async () => [
    await token('alice', 'Alice'),
    await token('bob'),
    await token('carol', 'Carol'),
    await token('dave'),
    await token('erin'),
  ]);
  const id = (user: Json): string => user.user.id as string;
  const q = (value: string): string => encodeURIComponent(value);

  // alice names a device (ready then carries device_id and one_time_key_counts); bob's token is in the
  // URL; carol authenticates in band.
  const A = await step('alice connects with ?token and ?device_id', log, async () => {
    const socket = await open('alice', `?token=${q(alice.token)}&device_id=alice-phone`);
    await socket.waitEvent('ready');
    return socket;
  });
  const B = await step('bob connects with ?token', log, async () => {
    const socket = await open('bob', `?token=${q(bob.token)}`);
    await socket.waitEvent('ready');
    return socket;
  });
  const C = await step('carol authenticates with an auth frame, then renews in band', log, async () => {
    const socket = await open('carol', '');
    await socket.auth(carol.token);
    await socket.waitEvent('ready');
    await socket.auth(carol.token);
    return socket;
  });
  await step('a connection with the token in the Authorization header', log, async () => {
    const socket = await open('bob-header', '', { authorization: `Bearer ${bob.token}` });
    await socket.waitEvent('ready');
    await socket.close();
  });

  await step('ping', log, () => A.request('ping', {}));

  // ------------------------------------------------------------------ conversations
  const group = await step('alice creates a group with bob (bob gets conversation.created)', log, async () => {
    const created = await A.request('conversation.create', { kind: 'group', member_ids: [id(bob)], name: 'protocol' });
    await B.waitEvent('conversation.created', (c) => c.id === created.id);
    return created;
  });
  const direct = await step('alice creates a direct conversation with dave (offline)', log, () =>
    A.request('conversation.create', { kind: 'direct', member_ids: [id(dave)] }),
  );
  const subscribed = await step('alice and bob subscribe', log, async () => {
    const reply = await A.request('conversation.subscribe', { conversation_id: group.id });
    await B.request('conversation.subscribe', { conversation_id: group.id });
    await A.request('conversation.subscribe', { conversation_id: direct.id });
    return reply;
  });

  // ------------------------------------------------------------------ messages
  const helloSend = { conversation_id: group.id, client_msg_id: 'hello-1', text: 'hello' };
  const hello = await step('alice sends (reply accepted, bob gets message.new, alice the persisted ack)', log, async () => {
    const ack = await A.request('message.send', helloSend);
    await B.waitEvent('message.new', (m) => m.id === ack.message_id);
    await A.waitEvent('ack', (a) => a.message_id === ack.message_id && a.status === 'persisted');
    return ack;
  });
  await step('alice resends the same client_msg_id (a duplicate, persisted)', log, () => A.request('message.send', helloSend));
  const reply = await step('bob replies to it (reply_to)', log, async () => {
    const ack = await B.request('message.send', {
      conversation_id: group.id,
      client_msg_id: 'reply-1',
      text: 'hi back',
      reply_to: hello.message_id,
    });
    await A.waitEvent('message.new', (m) => m.id === ack.message_id);
    return ack;
  });
  await step('alice edits hers (bob gets message.updated)', log, async () => {
    await A.request('message.edit', { conversation_id: group.id, message_id: hello.message_id, text: 'hello, edited' });
    await B.waitEvent('message.updated', (m) => m.id === hello.message_id);
  });
  await step('bob reacts and takes it back (reaction.added / reaction.removed)', log, async () => {
    const reaction = { conversation_id: group.id, message_id: hello.message_id, emoji: '👍' };
    await B.request('reaction.add', reaction);
    await A.waitEvent('reaction.added', (r) => r.message_id === hello.message_id);
    await B.request('reaction.remove', reaction);
    await A.waitEvent('reaction.removed', (r) => r.message_id === hello.message_id);
    await B.request('reaction.add', { ...reaction, emoji: '🎉' });
  });
  await step('bob marks read (alice gets read)', log, async () => {
    await B.request('read.mark', { conversation_id: group.id, seq: reply.seq });
    await A.waitEvent('read', (r) => r.user_id === id(bob));
  });
  await step('bob types and stops (alice gets typing)', log, async () => {
    await B.request('typing.start', { conversation_id: group.id });
    await A.waitEvent('typing', (t) => t.user_id === id(bob) && t.typing === true);
    await B.request('typing.stop', { conversation_id: group.id });
    await A.waitEvent('typing', (t) => t.user_id === id(bob) && t.typing === false);
  });
  await step('alice forwards hers to the direct conversation (forwarded_from)', log, async () => {
    const ack = await A.request('message.forward', {
      conversation_id: direct.id,
      client_msg_id: 'forward-1',
      source_conversation_id: group.id,
      message_id: hello.message_id,
    });
    await A.waitEvent('message.new', (m) => m.id === ack.message_id);
  });
  await step('alice uploads a picture and sends it (attachments)', log, async () => {
    const png = tinyPng();
    const ticket = await api.call('POST /api/v1/media/uploads', 'POST', '/api/v1/media/uploads', {
      token: alice.token,
      body: { conversation_id: group.id, filename: 'dot.png', content_type: 'image/png', size: png.length },
    });
    const put = await fetch(ticket.url, { method: ticket.method, headers: ticket.headers, body: new Uint8Array(png) });
    if (!put.ok) throw new Error(`the blob store refused the PUT: ${put.status} ${await put.text()}`);
    const info = await api.call('POST /api/v1/media/uploads/{id}/complete', 'POST', `/api/v1/media/uploads/${q(ticket.upload_id)}/complete`, {
      token: alice.token,
    });
    await api.call('GET /api/v1/media/{id}', 'GET', `/api/v1/media/${q(info.id)}`, { token: alice.token });
    const ack = await A.request('message.send', {
      conversation_id: group.id,
      client_msg_id: 'picture-1',
      text: 'a picture',
      attachments: [info.id],
    });
    await B.waitEvent('message.new', (m) => m.id === ack.message_id);
  });
  await step('replies, history, list, members', log, async () => {
    await A.request('message.replies', { conversation_id: group.id, message_id: hello.message_id });
    await A.request('conversation.history', { conversation_id: group.id });
    await A.request('conversation.list', {});
    await A.request('conversation.members', { conversation_id: group.id });
  });

  // ------------------------------------------------------------------ membership
  await step('alice adds carol (carol gets conversation.joined, bob conversation.updated)', log, async () => {
    await A.request('conversation.members.add', { conversation_id: group.id, member_ids: [id(carol)] });
    await C.waitEvent('conversation.joined', (c) => c.id === group.id);
    await B.waitEvent('conversation.updated', (c) => c.id === group.id);
  });
  await step('alice renames the group', log, async () => {
    await A.request('conversation.update', { conversation_id: group.id, name: 'protocol, renamed' });
    await B.waitEvent('conversation.updated', (c) => c.id === group.id && c.name === 'protocol, renamed');
  });
  await step('carol subscribes from seq 1 (a recovered replay)', log, async () => {
    const replay = await C.request('conversation.subscribe', { conversation_id: group.id, since_seq: 1, epoch: subscribed.epoch });
    if (replay.recovered !== true) throw new Error(`expected a recovered replay: ${JSON.stringify(replay)}`);
  });
  await step('alice removes carol (carol gets conversation.removed)', log, async () => {
    await A.request('conversation.members.remove', { conversation_id: group.id, user_id: id(carol) });
    await C.waitEvent('conversation.removed', (r) => r.conversation_id === group.id);
  });
  await step('bob deletes his reply (alice gets message.deleted)', log, async () => {
    await B.request('message.delete', { conversation_id: group.id, message_id: reply.message_id });
    await A.waitEvent('message.deleted', (m) => m.id === reply.message_id);
  });

  // ------------------------------------------------------------------ presence
  await step('alice watches dave, bob and erin; dave comes online (presence)', log, async () => {
    const watched = await A.request('presence.subscribe', { user_ids: [id(dave), id(bob), id(erin)] });
    if (!watched.not_visible.includes(id(erin))) throw new Error(`erin shares no conversation with alice: ${JSON.stringify(watched)}`);
    const D = await open('dave', `?token=${q(dave.token)}`);
    await D.waitEvent('ready');
    await A.waitEvent('presence', (p) => p.user_id === id(dave) && p.online === true);
    // A group without a name (name: null), which dave then leaves.
    const second = await A.request('conversation.create', { kind: 'group', member_ids: [id(dave)] });
    await D.waitEvent('conversation.created', (c) => c.id === second.id);
    await D.request('conversation.leave', { conversation_id: second.id });
  });

  // ------------------------------------------------------------------ key directory
  await step('alice registers her device (device_list.changed) and bob claims a key (keys.low)', log, async () => {
    const device = new Device(id(alice), 'alice-phone');
    await api.call(undefined, 'PUT', '/api/v1/keys/devices/alice-phone', {
      token: alice.token,
      body: { device_keys: device.identity(), one_time_keys: device.oneTimeKeys(10) },
    });
    await B.waitEvent('device_list.changed', (d) => d.user_id === id(alice));
    await api.call(undefined, 'POST', '/api/v1/keys/claim', {
      token: bob.token,
      body: { one_time_keys: { [id(alice)]: { 'alice-phone': 'signed_curve25519' } } },
    });
    await A.waitEvent('keys.low', (k) => k.device_id === 'alice-phone');
    // A connection naming a device that has keys: ready with a non-zero count.
    const phone = await open('alice-phone', `?token=${q(alice.token)}&device_id=alice-phone`);
    await phone.waitEvent('ready');
    await phone.close();
  });

  // ------------------------------------------------------------------ the SDK's other HTTP routes
  await step('HTTP: conversation, sessions, refresh, search, ending another session', log, async () => {
    await api.call('GET /api/v1/conversations/{id}', 'GET', `/api/v1/conversations/${q(group.id)}`, { token: alice.token });
    await api.call('GET /api/v1/auth/sessions', 'GET', '/api/v1/auth/sessions', { token: alice.token });
    await api.call('POST /api/v1/auth/refresh', 'POST', '/api/v1/auth/refresh', { token: alice.token });
    // The index is written behind the store: ask until the message shows up.
    for (let attempt = 0; ; attempt += 1) {
      const found = await api.call(undefined, 'GET', '/api/v1/search/messages?q=hello', { token: alice.token });
      if (found.hits.length > 0) {
        recorder.http.add('GET /api/v1/search/messages', found);
        await api.call('GET /api/v1/search/messages', 'GET', '/api/v1/search/messages?q=hello&sort=recent&limit=1', { token: alice.token });
        break;
      }
      if (attempt > 50) throw new Error(`search never found "hello": ${JSON.stringify(found)}`);
      await sleep(200);
    }
    const second = await token('alice');
    await api.call('DELETE /api/v1/auth/sessions/{id}', 'DELETE', `/api/v1/auth/sessions/${q(second.session_id)}`, { token: alice.token });
  });

  // ------------------------------------------------------------------ errors
  await step('refusals: validation_failed, unknown_event, invalid_json, forbidden, HTTP not_found', log, async () => {
    await A.refused('message.send', { conversation_id: group.id }, 'validation_failed');
    await A.refused('no.such.event', {}, 'unknown_event');
    const notJson = await A.raw('this is not JSON');
    if (notJson.reply_to !== null || notJson.ok !== false) throw new Error(`invalid JSON should get reply_to null: ${JSON.stringify(notJson)}`);
    const E = await open('erin', `?token=${q(erin.token)}`);
    await E.waitEvent('ready');
    await E.refused('conversation.history', { conversation_id: group.id });
    await api.refused('GET', '/api/v1/conversations/no-such-conversation', { token: alice.token });
  });
  await step('rate_limited: a burst of typing.start on a connection of its own', log, async () => {
    const burst = await open('alice-burst', `?token=${q(alice.token)}`);
    await burst.waitEvent('ready');
    const replies = await Promise.all(Array.from({ length: 16 }, () => burst.frame('typing.start', { conversation_id: group.id })));
    const limited = replies.find((r) => r.ok === false && (r.error as ErrorData).code === 'rate_limited');
    if (!limited) throw new Error(`16 typing.start in a burst were never rate_limited: ${JSON.stringify(replies.map((r) => r.ok))}`);
    await burst.close();
  });
  await step('a bad token gets the error event and close 1008', log, async () => {
    const refused = await open('bad-token', '?token=not-a-token');
    await refused.waitEvent('error', (e) => e.code === 'unauthorized');
    const closed = await refused.closed;
    if (closed.code !== 1008) throw new Error(`expected close 1008, got ${JSON.stringify(closed)}`);
  });

  // ------------------------------------------------------------------ sessions ending
  await step('a token that lapses in 2 s gets session.expired', log, async () => {
    const short = withExpiry(carol.token, server.jwtSecret, Math.floor(Date.now() / 1000) + 2);
    const socket = await open('carol-short', `?token=${q(short)}`);
    await socket.waitEvent('ready');
    await socket.waitEvent('session.expired', () => true, 15_000);
  });
  await step('bob logs out (his connection gets session.revoked)', log, async () => {
    await api.call('POST /api/v1/auth/logout', 'POST', '/api/v1/auth/logout', { token: bob.token });
    await B.waitEvent('session.revoked');
  });
}
