/**
 * Keeps the SDK's wire types (src/protocol.ts, model.ts, api-types.ts) from drifting from what the
 * server really sends. `npm run test:protocol`:
 *
 * 1. starts the dev mode (`caas-dev`, in memory, on free loopback ports; `CAAS_DEV_BIN`, else
 *    `$CARGO_TARGET_DIR` or `~/.cache/caas/target`, + `/debug/caas-dev`) and stops it at the end;
 * 2. drives a fixed scenario (scenario.ts) on raw WebSockets and the HTTP API that makes the server
 *    reply to every client event and send every server event it can without a fault, recording the
 *    `data` of each reply, event, error body and HTTP body the SDK reads;
 * 3. writes them as object literals to generated/samples.ts (gitignored), each `satisfies` the SDK's
 *    type: a field the SDK does not declare, a missing required one, a wrong type, an unknown event
 *    type or a client event without a recorded reply are compile errors;
 * 4. runs `tsc --noEmit -p test-protocol/tsconfig.samples.json` and fails with its errors.
 *
 * It also lists the server event types seen against the keys of `ServerEvents`: one the SDK declares
 * that never showed up fails unless allow-list.ts names it with a reason.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { UNPROVOKED_EVENTS } from './allow-list.js';
import { writeSamples } from './generate.js';
import { Recorder } from './recorder.js';
import { runScenario } from './scenario.js';
import { DevServer } from './server.js';

const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SAMPLES = join(SDK_DIR, 'test-protocol', 'generated', 'samples.ts');
const SAMPLES_TSCONFIG = join(SDK_DIR, 'test-protocol', 'tsconfig.samples.json');
const PROTOCOL = join(SDK_DIR, 'src', 'protocol.ts');

/** The property names of the interfaces `names` exported by src/protocol.ts, read by the compiler. */
function interfaceKeys(...names: string[]): Map<string, string[]> {
  const program = ts.createProgram([PROTOCOL], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(PROTOCOL);
  const module = source && checker.getSymbolAtLocation(source);
  if (!module) throw new Error(`cannot read ${PROTOCOL}`);
  const exports = checker.getExportsOfModule(module);
  const keys = new Map<string, string[]>();
  for (const name of names) {
    const symbol = exports.find((candidate) => candidate.name === name);
    if (!symbol) throw new Error(`${PROTOCOL} exports no ${name}`);
    keys.set(name, checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol)).map((property) => property.name));
  }
  return keys;
}

const server = new DevServer();
const recorder = new Recorder();
const declared = interfaceKeys('ClientEvents', 'ServerEvents');
const clientEvents = declared.get('ClientEvents') ?? [];
const serverEvents = declared.get('ServerEvents') ?? [];

before(async () => {
  await server.start();
});

after(async () => {
  await server.stop();
});

test('the scenario runs against caas-dev', { timeout: 120_000 }, async (t) => {
  try {
    await runScenario(server, recorder, (line) => t.diagnostic(line));
  } catch (error) {
    t.diagnostic(`caas-dev output (last lines):\n${server.log.split('\n').slice(-30).join('\n')}`);
    throw error;
  }
});

test('generated/samples.ts is written from the recording', () => {
  writeSamples(SAMPLES, recorder, Object.keys(UNPROVOKED_EVENTS), 'caas-dev');
});

test('every client event of ClientEvents got a successful reply', (t) => {
  const missing = clientEvents.filter((type) => !recorder.replies.has(type));
  t.diagnostic(`client events: ${clientEvents.length - missing.length} of ${clientEvents.length} replied`);
  const extra = recorder.replies.keys().filter((type) => !clientEvents.includes(type));
  if (extra.length > 0) t.diagnostic(`replies to requests the SDK does not declare: ${extra.join(', ')}`);
  if (missing.length > 0) throw new Error(`no successful reply recorded for: ${missing.join(', ')}`);
});

test('every server event of ServerEvents was recorded or is allow-listed', (t) => {
  const seen = serverEvents.filter((type) => recorder.events.has(type));
  const allowed = serverEvents.filter((type) => !recorder.events.has(type) && type in UNPROVOKED_EVENTS);
  const missing = serverEvents.filter((type) => !recorder.events.has(type) && !(type in UNPROVOKED_EVENTS));
  t.diagnostic(`server events: ${seen.length} of ${serverEvents.length} recorded: ${seen.map((type) => `${type}×${recorder.eventCounts.get(type)}`).join(', ')}`);
  for (const type of allowed) t.diagnostic(`allow-listed, not recorded: ${type} (${UNPROVOKED_EVENTS[type]})`);
  const stale = Object.keys(UNPROVOKED_EVENTS).filter((type) => recorder.events.has(type) || !serverEvents.includes(type));
  if (stale.length > 0) t.diagnostic(`allow-list entries no longer needed: ${stale.join(', ')}`);
  if (missing.length > 0) throw new Error(`declared by the SDK but never sent in the scenario (and not allow-listed): ${missing.join(', ')}`);
});

test('no server event type the SDK does not declare', () => {
  const unknown = recorder.events.keys().filter((type) => !serverEvents.includes(type));
  if (unknown.length > 0) throw new Error(`the server sent event types ServerEvents lacks: ${unknown.join(', ')}`);
});

test('the recorded samples type-check against the SDK (tsc)', { timeout: 120_000 }, () => {
  const tsc = join(SDK_DIR, 'node_modules', '.bin', 'tsc');
  const result = spawnSync(tsc, ['--noEmit', '--pretty', 'false', '-p', SAMPLES_TSCONFIG], { cwd: SDK_DIR, encoding: 'utf8' });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`tsc refused generated/samples.ts (the SDK's types and the server disagree):\n${output}`);
  }
});
