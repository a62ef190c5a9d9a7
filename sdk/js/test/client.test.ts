/**
 * The client against a real WebSocket server in this process (test/fake-server.ts): sockets killed
 * mid-stream, replays in pages, racing live deliveries, epoch changes, in-band token renewal, unread
 * counts, refusals and revocation.
 */
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { connect, whenOnline, type CaasClient, type ClientOptions } from '../src/client.js';
import type { OutboxEntry } from '../src/outbox.js';
import { MemoryOutboxStorage } from '../src/storage.js';
import { FakeServer } from './fake-server.js';

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, label: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${label}`);
    await delay(5);
  }
}

let cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups = [];
});

async function setUp(options: Partial<ClientOptions> = {}, tokenLifetimeSecs = 3600): Promise<{ server: FakeServer; client: CaasClient }> {
  const server = await FakeServer.start();
  const client = connect({
    tokenProvider: async () => server.issueToken('alice', tokenLifetimeSecs),
    WebSocket,
    storage: false,
    backoff: { minMs: 5, maxMs: 30 },
    pingIntervalMs: 0,
    ...options,
  });
  cleanups.push(() => server.close(), () => client.close());
  return { server, client };
}

describe('client against a WebSocket server', () => {
  it('resumes after the socket is killed mid-stream and ends with every message exactly once', async () => {
    const { server, client } = await setUp({}, 3600);
    server.createRoom('room', ['alice', 'bob']);
    server.replayPage = 3; // replays come in several pages (has_more)
    for (let i = 1; i <= 20; i += 1) server.post('room', 'bob', `old ${i}`);
    // Race every replay with live copies of what it replays, newest first: the client must place
    // out-of-order arrivals and drop what it already holds.
    server.afterSubscribe = (peer, conversationId, since) => {
      if (since === undefined) return;
      const replayed = server.messages(conversationId).filter((m) => m.seq > since).slice(0, server.replayPage);
      for (const message of [...replayed].reverse()) server.send(peer, 'message.new', message);
    };
    await whenOnline(client);
    const room = client.open('room');
    await room.synced();
    assert.equal(room.messages().length, 20);

    const sent: OutboxEntry[] = [];
    for (let i = 1; i <= 60; i += 1) {
      server.post('room', 'bob', `live ${i}`);
      if (i % 10 === 0) sent.push(client.send('room', `from alice ${i}`));
      if (i === 25 || i === 45) {
        server.kill('alice');
        // Missed while the client is away: only the replay can bring these.
        for (let j = 1; j <= 10; j += 1) server.post('room', 'bob', `while away ${i}.${j}`);
      }
      await delay(2);
    }
    const expected = (): number => server.messages('room').length;
    await waitFor(
      () => room.messages().length === expected() && room.items().every((item) => item.kind === 'message'),
      'the timeline to hold every message and no pending send',
    );

    const seqs = room.messages().map((m) => m.seq);
    assert.deepEqual(seqs, Array.from({ length: expected() }, (_, i) => i + 1), 'ascending, gap-free, no duplicates');
    assert.equal(new Set(room.messages().map((m) => m.id)).size, expected());
    for (const entry of sent) {
      const copies = server.messages('room').filter((m) => m.client_msg_id === entry.client_msg_id);
      assert.equal(copies.length, 1, `${entry.client_msg_id} sequenced once`);
    }
    const resumes = server.requests.filter((r) => r.type === 'conversation.subscribe' && r.data.conversation_id === 'room' && typeof r.data.since_seq === 'number');
    assert.ok(resumes.length >= 2 + 2 * 3, 'resubscribed after each kill, paging on while has_more');
    for (const resume of resumes) {
      assert.equal(resume.data.epoch, 'e1');
      assert.ok((resume.data.since_seq as number) >= 20, 'resumes from the highest contiguous seq held');
    }
    const summary = client.conversations().find((c) => c.id === 'room');
    assert.equal(summary?.last_seq, expected());
    const lastOwn = Math.max(...server.messages('room').filter((m) => m.sender_id === 'alice').map((m) => m.seq));
    assert.equal(summary?.unread_count, expected() - lastOwn);
  });

  it('reloads after an epoch change instead of resuming', async () => {
    const { server, client } = await setUp();
    server.createRoom('room', ['alice', 'bob']);
    for (let i = 1; i <= 10; i += 1) server.post('room', 'bob', `m ${i}`);
    await whenOnline(client);
    const room = client.open('room');
    await room.synced();
    server.kill('alice');
    server.bumpEpoch('room', 'e2');
    for (let i = 11; i <= 13; i += 1) server.post('room', 'bob', `m ${i}`);
    await waitFor(() => room.messages().length === 13, 'the reloaded timeline');
    const resumes = server.requests.map((r, index) => ({ r, index })).filter(({ r }) => r.type === 'conversation.subscribe' && r.data.since_seq === 10);
    const resumeAt = resumes.at(-1)?.index ?? -1;
    assert.equal(server.requests[resumeAt]?.data.epoch, 'e1', 'resumed with the epoch it held');
    const reload = server.requests.slice(resumeAt + 1).find((r) => r.type === 'conversation.history');
    assert.deepEqual(reload?.data, { conversation_id: 'room', limit: 50 }, 'the epoch changed: the newest page is reloaded');
    assert.deepEqual(room.messages().map((m) => m.seq), Array.from({ length: 13 }, (_, i) => i + 1));
  });

  it('renews its token in band before it expires, without reconnecting', async () => {
    const { server, client } = await setUp({}, 2);
    await whenOnline(client);
    await waitFor(() => server.requests.some((r) => r.type === 'auth' && r.userId === 'alice'), 'an in-band auth frame', 4000);
    const inBand = server.requests.find((r) => r.type === 'auth' && r.userId === 'alice');
    assert.match(inBand?.token ?? '', /^tok-alice-/);
    assert.equal(server.connectedCount('alice'), 1);
    assert.equal(server.requests.filter((r) => r.type === 'auth' && r.userId === undefined).length, 1, 'one handshake only');
  });

  it('keeps unread counts of watched conversations right, across own messages and reads from other devices', async () => {
    const { server, client } = await setUp();
    server.createRoom('b', ['alice', 'bob']);
    for (let i = 1; i <= 3; i += 1) server.post('b', 'bob', `m ${i}`);
    await whenOnline(client);
    const unread = (): number | undefined => client.conversations().find((c) => c.id === 'b')?.unread_count;
    assert.equal(unread(), 3);
    server.post('b', 'bob', 'four');
    await waitFor(() => unread() === 4, 'a message from bob counted');
    server.post('b', 'alice', 'from my phone');
    await waitFor(() => unread() === 0, 'own message marks everything before it read');
    server.post('b', 'bob', 'six');
    await waitFor(() => unread() === 1, 'counted again');
    server.tell('alice', 'read', { conversation_id: 'b', user_id: 'alice', seq: 6 });
    await waitFor(() => unread() === 0, 'a read from another device');
    await client.markRead('b');
    assert.equal(client.totalUnread(), 0);
  });

  it('fails refused sends with the code and keeps them in place', async () => {
    const { server, client } = await setUp();
    server.createRoom('room', ['alice', 'bob']);
    await whenOnline(client);
    const room = client.open('room');
    await room.synced();
    const refused = client.send('room', 'BLOCKED words');
    const fine = client.send('room', 'fine words');
    await assert.rejects(client.whenSent(refused.client_msg_id), (error: unknown) => error instanceof Error && 'code' in error && error.code === 'content_blocked');
    assert.equal((await client.whenSent(fine.client_msg_id)).seq, 1);
    await waitFor(() => client.pendingSends().every((e) => e.client_msg_id !== fine.client_msg_id) && room.messages().length === 1, 'the second send through');
    const failed = client.pendingSends().find((e) => e.client_msg_id === refused.client_msg_id);
    assert.equal(failed?.state, 'failed');
    assert.equal(failed?.error?.code, 'content_blocked');
    assert.deepEqual(
      room.items().map((item) => (item.kind === 'message' ? item.message.text : `pending:${item.send.state}`)),
      ['fine words', 'pending:failed'],
    );
  });

  it('stops reconnecting when the session is revoked', async () => {
    const { server, client } = await setUp();
    await whenOnline(client);
    const ended = new Promise<{ code: string; reason: string }>((resolve) => client.on('session_ended', resolve));
    server.tell('alice', 'session.revoked', { reason: 'logged out' });
    server.closeUser('alice', 1008, 'session revoked');
    assert.deepEqual(await ended, { code: 'session_revoked', reason: 'logged out' });
    await delay(100);
    assert.equal(server.connectedCount('alice'), 0);
    assert.equal(client.state, 'offline');
  });

  it('gets a new token from the provider after session.expired and reconnects', async () => {
    let issued = 0;
    const { server, client } = await setUp({
      tokenProvider: async () => {
        issued += 1;
        return server.issueToken('alice');
      },
    });
    await whenOnline(client);
    server.tell('alice', 'session.expired', { reason: 'token expired' });
    server.closeUser('alice', 1008, 'token expired');
    await waitFor(() => issued === 2 && client.state === 'online', 'a reconnect with a new token');
  });

  /** The `message.send` requests the server got for one client_msg_id. */
  const sendsOf = (server: FakeServer, clientMsgId: string): number => server.requests.filter((r) => r.type === 'message.send' && r.data.client_msg_id === clientMsgId).length;

  describe('confirms accepted sends whose persisted ack was lost', () => {
    const table: Array<{ name: string; persistence: 'silent' | 'held'; settle: (server: FakeServer) => void }> = [
      // The store has the message but the ack never reached the client: the confirmation is answered persisted.
      { name: 'the store has it: the resend after the reconnect is answered persisted', persistence: 'silent', settle: () => {} },
      // Not stored yet when the confirmation asks: answered accepted, the send stays accepted; the ack event settles it.
      { name: 'not stored yet: answered accepted, then settled by the ack event on the new connection', persistence: 'held', settle: (server) => server.persistHeld() },
    ];
    for (const { name, persistence, settle } of table) {
      it(name, { timeout: 10_000 }, async () => {
        const { server, client } = await setUp();
        server.createRoom('room', ['alice', 'bob']);
        server.persistence = persistence;
        await whenOnline(client);
        const room = client.open('room');
        await room.synced();
        const changes: OutboxEntry[] = [];
        client.on('send', (entry) => changes.push(entry));
        const sent = client.send('room', 'hello');
        const persisted = client.whenSent(sent.client_msg_id, 'persisted');
        assert.equal((await client.whenSent(sent.client_msg_id, 'accepted')).seq, 1);
        await delay(50);
        assert.equal(client.pendingSends()[0]?.state, 'accepted', 'no ack came');
        assert.equal(sendsOf(server, sent.client_msg_id), 1, 'no confirmation before a reconnect (or confirmAfterMs)');

        server.kill('alice');
        await waitFor(() => sendsOf(server, sent.client_msg_id) === 2, 'the confirmation after the reconnect');
        const [first, confirmation] = server.requests.filter((r) => r.type === 'message.send');
        assert.deepEqual(confirmation?.data, first?.data, 'the same request, same client_msg_id');
        if (persistence === 'held') {
          await delay(50);
          assert.equal(client.pendingSends()[0]?.state, 'accepted', 'answered accepted: still accepted');
          settle(server);
        }
        const settled = await persisted;
        assert.equal(settled.state, 'persisted');
        assert.equal(settled.seq, 1);
        assert.equal(client.pendingSends().length, 0);
        await delay(100);
        assert.equal(sendsOf(server, sent.client_msg_id), 2, 'confirmed once, no more');
        assert.equal(server.messages('room').length, 1, 'stored once');
        assert.deepEqual([...new Set(changes.map((entry) => entry.attempts))], [0, 1], 'queued, sent once: the confirmation is no new attempt');
        assert.equal(changes.at(-1)?.state, 'persisted');
        assert.ok(changes.every((entry) => entry.state !== 'failed'));
        await waitFor(() => room.items().length === 1, 'the message alone in the timeline');
        assert.equal(room.items()[0]?.kind, 'message');
      });
    }

    it('confirms a send whose ack is overdue without a reconnect (confirmAfterMs)', { timeout: 10_000 }, async () => {
      const { server, client } = await setUp({ confirmAfterMs: 150 });
      server.createRoom('room', ['alice', 'bob']);
      server.persistence = 'silent';
      await whenOnline(client);
      const sent = client.send('room', 'hello');
      await client.whenSent(sent.client_msg_id, 'accepted');
      const settled = await client.whenSent(sent.client_msg_id, 'persisted');
      assert.equal(settled.seq, 1);
      assert.equal(sendsOf(server, sent.client_msg_id), 2);
      assert.equal(server.connectedCount('alice'), 1);
      assert.equal(server.requests.filter((r) => r.type === 'auth').length, 1, 'on the same connection');
    });

    it('does not hold up new sends of the conversation while confirming', { timeout: 10_000 }, async () => {
      const { server, client } = await setUp();
      server.createRoom('room', ['alice', 'bob']);
      server.persistence = 'held';
      await whenOnline(client);
      const early = [client.send('room', 'one'), client.send('room', 'two')];
      for (const entry of early) await client.whenSent(entry.client_msg_id, 'accepted');
      server.kill('alice');
      const later = client.send('room', 'three'); // queued while offline
      assert.equal((await client.whenSent(later.client_msg_id, 'accepted')).seq, 3);
      await waitFor(() => early.every((entry) => sendsOf(server, entry.client_msg_id) === 2), 'both confirmations');
      assert.deepEqual(client.pendingSends().map((entry) => entry.state), ['accepted', 'accepted', 'accepted']);
      server.persistHeld();
      await waitFor(() => client.pendingSends().length === 0, 'every send persisted');
      assert.deepEqual(server.messages('room').map((m) => m.text), ['one', 'two', 'three']);
    });
  });

  describe('a persisted ack handled before its send\'s reply does not stall the conversation', () => {
    for (const persistence of ['ack-before-reply', 'reply-then-ack'] as const) {
      it(`${persistence}, in one socket read`, { timeout: 10_000 }, async () => {
        const { server, client } = await setUp();
        server.createRoom('room', ['alice', 'bob']);
        server.persistence = persistence;
        await whenOnline(client);
        const sent = ['one', 'two', 'three'].map((text) => client.send('room', text));
        const settled = await Promise.all(sent.map((entry) => client.whenSent(entry.client_msg_id, 'persisted')));
        assert.deepEqual(settled.map((entry) => entry.seq), [1, 2, 3]);
        assert.deepEqual(server.messages('room').map((m) => m.text), ['one', 'two', 'three']);
        assert.equal(client.pendingSends().length, 0);
        for (const entry of sent) assert.equal(sendsOf(server, entry.client_msg_id), 1, 'sent once each');
      });
    }
  });

  it('sends what a previous run left in its outbox, once, after a restart', async () => {
    const server = await FakeServer.start();
    cleanups.push(() => server.close());
    server.createRoom('room', ['alice', 'bob']);
    const storage = new MemoryOutboxStorage();
    // The first run never reaches a node (its only URL refuses connections) and is closed with a send queued.
    const unreachable = { ...server.issueToken('alice'), socket_urls: ['ws://127.0.0.1:9/ws'] };
    const first = connect({ tokenProvider: async () => unreachable, WebSocket, storage, storageKey: 'outbox:alice', backoff: { minMs: 5, maxMs: 10 }, pingIntervalMs: 0 });
    const queued = first.send('room', 'written offline');
    await waitFor(() => first.state === 'offline', 'the first run to fail its connect');
    await delay(20);
    first.close();
    assert.equal((await storage.load('outbox:alice')).length, 1);

    const second = connect({ tokenProvider: async () => server.issueToken('alice'), WebSocket, storage, storageKey: 'outbox:alice', backoff: { minMs: 5, maxMs: 10 }, pingIntervalMs: 0 });
    cleanups.push(() => second.close());
    await waitFor(() => server.messages('room').some((m) => m.client_msg_id === queued.client_msg_id), 'the stored send to arrive');
    await waitFor(() => second.pendingSends().length === 0, 'the outbox to empty once persisted');
    assert.equal(server.messages('room').filter((m) => m.client_msg_id === queued.client_msg_id).length, 1);
    assert.deepEqual(await storage.load('outbox:alice'), []);
  });

  it('rotates to the next socket URL when one refuses connections', async () => {
    const server = await FakeServer.start();
    cleanups.push(() => server.close());
    const client = connect({
      tokenProvider: async () => ({ ...server.issueToken('alice'), socket_urls: ['ws://127.0.0.1:9/ws', server.url] }),
      WebSocket,
      storage: false,
      backoff: { minMs: 5, maxMs: 10 },
      pingIntervalMs: 0,
    });
    cleanups.push(() => client.close());
    const states: string[] = [];
    client.on('state', (state) => states.push(state));
    await whenOnline(client);
    assert.deepEqual(states.slice(0, 3), ['connecting', 'offline', 'connecting']);
    assert.equal(states.at(-1), 'online');
  });
});
