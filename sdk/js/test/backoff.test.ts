import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff, UrlRotation, backoffDelay } from '../src/backoff.js';

describe('backoffDelay', () => {
  const table: Array<{ attempt: number; random: number; delay: number }> = [
    { attempt: 0, random: 0, delay: 250 },
    { attempt: 0, random: 1, delay: 500 },
    { attempt: 1, random: 1, delay: 1000 },
    { attempt: 2, random: 0.5, delay: 1125 },
    { attempt: 6, random: 1, delay: 20_000 },
    { attempt: 50, random: 1, delay: 20_000 },
    { attempt: 50, random: 0, delay: 250 },
  ];
  for (const { attempt, random, delay } of table) {
    it(`attempt ${attempt}, random ${random} → ${delay} ms`, () => {
      assert.equal(backoffDelay(attempt, random), delay);
    });
  }

  it('stays within [min, ceiling] for any random value', () => {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const ceiling = Math.min(20_000, 250 * 2 ** (attempt + 1));
      for (const random of [0, 0.001, 0.25, 0.5, 0.999, 1, -1, 2]) {
        const delay = backoffDelay(attempt, random);
        assert.ok(delay >= 250 && delay <= ceiling, `attempt ${attempt} random ${random}: ${delay}`);
      }
    }
  });

  it('honours custom bounds', () => {
    assert.equal(backoffDelay(10, 1, { minMs: 10, maxMs: 100 }), 100);
    assert.equal(backoffDelay(0, 0, { minMs: 10, maxMs: 100 }), 10);
  });
});

describe('Backoff', () => {
  it('grows per failure and resets after a stable connection', () => {
    const backoff = new Backoff({}, () => 1);
    assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [500, 1000, 2000]);
    backoff.connected(0);
    backoff.disconnected(9_999);
    assert.equal(backoff.next(), 4000, 'a connection that dropped quickly does not reset the count');
    backoff.connected(10_000);
    backoff.disconnected(20_000);
    assert.equal(backoff.attempts, 0);
    assert.equal(backoff.next(), 500);
  });

  it('resets on demand', () => {
    const backoff = new Backoff({}, () => 0);
    backoff.next();
    backoff.next();
    backoff.reset();
    assert.equal(backoff.attempts, 0);
  });
});

describe('UrlRotation', () => {
  it('rotates on failure and wraps', () => {
    const rotation = new UrlRotation(['ws://a', 'ws://b', 'ws://c']);
    assert.deepEqual([rotation.current(), rotation.rotate(), rotation.rotate(), rotation.rotate()], ['ws://a', 'ws://b', 'ws://c', 'ws://a']);
  });

  it('keeps the current URL across a new list when it is still offered', () => {
    const rotation = new UrlRotation(['ws://a', 'ws://b']);
    rotation.rotate();
    rotation.replace(['ws://c', 'ws://b']);
    assert.equal(rotation.current(), 'ws://b');
    rotation.replace(['ws://d']);
    assert.equal(rotation.current(), 'ws://d');
  });

  it('drops duplicates and empty entries', () => {
    const rotation = new UrlRotation(['ws://a', '', 'ws://a', 'ws://b']);
    assert.equal(rotation.size, 2);
    assert.equal(new UrlRotation([]).current(), undefined);
    assert.equal(new UrlRotation([]).rotate(), undefined);
  });
});
