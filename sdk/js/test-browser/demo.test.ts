/**
 * The demo chat page (sdk/js/demo/, served at /demo by the dev mode) in a real browser: two users,
 * alice and bob, in two browser contexts, chat through the dev mode's gateway and socket node — direct
 * and group conversations, typing, unread badges, an image upload with its thumbnail, reactions,
 * replies, edit and delete, search, a reload — and then the server is killed (SIGKILL) and started
 * again on the same ports and data: both pages come back online and nothing is lost or shown twice. With
 * the server down once more, bob's unsent message outlives a reload of his page (the SDK's outbox in
 * IndexedDB, read here from the page) and is delivered once when the server is back.
 *
 * Runs with `npm run test:browser`. Needs a built dev mode (`cargo build -p caas-dev`; the binary is
 * `CAAS_DEV_BIN`, else `$CARGO_TARGET_DIR` or `~/.cache/caas/target`, + `/debug/caas-dev`) and a system
 * Chromium (`apt-get install -y chromium`, or `CAAS_CHROMIUM=/path/to/chrome`); it never downloads a
 * browser. Screenshots go to `CAAS_BROWSER_OUT` (default `sdk/js/test-browser/out/`), among them
 * `demo.png`, alice's page mid-conversation, for the docs.
 *
 * Every wait is for a condition in a page (or the server answering), with a generous timeout.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { devBinary, freePort } from '../test-support/dev-process.js';
import { DevServer } from './dev-server.js';
import { makePng } from './png.js';

const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OUT_DIR = resolve(process.env.CAAS_BROWSER_OUT ?? join(SDK_DIR, 'test-browser', 'out'));
/** How long any one condition may take to come true (the pages reconnect with backoff after a kill). */
const WAIT_MS = 30_000;
const RECOVERY_MS = 90_000;
/** The demo app is set to refuse messages with this word (content_blocked). */
const BLOCKED_WORD = 'spoilers';

function chromiumPath(): string {
  const candidates = process.env.CAAS_CHROMIUM
    ? [process.env.CAAS_CHROMIUM]
    : ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];
  const found = candidates.find((path) => existsSync(path));
  if (!found) {
    throw new Error(
      `no Chromium found (looked at ${candidates.join(', ')}). Install Debian's: \`apt-get install -y chromium\`, ` +
        'or set CAAS_CHROMIUM to a Chromium or Chrome binary. This test never downloads a browser.',
    );
  }
  return found;
}

// ------------------------------------------------------------------------------------------ page helpers

const T = (id: string): string => `[data-testid="${id}"]`;

/** The message whose own text (not a quote of it) contains `text`. */
function message(page: Page, text: string): Locator {
  return page.locator(T('message')).filter({ has: page.locator(T('message-text'), { hasText: text }) });
}

/** A button of a message's hover toolbar (hidden, and not clickable, until the message is hovered). */
async function messageAction(page: Page, text: string, selector: string): Promise<void> {
  const target = message(page, text);
  await target.hover();
  await target.locator(selector).click();
}

function conversationItem(page: Page, title: string): Locator {
  return page.locator(`${T('conversation-item')}[data-title="${title}"]`);
}

async function waitOnline(page: Page, timeout = WAIT_MS): Promise<void> {
  await page.locator(`${T('connection-state')}[data-state="online"]`).waitFor({ timeout });
}

/** How many messages show exactly `text`, and whether every shown message id is unique. */
async function countMessages(page: Page, text: string): Promise<{ count: number; duplicateIds: string[] }> {
  return page.evaluate((wanted) => {
    const messages = [...document.querySelectorAll<HTMLElement>('[data-testid="message"]')];
    const count = messages.filter((m) => m.querySelector('[data-testid="message-text"]')?.textContent === wanted).length;
    const ids = messages.map((m) => m.dataset.messageId).filter((id): id is string => Boolean(id));
    const duplicateIds = ids.filter((id, index) => ids.indexOf(id) !== index);
    return { count, duplicateIds };
  }, text);
}

async function waitForCount(page: Page, text: string, count: number, timeout = WAIT_MS): Promise<void> {
  await page.waitForFunction(
    ([wanted, n]) =>
      [...document.querySelectorAll('[data-testid="message"]')].filter((m) => m.querySelector('[data-testid="message-text"]')?.textContent === wanted).length === n,
    [text, count] as const,
    { timeout },
  );
}

async function send(page: Page, text: string): Promise<void> {
  const input = page.locator(T('composer-input'));
  await input.fill(text);
  await input.press('Enter');
}

async function signIn(page: Page, base: string, name: string): Promise<void> {
  await page.goto(`${base}/demo`);
  await page.locator(T('signin-name')).fill(name);
  await page.locator(T('signin-submit')).click();
  await waitOnline(page);
  assert.equal(await page.locator(T('me-name')).textContent(), name);
}

/** One record of the SDK's outbox store (IndexedDB `caas-client`, store `outbox`, key `outbox:<user id>`). */
interface StoredEntry {
  key: string;
  client_msg_id: string;
  text?: string;
  state: string;
}

/**
 * What the page's IndexedDB holds in the SDK's outbox store right now. Reads only: a database that does
 * not exist yet is not opened (that would create it without the store, at the version the SDK opens).
 */
async function storedOutbox(page: Page): Promise<StoredEntry[]> {
  return page.evaluate(async () => {
    const databases = await indexedDB.databases();
    if (!databases.some((database) => database.name === 'caas-client')) return [];
    const database = await new Promise<IDBDatabase>((resolveOpen, rejectOpen) => {
      const opening = indexedDB.open('caas-client');
      opening.onsuccess = () => resolveOpen(opening.result);
      opening.onerror = () => rejectOpen(opening.error);
    });
    try {
      if (!database.objectStoreNames.contains('outbox')) return [];
      const store = database.transaction('outbox', 'readonly').objectStore('outbox');
      const read = <T,>(request: IDBRequest<T>): Promise<T> =>
        new Promise((resolveRead, rejectRead) => {
          request.onsuccess = () => resolveRead(request.result);
          request.onerror = () => rejectRead(request.error);
        });
      const [keys, values] = await Promise.all([read(store.getAllKeys()), read(store.getAll())]);
      return keys.flatMap((key, index) => {
        const entries: unknown = values[index];
        if (!Array.isArray(entries)) return [];
        return entries.map((entry: { client_msg_id: string; text?: string; state: string }) => ({
          key: String(key),
          client_msg_id: entry.client_msg_id,
          text: entry.text,
          state: entry.state,
        }));
      });
    } finally {
      database.close();
    }
  });
}

/**
 * Waits until the outbox store holds (or no longer holds) the entry `clientMsgId`. IndexedDB tells no one
 * about changes, so this reads it every 100 ms until the condition holds or `timeout` passes.
 */
async function waitForStored(page: Page, clientMsgId: string, present: boolean, timeout = WAIT_MS): Promise<StoredEntry[]> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const stored = await storedOutbox(page);
    if (stored.some((entry) => entry.client_msg_id === clientMsgId) === present) return stored;
    assert.ok(Date.now() < deadline, `the outbox store ${present ? 'never held' : 'still holds'} ${clientMsgId}: ${JSON.stringify(stored)}`);
    await page.waitForTimeout(100); // a polling interval, not a wait for correctness
  }
}

/**
 * The page's own files (`GET /demo`, `/demo/assets/*`) go through the test, which keeps the last answer
 * of each: when the server is down, a reload still gets the page — as it would from a CDN or an offline
 * cache in production, where the page is not served by the chat server — while everything the page asks
 * of the server (the token, the socket, the API) fails.
 */
async function keepPageFiles(context: BrowserContext): Promise<void> {
  const kept = new Map<string, { status: number; headers: Record<string, string>; body: Buffer }>();
  await context.route(
    (url) => url.pathname === '/demo' || url.pathname.startsWith('/demo/assets/'),
    async (route) => {
      const request = route.request();
      if (request.method() !== 'GET') return route.fallback();
      let answer: { status: number; headers: Record<string, string>; body: Buffer } | undefined;
      try {
        const response = await route.fetch();
        const headers = { ...response.headers() };
        // The body comes decoded: its length and encoding are the fulfilled response's own.
        delete headers['content-encoding'];
        delete headers['content-length'];
        answer = { status: response.status(), headers, body: await response.body() };
        if (response.ok()) kept.set(request.url(), answer);
      } catch {
        answer = kept.get(request.url()); // the server is down
      }
      if (answer) await route.fulfill(answer);
      else await route.abort('connectionrefused');
    },
  );
}

// ------------------------------------------------------------------------------------------ the test

describe('demo page in a browser', { timeout: 10 * 60_000 }, () => {
  let server: DevServer;
  let browser: Browser | undefined;
  let dataDir: string;
  let alice: Page;
  let bob: Page;
  const contexts: BrowserContext[] = [];
  const pageErrors: string[] = [];
  const consoleLines: string[] = [];
  let shotNumber = 0;
  let failed = false;

  async function shot(name: string): Promise<void> {
    shotNumber += 1;
    const prefix = String(shotNumber).padStart(2, '0');
    await Promise.all([
      alice.screenshot({ path: join(OUT_DIR, `${prefix}-${name}-alice.png`) }),
      bob.screenshot({ path: join(OUT_DIR, `${prefix}-${name}-bob.png`) }),
    ]);
  }

  /** A step of the scenario: skipped once one before it failed; on failure, screenshots and logs. */
  function step(name: string, run: () => Promise<void>): void {
    it(name, async (t) => {
      if (failed) return t.skip('an earlier step failed');
      try {
        await run();
      } catch (error) {
        failed = true;
        const slug = name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
        await Promise.allSettled([
          alice?.screenshot({ path: join(OUT_DIR, `failed-${slug}-alice.png`) }),
          bob?.screenshot({ path: join(OUT_DIR, `failed-${slug}-bob.png`) }),
        ]);
        t.diagnostic('browser console (last lines):');
        for (const line of consoleLines.slice(-40)) t.diagnostic(`  ${line}`);
        t.diagnostic('caas-dev output (last lines):');
        for (const line of (server?.log ?? '').split('\n').slice(-40)) t.diagnostic(`  ${line}`);
        throw error;
      }
    });
  }

  async function newUserPage(name: string, options: { keepPageFiles?: boolean } = {}): Promise<Page> {
    assert.ok(browser);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, locale: 'en-US', timezoneId: 'UTC' });
    context.setDefaultTimeout(WAIT_MS);
    contexts.push(context);
    if (options.keepPageFiles) {
      await keepPageFiles(context);
      // A page the test fulfilled has no server address, so Chromium counts it as public and would block
      // its socket to 127.0.0.1 (Local Network Access): the permission a user would grant, granted here.
      await context.grantPermissions(['local-network-access']);
    }
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(`${name}: ${error.message}`));
    page.on('console', (line) => consoleLines.push(`${name} ${line.type()}: ${line.text()}`));
    return page;
  }

  // Set-up is the first step rather than a hook, so a missing Chromium or dev binary is one clear failure.
  step('the dev mode starts on free ports, and the system Chromium launches', async () => {
    const executablePath = chromiumPath();
    mkdirSync(OUT_DIR, { recursive: true });
    dataDir = mkdtempSync(join(tmpdir(), 'caas-browser-'));
    const [gatewayPort, socketPort] = [await freePort(), await freePort()];
    server = new DevServer({ binary: devBinary(), dataDir, demoDir: SDK_DIR, gatewayPort, socketPort });
    await server.start();
    // The demo app refuses one word, so a send can fail (the dev mode's operator token; the demo app's
    // id is kept in the data directory).
    const appId = readFileSync(join(dataDir, 'demo-app'), 'utf8').trim().split(' ')[0];
    const settings = await fetch(`${server.url}/api/v1/admin/apps/${appId}/settings`, {
      method: 'PUT',
      headers: { authorization: 'Bearer dev-admin-token', 'content-type': 'application/json' },
      body: JSON.stringify({ content: { blocked_terms: [BLOCKED_WORD], action: 'reject' } }),
    });
    assert.equal(settings.status, 200, await settings.text());
    browser = await chromium.launch({ executablePath, headless: true });
    alice = await newUserPage('alice');
    // bob's page reloads while the server is down (the outbox step): it keeps the page's files.
    bob = await newUserPage('bob', { keepPageFiles: true });
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await server?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  step('both users sign in by name and get online', async () => {
    await signIn(alice, server.url, 'alice');
    await signIn(bob, server.url, 'bob');
    await alice.locator(T('conversation-empty')).waitFor();
    await shot('signed-in');
  });

  step('alice starts a direct conversation with bob; bob sees it under her name', async () => {
    await alice.locator(T('new-conversation')).click();
    await alice.locator(T('new-direct-name')).fill('bob');
    await alice.locator(T('new-conversation-submit')).click();
    await alice.locator(T('conversation-title')).filter({ hasText: 'bob' }).waitFor();
    await send(alice, 'Hi Bob! 👋');
    await message(alice, 'Hi Bob!').and(alice.locator('[data-state="sent"]')).waitFor();
    // bob learns alice's name from the conversation (checked against /demo/users).
    await conversationItem(bob, 'alice').waitFor();
    await conversationItem(bob, 'alice').click();
    await bob.locator(T('conversation-title')).filter({ hasText: 'alice' }).waitFor();
    const hi = message(bob, 'Hi Bob!');
    await hi.waitFor();
    assert.equal(await hi.locator(T('message-sender')).textContent(), 'alice');
    assert.equal(await hi.getAttribute('data-own'), 'false');
    assert.equal(await message(alice, 'Hi Bob!').getAttribute('data-own'), 'true');
  });

  step('bob sees alice typing, then her message', async () => {
    const input = alice.locator(T('composer-input'));
    await input.click();
    await input.pressSequentially('Are you around?', { delay: 15 });
    const typing = bob.locator(T('typing-indicator'));
    await typing.filter({ hasText: 'alice is typing…' }).waitFor();
    await shot('typing');
    await input.press('Enter');
    await message(bob, 'Are you around?').waitFor();
    await typing.waitFor({ state: 'hidden' });
  });

  step('bob answers on two lines (Shift+Enter); alice sees it from bob', async () => {
    const input = bob.locator(T('composer-input'));
    await input.click();
    await input.pressSequentially('Yes!');
    await input.press('Shift+Enter');
    await input.pressSequentially('Just finished the release notes.');
    await input.press('Enter');
    const answer = message(alice, 'Just finished the release notes.');
    await answer.waitFor();
    assert.equal(await answer.locator(T('message-text')).textContent(), 'Yes!\nJust finished the release notes.');
    assert.equal(await answer.locator(T('message-sender')).textContent(), 'bob');
  });

  step('alice starts a group; bob opens it', async () => {
    await alice.locator(T('new-conversation')).click();
    await alice.locator(T('new-kind-group')).click();
    await alice.locator(T('new-group-name')).fill('Launch crew');
    await alice.locator(T('new-group-members')).fill('bob, carol');
    await alice.locator(T('new-conversation-submit')).click();
    await alice.locator(T('conversation-title')).filter({ hasText: 'Launch crew' }).waitFor();
    assert.match((await alice.locator(T('conversation-subtitle')).textContent()) ?? '', /3 members/);
    await alice.locator(T('history-status')).filter({ hasText: 'No messages yet' }).waitFor();
    await send(alice, 'Kickoff at noon in the big room');
    await alice.locator(T('history-status')).waitFor({ state: 'hidden' });
    await conversationItem(bob, 'Launch crew').waitFor();
    await conversationItem(bob, 'Launch crew').click();
    await message(bob, 'Kickoff at noon').waitFor();
  });

  step('messages to a conversation bob does not have open show as unread, and clear when he opens it', async () => {
    // bob has the group open; alice writes in the direct conversation.
    await conversationItem(alice, 'bob').click();
    await alice.locator(T('conversation-title')).filter({ hasText: 'bob' }).waitFor();
    await send(alice, 'The new build is up 🚀');
    await send(alice, 'Can you check the upload flow?');
    const badge = conversationItem(bob, 'alice').locator(T('unread-badge'));
    await badge.filter({ hasText: /^2$/ }).waitFor();
    // And bob answers in the group, which alice does not have open.
    await send(bob, 'Sounds good, see you there');
    await conversationItem(alice, 'Launch crew').locator(T('unread-badge')).filter({ hasText: /^1$/ }).waitFor();
    await shot('unread');
    await conversationItem(bob, 'alice').click();
    await message(bob, 'Can you check the upload flow?').waitFor();
    await badge.waitFor({ state: 'detached' });
    // The read mark reached the server: with the group open again, the direct conversation stays read.
    await conversationItem(bob, 'Launch crew').click();
    await bob.locator(T('conversation-title')).filter({ hasText: 'Launch crew' }).waitFor();
    await bob.waitForFunction(() => !document.querySelector('[data-testid="conversation-item"][data-title="alice"] [data-testid="unread-badge"]'));
    await conversationItem(bob, 'alice').click();
    await message(bob, 'Can you check the upload flow?').waitFor();
  });

  step('alice uploads an image; both see its thumbnail', async () => {
    await alice.locator(T('attach-input')).setInputFiles({ name: 'sunset.png', mimeType: 'image/png', buffer: makePng(320, 200) });
    const loaded = (): boolean =>
      [...document.querySelectorAll<HTMLImageElement>('img[data-testid="message-thumbnail"]')].some((img) => img.complete && img.naturalWidth > 0);
    await alice.waitForFunction(loaded);
    await bob.waitForFunction(loaded);
    await alice.locator(T('upload-status')).waitFor({ state: 'hidden' });
    // Only the confirmed message remains (the pending one with the local preview is gone).
    assert.equal(await alice.locator(`${T('message')} img`).count(), 1);
    assert.equal(await bob.locator(`${T('message')} img`).count(), 1);
  });

  step('reactions show with counts on both sides and toggle', async () => {
    await messageAction(bob, 'Hi Bob!', `${T('react-button')}[data-emoji="👍"]`);
    const thumbs = (page: Page): Locator => message(page, 'Hi Bob!').locator(`${T('reaction')}[data-emoji="👍"]`);
    await thumbs(alice).and(alice.locator('[data-count="1"][data-mine="false"]')).waitFor();
    await thumbs(alice).click(); // alice joins in
    await thumbs(alice).and(alice.locator('[data-count="2"][data-mine="true"]')).waitFor();
    await thumbs(bob).and(bob.locator('[data-count="2"][data-mine="true"]')).waitFor();
    // A reaction added and taken back disappears on the other side too.
    const answer = (page: Page): Locator => message(page, 'Just finished the release notes.');
    await messageAction(alice, 'Just finished the release notes.', `${T('react-button')}[data-emoji="😂"]`);
    await answer(bob).locator(`${T('reaction')}[data-emoji="😂"][data-count="1"]`).waitFor();
    await answer(alice).locator(`${T('reaction')}[data-emoji="😂"]`).click();
    await answer(bob).locator(`${T('reaction')}[data-emoji="😂"]`).waitFor({ state: 'detached' });
    await messageAction(alice, 'Just finished the release notes.', `${T('react-button')}[data-emoji="🎉"]`);
    await answer(bob).locator(`${T('reaction')}[data-emoji="🎉"][data-count="1"]`).waitFor();
  });

  step('bob replies to a message; both show the quoted parent', async () => {
    await messageAction(bob, 'Can you check the upload flow?', T('reply-button'));
    await bob.locator(T('composer-context')).filter({ hasText: 'Replying to alice' }).waitFor();
    await send(bob, 'Works great, the thumbnail loaded instantly.');
    for (const page of [alice, bob]) {
      const reply = message(page, 'the thumbnail loaded instantly');
      await reply.waitFor();
      assert.equal(await reply.locator(T('message-quote-text')).textContent(), 'Can you check the upload flow?');
    }
    await bob.locator(T('composer-context')).waitFor({ state: 'hidden' });
  });

  step('a refused send shows in place with its error code, a retry and a discard', async () => {
    await send(alice, `No ${BLOCKED_WORD} please`);
    const refused = message(alice, `No ${BLOCKED_WORD} please`).and(alice.locator('[data-state="failed"]'));
    await refused.waitFor();
    assert.match((await refused.locator(T('message-error')).textContent()) ?? '', /content_blocked/);
    await shot('refused');
    await refused.locator(T('message-retry')).click();
    await refused.waitFor(); // refused again: still failed, still in place
    await refused.locator(T('message-discard')).click();
    await message(alice, `No ${BLOCKED_WORD} please`).waitFor({ state: 'detached' });
    assert.equal(await message(bob, `No ${BLOCKED_WORD} please`).count(), 0);
  });

  step('alice’s page mid-conversation is saved as demo.png', async () => {
    // Tall enough for the whole conversation; no hover toolbar showing.
    await alice.setViewportSize({ width: 1280, height: 900 });
    await alice.mouse.move(640, 20);
    await alice.locator(T('composer-input')).blur();
    await alice.evaluate(() => {
      const messages = document.querySelector('[data-testid="messages"]');
      if (messages) messages.scrollTop = messages.scrollHeight;
    });
    await alice.waitForFunction(() =>
      [...document.querySelectorAll('[data-testid="message-actions"]')].every((bar) => getComputedStyle(bar).opacity === '0'),
    );
    await alice.screenshot({ path: join(OUT_DIR, 'demo.png') });
    await alice.setViewportSize({ width: 1280, height: 800 });
    await shot('conversation');
  });

  step('alice edits and deletes her messages; bob sees both', async () => {
    await messageAction(alice, 'The new build is up', T('edit-button'));
    const input = alice.locator(T('composer-input'));
    assert.equal(await input.inputValue(), 'The new build is up 🚀');
    await input.fill('The new build (v0.2) is up 🚀');
    await input.press('Enter');
    const edited = message(bob, 'The new build (v0.2) is up');
    await edited.waitFor();
    await edited.locator(T('message-edited')).waitFor();

    const doomed = message(alice, 'Are you around?');
    const id = await doomed.getAttribute('data-message-id');
    assert.ok(id);
    const remove = doomed.locator(T('delete-button'));
    await doomed.hover();
    await remove.click();
    await remove.and(alice.locator('[data-armed="true"]')).waitFor();
    await remove.click();
    for (const page of [alice, bob]) {
      const tombstone = page.locator(`${T('message')}[data-message-id="${id}"]`);
      await tombstone.filter({ hasText: 'message deleted' }).waitFor();
    }
    await shot('edited-deleted');
  });

  step('user text never becomes HTML, and search highlights only with <mark>', async () => {
    const hostile = '<img src=x onerror="window.__pwned=1"><b>bold</b> & "quotes"';
    await send(alice, hostile);
    const shown = message(bob, 'bold');
    await shown.waitFor();
    assert.equal(await shown.locator(T('message-text')).textContent(), hostile);
    assert.equal(await shown.locator(`${T('message-text')} *`).count(), 0);
    assert.equal(await bob.evaluate(() => (window as { __pwned?: number }).__pwned), undefined);

    // New messages are searchable about a second after they are sent: search until the hit shows.
    const input = alice.locator(T('search-input'));
    await input.fill('bold');
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      await input.press('Enter');
      await alice.locator(`${T('search-results')}[data-state="done"], ${T('search-results')}[data-state="failed"]`).waitFor();
      if ((await alice.locator(T('search-hit')).count()) > 0) break;
      assert.ok(Date.now() < deadline, `no search hit for "bold": ${await alice.locator(T('search-summary')).textContent()}`);
      await alice.waitForTimeout(500); // a polling interval, not a wait for correctness
    }
    const highlight = alice.locator(T('search-hit-highlight')).first();
    assert.equal(await highlight.textContent(), hostile);
    const tags = await highlight.evaluate((node) => [...node.querySelectorAll('*')].map((child) => child.tagName));
    assert.deepEqual(tags, ['MARK']);
    assert.equal(await highlight.locator('mark').textContent(), 'bold');
    await shot('search');
    await alice.locator(T('search-hit')).first().click();
    await alice.locator(T('search-results')).waitFor({ state: 'visible' });
    await alice.locator(T('search-close')).click();
    await alice.locator(T('search-results')).waitFor({ state: 'hidden' });
  });

  step('a reload keeps bob signed in, in the same conversation, with nothing twice', async () => {
    await bob.reload();
    await waitOnline(bob);
    assert.equal(await bob.locator(T('me-name')).textContent(), 'bob');
    await bob.locator(T('conversation-title')).filter({ hasText: 'alice' }).waitFor();
    await message(bob, 'the thumbnail loaded instantly').waitFor();
    const { count, duplicateIds } = await countMessages(bob, 'Hi Bob! 👋');
    assert.equal(count, 1);
    assert.deepEqual(duplicateIds, []);
  });

  step('a long conversation loads older messages as bob scrolls up, keeping his place', async () => {
    await alice.locator(T('new-conversation')).click();
    await alice.locator(T('new-kind-group')).click();
    await alice.locator(T('new-group-name')).fill('Archive');
    await alice.locator(T('new-group-members')).fill('bob');
    await alice.locator(T('new-conversation-submit')).click();
    await alice.locator(T('conversation-title')).filter({ hasText: 'Archive' }).waitFor();
    const total = 70; // more than a page (50)
    for (let n = 1; n <= total; n += 1) await send(alice, `Archive message ${n}`);
    await message(alice, `Archive message ${total}`).and(alice.locator('[data-state="sent"]')).waitFor();

    await conversationItem(bob, 'Archive').click();
    await message(bob, `Archive message ${total}`).waitFor();
    assert.equal((await countMessages(bob, 'Archive message 1')).count, 0, 'the first page is the newest 50');
    const firstShown = await bob.locator(`${T('message')} ${T('message-text')}`).first().textContent();
    assert.ok(firstShown);
    await bob.locator(T('messages')).evaluate((box) => box.scrollTo({ top: 0 }));
    await waitForCount(bob, 'Archive message 1', 1);
    for (let n = 1; n <= total; n += 1) await waitForCount(bob, `Archive message ${n}`, 1);
    // What was at the top before stays in view (the older page went in above it).
    const inView = await bob.evaluate((text) => {
      const box = document.querySelector('[data-testid="messages"]');
      const target = [...document.querySelectorAll('[data-testid="message"]')].find((m) => m.querySelector('[data-testid="message-text"]')?.textContent === text);
      if (!box || !target) return false;
      const a = box.getBoundingClientRect();
      const b = target.getBoundingClientRect();
      return b.bottom > a.top && b.top < a.bottom;
    }, firstShown);
    assert.ok(inView, `${firstShown} scrolled out of view when older messages loaded`);
    await shot('history');
    await conversationItem(alice, 'bob').click();
    await conversationItem(bob, 'alice').click();
    await message(bob, 'the thumbnail loaded instantly').waitFor();
  });

  step('the server is killed and restarted: both pages come back online, nothing lost or doubled', async () => {
    await server.kill('SIGKILL');
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-testid="connection-state"]')?.dataset.state !== 'online');
    }
    // A message written while the server is down waits in bob's outbox.
    await send(bob, 'Sent while the server was down');
    await message(bob, 'Sent while the server was down').and(bob.locator('[data-state="pending"]')).waitFor();
    await shot('server-down');

    await server.start();
    await waitOnline(alice, RECOVERY_MS);
    await waitOnline(bob, RECOVERY_MS);
    await message(bob, 'Sent while the server was down').and(bob.locator('[data-state="sent"]')).waitFor({ timeout: RECOVERY_MS });
    await message(alice, 'Sent while the server was down').waitFor({ timeout: RECOVERY_MS });

    await send(alice, 'Back online?');
    await message(bob, 'Back online?').waitFor();
    await message(alice, 'Back online?').and(alice.locator('[data-state="sent"]')).waitFor();
    for (const page of [alice, bob]) {
      for (const text of ['Sent while the server was down', 'Back online?', 'Hi Bob! 👋', 'Works great, the thumbnail loaded instantly.']) {
        await waitForCount(page, text, 1);
        const { count, duplicateIds } = await countMessages(page, text);
        assert.equal(count, 1, `${text} shows ${count} times`);
        assert.deepEqual(duplicateIds, []);
      }
      // The image is still there after the restart.
      await page.waitForFunction(() =>
        [...document.querySelectorAll<HTMLImageElement>('img[data-testid="message-thumbnail"]')].some((img) => img.complete && img.naturalWidth > 0),
      );
    }
    await shot('after-restart');
  });

  step('an unsent message survives a reload while the server is down (IndexedDB) and is delivered once', async () => {
    const text = 'Written offline, kept across a reload';
    await server.kill('SIGKILL');
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => document.querySelector<HTMLElement>('[data-testid="connection-state"]')?.dataset.state !== 'online');
    }
    await send(bob, text);
    const pending = message(bob, text).and(bob.locator('[data-state="pending"]'));
    await pending.waitFor();
    const clientMsgId = await pending.getAttribute('data-client-msg-id');
    assert.ok(clientMsgId);
    // The SDK saved it in IndexedDB, under bob's key, as pending.
    const saved = (await waitForStored(bob, clientMsgId, true)).filter((entry) => entry.client_msg_id === clientMsgId);
    assert.equal(saved.length, 1, JSON.stringify(saved));
    assert.equal(saved[0]?.text, text);
    assert.equal(saved[0]?.state, 'pending');
    assert.match(saved[0]?.key ?? '', /^outbox:/);
    await shot('outbox-offline');

    // The reload ends the page and its in-memory outbox; the server is still down, so only IndexedDB has it.
    await bob.reload();
    await bob.locator(T('me-name')).filter({ hasText: /^bob$/ }).waitFor();
    const restored = message(bob, text).and(bob.locator('[data-state="pending"]'));
    await restored.waitFor();
    assert.equal(await restored.getAttribute('data-client-msg-id'), clientMsgId);
    assert.notEqual(await bob.locator(T('connection-state')).getAttribute('data-state'), 'online');
    assert.equal((await countMessages(bob, text)).count, 1);
    assert.equal((await storedOutbox(bob)).filter((entry) => entry.client_msg_id === clientMsgId).length, 1);
    await shot('outbox-reloaded-offline');

    // Back on the same ports and data: the restored entry goes out, once.
    await server.start();
    await waitOnline(alice, RECOVERY_MS);
    await waitOnline(bob, RECOVERY_MS);
    const sent = message(bob, text).and(bob.locator('[data-state="sent"]'));
    await sent.waitFor({ timeout: RECOVERY_MS });
    const received = message(alice, text);
    await received.waitFor({ timeout: RECOVERY_MS });
    const messageId = await sent.getAttribute('data-message-id');
    assert.ok(messageId);
    assert.equal(await received.getAttribute('data-message-id'), messageId);
    assert.equal(await received.getAttribute('data-client-msg-id'), clientMsgId);
    assert.equal(await sent.getAttribute('data-client-msg-id'), clientMsgId);
    // Delivered: the entry left the outbox, and so the store.
    await waitForStored(bob, clientMsgId, false);
    // A message sent after it arrives after it, and nothing shows twice.
    await send(alice, 'Got the one from the reload');
    await message(bob, 'Got the one from the reload').waitFor();
    for (const page of [alice, bob]) {
      for (const shown of [text, 'Sent while the server was down', 'Hi Bob! 👋']) {
        await waitForCount(page, shown, 1);
        const { count, duplicateIds } = await countMessages(page, shown);
        assert.equal(count, 1, `${shown} shows ${count} times`);
        assert.deepEqual(duplicateIds, []);
      }
      assert.equal(await page.locator(`${T('message')}[data-client-msg-id="${clientMsgId}"]`).count(), 1);
      assert.equal(await page.locator(`${T('message')}[data-state="pending"]`).count(), 0);
    }
    await shot('outbox-delivered');
  });

  step('switching user: bob’s tab signs in as carol, who finds the group with its unread count', async () => {
    await bob.locator(T('switch-user')).click();
    await bob.locator(T('signin-screen')).waitFor();
    assert.equal(await bob.locator(T('signin-name')).inputValue(), '');
    await bob.locator(T('signin-name')).fill('carol');
    await bob.locator(T('signin-submit')).click();
    await waitOnline(bob);
    assert.equal(await bob.locator(T('me-name')).textContent(), 'carol');
    await conversationItem(bob, 'Launch crew').locator(T('unread-badge')).filter({ hasText: /^2$/ }).waitFor();
    assert.equal(await bob.locator(T('conversation-item')).count(), 1);
    await conversationItem(bob, 'Launch crew').click();
    const reply = message(bob, 'Sounds good, see you there');
    await reply.waitFor();
    assert.equal(await reply.locator(T('message-sender')).textContent(), 'bob');
    await conversationItem(bob, 'Launch crew').locator(T('unread-badge')).waitFor({ state: 'detached' });
    await shot('carol');
  });

  step('no uncaught errors in either page', async () => {
    assert.deepEqual(pageErrors, []);
  });
});
