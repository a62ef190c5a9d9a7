import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { BUNDLE_HEADER, BUNDLE_PATH, DIST_SRC, bundle } from '../scripts/bundle.js';
import * as sdk from '../src/index.js';
import { page } from './fixtures.js';

describe('browser build', () => {
  it('is the build of the current sources (run `npm run bundle` after changing src/)', () => {
    assert.equal(readFileSync(BUNDLE_PATH, 'utf8'), bundle(DIST_SRC, BUNDLE_HEADER));
  });

  it('exports what the package exports, and works', async () => {
    const browser = (await import(pathToFileURL(BUNDLE_PATH).href)) as typeof sdk;
    const runtimeNames = (module: object): string[] => Object.keys(module).sort();
    assert.deepEqual(runtimeNames(browser), runtimeNames(sdk));
    const timeline = new browser.Timeline('conv-1');
    timeline.applySubscribeReply({ conversation_id: 'conv-1', epoch: 'e1', last_seq: 2, recovered: false, messages: [], has_more: false }, undefined);
    timeline.applyHistoryPage({}, page([1, 2]));
    assert.deepEqual(timeline.resumePoint(), { since_seq: 2, epoch: 'e1' });
    assert.equal(browser.retryAfterMs({ message: 'retry in 5 ms' }), 5);
  });
});
