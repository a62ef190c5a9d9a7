import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HttpApi, type FetchLike } from '../src/http.js';
import { CaasError } from '../src/errors.js';
import { MemoryOutboxStorage } from '../src/storage.js';
import { Outbox } from '../src/outbox.js';

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

/** A fetch that records calls and answers from a table of `METHOD url-prefix` → [status, body]. */
function fakeFetch(routes: Record<string, [number, unknown]>): { fetch: FetchLike; calls: Call[] } {
  const calls: Call[] = [];
  const fetch: FetchLike = async (url, init) => {
    const method = init?.method ?? 'GET';
    calls.push({ url, method, headers: (init?.headers ?? {}) as Record<string, string>, body: init?.body });
    const route = Object.keys(routes).find((key) => `${method} ${url}`.startsWith(key));
    const [status, body] = route ? routes[route]! : [404, { error: { code: 'route_not_found', message: 'no route' } }];
    return new Response(body === undefined ? null : typeof body === 'string' ? body : JSON.stringify(body), { status });
  };
  return { fetch, calls };
}

describe('HTTP API', () => {
  it('uploads in three steps with the signed headers, reporting progress', async () => {
    const { fetch, calls } = fakeFetch({
      'POST https://gw.test/api/v1/media/uploads/att_1/complete': [200, { id: 'att_1', status: 'complete', has_thumbnail: true }],
      'POST https://gw.test/api/v1/media/uploads': [201, { upload_id: 'att_1', url: 'https://blobs.test/put', method: 'PUT', headers: { 'content-type': 'image/png' }, expires_at: 1 }],
      'PUT https://blobs.test/put': [200, ''],
    });
    const api = new HttpApi('https://gw.test/api/v1/', fetch, async () => 'tok');
    const progress: Array<[number, number]> = [];
    const body = new Uint8Array([1, 2, 3, 4]);
    const info = await api.upload({ conversation_id: 'c1', body, filename: 'a.png', content_type: 'image/png', onProgress: (sent, total) => progress.push([sent, total]) });
    assert.equal(info.id, 'att_1');
    assert.deepEqual(calls.map((c) => `${c.method} ${c.url}`), [
      'POST https://gw.test/api/v1/media/uploads',
      'PUT https://blobs.test/put',
      'POST https://gw.test/api/v1/media/uploads/att_1/complete',
    ]);
    assert.deepEqual(JSON.parse(String(calls[0]?.body)), { conversation_id: 'c1', filename: 'a.png', content_type: 'image/png', size: 4 });
    assert.equal(calls[0]?.headers.authorization, 'Bearer tok');
    assert.deepEqual(calls[1]?.headers, { 'content-type': 'image/png' }, 'exactly the signed headers, no bearer token to the blob store');
    assert.deepEqual(progress, [[4, 4]]);
  });

  it('builds search queries and skips absent filters', async () => {
    const { fetch, calls } = fakeFetch({ 'GET https://gw.test/api/v1/search/messages': [200, { hits: [], next_cursor: null }] });
    const api = new HttpApi('https://gw.test', fetch, async () => 'tok');
    await api.search({ q: '"a phrase" pre*', has_attachment: false, limit: 5 });
    const url = new URL(calls[0]?.url ?? '');
    assert.equal(url.pathname, '/api/v1/search/messages');
    assert.deepEqual(Object.fromEntries(url.searchParams), { q: '"a phrase" pre*', has_attachment: 'false', limit: '5' });
  });

  it('maps error bodies to CaasError with the code, status and wait', async () => {
    const { fetch } = fakeFetch({
      'GET https://gw.test/api/v1/search/messages': [429, { error: { code: 'rate_limited', message: 'slow down', retry_after_ms: 1500, correlation_id: 'x' } }],
      'GET https://gw.test/api/v1/auth/sessions': [502, 'bad gateway'],
    });
    const api = new HttpApi('https://gw.test', fetch, async () => 'tok');
    await assert.rejects(api.search({ q: 'x' }), (error: unknown) => {
      assert.ok(error instanceof CaasError);
      assert.equal(error.code, 'rate_limited');
      assert.equal(error.status, 429);
      assert.equal(error.retryAfterMs, 1500);
      assert.equal(error.correlationId, 'x');
      return true;
    });
    await assert.rejects(api.sessions(), (error: unknown) => error instanceof CaasError && error.code === 'http_502');
  });

  it('refreshes with the token it is given', async () => {
    const { fetch, calls } = fakeFetch({ 'POST https://gw.test/api/v1/auth/refresh': [200, { token: 'new' }] });
    const api = new HttpApi('https://gw.test', fetch, async () => 'unused');
    assert.equal((await api.refresh('old')).token, 'new');
    assert.equal(calls[0]?.headers.authorization, 'Bearer old');
  });
});

describe('outbox storage', () => {
  it('keeps entries per key and hands back copies', async () => {
    const storage = new MemoryOutboxStorage();
    const outbox = new Outbox({ newId: () => 'id-1' });
    outbox.send({ conversation_id: 'c', text: 'x' }, 0);
    await storage.save('outbox:alice', outbox.snapshot());
    const loaded = await storage.load('outbox:alice');
    assert.equal(loaded[0]?.client_msg_id, 'id-1');
    loaded[0]!.state = 'failed';
    assert.equal((await storage.load('outbox:alice'))[0]?.state, 'pending');
    assert.deepEqual(await storage.load('outbox:bob'), []);
  });
});
