/**
 * The SDK against the real platform, run by tests/tests/sdk_client.rs (`node dist/test-integration/burst.js`).
 * The script plays the app (and its backend, for tokens); the harness owns the platform and kills nodes
 * when asked. Only what an app could do is used: the SDK's public API, and the network between the
 * client and the nodes, which runs through a TCP relay here so that it can be cut.
 *
 * Phase A: a writer sends a burst of messages to a group; the reader's socket is cut once on the
 * network and once by killing the node it is on. The reader's message list must end complete, in seq
 * order, each message once.
 * Phase B: another user's own burst is interrupted the same ways; every send must end stored once.
 *
 * Environment: CAAS_API_URL (the gateway), CAAS_APP_ID, CAAS_APP_SECRET, CAAS_SOCKET_URLS (the nodes,
 * comma-separated), CAAS_MESSAGES (default 300); CAAS_KILL_NODES=0 cuts the relay instead of asking for
 * a node kill (for runs without the harness, e.g. against caas-dev).
 *
 * stdout, one line each: `{"kill_node":"<node url>"}` asks the harness to kill that node and start it
 * again (it answers with a line on stdin); `{"result":{…}}` ends the scenario; other lines are progress.
 * Exit 0 only if the scenario's own checks pass (why not goes to stderr).
 */
import net from 'node:net';
import { createInterface, type Interface } from 'node:readline';
import { WebSocket } from 'ws';
import { CaasError, connect, whenOnline, type CaasClient, type ConversationHandle, type OutboxEntry, type TokenResponse } from '../src/index.js';

// ------------------------------------------------------------------ configuration

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value.trim() === '') throw new Error(`${name} is not set`);
  return value.trim();
}

const API_URL = required('CAAS_API_URL').replace(/\/+$/, '').replace(/\/api\/v1$/, '');
const APP_ID = required('CAAS_APP_ID');
const APP_SECRET = required('CAAS_APP_SECRET');
const NODE_URLS = required('CAAS_SOCKET_URLS')
  .split(',')
  .map((url) => url.trim())
  .filter((url) => url.length > 0);
const MESSAGES = Number(process.env.CAAS_MESSAGES ?? '300');
const KILL_NODES = process.env.CAAS_KILL_NODES !== '0';
/** How long each phase may take from the first send to everything settled. */
const PHASE_DEADLINE_MS = 90_000;
/** After the last `persisted` ack, how long acks missing below it are still waited for before they count as lost. */
const ACK_GRACE_MS = 2_000;
/** The harness kills, waits 300 ms and starts the node again; answering takes far less than this. */
const KILL_ANSWER_MS = 60_000;
/** Faults are injected once this share of the burst has arrived (reader) or been accepted (sender). */
const CUT_AT = Math.max(1, Math.round(MESSAGES * 0.2));
const KILL_AT = Math.max(CUT_AT + 1, Math.round(MESSAGES * 0.6));

if (!Number.isInteger(MESSAGES) || MESSAGES < 3) throw new Error(`CAAS_MESSAGES must be an integer ≥ 3, not ${process.env.CAAS_MESSAGES}`);

// ------------------------------------------------------------------ small helpers

function progress(line: string): void {
  process.stdout.write(`${line}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds; false if `deadlineAt` passes first. */
async function waitUntil(condition: () => boolean, deadlineAt: number, intervalMs = 20): Promise<boolean> {
  while (!condition()) {
    if (Date.now() >= deadlineAt) return false;
    await sleep(intervalMs);
  }
  return true;
}

async function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function label(prefix: string, index: number): string {
  return `${prefix}-${String(index).padStart(Math.max(3, String(MESSAGES).length), '0')}`;
}

// ------------------------------------------------------------------ the harness's side channel

/** Lines the harness writes on stdin (answers to `kill_node`); read only once a kill is asked for. */
class Harness {
  private reader: Interface | undefined;
  private readonly lines: string[] = [];
  private readonly waiting: Array<(line: string | undefined) => void> = [];
  private closed = false;
  kills = 0;

  /** Asks the harness to kill `nodeUrl` (and start it again); resolves with its answer. */
  async killNode(nodeUrl: string): Promise<string> {
    process.stdout.write(`${JSON.stringify({ kill_node: nodeUrl })}\n`);
    const answer = await withTimeout(this.nextLine(), KILL_ANSWER_MS, `kill_node ${nodeUrl}`);
    if (answer === undefined) throw new Error(`stdin closed before the harness answered kill_node ${nodeUrl}`);
    this.kills += 1;
    return answer;
  }

  close(): void {
    this.reader?.close();
    if (this.reader) process.stdin.destroy();
  }

  private nextLine(): Promise<string | undefined> {
    this.listen();
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private listen(): void {
    if (this.reader) return;
    this.reader = createInterface({ input: process.stdin });
    this.reader.on('line', (line) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(line);
      else this.lines.push(line);
    });
    this.reader.on('close', () => {
      this.closed = true;
      for (const waiter of this.waiting.splice(0)) waiter(undefined);
    });
  }
}

// ------------------------------------------------------------------ the network between client and nodes

interface Pair {
  downstream: net.Socket;
  upstream: net.Socket;
  /** The real node this pair forwards to. */
  node: string;
  openedAt: number;
  /** The TCP connection to the node is up (so the client may be talking to it). */
  connected: boolean;
  closed: boolean;
  close: () => void;
}

/** A TCP relay in front of one node: the client's ws URL points here, and cutting it is a network drop. */
class Relay {
  private readonly server = net.createServer((socket) => this.accept(socket));
  readonly pairs = new Set<Pair>();
  url = '';

  constructor(readonly node: string) {}

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = this.server.address();
    if (address === null || typeof address === 'string') throw new Error('the relay has no TCP port');
    const target = new URL(this.node);
    this.url = `${target.protocol}//127.0.0.1:${address.port}${target.pathname}${target.search}`;
  }

  /** Destroys every connection through the relay; returns how many were connected to the node. */
  cut(): number {
    let live = 0;
    for (const pair of [...this.pairs]) {
      if (pair.connected && !pair.closed) live += 1;
      pair.close();
    }
    return live;
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(downstream: net.Socket): void {
    const target = new URL(this.node);
    const port = Number(target.port || (target.protocol === 'wss:' ? 443 : 80));
    const upstream = net.connect({ host: target.hostname, port });
    const pair: Pair = {
      downstream,
      upstream,
      node: this.node,
      openedAt: Date.now(),
      connected: false,
      closed: false,
      close: () => {
        if (pair.closed) return;
        pair.closed = true;
        this.pairs.delete(pair);
        downstream.destroy();
        upstream.destroy();
      },
    };
    this.pairs.add(pair);
    downstream.setNoDelay(true);
    upstream.setNoDelay(true);
    upstream.on('connect', () => {
      pair.connected = true;
    });
    // Either side ending, failing or closing takes the other down with it, as a broken network would.
    for (const socket of [downstream, upstream]) {
      socket.on('error', () => pair.close());
      socket.on('close', () => pair.close());
      socket.on('end', () => pair.close());
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  }
}

/** One client's relays, one per node, so the SDK's rotation across `socket_urls` works as without them. */
class Relays {
  cuts = 0;

  private constructor(
    readonly name: string,
    private readonly relays: Relay[],
  ) {}

  static async open(name: string, nodes: readonly string[]): Promise<Relays> {
    const relays = nodes.map((node) => new Relay(node));
    await Promise.all(relays.map((relay) => relay.listen()));
    return new Relays(name, relays);
  }

  /** The URLs the SDK is given instead of the nodes'. */
  get urls(): string[] {
    return this.relays.map((relay) => relay.url);
  }

  /** The connection the client has now: the newest one through to a node. */
  current(): Pair | undefined {
    let newest: Pair | undefined;
    for (const relay of this.relays) {
      for (const pair of relay.pairs) {
        if (pair.connected && !pair.closed && (!newest || pair.openedAt > newest.openedAt)) newest = pair;
      }
    }
    return newest;
  }

  /** Drops the client's connections like a network failure; counted when one was live. */
  cut(): boolean {
    const live = this.relays.reduce((sum, relay) => sum + relay.cut(), 0);
    if (live > 0) this.cuts += 1;
    return live > 0;
  }

  async close(): Promise<void> {
    await Promise.all(this.relays.map((relay) => relay.close()));
  }
}

// ------------------------------------------------------------------ the app backend and its clients

/** What the app's backend does: trade the app credentials for a user's token. */
async function issueToken(userExternalId: string): Promise<TokenResponse> {
  const response = await fetch(`${API_URL}/api/v1/auth/sdk/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ app_id: APP_ID, app_secret: APP_SECRET, user_external_id: userExternalId }),
  });
  if (!response.ok) throw new Error(`token for ${userExternalId}: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()) as TokenResponse;
}

interface App {
  name: string;
  client: CaasClient;
  relays: Relays | undefined;
  errors: string[];
  gapsSkipped: number;
}

/** A user's client; with relays, every socket it opens goes through them (they replace `socket_urls`). */
function startClient(name: string, relays: Relays | undefined): App {
  const tokenProvider = async (): Promise<TokenResponse> => {
    const token = await issueToken(name);
    return relays ? { ...token, socket_urls: relays.urls } : token;
  };
  const client = connect({
    tokenProvider,
    apiUrl: API_URL,
    WebSocket,
    // Also covers tokens renewed through /auth/refresh, which name the nodes themselves.
    ...(relays ? { socketUrls: relays.urls } : {}),
  });
  const app: App = { name, client, relays, errors: [], gapsSkipped: 0 };
  client.on('error', (error) => {
    app.errors.push(error.message);
    if (app.errors.length <= 3) progress(`${name}: background error: ${error.message}`);
  });
  client.on('gap_skipped', (gap) => {
    app.gapsSkipped += 1;
    progress(`${name}: gap skipped ${gap.from}..${gap.through}`);
  });
  client.on('session_ended', (ended) => progress(`${name}: session ended (${ended.code})`));
  return app;
}

async function online(app: App, ms = 30_000): Promise<void> {
  await withTimeout(whenOnline(app.client), ms, `${app.name} online`);
}

/**
 * A request the app makes once the client is online, made again if the connection drops under it (the
 * previous phase may have killed this client's node: it is reconnecting). Creating a conversation
 * twice is harmless here (a direct one is unique per pair; a group made twice is just unused).
 */
async function whenConnected<T>(app: App, what: string, work: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    await online(app);
    try {
      return await work();
    } catch (error) {
      const code = error instanceof CaasError ? error.code : undefined;
      if (attempt >= 5 || (code !== 'disconnected' && code !== 'closed' && code !== 'timeout')) throw error;
      progress(`${app.name}: ${what} interrupted (${code}), again`);
    }
  }
}

/**
 * Severs the client's connection: through its relay, or (`kill`) by having the harness kill the node it
 * is connected to. Waits until the client is connected (and caught up) first, so there is something to
 * sever. Returns whether a live connection was severed.
 */
async function sever(app: App, harness: Harness, kill: boolean, context: () => string): Promise<boolean> {
  const relays = app.relays;
  if (!relays) throw new Error(`${app.name} has no relay`);
  const connected = await waitUntil(() => app.client.state === 'online' && relays.current() !== undefined, Date.now() + 30_000);
  if (!connected) throw new Error(`${app.name} did not come back online within 30 s to be cut again`);
  const when = context();
  if (!kill || !KILL_NODES) {
    const cut = relays.cut();
    progress(`${app.name}: socket cut${kill ? ' (instead of a node kill)' : ''} ${when}`);
    return cut;
  }
  const pair = relays.current();
  if (!pair) return false;
  const answer = await harness.killNode(pair.node);
  // The node's death closes the connection through the relay; the harness has restarted it by now.
  const dropped = await waitUntil(() => pair.closed, Date.now() + 5_000);
  progress(`${app.name}: ${answer}${dropped ? '' : ' (but its connection stayed up)'} ${when}`);
  if (dropped) relays.cuts += 1;
  return dropped;
}

// ------------------------------------------------------------------ sends

interface SendTally {
  persisted: number;
  /**
   * Accepted (Kafka has them), below a message whose `persisted` ack did come, but never acked
   * themselves: their ack went to a connection that was gone by then (see `SendTracker.settle`).
   */
  acks_lost: number;
  /** The seqs of those (the first 20): messages accepted just before a cut. */
  acks_lost_seqs: number[];
  failed: number;
  /** Not even accepted when the phase ended. */
  unsent: number;
  /** Whether everything settled before the deadline (else acks still missing are counted as lost anyway). */
  settled: boolean;
  failures: string[];
}

/** Follows a set of sends through the outbox (`send` events); register before sending. */
class SendTracker {
  private readonly states = new Map<string, OutboxEntry>();
  private readonly ids = new Set<string>();
  private highestPersistedSeq = 0;
  private lastPersistedAt = 0;
  acceptedCount = 0;

  constructor(client: CaasClient) {
    client.on('send', (entry) => {
      if (!this.ids.has(entry.client_msg_id)) return;
      const before = this.states.get(entry.client_msg_id)?.state;
      const reached = entry.state === 'accepted' || entry.state === 'persisted';
      if (reached && before !== 'accepted' && before !== 'persisted') this.acceptedCount += 1;
      if (entry.state === 'persisted') {
        this.lastPersistedAt = Date.now();
        this.highestPersistedSeq = Math.max(this.highestPersistedSeq, entry.seq ?? 0);
      }
      this.states.set(entry.client_msg_id, entry);
    });
  }

  add(entry: OutboxEntry): void {
    this.ids.add(entry.client_msg_id);
    if (!this.states.has(entry.client_msg_id)) this.states.set(entry.client_msg_id, entry);
  }

  private inState(state: OutboxEntry['state']): OutboxEntry[] {
    return [...this.states.values()].filter((entry) => entry.state === state);
  }

  /**
   * Waits until every send is persisted (or failed). A `persisted` ack goes only to the sender's
   * connections open when it is sent, so one sent while the socket was cut never arrives (and a resend
   * is answered `accepted`, duplicate, without a new ack). Acks of one conversation come in seq order,
   * so an accepted send below one whose ack did come (and a couple of seconds of grace) had its ack
   * lost: it is counted, not waited for. Persistence that is merely slow is waited for.
   */
  async settle(deadlineAt: number): Promise<SendTally> {
    const settled = await waitUntil(
      () => {
        if (this.inState('pending').length > 0) return false;
        const accepted = this.inState('accepted');
        if (accepted.length === 0) return true;
        const newestAccepted = Math.max(...accepted.map((entry) => entry.seq ?? 0));
        return this.highestPersistedSeq > newestAccepted && Date.now() - this.lastPersistedAt >= ACK_GRACE_MS;
      },
      deadlineAt,
      50,
    );
    const failed = this.inState('failed');
    const lost = this.inState('accepted');
    return {
      persisted: this.inState('persisted').length,
      acks_lost: lost.length,
      acks_lost_seqs: lost
        .map((entry) => entry.seq ?? 0)
        .sort((a, b) => a - b)
        .slice(0, 20),
      failed: failed.length,
      unsent: this.inState('pending').length,
      settled,
      failures: failed.slice(0, 5).map((entry) => `${entry.client_msg_id}: ${entry.error?.code ?? '?'} ${entry.error?.message ?? ''}`),
    };
  }
}

/** Sends `count` messages at once through the handle's outbox; their texts are `prefix-001`…. */
function burst(room: ConversationHandle, tracker: SendTracker, prefix: string, count: number): string[] {
  const texts: string[] = [];
  for (let i = 1; i <= count; i += 1) {
    const text = label(prefix, i);
    texts.push(text);
    tracker.add(room.send(text));
  }
  return texts;
}

// ------------------------------------------------------------------ the phases

interface ReaderResult {
  conversation_id: string;
  seqs: number[];
  texts_missing: number;
  duplicates: number;
  socket_cuts: number;
  gaps_skipped: number;
  writer: SendTally;
}

/** Phase A: the reader's list stays complete while its socket is cut and its node killed mid-burst. */
async function phaseReader(harness: Harness, writer: App, reader: App): Promise<ReaderResult> {
  const readerId = reader.client.userId;
  if (!readerId) throw new Error('the reader has no user id');
  const conversation = await whenConnected(writer, 'creating the group', () =>
    writer.client.createConversation({ kind: 'group', member_ids: [readerId], name: 'burst' }),
  );
  const conversationId = conversation.id;
  const writerRoom = writer.client.open(conversationId);
  const readerRoom = reader.client.open(conversationId);
  await Promise.all([
    whenConnected(writer, 'opening the group', () => withTimeout(writerRoom.synced(), 30_000, 'writer opening the group')),
    whenConnected(reader, 'opening the group', () => withTimeout(readerRoom.synced(), 30_000, 'reader opening the group')),
  ]);
  progress(`A: group ${conversationId}; ${MESSAGES} messages from the writer, the reader cut at ${CUT_AT} and killed at ${KILL_AT}`);

  let received = 0;
  readerRoom.onChange(() => {
    received = readerRoom.messages().length;
  });
  const tracker = new SendTracker(writer.client);
  const deadlineAt = Date.now() + PHASE_DEADLINE_MS;
  const texts = burst(writerRoom, tracker, 'm', MESSAGES);

  const when = (): string => `(the reader had ${received}, the writer ${tracker.acceptedCount} accepted)`;
  if (!(await waitUntil(() => received >= CUT_AT, deadlineAt))) throw new Error(`the reader never got ${CUT_AT} messages`);
  await sever(reader, harness, false, when);
  if (!(await waitUntil(() => received >= KILL_AT, deadlineAt))) throw new Error(`the reader never got ${KILL_AT} messages`);
  await sever(reader, harness, true, when);

  const expected = new Set(texts);
  const complete = (): boolean => {
    const messages = readerRoom.messages();
    return messages.length >= MESSAGES && messages.filter((message) => expected.has(message.text)).length >= MESSAGES;
  };
  const [writerTally, readerComplete] = await Promise.all([tracker.settle(deadlineAt), waitUntil(complete, deadlineAt, 50)]);
  const messages = readerRoom.messages();
  const seen = new Map<string, number>();
  for (const message of messages) seen.set(message.text, (seen.get(message.text) ?? 0) + 1);
  const result: ReaderResult = {
    conversation_id: conversationId,
    seqs: messages.map((message) => message.seq),
    texts_missing: texts.filter((text) => !seen.has(text)).length,
    duplicates: [...seen.values()].reduce((sum, n) => sum + n - 1, 0),
    socket_cuts: reader.relays?.cuts ?? 0,
    gaps_skipped: reader.gapsSkipped,
    writer: writerTally,
  };
  progress(
    `A: reader holds ${messages.length} messages${readerComplete ? '' : ' (deadline passed)'}; writer: ${writerTally.persisted} persisted, ${writerTally.acks_lost} acks lost, ${writerTally.failed} failed, ${writerTally.unsent} unsent`,
  );
  writerRoom.close();
  readerRoom.close();
  return result;
}

interface SenderResult extends SendTally {
  conversation_id: string;
  socket_cuts: number;
  /** What the server's history holds of the conversation afterwards: messages, distinct client_msg_ids, texts of the burst missing. */
  stored: { messages: number; client_msg_ids: number; texts_missing: number };
}

/** Every message of a conversation, read forward through `conversation.history`. */
async function readAll(app: App, conversationId: string): Promise<Array<{ seq: number; text: string; client_msg_id: string }>> {
  const messages: Array<{ seq: number; text: string; client_msg_id: string }> = [];
  let after = 0;
  for (let page = 0; page < 100; page += 1) {
    const reply = await whenConnected(app, 'reading history', () => app.client.history({ conversation_id: conversationId, after_seq: after, limit: 200 }));
    messages.push(...reply.messages);
    const last = reply.messages.at(-1);
    if (!reply.has_more || !last) break;
    after = last.seq;
  }
  return messages;
}

/** Phase B: the sender's own burst, interrupted by a cut and a node kill, ends with every send stored once. */
async function phaseSender(harness: Harness, sender: App, reader: App): Promise<SenderResult> {
  const readerId = reader.client.userId;
  if (!readerId) throw new Error('the reader has no user id');
  const conversation = await whenConnected(sender, 'creating the conversation', () =>
    sender.client.createConversation({ kind: 'direct', member_ids: [readerId] }),
  );
  const conversationId = conversation.id;
  const room = sender.client.open(conversationId);
  await whenConnected(sender, 'opening the conversation', () => withTimeout(room.synced(), 30_000, 'opening the conversation'));
  progress(`B: direct ${conversationId}; ${MESSAGES} messages from sender2, cut at ${CUT_AT} accepted and killed at ${KILL_AT}`);

  const tracker = new SendTracker(sender.client);
  const deadlineAt = Date.now() + PHASE_DEADLINE_MS;
  const texts = burst(room, tracker, 's', MESSAGES);
  const when = (): string => `(${tracker.acceptedCount} accepted)`;

  if (!(await waitUntil(() => tracker.acceptedCount >= CUT_AT, deadlineAt))) throw new Error(`sender2 never had ${CUT_AT} sends accepted`);
  await sever(sender, harness, false, when);
  if (!(await waitUntil(() => tracker.acceptedCount >= KILL_AT, deadlineAt))) throw new Error(`sender2 never had ${KILL_AT} sends accepted`);
  await sever(sender, harness, true, when);

  const tally = await tracker.settle(deadlineAt);
  const history = await readAll(sender, conversationId);
  const storedTexts = new Set(history.map((message) => message.text));
  const stored = {
    messages: history.length,
    client_msg_ids: new Set(history.map((message) => message.client_msg_id)).size,
    texts_missing: texts.filter((text) => !storedTexts.has(text)).length,
  };
  progress(
    `B: ${tally.persisted} persisted, ${tally.acks_lost} acks lost, ${tally.failed} failed, ${tally.unsent} unsent; history holds ${stored.messages} messages, ${stored.client_msg_ids} client_msg_ids`,
  );
  room.close();
  return { conversation_id: conversationId, socket_cuts: sender.relays?.cuts ?? 0, ...tally, stored };
}

// ------------------------------------------------------------------ checks and main

function check(reader: ReaderResult, sender: SenderResult, kills: number): string[] {
  const problems: string[] = [];
  const seqs = reader.seqs;
  if (seqs.length !== MESSAGES) problems.push(`the reader holds ${seqs.length} messages, not ${MESSAGES}`);
  for (let i = 1; i < seqs.length; i += 1) {
    if ((seqs[i] ?? 0) <= (seqs[i - 1] ?? 0)) {
      problems.push(`the reader's seqs are not strictly increasing at index ${i}: ${seqs[i - 1]}, ${seqs[i]}`);
      break;
    }
  }
  if (reader.texts_missing !== 0) problems.push(`the reader misses ${reader.texts_missing} of the burst's texts`);
  if (reader.duplicates !== 0) problems.push(`the reader holds ${reader.duplicates} duplicate texts`);
  if (reader.socket_cuts < 2) problems.push(`the reader's socket was cut ${reader.socket_cuts} times, not 2`);
  if (reader.writer.failed !== 0 || reader.writer.unsent !== 0 || !reader.writer.settled) problems.push(`the writer's sends did not all end persisted: ${JSON.stringify(reader.writer)}`);
  if (sender.socket_cuts < 2) problems.push(`sender2's socket was cut ${sender.socket_cuts} times, not 2`);
  if (sender.failed !== 0) problems.push(`${sender.failed} of sender2's sends failed: ${sender.failures.join('; ')}`);
  if (sender.unsent !== 0) problems.push(`${sender.unsent} of sender2's sends were never accepted`);
  if (!sender.settled) problems.push(`sender2's sends had not settled within ${PHASE_DEADLINE_MS} ms (${sender.acks_lost} accepted without a persisted ack)`);
  const stored = sender.stored;
  if (stored.messages !== MESSAGES || stored.client_msg_ids !== MESSAGES || stored.texts_missing !== 0) {
    problems.push(`sender2's conversation holds ${stored.messages} messages (${stored.client_msg_ids} client_msg_ids, ${stored.texts_missing} texts missing), not ${MESSAGES} once each`);
  }
  if (KILL_NODES && kills < 2) problems.push(`only ${kills} node kills were asked for`);
  return problems;
}

async function main(): Promise<number> {
  const harness = new Harness();
  progress(`sdk burst: ${MESSAGES} messages, nodes ${NODE_URLS.join(' ')}${KILL_NODES ? '' : ', node kills replaced by cuts'}`);
  const readerRelays = await Relays.open('reader', NODE_URLS);
  const senderRelays = await Relays.open('sender2', NODE_URLS);
  const writer = startClient('writer', undefined);
  const reader = startClient('reader', readerRelays);
  const sender = startClient('sender2', senderRelays);
  const apps = [writer, reader, sender];
  try {
    await Promise.all(apps.map((app) => online(app)));
    const readerResult = await phaseReader(harness, writer, reader);
    const senderResult = await phaseSender(harness, sender, reader);
    const { writer: writerTally, ...readerFields } = readerResult;
    const result = {
      reader: readerFields,
      writer: writerTally,
      sender: senderResult,
      node_kills: harness.kills,
      background_errors: Object.fromEntries(apps.map((app) => [app.name, app.errors.length])),
    };
    const problems = check(readerResult, senderResult, harness.kills);
    for (const app of apps) app.client.close();
    await Promise.all([readerRelays.close(), senderRelays.close()]);
    harness.close();
    await new Promise<void>((resolve) => process.stdout.write(`${JSON.stringify({ result })}\n`, () => resolve()));
    for (const problem of problems) process.stderr.write(`sdk burst: ${problem}\n`);
    return problems.length === 0 ? 0 : 1;
  } finally {
    for (const app of apps) app.client.close();
    harness.close();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`sdk burst failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
