import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Timeline, type TimelineItem } from '../src/timeline.js';
import type { OutboxEntry } from '../src/outbox.js';
import { CONVERSATION, OTHER, SELF, msg, page, range, replay } from './fixtures.js';

/** A timeline that subscribed (epoch e1) and loaded the newest page holding `seqs` (the whole history). */
function loaded(seqs: number[], hasMore = false): Timeline {
  const timeline = new Timeline(CONVERSATION, { selfUserId: SELF });
  assert.deepEqual(timeline.applySubscribeReply(replay([], { recovered: false }), undefined), { status: 'needs_latest' });
  timeline.applyHistoryPage({}, page(seqs, hasMore));
  return timeline;
}

const seqsOf = (timeline: Timeline): number[] => timeline.messages().map((message) => message.seq);

function describeItems(items: TimelineItem[]): string[] {
  return items.map((item) =>
    item.kind === 'message' ? `m${item.message.seq}` : `p:${item.send.client_msg_id}:${item.send.state}`,
  );
}

function pendingEntry(id: string, overrides: Partial<OutboxEntry> = {}): OutboxEntry {
  return {
    kind: 'send',
    client_msg_id: id,
    conversation_id: CONVERSATION,
    text: `pending ${id}`,
    state: 'pending',
    in_flight: false,
    attempts: 0,
    transient_failures: 0,
    not_before: 0,
    created_at: 0,
    ...overrides,
  } as OutboxEntry;
}

describe('timeline ordering and exactly-once', () => {
  const cases: Array<{ name: string; arrivals: number[]; expected: number[] }> = [
    { name: 'in order', arrivals: [4, 5, 6], expected: range(1, 6) },
    { name: 'out of order', arrivals: [6, 4, 5], expected: range(1, 6) },
    { name: 'duplicates', arrivals: [4, 4, 5, 4, 5, 5], expected: range(1, 5) },
    { name: 'already held from the page', arrivals: [2, 3, 1], expected: range(1, 3) },
    { name: 'reverse burst', arrivals: [9, 8, 7, 6, 5, 4], expected: range(1, 9) },
  ];
  for (const { name, arrivals, expected } of cases) {
    it(name, () => {
      const timeline = loaded([1, 2, 3]);
      for (const seq of arrivals) timeline.applyMessage(msg(seq));
      assert.deepEqual(seqsOf(timeline), expected);
      assert.equal(timeline.firstGap(), undefined);
      assert.equal(timeline.resumePoint()?.since_seq, expected.at(-1));
    });
  }
});

describe('timeline replays', () => {
  it('merges a replay that overlaps live deliveries, each message once', () => {
    const timeline = loaded([1, 2, 3]);
    timeline.applyMessage(msg(5));
    timeline.applyMessage(msg(6));
    const outcome = timeline.applySubscribeReply(replay([4, 5, 6]), 3);
    assert.deepEqual(outcome, { status: 'resumed', has_more: false, since_seq: 6 });
    timeline.applyMessage(msg(6));
    timeline.applyMessage(msg(7));
    assert.deepEqual(seqsOf(timeline), range(1, 7));
  });

  it('says to page on while has_more, from the contiguous end', () => {
    const timeline = loaded([1, 2]);
    const outcome = timeline.applySubscribeReply(replay([3, 4], { has_more: true, last_seq: 10 }), 2);
    assert.deepEqual(outcome, { status: 'resumed', has_more: true, since_seq: 4 });
    assert.deepEqual(timeline.applySubscribeReply(replay(range(5, 10)), 4), { status: 'resumed', has_more: false, since_seq: 10 });
    assert.deepEqual(seqsOf(timeline), range(1, 10));
  });

  it('treats seqs a replay skipped as not existing (the server vouches for its range)', () => {
    const timeline = loaded([1, 2]);
    timeline.applySubscribeReply(replay([3, 5, 6]), 2);
    assert.equal(timeline.firstGap(), undefined);
    assert.equal(timeline.resumePoint()?.since_seq, 6);
  });

  it('resets on an epoch change and keeps pending sends', () => {
    const timeline = loaded([1, 2, 3]);
    timeline.setPending([pendingEntry('local-1')]);
    const outcome = timeline.applySubscribeReply(replay([], { epoch: 'e2', recovered: false }), 3);
    assert.deepEqual(outcome, { status: 'reset' });
    assert.equal(timeline.epoch, 'e2');
    assert.equal(timeline.loaded, false);
    assert.equal(timeline.resumePoint(), undefined);
    assert.deepEqual(describeItems(timeline.items()), ['p:local-1:pending']);
    timeline.applyHistoryPage({}, page([1]));
    assert.deepEqual(seqsOf(timeline), [1]);
  });

  it('reports an unrecovered replay so the client pages history forward', () => {
    const timeline = loaded([1, 2, 3]);
    const outcome = timeline.applySubscribeReply(replay([], { recovered: false, last_seq: 9 }), 3);
    assert.deepEqual(outcome, { status: 'not_recovered', after_seq: 3, last_seq: 9 });
    timeline.applyHistoryPage({ after_seq: 3 }, page(range(4, 9)));
    assert.deepEqual(seqsOf(timeline), range(1, 9));
    assert.equal(timeline.resumePoint()?.since_seq, 9);
  });

  it('buffers nothing before the first page: live messages wait and land once it arrives', () => {
    const timeline = new Timeline(CONVERSATION, { selfUserId: SELF });
    timeline.applySubscribeReply(replay([], { recovered: false, last_seq: 5 }), undefined);
    timeline.applyMessage(msg(6));
    timeline.applyMessage(msg(5));
    assert.deepEqual(seqsOf(timeline), []);
    timeline.applyHistoryPage({}, page(range(3, 5), true));
    assert.deepEqual(seqsOf(timeline), range(3, 6));
    assert.equal(timeline.hasOlder, true);
    assert.equal(timeline.oldestSeq, 3);
  });
});

describe('timeline gaps', () => {
  it('reports the missing range and closes it when a page brings it', () => {
    const timeline = loaded([1, 2, 3]);
    timeline.applyMessage(msg(7));
    assert.deepEqual(timeline.firstGap(), { from: 4, through: 6 });
    assert.equal(timeline.resumePoint()?.since_seq, 3, 'resume from below the hole');
    timeline.applyHistoryPage({ after_seq: 3 }, page([4, 5]));
    assert.deepEqual(timeline.firstGap(), { from: 6, through: 6 });
    timeline.applyMessage(msg(6));
    assert.equal(timeline.firstGap(), undefined);
    assert.equal(timeline.resumePoint()?.since_seq, 7);
  });

  it('a forward page vouches for the seqs it skipped', () => {
    const timeline = loaded([1]);
    timeline.applyMessage(msg(5));
    timeline.applyHistoryPage({ after_seq: 1 }, page([2, 5]));
    assert.equal(timeline.firstGap(), undefined);
    assert.deepEqual(seqsOf(timeline), [1, 2, 5]);
  });

  it('lets the client skip a hole the server cannot fill', () => {
    const timeline = loaded([1]);
    timeline.applyMessage(msg(4));
    timeline.skipGap({ from: 2, through: 3 });
    assert.equal(timeline.firstGap(), undefined);
    assert.equal(timeline.resumePoint()?.since_seq, 4);
  });

  it('pages back in history without disturbing the resume point', () => {
    const timeline = loaded(range(51, 100), true);
    assert.equal(timeline.oldestSeq, 51);
    timeline.applyHistoryPage({ before_seq: 51 }, page(range(1, 50), false));
    assert.equal(timeline.hasOlder, false);
    assert.deepEqual(seqsOf(timeline), range(1, 100));
    assert.equal(timeline.resumePoint()?.since_seq, 100);
  });
});

describe('timeline edits, deletions and reactions', () => {
  it('applies an edit that arrives before its message', () => {
    const timeline = loaded([1, 2, 3]);
    timeline.applyMessage(msg(4, { text: 'edited', version: 10, edited_at: 5 }));
    timeline.applyMessage(msg(4, { text: 'original', version: 0 }));
    assert.equal(timeline.message('m4')?.text, 'edited');
    assert.deepEqual(seqsOf(timeline), range(1, 4));
  });

  it('keeps an edit to a message that is not loaded yet until its page comes', () => {
    const timeline = new Timeline(CONVERSATION, { selfUserId: SELF });
    timeline.applySubscribeReply(replay([], { recovered: false }), undefined);
    timeline.applyMessage(msg(2, { text: 'edited', version: 3 }));
    timeline.applyHistoryPage({}, page([1, 2, 3]));
    assert.equal(timeline.message('m2')?.text, 'edited');
  });

  const versionCases: Array<{ name: string; versions: Array<[number, string]>; text: string }> = [
    { name: 'higher after lower', versions: [[1, 'a'], [2, 'b']], text: 'b' },
    { name: 'lower after higher', versions: [[2, 'b'], [1, 'a']], text: 'b' },
    { name: 'equal versions keep the first', versions: [[2, 'b'], [2, 'x']], text: 'b' },
    { name: 'many shuffled', versions: [[3, 'c'], [1, 'a'], [5, 'e'], [4, 'd']], text: 'e' },
  ];
  for (const { name, versions, text } of versionCases) {
    it(`version ordering: ${name}`, () => {
      const timeline = loaded([1]);
      for (const [version, body] of versions) timeline.applyMessage(msg(1, { version, text: body }));
      assert.equal(timeline.message('m1')?.text, text);
    });
  }

  it('a tombstone wins over older edits whatever the order', () => {
    const timeline = loaded([1]);
    timeline.applyMessage(msg(1, { version: 9, text: '', deleted_at: 123 }));
    timeline.applyMessage(msg(1, { version: 5, text: 'late edit' }));
    const message = timeline.message('m1');
    assert.equal(message?.text, '');
    assert.equal(message?.deleted_at, 123);
  });

  it('counts reactions once per user and applies ones that came before the message', () => {
    const timeline = loaded([1]);
    const react = (user: string, active: boolean, id = 'm1') =>
      timeline.applyReaction({ conversation_id: CONVERSATION, message_id: id, emoji: '👍', user_id: user }, active);
    react(OTHER, true);
    react(OTHER, true);
    react(SELF, true);
    assert.deepEqual(timeline.message('m1')?.reactions, [{ emoji: '👍', count: 2, mine: true }]);
    react(SELF, false);
    assert.deepEqual(timeline.message('m1')?.reactions, [{ emoji: '👍', count: 1, mine: false }]);
    react(OTHER, true, 'm2');
    timeline.applyMessage(msg(2));
    assert.deepEqual(timeline.message('m2')?.reactions, [{ emoji: '👍', count: 1, mine: false }]);
  });

  it('takes a history page as a fresh read of reactions', () => {
    const timeline = loaded([1]);
    timeline.applyReaction({ conversation_id: CONVERSATION, message_id: 'm1', emoji: '🎉', user_id: OTHER }, true);
    const fresh = page([1]);
    fresh.messages[0]!.reactions = [{ emoji: '🎉', count: 3, mine: true }];
    timeline.applyHistoryPage({ after_seq: 0 }, fresh);
    assert.deepEqual(timeline.message('m1')?.reactions, [{ emoji: '🎉', count: 3, mine: true }]);
    timeline.applyReaction({ conversation_id: CONVERSATION, message_id: 'm1', emoji: '🎉', user_id: SELF }, false);
    assert.deepEqual(timeline.message('m1')?.reactions, [{ emoji: '🎉', count: 2, mine: false }]);
  });
});

describe('timeline pending sends', () => {
  it('shows pending sends after the last message and replaces them with the real message', () => {
    const timeline = loaded([1, 2]);
    timeline.setPending([pendingEntry('local-1'), pendingEntry('local-2')]);
    assert.deepEqual(describeItems(timeline.items()), ['m1', 'm2', 'p:local-1:pending', 'p:local-2:pending']);
    timeline.applyMessage(msg(3, { sender_id: SELF, client_msg_id: 'local-1' }));
    assert.deepEqual(describeItems(timeline.items()), ['m1', 'm2', 'm3', 'p:local-2:pending']);
  });

  it('places an accepted send at its seq and never shows it twice', () => {
    const timeline = loaded([1, 2]);
    timeline.setPending([pendingEntry('local-1', { state: 'accepted', seq: 4 })]);
    timeline.applyMessage(msg(3));
    timeline.applyMessage(msg(5));
    assert.deepEqual(describeItems(timeline.items()), ['m1', 'm2', 'm3', 'p:local-1:accepted', 'm5']);
    timeline.applyMessage(msg(4, { sender_id: SELF, client_msg_id: 'local-1' }));
    timeline.applySubscribeReply(replay([4, 5]), 3);
    assert.deepEqual(describeItems(timeline.items()), ['m1', 'm2', 'm3', 'm4', 'm5']);
  });

  it('keeps failed sends in place and ignores another user reusing the id', () => {
    const timeline = loaded([1]);
    timeline.setPending([pendingEntry('local-1', { state: 'failed', error: { code: 'user_muted', message: 'muted' } })]);
    timeline.applyMessage(msg(2, { client_msg_id: 'local-1', sender_id: OTHER }));
    assert.deepEqual(describeItems(timeline.items()), ['m1', 'm2', 'p:local-1:failed']);
  });

  it('returns the same items array until something changes', () => {
    const timeline = loaded([1]);
    const first = timeline.items();
    assert.equal(timeline.items(), first);
    timeline.applyMessage(msg(1));
    timeline.applyMessage(msg(2));
    assert.notEqual(timeline.items(), first);
  });
});
