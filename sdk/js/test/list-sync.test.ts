/**
 * A conversation the user gets while connected (`conversation.created` / `.joined`): subscribed, and its
 * list entry reloaded from `conversation.list` when messages were sent before the subscription started.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ListSync } from '../src/list-sync.js';
import type { ClientEventType, Conversation, ConversationListEntry, Message, ReplyData, RequestData } from '../src/protocol.js';
import type { Requester } from '../src/sync.js';
import { ConversationList } from '../src/unread.js';
import { CONVERSATION, OTHER, SELF, msg } from './fixtures.js';

interface Sent {
  type: string;
  data: Record<string, unknown>;
  resolve: (reply: unknown) => void;
  reject: (error: unknown) => void;
}

/** A socket whose replies the test gives. */
class Wire implements Requester {
  readonly sent: Sent[] = [];

  request<K extends ClientEventType>(type: K, data: RequestData<K>): Promise<ReplyData<K>> {
    return new Promise((resolve, reject) => {
      this.sent.push({ type, data: data as unknown as Record<string, unknown>, resolve: resolve as (reply: unknown) => void, reject });
    });
  }

  /** The one unanswered request of this type. */
  take(type: string): Sent {
    const index = this.sent.findIndex((request) => request.type === type && !answered.has(request));
    const request = this.sent[index];
    assert.ok(request, `a ${type} on the wire`);
    answered.add(request);
    return request;
  }

  pending(type: string): number {
    return this.sent.filter((request) => request.type === type && !answered.has(request)).length;
  }
}
const answered = new WeakSet<Sent>();

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function conversation(id = CONVERSATION, overrides: Partial<Conversation> = {}): Conversation {
  return {
    id,
    app_id: 'app-1',
    kind: 'group',
    name: 'team',
    created_by: OTHER,
    member_ids: [SELF, OTHER],
    epoch: 'e1',
    created_at: 1,
    correlation_id: 'corr',
    ...overrides,
  };
}

function listed(id: string, overrides: Partial<ConversationListEntry>): ConversationListEntry {
  return { ...conversation(id), last_message: null, last_seq: 0, read_seq: 0, unread_count: 0, ...overrides };
}

function subscribed(id: string, lastSeq: number): ReplyData<'conversation.subscribe'> {
  return { conversation_id: id, epoch: 'e1', last_seq: lastSeq, recovered: false, messages: [], has_more: false };
}

function setup(watch = true): { wire: Wire; lists: ListSync; emitted: number[] } {
  const wire = new Wire();
  const emitted: number[] = [];
  const lists = new ListSync({ requester: wire, emit: (list) => emitted.push(list.length), isOpen: () => false, watch });
  lists.list.setSelfUserId(SELF);
  return { wire, lists, emitted };
}

describe('a new conversation in the list', () => {
  const cases: Array<{
    name: string;
    /** The subscribe reply's `last_seq`. */
    lastSeq: number;
    /** Messages that arrive live before the subscribe reply. */
    liveBefore?: Message[];
    /** What `conversation.list` says of it, if it is asked. */
    server?: Partial<ConversationListEntry>;
    /** Messages that arrive live while `conversation.list` is read. */
    liveDuring?: Message[];
    watch?: boolean;
    requests: string[];
    expected: { unread: number; lastSeq: number; preview: string | null };
  }> = [
    {
      name: 'its first message was sent before the subscribe: the entry is reloaded',
      lastSeq: 1,
      server: { last_message: msg(1), last_seq: 1, unread_count: 1 },
      requests: ['conversation.subscribe', 'conversation.list'],
      expected: { unread: 1, lastSeq: 1, preview: 'm1' },
    },
    {
      name: 'no messages yet: nothing more is asked',
      lastSeq: 0,
      requests: ['conversation.subscribe'],
      expected: { unread: 0, lastSeq: 0, preview: null },
    },
    {
      name: 'every message up to last_seq came live: nothing more is asked',
      lastSeq: 2,
      liveBefore: [msg(1), msg(2, { sender_id: SELF }), msg(3)],
      requests: ['conversation.subscribe'],
      expected: { unread: 1, lastSeq: 3, preview: 'm3' },
    },
    {
      name: 'a later message came live but an earlier one was missed: the entry is reloaded',
      lastSeq: 2,
      liveBefore: [msg(2)],
      server: { last_message: msg(2), last_seq: 2, unread_count: 2 },
      requests: ['conversation.subscribe', 'conversation.list'],
      expected: { unread: 2, lastSeq: 2, preview: 'm2' },
    },
    {
      name: "a joined group's history is not replayed: the count is the server's",
      lastSeq: 40,
      server: { last_message: msg(40), last_seq: 40, read_seq: 38, unread_count: 2 },
      requests: ['conversation.subscribe', 'conversation.list'],
      expected: { unread: 2, lastSeq: 40, preview: 'm40' },
    },
    {
      name: 'an own message sent before the subscribe (another device): a preview, nothing unread',
      lastSeq: 1,
      server: { last_message: msg(1, { sender_id: SELF }), last_seq: 1, read_seq: 1, unread_count: 0 },
      requests: ['conversation.subscribe', 'conversation.list'],
      expected: { unread: 0, lastSeq: 1, preview: 'm1' },
    },
    {
      name: 'messages racing the reload count once, on top of it',
      lastSeq: 1,
      server: { last_message: msg(1), last_seq: 1, unread_count: 1 },
      liveDuring: [msg(1), msg(2)],
      requests: ['conversation.subscribe', 'conversation.list'],
      expected: { unread: 2, lastSeq: 2, preview: 'm2' },
    },
    {
      name: 'not in the reloaded page (limit): left as it was',
      lastSeq: 1,
      requests: ['conversation.subscribe', 'conversation.list'],
      expected: { unread: 0, lastSeq: 0, preview: null },
    },
    {
      name: 'watching turned off: nothing is subscribed',
      lastSeq: 1,
      watch: false,
      requests: [],
      expected: { unread: 0, lastSeq: 0, preview: null },
    },
  ];
  for (const { name, lastSeq, liveBefore = [], server, liveDuring = [], watch = true, requests, expected } of cases) {
    it(name, async () => {
      const { wire, lists } = setup(watch);
      lists.apply((list) => list.upsert(conversation()));
      const watching = lists.watchNew(CONVERSATION);
      await settle();
      if (watch) {
        const subscribe = wire.take('conversation.subscribe');
        assert.deepEqual(subscribe.data, { conversation_id: CONVERSATION }, 'no since_seq: the event carries no seq to resume from');
        for (const message of liveBefore) lists.apply((list) => list.applyMessage(message));
        subscribe.resolve(subscribed(CONVERSATION, lastSeq));
        await settle();
      }
      if (wire.pending('conversation.list') > 0) {
        const read = wire.take('conversation.list');
        for (const message of liveDuring) lists.apply((list) => list.applyMessage(message));
        const others = [listed('other', { last_seq: 9, unread_count: 4 })];
        read.resolve({ conversations: server ? [listed(CONVERSATION, server), ...others] : others });
      }
      await watching;
      assert.deepEqual(wire.sent.map((request) => request.type), requests);
      const summary = lists.list.get(CONVERSATION);
      assert.deepEqual(
        { unread: summary?.unread_count, lastSeq: summary?.last_seq, preview: summary?.last_message?.id ?? null },
        expected,
      );
      assert.equal(lists.list.get('other'), undefined, 'only the new conversation is reloaded');
    });
  }

  it('conversations arriving while a reload reads share the next read', async () => {
    const { wire, lists } = setup();
    const ids = ['a', 'b', 'c'];
    for (const id of ids) lists.apply((list) => list.upsert(conversation(id)));
    const watching = ids.map((id) => lists.watchNew(id));
    await settle();
    wire.take('conversation.subscribe').resolve(subscribed('a', 1));
    await settle();
    assert.equal(wire.pending('conversation.list'), 1);
    wire.take('conversation.subscribe').resolve(subscribed('b', 2));
    wire.take('conversation.subscribe').resolve(subscribed('c', 3));
    await settle();
    const page = ids.map((id, index) => listed(id, { last_message: msg(index + 1, { conversation_id: id }), last_seq: index + 1, unread_count: index + 1 }));
    wire.take('conversation.list').resolve({ conversations: page });
    await settle();
    assert.equal(wire.pending('conversation.list'), 1, 'b and c: one more read');
    wire.take('conversation.list').resolve({ conversations: page });
    await Promise.all(watching);
    assert.equal(wire.sent.filter((request) => request.type === 'conversation.list').length, 2);
    assert.deepEqual(ids.map((id) => lists.list.get(id)?.unread_count), [1, 2, 3]);
  });

  it('a full refresh racing a reload: the snapshots in the order they were read, held changes on top', async () => {
    const { wire, lists } = setup(false);
    lists.apply((list) => list.upsert(conversation()));
    const refreshing = lists.refresh();
    await settle();
    // Watching is off for the refresh's subscriptions; the reload is driven directly here.
    const reloading = (lists as unknown as { reload(id: string): Promise<void> }).reload(CONVERSATION);
    lists.apply((list) => list.applyMessage(msg(3)));
    const [full, single] = [wire.take('conversation.list'), wire.take('conversation.list')];
    full?.resolve({ conversations: [listed(CONVERSATION, { last_message: msg(1), last_seq: 1, unread_count: 1 })] });
    await settle();
    assert.equal(lists.list.get(CONVERSATION)?.unread_count, 0, 'nothing applied while a read is in flight');
    single?.resolve({ conversations: [listed(CONVERSATION, { last_message: msg(2), last_seq: 2, unread_count: 2 })] });
    await Promise.all([refreshing, reloading]);
    const summary = lists.list.get(CONVERSATION);
    assert.equal(summary?.last_seq, 3);
    assert.equal(summary?.unread_count, 3);
  });
});

describe('what the list has accounted for', () => {
  const cases: Array<{ name: string; loaded?: Partial<ConversationListEntry>; seen: number[]; through: number; expected: boolean }> = [
    { name: 'not listed', seen: [], through: 1, expected: false },
    { name: 'a snapshot counted up to its last_seq', loaded: { last_seq: 10 }, seen: [], through: 10, expected: true },
    { name: 'above the snapshot, every seq seen', loaded: { last_seq: 10 }, seen: [12, 11], through: 12, expected: true },
    { name: 'above the snapshot, a seq missing', loaded: { last_seq: 10 }, seen: [12], through: 12, expected: false },
    { name: 'upserted from an event: seen one by one from 1', loaded: { last_seq: 0 }, seen: [1, 2, 3], through: 3, expected: true },
    { name: 'upserted from an event: the first missing', loaded: { last_seq: 0 }, seen: [2, 3], through: 3, expected: false },
  ];
  for (const { name, loaded, seen, through, expected } of cases) {
    it(name, () => {
      const list = new ConversationList(SELF);
      if (loaded) list.load([listed(CONVERSATION, loaded)]);
      for (const seq of seen) list.applyMessage(msg(seq, { sender_id: seq % 2 === 0 ? SELF : OTHER }));
      assert.equal(list.covers(CONVERSATION, through), expected);
    });
  }

  it('reload replaces one entry with the server snapshot and keeps the others and member horizons', () => {
    const list = new ConversationList(SELF);
    list.load([listed(CONVERSATION, { last_seq: 5, unread_count: 1 }), listed('other', { last_seq: 9, unread_count: 4 })]);
    list.applyRead({ conversation_id: CONVERSATION, user_id: OTHER, seq: 4 });
    list.applyMessage(msg(6));
    list.reload(listed(CONVERSATION, { last_message: msg(8), last_seq: 8, read_seq: 6, unread_count: 2 }));
    assert.equal(list.get(CONVERSATION)?.unread_count, 2);
    assert.deepEqual(list.get(CONVERSATION)?.member_reads, { [OTHER]: 4 });
    assert.equal(list.get('other')?.unread_count, 4);
    list.applyMessage(msg(9));
    assert.equal(list.get(CONVERSATION)?.unread_count, 3);
  });
});
