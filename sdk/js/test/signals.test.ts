/**
 * The signals budget (`typing.*`, `read.mark`): rate-limited typing requests are dropped and a stop is
 * never overtaken by an earlier start; rate-limited read marks are coalesced and sent after the wait.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CaasError } from '../src/errors.js';
import type { ClientEventType, ReplyData, RequestData } from '../src/protocol.js';
import { Signals, type Schedule } from '../src/signals.js';
import type { Requester } from '../src/sync.js';
import { CONVERSATION, SELF } from './fixtures.js';

interface Sent {
  type: string;
  data: Record<string, unknown>;
  at: number;
  resolve: (reply: unknown) => void;
  reject: (error: unknown) => void;
}

/** A socket whose replies the test gives, one request at a time, oldest first. */
class Wire implements Requester {
  readonly sent: Sent[] = [];
  private answered = 0;

  constructor(private readonly clock: Clock) {}

  request<K extends ClientEventType>(type: K, data: RequestData<K>): Promise<ReplyData<K>> {
    return new Promise((resolve, reject) => {
      this.sent.push({ type, data: data as unknown as Record<string, unknown>, at: this.clock.now, resolve: resolve as (reply: unknown) => void, reject });
    });
  }

  /** The oldest request not answered yet. */
  next(): Sent {
    const request = this.sent[this.answered++];
    assert.ok(request, 'a request on the wire');
    return request;
  }
}

/** Time and timers under the test's control. */
class Clock {
  now = 0;
  private timers: Array<{ due: number; callback: () => void; cancelled: boolean }> = [];

  readonly schedule: Schedule = (callback, ms) => {
    const timer = { due: this.now + ms, callback, cancelled: false };
    this.timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  };

  /** Moves to `to`, running the timers due on the way in order. */
  async advance(to: number): Promise<void> {
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.due <= to).sort((a, b) => a.due - b.due)[0];
      if (!due) break;
      this.now = Math.max(this.now, due.due);
      due.cancelled = true;
      due.callback();
      await settle();
    }
    this.now = Math.max(this.now, to);
  }
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const rateLimited = (retryAfterMs: number): CaasError => new CaasError('rate_limited', `retry in ${retryAfterMs} ms`, retryAfterMs);

function setup(): { clock: Clock; wire: Wire; signals: Signals } {
  const clock = new Clock();
  const wire = new Wire(clock);
  const presenceOnly: Requester = {
    request: () => Promise.reject(new Error('typing and read marks go through signalRequester')),
  };
  const signals = new Signals({
    requester: presenceOnly,
    signalRequester: wire,
    now: () => clock.now,
    schedule: clock.schedule,
    emitTyping: () => {},
    emitPresence: () => {},
  });
  return { clock, wire, signals };
}

describe('typing requests', () => {
  type Step =
    | { at: number; typing: boolean }
    | { answer: 'ok'; expires?: number }
    | { answer: 'rate_limited'; retry: number }
    | { answer: 'disconnected' }
    | { wait: number };
  const cases: Array<{
    name: string;
    steps: Step[];
    /** What went on the wire: `start@t` / `stop@t`. */
    wire: string[];
    /** Whether the other side shows "typing…" at the end (the accepted requests in order, and expiry). */
    shown: boolean;
    rejected?: number;
  }> = [
    { name: 'a start goes out at once', steps: [{ at: 0, typing: true }, { answer: 'ok' }], wire: ['start@0'], shown: true },
    {
      name: 'renewals go at most every 3 s',
      steps: [{ at: 0, typing: true }, { answer: 'ok' }, { at: 1000, typing: true }, { at: 2999, typing: true }, { at: 3000, typing: true }, { answer: 'ok' }],
      wire: ['start@0', 'start@3000'],
      shown: true,
    },
    {
      name: 'a stop waits for the start on the wire and goes after it',
      steps: [{ at: 0, typing: true }, { at: 10, typing: false }, { answer: 'ok' }, { answer: 'ok' }],
      wire: ['start@0', 'stop@10'],
      shown: false,
    },
    {
      name: 'a rate-limited start is dropped, not retried; the stop after it has nothing to stop',
      steps: [{ at: 0, typing: true }, { at: 10, typing: false }, { answer: 'rate_limited', retry: 400 }, { wait: 2000 }],
      wire: ['start@0'],
      shown: false,
    },
    {
      name: 'the burst of the browser test: a refused start never lands after the stop',
      steps: [
        { at: 0, typing: true },
        { answer: 'ok' },
        { at: 3000, typing: true },
        { at: 3010, typing: false },
        { answer: 'rate_limited', retry: 200 },
        { answer: 'ok' },
        { wait: 5000 },
      ],
      wire: ['start@0', 'start@3000', 'stop@3010'],
      shown: false,
    },
    {
      name: 'starts are dropped while the budget is spent, then go again',
      steps: [{ at: 0, typing: true }, { answer: 'rate_limited', retry: 400 }, { at: 100, typing: true }, { at: 400, typing: true }, { answer: 'ok' }],
      wire: ['start@0', 'start@400'],
      shown: true,
    },
    {
      name: 'a rate-limited stop is dropped (the indicator lapses by itself)',
      steps: [{ at: 0, typing: true }, { answer: 'ok' }, { at: 100, typing: false }, { answer: 'rate_limited', retry: 300 }, { wait: 1000 }],
      wire: ['start@0', 'stop@100'],
      shown: true,
    },
    {
      name: 'start, stop, start while a start is on the wire: the latest intent is already shown',
      steps: [{ at: 0, typing: true }, { at: 10, typing: false }, { at: 20, typing: true }, { answer: 'ok' }],
      wire: ['start@0'],
      shown: true,
    },
    {
      name: 'stop, start, stop while a stop is on the wire: nothing more goes',
      steps: [{ at: 0, typing: true }, { answer: 'ok' }, { at: 10, typing: false }, { at: 20, typing: true }, { at: 30, typing: false }, { answer: 'ok' }],
      wire: ['start@0', 'stop@10'],
      shown: false,
    },
    {
      name: 'start then stop while a stop is on the wire: the start follows the stop',
      steps: [{ at: 0, typing: true }, { answer: 'ok' }, { at: 10, typing: false }, { at: 20, typing: true }, { answer: 'ok' }, { answer: 'ok' }],
      wire: ['start@0', 'stop@10', 'start@20'],
      shown: true,
    },
    { name: 'a stop with nothing started is not sent', steps: [{ at: 0, typing: false }], wire: [], shown: false },
    {
      name: 'a stop after the start lapsed is not sent',
      steps: [{ at: 0, typing: true }, { answer: 'ok', expires: 5000 }, { at: 6000, typing: false }],
      wire: ['start@0'],
      shown: false,
    },
    {
      name: 'a start lost to a disconnect rejects; the next start is not throttled and a stop follows it',
      steps: [{ at: 0, typing: true }, { answer: 'disconnected' }, { at: 10, typing: true }, { answer: 'ok' }, { at: 20, typing: false }, { answer: 'ok' }],
      wire: ['start@0', 'start@10', 'stop@20'],
      shown: false,
      rejected: 1,
    },
  ];
  for (const { name, steps, wire: expectedWire, shown: expectedShown, rejected = 0 } of cases) {
    it(name, async () => {
      const { clock, wire, signals } = setup();
      let shownUntil = -Infinity;
      let rejections = 0;
      const calls: Array<Promise<void>> = [];
      for (const step of steps) {
        if ('typing' in step) {
          await clock.advance(step.at);
          calls.push(signals.sendTyping(CONVERSATION, step.typing).catch(() => void (rejections += 1)));
        } else if ('wait' in step) {
          await clock.advance(clock.now + step.wait);
        } else {
          const request = wire.next();
          const start = request.type === 'typing.start';
          if (step.answer === 'ok') {
            const expires = start ? (step.expires ?? 5000) : 0;
            shownUntil = start ? request.at + expires : -Infinity;
            request.resolve({ conversation_id: CONVERSATION, user_id: SELF, typing: start, expires_in_ms: expires });
          } else if (step.answer === 'rate_limited') {
            request.reject(rateLimited(step.retry));
          } else {
            request.reject(new CaasError('disconnected', 'the socket closed'));
          }
        }
        await settle();
      }
      await Promise.all(calls);
      assert.deepEqual(
        wire.sent.map((r) => `${r.type === 'typing.start' ? 'start' : 'stop'}@${r.at}`),
        expectedWire,
      );
      assert.equal(clock.now < shownUntil, expectedShown);
      assert.equal(rejections, rejected);
    });
  }
});

describe('read marks', () => {
  type Step =
    | { at?: number; mark: number }
    | { answer: 'ok' }
    | { answer: 'rate_limited'; retry: number }
    | { answer: 'forbidden' }
    | { until: number }
    | { typingRefused: number };
  const cases: Array<{
    name: string;
    steps: Step[];
    /** What went on the wire: `seq@t`. */
    wire: string[];
    /** What each `markRead` call settled with, in call order: the stored seq, or the error code. */
    results: Array<number | string>;
  }> = [
    { name: 'a mark goes out at once', steps: [{ mark: 5 }, { answer: 'ok' }], wire: ['5@0'], results: [5] },
    {
      name: 'marks made while one is on the wire are coalesced to the highest',
      steps: [{ mark: 5 }, { mark: 7 }, { mark: 6 }, { answer: 'ok' }, { answer: 'ok' }],
      wire: ['5@0', '7@0'],
      results: [5, 7, 7],
    },
    {
      name: 'a lower mark while one is on the wire is answered by it',
      steps: [{ mark: 5 }, { mark: 4 }, { answer: 'ok' }],
      wire: ['5@0'],
      results: [5, 5],
    },
    {
      name: 'a rate-limited mark is kept and sent once the named wait has passed',
      steps: [{ mark: 5 }, { answer: 'rate_limited', retry: 400 }, { until: 399 }, { until: 400 }, { answer: 'ok' }],
      wire: ['5@0', '5@400'],
      results: [5],
    },
    {
      name: 'marks made during the wait are merged: only the highest is sent, once',
      steps: [{ mark: 5 }, { answer: 'rate_limited', retry: 400 }, { at: 100, mark: 8 }, { at: 200, mark: 6 }, { until: 400 }, { answer: 'ok' }],
      wire: ['5@0', '8@400'],
      results: [8, 8, 8],
    },
    {
      name: 'refused again: waits again',
      steps: [{ mark: 5 }, { answer: 'rate_limited', retry: 100 }, { until: 100 }, { answer: 'rate_limited', retry: 250 }, { until: 350 }, { answer: 'ok' }],
      wire: ['5@0', '5@100', '5@350'],
      results: [5],
    },
    {
      name: 'a refused typing request spends the same budget: marks wait for it',
      steps: [{ typingRefused: 300 }, { at: 100, mark: 5 }, { until: 299 }, { until: 300 }, { answer: 'ok' }],
      wire: ['5@300'],
      results: [5],
    },
    {
      name: 'other refusals reject, and later marks still go',
      steps: [{ mark: 5 }, { mark: 6 }, { answer: 'forbidden' }, { answer: 'ok' }],
      wire: ['5@0', '6@0'],
      results: ['forbidden', 6],
    },
  ];
  for (const { name, steps, wire: expectedWire, results: expectedResults } of cases) {
    it(name, async () => {
      const { clock, wire, signals } = setup();
      const results: Array<number | string> = [];
      const calls: Array<Promise<void>> = [];
      for (const step of steps) {
        if ('mark' in step) {
          if (step.at !== undefined) await clock.advance(step.at);
          const index = results.push(-1) - 1;
          calls.push(
            signals.markRead(CONVERSATION, step.mark).then(
              (horizon) => void (results[index] = horizon.seq),
              (error: CaasError) => void (results[index] = error.code),
            ),
          );
        } else if ('until' in step) {
          await clock.advance(step.until);
        } else if ('typingRefused' in step) {
          const typing = signals.sendTyping(CONVERSATION, true);
          await settle();
          wire.sent.pop()?.reject(rateLimited(step.typingRefused));
          await typing;
        } else {
          const request = wire.next();
          assert.equal(request.type, 'read.mark');
          if (step.answer === 'ok') request.resolve({ conversation_id: CONVERSATION, user_id: SELF, seq: request.data.seq });
          else if (step.answer === 'forbidden') request.reject(new CaasError('forbidden', 'not a member'));
          else request.reject(rateLimited(step.retry));
        }
        await settle();
      }
      await Promise.all(calls);
      assert.deepEqual(
        wire.sent.filter((r) => r.type === 'read.mark').map((r) => `${String(r.data.seq)}@${r.at}`),
        expectedWire,
      );
      assert.deepEqual(results, expectedResults);
    });
  }

  it('marks of different conversations do not wait for each other', async () => {
    const { wire, signals } = setup();
    void signals.markRead('a', 3);
    void signals.markRead('b', 4);
    await settle();
    assert.deepEqual(wire.sent.map((r) => [r.data.conversation_id, r.data.seq]), [['a', 3], ['b', 4]]);
  });

  it('closing rejects marks still waiting out a refusal', async () => {
    const { clock, wire, signals } = setup();
    const mark = signals.markRead(CONVERSATION, 5);
    await settle();
    wire.next().reject(rateLimited(1000));
    await settle();
    signals.stop();
    await assert.rejects(mark, (error: CaasError) => error.code === 'closed');
    await clock.advance(5000);
    assert.equal(wire.sent.length, 1, 'nothing sent after close');
  });
});
