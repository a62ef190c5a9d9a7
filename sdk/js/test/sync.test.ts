import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConversationSync, type Requester } from '../src/sync.js';
import type { ClientEventType, ReplyData, RequestData } from '../src/protocol.js';
import type { SeqSpan } from '../src/coverage.js';
import { CONVERSATION, msg, page, range, replay } from './fixtures.js';

type Handler = (data: Record<string, unknown>) => unknown;

/** A requester that answers from handlers per event type and records every request. */
function scripted(handlers: Partial<Record<ClientEventType, Handler>>): Requester & { log: Array<{ type: string; data: Record<string, unknown> }> } {
  const log: Array<{ type: string; data: Record<string, unknown> }> = [];
  return {
    log,
    async request<K extends ClientEventType>(type: K, data: RequestData<K>): Promise<ReplyData<K>> {
      const record = data as unknown as Record<string, unknown>;
      log.push({ type, data: record });
      const handler = handlers[type];
      if (!handler) throw new Error(`unexpected ${type}`);
      return handler(record) as ReplyData<K>;
    },
  };
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('conversation sync', () => {
  it('loads the newest page on first sync, then resumes from the contiguous end', async () => {
    let serverSeqs = range(1, 5);
    const requester = scripted({
      'conversation.subscribe': (data) =>
        data.since_seq === undefined
          ? replay([], { recovered: false, last_seq: serverSeqs.length })
          : replay(serverSeqs.filter((seq) => seq > (data.since_seq as number))),
      'conversation.history': () => page(serverSeqs),
    });
    const sync = new ConversationSync(CONVERSATION, requester, { onChange: () => {} });
    await sync.sync();
    serverSeqs = range(1, 8);
    await sync.sync();
    assert.deepEqual(sync.timeline.messages().map((m) => m.seq), range(1, 8));
    assert.deepEqual(requester.log.map((r) => r.type), ['conversation.subscribe', 'conversation.history', 'conversation.subscribe']);
    assert.deepEqual(requester.log[2]?.data, { conversation_id: CONVERSATION, since_seq: 5, epoch: 'e1' });
  });

  it('pages history forward when the replay is not recovered', async () => {
    let first = true;
    const requester = scripted({
      'conversation.subscribe': () => {
        if (first) return replay([], { recovered: false, last_seq: 2 });
        return replay([], { recovered: false, last_seq: 300 });
      },
      'conversation.history': (data) => {
        if (first) {
          first = false;
          return page([1, 2]);
        }
        const after = data.after_seq as number;
        const seqs = range(after + 1, Math.min(after + 200, 300));
        return page(seqs, seqs.at(-1) !== 300);
      },
    });
    const sync = new ConversationSync(CONVERSATION, requester, { onChange: () => {} });
    await sync.sync();
    await sync.sync();
    assert.equal(sync.timeline.messages().length, 300);
    assert.deepEqual(
      requester.log.filter((r) => r.data.after_seq !== undefined).map((r) => r.data.after_seq),
      [2, 202],
    );
  });

  it('restarts from the newest page when too much was missed', async () => {
    let latest = range(1, 3);
    const requester = scripted({
      'conversation.subscribe': (data) =>
        data.since_seq === undefined ? replay([], { recovered: false, last_seq: latest.length }) : replay([4, 5], { has_more: true, last_seq: 5000 }),
      'conversation.history': () => page(latest, true),
    });
    const sync = new ConversationSync(CONVERSATION, requester, { onChange: () => {}, maxCatchUp: 1000 });
    await sync.sync();
    latest = range(4951, 5000);
    await sync.sync();
    assert.equal(sync.timeline.messages()[0]?.seq, 4951);
    assert.equal(sync.timeline.resumePoint()?.since_seq, 5000);
    assert.equal(sync.timeline.hasOlder, true);
  });

  it('holds live events back while a subscribe is in flight, so a replay is not taken for a gap', async () => {
    let release: (() => void) | undefined;
    let subscribes = 0;
    const requester = scripted({
      'conversation.subscribe': async (data) => {
        subscribes += 1;
        if (data.since_seq === undefined) return replay([], { recovered: false, last_seq: 2 });
        await new Promise<void>((resolve) => (release = resolve));
        return replay([3, 4]);
      },
      'conversation.history': () => page([1, 2]),
    });
    const sync = new ConversationSync(CONVERSATION, requester, { onChange: () => {}, gapGraceMs: 5 });
    await sync.sync();
    const resuming = sync.sync();
    await delay(1);
    sync.deliver((timeline) => timeline.applyMessage(msg(5)));
    assert.equal(sync.timeline.messages().length, 2, 'held until the reply');
    release?.();
    await resuming;
    assert.deepEqual(sync.timeline.messages().map((m) => m.seq), range(1, 5));
    await delay(20);
    assert.equal(subscribes, 2, 'no gap was chased');
  });

  it('chases a hole left by live deliveries, and skips it when the server has nothing for it', async () => {
    const requester = scripted({
      'conversation.subscribe': (data) =>
        data.since_seq === undefined ? replay([], { recovered: false, last_seq: 2 }) : replay([], { recovered: true, last_seq: 5 }),
      'conversation.history': () => page([1, 2]),
    });
    const skipped: SeqSpan[] = [];
    const sync = new ConversationSync(CONVERSATION, requester, { onChange: () => {}, gapGraceMs: 2, onGapSkipped: (gap) => skipped.push(gap) });
    await sync.sync();
    sync.deliver((timeline) => timeline.applyMessage(msg(5)));
    assert.deepEqual(sync.timeline.firstGap(), { from: 3, through: 4 });
    for (let i = 0; i < 100 && skipped.length === 0; i += 1) await delay(5);
    assert.deepEqual(skipped, [{ from: 3, through: 4 }]);
    assert.equal(sync.timeline.resumePoint()?.since_seq, 5);
    const resumes = requester.log.filter((r) => r.type === 'conversation.subscribe' && r.data.since_seq === 2);
    assert.equal(resumes.length, 3, 'fetched a few times before giving up');
  });
});
