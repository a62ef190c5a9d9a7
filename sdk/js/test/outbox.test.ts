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
    const accepted = outbox.accepted(ack(entry, 7), 10);
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
    outbox.accepted(ack(first, 1), 0);
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
    outbox.accepted(ack(entry, 1), 100);
    assert.deepEqual(outbox.prune(200, 1000), []);
    assert.equal(outbox.prune(1100, 1000).length, 1);
    assert.equal(outbox.size, 0);
  });
});
