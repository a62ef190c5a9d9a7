import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FINAL_SEND_ERRORS, Outbox, randomClientMsgId, type OutboxEntry } from '../src/outbox.js';
import type { Ack } from '../src/protocol.js';

function counterIds(): () => string {
  let next = 0;
  return () => `id-${++next}`;
}

function newOutbox(random = () => 0.5): Outbox {
  return new Outbox({ newId: counterIds(), random, backoff: { minMs: 100, maxMs: 1000 } });
}

function ack(entry: Pick<OutboxEntry, 'conversation_id' | 'client_msg_id'>, seq: number, status: Ack['status'] = 'accepted'): Ack {
  return { conversation_id: entry.conversation_id, client_msg_id: entry.client_msg_id, message_id: `m${seq}`, seq, status };
}

const dueIds = (outbox: Outbox, now: number): string[] =>
  outbox.takeDue(now).map(({ request }) => request.data.client_msg_id);

describe('outbox lifecycle', () => {
  it('assigns a printable id of at most 128 characters', () => {
    for (const id of [randomClientMsgId(), randomClientMsgId(() => 0.999), new Outbox().send({ conversation_id: 'c', text: 'x' }, 0).client_msg_id]) {
      assert.match(id, /^[\x21-\x7e]{1,128}$/);
    }
    assert.notEqual(randomClientMsgId(), randomClientMsgId());
    assert.throws(() => new Outbox().send({ conversation_id: 'c', text: 'x', client_msg_id: 'has space' }, 0));
  });

  it('goes pending → accepted (seq) → persisted, and leaves when persisted', () => {
    const outbox = newOutbox();
    const entry = outbox.send({ conversation_id: 'c', text: 'hello' }, 0);
    assert.equal(entry.state, 'pending');
    const [due] = outbox.takeDue(0);
    assert.deepEqual(due?.request, { type: 'message.send', data: { conversation_id: 'c', client_msg_id: 'id-1', text: 'hello' } });
    assert.equal(outbox.get('id-1')?.in_flight, true);
    const accepted = outbox.replied(ack(entry, 7), 10);
    assert.equal(accepted?.state, 'accepted');
    assert.equal(accepted?.seq, 7);
    const persisted = outbox.persisted(ack(entry, 7, 'persisted'));
    assert.equal(persisted?.state, 'persisted');
    assert.equal(outbox.size, 0);
  });

  it('builds forward requests', () => {
    const outbox = newOutbox();
    outbox.forward({ conversation_id: 'c2', source_conversation_id: 'c1', message_id: 'm9' }, 0);
    assert.deepEqual(outbox.takeDue(0)[0]?.request, {
      type: 'message.forward',
      data: { conversation_id: 'c2', client_msg_id: 'id-1', source_conversation_id: 'c1', message_id: 'm9' },
    });
  });
});

describe('outbox ordering', () => {
  it('sends one at a time per conversation, in order', () => {
    const outbox = newOutbox();
    const first = outbox.send({ conversation_id: 'a', text: '1' }, 0);
    outbox.send({ conversation_id: 'a', text: '2' }, 0);
    outbox.send({ conversation_id: 'b', text: '3' }, 0);
    assert.deepEqual(dueIds(outbox, 0), ['id-1', 'id-3']);
    assert.deepEqual(dueIds(outbox, 0), [], 'nothing new while the heads are in flight');
    outbox.replied(ack(first, 1), 0);
    assert.deepEqual(dueIds(outbox, 0), ['id-2']);
  });

  it('keeps order through a rate limit: later sends wait behind the head', () => {
    const outbox = newOutbox();
    outbox.send({ conversation_id: 'a', text: '1' }, 0);
    outbox.send({ conversation_id: 'a', text: '2' }, 0);
    dueIds(outbox, 0);
    outbox.refused('id-1', { code: 'rate_limited', message: 'sender message rate limit is reached; retry in 700 ms' }, 1000);
    assert.deepEqual(dueIds(outbox, 1699), []);
    assert.equal(outbox.nextDueAt(), 1700);
    assert.deepEqual(dueIds(outbox, 1700), ['id-1']);
  });
});

describe('outbox retries keep the client_msg_id', () => {
  it('resends in-flight requests after a disconnect, same id, at once', () => {
    const outbox = newOutbox();
    outbox.send({ conversation_id: 'a', text: '1' }, 0);
    assert.deepEqual(dueIds(outbox, 0), ['id-1']);
    outbox.disconnected();
    assert.deepEqual(dueIds(outbox, 0), ['id-1']);
    assert.equal(outbox.get('id-1')?.attempts, 2);
  });

  it('backs off on unavailable with jitter inside the bounds', () => {
    const outbox = newOutbox(() => 1);
    outbox.send({ conversation_id: 'a', text: '1' }, 0);
    const waits: number[] = [];
    let now = 0;
    for (let i = 0; i < 5; i += 1) {
      assert.deepEqual(dueIds(outbox, now), ['id-1']);
      outbox.refused('id-1', { code: 'unavailable', message: 'retry' }, now);
      const next = outbox.nextDueAt() ?? 0;
      waits.push(next - now);
      now = next;
    }
    assert.deepEqual(waits, [200, 400, 800, 1000, 1000]);
    assert.equal(outbox.get('id-1')?.state, 'pending');
  });

  it('waits the time a rate_limited refusal names (field or message)', () => {
    const table: Array<{ error: { code: string; message: string; retry_after_ms?: number }; wait: number }> = [
      { error: { code: 'rate_limited', message: 'x', retry_after_ms: 250 }, wait: 250 },
      { error: { code: 'rate_limited', message: "app's message rate limit is reached; retry in 42 ms" }, wait: 42 },
      { error: { code: 'rate_limited', message: 'too many requests on this connection; at most 20 a second' }, wait: 50 },
      { error: { code: 'rate_limited', message: 'slow down' }, wait: 1000 },
    ];
    for (const { error, wait } of table) {
      const outbox = newOutbox();
      outbox.send({ conversation_id: 'a', text: '1' }, 0);
      dueIds(outbox, 0);
      outbox.refused('id-1', error, 5000);
      assert.equal(outbox.nextDueAt(), 5000 + wait, error.message);
    }
  });

  it('fails internal errors after a few tries', () => {
    const outbox = newOutbox();
    outbox.send({ conversation_id: 'a', text: '1' }, 0);
    for (let i = 0; i < 3; i += 1) {
      dueIds(outbox, 1e9);
      outbox.refused('id-1', { code: 'internal', message: 'internal error' }, 0);
    }
    assert.equal(outbox.get('id-1')?.state, 'failed');
  });
});

describe('outbox final refusals', () => {
  for (const code of ['content_blocked', 'user_muted', 'user_banned', 'validation_failed', 'forbidden', 'not_found', 'payload_too_large']) {
    it(`${code} fails the send with its code and message, and the queue moves on`, () => {
      assert.ok(FINAL_SEND_ERRORS.has(code));
      const outbox = newOutbox();
      outbox.send({ conversation_id: 'a', text: 'bad' }, 0);
      outbox.send({ conversation_id: 'a', text: 'next' }, 0);
      dueIds(outbox, 0);
      const failed = outbox.refused('id-1', { code, message: `refused: ${code}` }, 0);
      assert.equal(failed?.state, 'failed');
      assert.deepEqual(failed?.error, { code, message: `refused: ${code}` });
      assert.deepEqual(dueIds(outbox, 0), ['id-2']);
      assert.equal(outbox.nextDueAt(), undefined);
    });
  }

  it('retries a failed send on request, with the same id, and discards on request', () => {
    const outbox = newOutbox();
    outbox.send({ conversation_id: 'a', text: 'x' }, 0);
    dueIds(outbox, 0);
    outbox.refused('id-1', { code: 'user_muted', message: 'muted until 5' }, 0);
    assert.equal(outbox.retry('id-1', 10)?.state, 'pending');
    assert.deepEqual(dueIds(outbox, 10), ['id-1']);
    outbox.refused('id-1', { code: 'user_muted', message: 'muted until 5' }, 10);
    assert.equal(outbox.discard('id-1'), true);
    assert.equal(outbox.size, 0);
  });
});

describe('outbox persistence', () => {
  it('round-trips through JSON, resending what was in flight', () => {
    const outbox = newOutbox();
    outbox.send({ conversation_id: 'a', text: 'one', attachments: ['att_1'], reply_to: 'm1' }, 0);
    outbox.send({ conversation_id: 'a', text: 'two' }, 0);
    dueIds(outbox, 0);
    const stored = JSON.parse(JSON.stringify(outbox.snapshot())) as OutboxEntry[];
    const restored = new Outbox({ newId: counterIds() }, stored);
    assert.equal(restored.size, 2);
    const [due] = restored.takeDue(0);
    assert.deepEqual(due?.request.data, { conversation_id: 'a', client_msg_id: 'id-1', text: 'one', reply_to: 'm1', attachments: ['att_1'] });
  });

  it('prunes accepted entries whose persisted ack never came', () => {
    const outbox = newOutbox();
    const entry = outbox.send({ conversation_id: 'a', text: 'x' }, 0);
    dueIds(outbox, 0);
    outbox.replied(ack(entry, 1), 100);
    assert.deepEqual(outbox.prune(200, 1000), []);
    assert.equal(outbox.prune(1100, 1000).length, 1);
    assert.equal(outbox.size, 0);
  });
});

describe('outbox confirmations: accepted sends whose persisted ack may be lost', () => {
  const options = { confirmAfterMs: 30_000, confirmIntervalMs: 100, maxConfirmationsInFlight: 4 };
  const confirmingOutbox = (extra: Partial<typeof options> = {}): Outbox =>
    new Outbox({ newId: counterIds(), random: () => 0.5, backoff: { minMs: 100, maxMs: 1000 }, ...options, ...extra });
  const confirmIds = (outbox: Outbox, now: number): string[] =>
    outbox.takeConfirmations(now).map(({ request }) => request.data.client_msg_id);
  /** Sends `count` messages to conversation `a` and has each accepted at `now` (seq 1, 2, …). */
  function acceptedOutbox(count: number, now = 0, extra: Partial<typeof options> = {}): Outbox {
    const outbox = confirmingOutbox(extra);
    for (let i = 1; i <= count; i += 1) {
      const entry = outbox.send({ conversation_id: 'a', text: `m${i}` }, now);
      assert.deepEqual(dueIds(outbox, now), [entry.client_msg_id]);
      outbox.replied(ack(entry, i), now);
    }
    return outbox;
  }

  it('a reply with status persisted completes the entry as the ack event does, and the queue moves on', () => {
    const table: Array<{ name: string; prepare: (outbox: Outbox) => void }> = [
      { name: 'the first reply (a resend of a send whose reply was lost)', prepare: (outbox) => void dueIds(outbox, 0) },
      {
        name: 'a confirmation after a reconnect',
        prepare: (outbox) => {
          dueIds(outbox, 0);
          outbox.replied(ack({ conversation_id: 'a', client_msg_id: 'id-1' }, 1), 0);
          outbox.disconnected();
          assert.deepEqual(confirmIds(outbox, 10), ['id-1']);
        },
      },
    ];
    for (const { name, prepare } of table) {
      const outbox = confirmingOutbox();
      const first = outbox.send({ conversation_id: 'a', text: '1' }, 0);
      prepare(outbox);
      outbox.send({ conversation_id: 'a', text: '2' }, 0);
      const settled = outbox.replied({ ...ack(first, 1, 'persisted'), duplicate: true }, 20);
      assert.equal(settled?.state, 'persisted', name);
      assert.equal(settled?.seq, 1, name);
      assert.equal(settled?.message_id, 'm1', name);
      assert.equal(outbox.get('id-1'), undefined, `${name}: left the outbox`);
      assert.equal(outbox.size, 1, `${name}: the next send stays`);
      assert.deepEqual(dueIds(outbox, 20), ['id-2'], `${name}: the next send goes`);
    }
  });

  it('after a disconnect, confirms each accepted entry once, oldest first, paced, alongside new sends', () => {
    const outbox = acceptedOutbox(3);
    assert.deepEqual(confirmIds(outbox, 0), [], 'nothing to confirm while the ack may still come');
    const fresh = outbox.send({ conversation_id: 'a', text: 'new' }, 0);
    outbox.disconnected();
    // The conversation's queue is not held up by the confirmations: the new send goes at once.
    assert.deepEqual(dueIds(outbox, 1000), [fresh.client_msg_id]);
    assert.deepEqual(confirmIds(outbox, 1000), ['id-1']);
    assert.deepEqual(confirmIds(outbox, 1099), [], 'one per confirmIntervalMs');
    assert.equal(outbox.nextConfirmationAt(), 1100);
    assert.deepEqual(confirmIds(outbox, 1100), ['id-2']);
    assert.deepEqual(confirmIds(outbox, 1200), ['id-3']);
    assert.deepEqual(confirmIds(outbox, 5000), [], 'at most one confirmation in flight per entry');
    assert.equal(outbox.nextConfirmationAt(), undefined);
    for (const id of ['id-1', 'id-2', 'id-3']) {
      const entry = outbox.get(id);
      assert.equal(entry?.state, 'accepted', id);
      assert.equal(entry?.attempts, 1, `${id}: a confirmation is no attempt`);
    }
  });

  it('what a confirmation\'s answer does to the entry', () => {
    const table: Array<{ answer: string; apply: (outbox: Outbox, now: number) => OutboxEntry | undefined; state: OutboxEntry['state']; confirmAt?: number }> = [
      { answer: 'persisted', apply: (outbox, now) => outbox.replied({ ...ack({ conversation_id: 'a', client_msg_id: 'id-1' }, 1, 'persisted'), duplicate: true }, now), state: 'persisted' },
      { answer: 'accepted (not stored yet)', apply: (outbox, now) => outbox.replied({ ...ack({ conversation_id: 'a', client_msg_id: 'id-1' }, 1), duplicate: true }, now), state: 'accepted', confirmAt: 1000 + 30_000 },
      { answer: 'rate_limited', apply: (outbox, now) => outbox.confirmationFailed('id-1', { code: 'rate_limited', message: 'sender message rate limit is reached; retry in 700 ms' }, now), state: 'accepted', confirmAt: 1700 },
      { answer: 'a final refusal (content_blocked)', apply: (outbox, now) => outbox.confirmationFailed('id-1', { code: 'content_blocked', message: 'blocked' }, now), state: 'accepted', confirmAt: 31_000 },
      { answer: 'forbidden', apply: (outbox, now) => outbox.refused('id-1', { code: 'forbidden', message: 'not a member' }, now), state: 'accepted', confirmAt: 31_000 },
      { answer: 'internal', apply: (outbox, now) => outbox.refused('id-1', { code: 'internal', message: 'boom' }, now), state: 'accepted', confirmAt: 31_000 },
      { answer: 'no reply in time', apply: (outbox, now) => outbox.timedOut('id-1', now), state: 'accepted', confirmAt: 31_000 },
      { answer: 'the connection dropped', apply: (outbox) => (outbox.disconnected(), outbox.get('id-1')), state: 'accepted', confirmAt: 0 },
    ];
    for (const { answer, apply, state, confirmAt } of table) {
      const outbox = acceptedOutbox(1);
      outbox.disconnected();
      assert.deepEqual(confirmIds(outbox, 1000), ['id-1'], answer);
      const after = apply(outbox, 1000);
      assert.equal(after?.state, state, answer);
      if (state === 'persisted') {
        assert.equal(outbox.size, 0, answer);
        continue;
      }
      const entry = outbox.get('id-1');
      assert.equal(entry?.in_flight, false, answer);
      assert.equal(entry?.attempts, 1, `${answer}: not counted as an attempt`);
      assert.equal(entry?.confirm_at, confirmAt, answer);
      assert.equal(outbox.nextConfirmationAt(), Math.max(confirmAt ?? 0, confirmAt === 0 ? 0 : 1100), answer);
      assert.deepEqual(confirmIds(outbox, (confirmAt ?? 0) - 1), [], `${answer}: not before its time`);
      assert.deepEqual(confirmIds(outbox, Math.max(confirmAt ?? 0, 1100)), ['id-1'], `${answer}: confirmed again then`);
    }
  });

  it('confirms an entry whose ack is overdue, without a reconnect, at a low rate', () => {
    const outbox = acceptedOutbox(1, 100);
    assert.equal(outbox.nextConfirmationAt(), 30_100);
    assert.deepEqual(confirmIds(outbox, 30_099), []);
    assert.deepEqual(confirmIds(outbox, 30_100), ['id-1']);
    outbox.replied({ ...ack({ conversation_id: 'a', client_msg_id: 'id-1' }, 1), duplicate: true }, 30_150);
    assert.equal(outbox.nextConfirmationAt(), 60_150, 'answered accepted: asked again after another confirmAfterMs');
    assert.equal(outbox.get('id-1')?.accepted_at, 100, 'a confirmation does not restart the prune clock');
  });

  it('keeps at most maxConfirmationsInFlight on the wire', () => {
    const outbox = acceptedOutbox(4, 0, { maxConfirmationsInFlight: 2, confirmIntervalMs: 0 });
    outbox.disconnected();
    assert.deepEqual([...confirmIds(outbox, 0), ...confirmIds(outbox, 0), ...confirmIds(outbox, 0)], ['id-1', 'id-2']);
    assert.equal(outbox.nextConfirmationAt(), undefined, 'the replies make room');
    outbox.replied({ ...ack({ conversation_id: 'a', client_msg_id: 'id-1' }, 1, 'persisted'), duplicate: true }, 0);
    assert.deepEqual(confirmIds(outbox, 0), ['id-3']);
  });

  it('an ack event that beats the confirmation\'s reply wins; the late reply changes nothing', () => {
    for (const status of ['accepted', 'persisted'] as const) {
      const outbox = acceptedOutbox(1);
      outbox.disconnected();
      confirmIds(outbox, 0);
      assert.equal(outbox.persisted(ack({ conversation_id: 'a', client_msg_id: 'id-1' }, 1, 'persisted'))?.state, 'persisted');
      assert.equal(outbox.replied({ ...ack({ conversation_id: 'a', client_msg_id: 'id-1' }, 1, status), duplicate: true }, 5), undefined, status);
      assert.equal(outbox.size, 0, status);
    }
  });

  it('confirms accepted entries restored from storage on the first connection', () => {
    const outbox = acceptedOutbox(1, 0);
    outbox.send({ conversation_id: 'a', text: 'unsent' }, 0);
    const stored = JSON.parse(JSON.stringify(outbox.snapshot())) as OutboxEntry[];
    const legacy = stored.map((entry) => {
      const { confirm_at: _dropped, ...rest } = entry;
      return rest as OutboxEntry;
    });
    for (const [name, entries] of [['stored now', stored], ['stored before confirmations existed', legacy]] as const) {
      const restored = new Outbox({ newId: counterIds(), ...options }, entries);
      assert.deepEqual(restored.takeDue(0).map(({ request }) => request.data.client_msg_id), ['id-2'], name);
      assert.deepEqual(restored.takeConfirmations(0).map(({ request }) => request.data.client_msg_id), ['id-1'], name);
      const adopted = new Outbox({ newId: counterIds(), ...options });
      adopted.adopt(entries);
      assert.deepEqual(adopted.takeConfirmations(0).map(({ request }) => request.data.client_msg_id), ['id-1'], `${name} (adopted)`);
    }
  });
});
