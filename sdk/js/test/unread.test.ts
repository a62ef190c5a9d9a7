import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConversationList } from '../src/unread.js';
import { TypingTracker } from '../src/typing.js';
import { retryAfterMs, parseServerFrame, type ConversationListEntry } from '../src/protocol.js';
import { CONVERSATION, OTHER, SELF, msg } from './fixtures.js';

function entry(overrides: Partial<ConversationListEntry> = {}): ConversationListEntry {
  return {
    id: CONVERSATION,
    app_id: 'app-1',
    kind: 'group',
    name: 'team',
    created_by: SELF,
    member_ids: [SELF, OTHER],
    epoch: 'e1',
    created_at: 1,
    correlation_id: 'corr',
    last_message: null,
    last_seq: 10,
    read_seq: 7,
    unread_count: 3,
    ...overrides,
  };
}

function listWith(overrides: Partial<ConversationListEntry> = {}): ConversationList {
  const list = new ConversationList(SELF);
  list.load([entry(overrides)]);
  return list;
}

const unread = (list: ConversationList): number | undefined => list.get(CONVERSATION)?.unread_count;

describe('unread counts', () => {
  type Step =
    | { message: number; from: 'self' | 'other'; deleted?: boolean }
    | { deletedEvent: number; from: 'self' | 'other' }
    | { read: number; by: 'self' | 'other' };
  const cases: Array<{ name: string; steps: Step[]; expected: number }> = [
    { name: 'the snapshot as loaded', steps: [], expected: 3 },
    { name: "others' messages count", steps: [{ message: 11, from: 'other' }, { message: 12, from: 'other' }], expected: 5 },
    { name: 'a message seen twice counts once', steps: [{ message: 11, from: 'other' }, { message: 11, from: 'other' }], expected: 4 },
    { name: 'own messages do not count and mark what came before as read', steps: [{ message: 11, from: 'other' }, { message: 12, from: 'self' }], expected: 0 },
    { name: 'others after an own message count again', steps: [{ message: 11, from: 'self' }, { message: 12, from: 'other' }], expected: 1 },
    { name: 'a read from another device moves the horizon', steps: [{ message: 11, from: 'other' }, { message: 12, from: 'other' }, { read: 11, by: 'self' }], expected: 1 },
    { name: 'a read into the snapshot range estimates what is left', steps: [{ read: 9, by: 'self' }], expected: 1 },
    { name: 'a read never moves back', steps: [{ read: 12, by: 'self' }, { read: 8, by: 'self' }, { message: 13, from: 'other' }], expected: 1 },
    { name: "another member's read changes nothing", steps: [{ read: 10, by: 'other' }], expected: 3 },
    { name: 'a deletion of an unread message uncounts it', steps: [{ message: 11, from: 'other' }, { message: 11, from: 'other', deleted: true }], expected: 3 },
    { name: 'a deletion event inside the snapshot uncounts once', steps: [{ deletedEvent: 9, from: 'other' }, { deletedEvent: 9, from: 'other' }], expected: 2 },
    { name: 'a tombstone in a replay is not news', steps: [{ message: 9, from: 'other', deleted: true }], expected: 3 },
  ];
  for (const { name, steps, expected } of cases) {
    it(name, () => {
      const list = listWith();
      for (const step of steps) {
        if ('read' in step) {
          list.applyRead({ conversation_id: CONVERSATION, user_id: step.by === 'self' ? SELF : OTHER, seq: step.read });
        } else if ('deletedEvent' in step) {
          list.applyDeleted(msg(step.deletedEvent, { sender_id: step.from === 'self' ? SELF : OTHER, text: '', deleted_at: 5, version: 2 }));
        } else {
          const deleted = step.deleted ? { text: '', deleted_at: 5, version: 2 } : {};
          list.applyMessage(msg(step.message, { sender_id: step.from === 'self' ? SELF : OTHER, ...deleted }));
        }
      }
      assert.equal(unread(list), expected);
    });
  }

  it('keeps the last message and sorts by activity', () => {
    const list = new ConversationList(SELF);
    list.load([entry({ id: 'old', created_at: 1 }), entry({ id: 'new', created_at: 2 })]);
    assert.deepEqual(list.list().map((c) => c.id), ['new', 'old']);
    list.applyMessage(msg(11, { conversation_id: 'old', created_at: 50 }));
    assert.deepEqual(list.list().map((c) => c.id), ['old', 'new']);
    assert.equal(list.get('old')?.last_message?.seq, 11);
    list.applyMessage(msg(11, { conversation_id: 'old', version: 3, text: 'edited' }));
    assert.equal(list.get('old')?.last_message?.text, 'edited');
    list.applyMessage(msg(11, { conversation_id: 'old', version: 1, text: 'stale' }));
    assert.equal(list.get('old')?.last_message?.text, 'edited');
    assert.equal(list.totalUnread(), 7);
  });

  it('records other members read horizons and keeps counts across a rename', () => {
    const list = listWith();
    list.applyRead({ conversation_id: CONVERSATION, user_id: OTHER, seq: 9 });
    list.upsert({ ...entry(), name: 'renamed' });
    const summary = list.get(CONVERSATION);
    assert.equal(summary?.name, 'renamed');
    assert.equal(summary?.unread_count, 3);
    assert.deepEqual(summary?.member_reads, { [OTHER]: 9 });
    list.remove(CONVERSATION);
    assert.equal(list.get(CONVERSATION), undefined);
    assert.equal(list.applyMessage(msg(20)), false);
  });
});

describe('typing', () => {
  const notice = (user: string, typing: boolean, expires = 5000) => ({ conversation_id: CONVERSATION, user_id: user, typing, expires_in_ms: expires });

  it('shows others until the indicator lapses, unless renewed', () => {
    const tracker = new TypingTracker(SELF);
    assert.equal(tracker.apply(notice(OTHER, true), 0), true);
    assert.equal(tracker.apply(notice(SELF, true), 0), false);
    assert.deepEqual(tracker.users(CONVERSATION, 1000), [OTHER]);
    assert.equal(tracker.apply(notice(OTHER, true), 4000), false, 'a renewal is no visible change');
    assert.deepEqual(tracker.expire(8999), []);
    assert.equal(tracker.nextExpiry(), 9000);
    assert.deepEqual(tracker.expire(9000), [CONVERSATION]);
    assert.deepEqual(tracker.users(CONVERSATION, 9000), []);
  });

  it('hides on typing.stop and when the user sends', () => {
    const tracker = new TypingTracker(SELF);
    tracker.apply(notice(OTHER, true), 0);
    assert.equal(tracker.apply(notice(OTHER, false, 0), 1), true);
    tracker.apply(notice(OTHER, true), 2);
    assert.equal(tracker.stopped(CONVERSATION, OTHER), true);
    assert.equal(tracker.nextExpiry(), undefined);
  });
});

describe('protocol helpers', () => {
  it('parses replies and events and rejects other frames', () => {
    assert.deepEqual(parseServerFrame('{"reply_to":"1","ok":true,"data":{"pong":5}}'), { kind: 'reply', frame: { reply_to: '1', ok: true, data: { pong: 5 } } });
    assert.deepEqual(parseServerFrame('{"reply_to":null,"ok":false,"error":{"code":"invalid_json","message":"bad"}}'), {
      kind: 'reply',
      frame: { reply_to: null, ok: false, error: { code: 'invalid_json', message: 'bad' } },
    });
    assert.deepEqual(parseServerFrame('{"type":"ready","data":{"user_id":"u"}}'), { kind: 'event', frame: { type: 'ready', data: { user_id: 'u' } } });
    for (const junk of ['nope', '[1]', '{"x":1}', 'null']) assert.equal(parseServerFrame(junk), undefined);
  });

  it('reads the wait of a rate_limited error', () => {
    assert.equal(retryAfterMs({ message: 'retry in 120 ms' }), 120);
    assert.equal(retryAfterMs({ message: 'whatever', retry_after_ms: 9 }), 9);
    assert.equal(retryAfterMs({ message: 'at most 5 a second' }), 200);
    assert.equal(retryAfterMs({ message: '' }, 333), 333);
  });
});
