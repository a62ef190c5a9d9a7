// Drives the real socket.io-client 4.x against socket nodes for the Socket.IO-compatibility tests
// (tests/tests/socketio_client.rs). Usage: node client.cjs <scenario> '<json config>'. Prints one JSON
// object per line — every event each client receives ({client, event, args}), acks ({client, ack, reply}),
// steps ({step}) — and {done: true} at the end, or {error} and exit code 1. The Rust test asserts on the lines.
"use strict";
const { io } = require("socket.io-client");
const net = require("net");

const out = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const config = JSON.parse(process.argv[3] || "{}");
const TIMEOUT_MS = 15000;

// The replaced system's snippet, unchanged in shape: auth {token, correlationId} and the correlation
// header; `transports` only where a scenario asks for WebSocket-only.
function connect(name, client, extra = {}) {
  const options = {
    auth: { token: client.token, correlationId: client.correlationId },
    extraHeaders: { "x-correlation-id": client.correlationId },
    ...extra,
  };
  if (client.transports) options.transports = client.transports;
  const socket = io(client.url, options);
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    out({ client: name, opened_with: engine.transport.name });
    engine.on("upgrade", (transport) => out({ client: name, upgraded_to: transport.name }));
  });
  socket.received = [];
  socket.onAny((event, ...args) => {
    socket.received.push({ event, args });
    out({ client: name, event, args });
  });
  return socket;
}

// Resolves with the first event `event` (already received or still to come) whose first argument
// satisfies `accept`.
function waitFor(socket, event, accept = () => true) {
  const seen = socket.received.find((e) => e.event === event && accept(e.args[0]));
  if (seen) return Promise.resolve(seen.args[0]);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    const listener = (...args) => {
      if (!accept(args[0])) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(args[0]);
    };
    socket.on(event, listener);
  });
}

function connected(socket) {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no connect")), TIMEOUT_MS);
    socket.once("connect", () => { clearTimeout(timer); resolve(); });
    socket.once("connect_error", (e) => { clearTimeout(timer); reject(new Error(`connect_error: ${e.message}`)); });
  });
}

async function ack(name, socket, event, data) {
  const reply = await socket.timeout(TIMEOUT_MS).emitWithAck(event, data);
  out({ client: name, ack: event, reply });
  if (!reply.ok) throw new Error(`${event} refused: ${JSON.stringify(reply)}`);
  return reply.data;
}

const withText = (text) => (message) => message && message.text === text;

const scenarios = {
  // Two clients on two nodes — `a` with default transports (polling, then the upgrade), `b` WebSocket
  // only — send, receive, edit, react, forward and delete, then exchange messages with a native client.
  async chat() {
    const conversation = config.conversation_id;
    const a = connect("a", config.a);
    const b = connect("b", config.b);
    await Promise.all([connected(a), connected(b)]);
    if (!config.a.transports) {
      // The default client starts with long-polling and upgrades by itself.
      await new Promise((resolve, reject) => {
        if (a.io.engine.transport.name === "websocket") return resolve();
        const timer = setTimeout(() => reject(new Error("no upgrade")), TIMEOUT_MS);
        a.io.engine.once("upgrade", () => { clearTimeout(timer); resolve(); });
      });
    }
    out({ client: "a", transport: a.io.engine.transport.name });
    out({ client: "b", transport: b.io.engine.transport.name });
    await ack("a", a, "conversation.subscribe", { conversation_id: conversation });
    await ack("b", b, "conversation.subscribe", { conversation_id: conversation });

    // The original snippet's send: no acknowledgement, no client message id.
    a.emit("sendMessage", { conversationId: conversation, messageContent: "Hello World" });
    await waitFor(b, "message.new", withText("Hello World"));
    await waitFor(b, "message:new", withText("Hello World"));

    // Each client, in turn, sends (the original event, then the native one), edits, reacts to,
    // forwards and deletes; the other, on the other node, sees each change live.
    for (const [name, actor, observer] of [["a", a, b], ["b", b, a]]) {
      const original = await ack(name, actor, "sendMessage", { conversationId: conversation, messageContent: `original from ${name}` });
      await waitFor(observer, "message.new", (m) => m && m.id === original.message_id);
      const sent = await ack(name, actor, "message.send", { conversation_id: conversation, client_msg_id: `${name}-${process.pid}-${Date.now()}`, text: `native from ${name}` });
      await waitFor(observer, "message.new", (m) => m && m.id === sent.message_id);
      await ack(name, actor, "message:edit", { conversationId: conversation, messageId: original.message_id, messageContent: `edited by ${name}` });
      await waitFor(observer, "message.updated", (m) => m && m.id === original.message_id && m.text === `edited by ${name}`);
      await waitFor(observer, "message:edited", (m) => m && m.id === original.message_id);
      await ack(name, actor, "message:react", { conversationId: conversation, messageId: sent.message_id, emoji: "👍" });
      await waitFor(observer, "reaction.added", (r) => r && r.message_id === sent.message_id && r.emoji === "👍");
      const forwarded = await ack(name, actor, "message:forward", {
        conversationId: conversation, sourceConversationId: conversation, messageId: sent.message_id,
      });
      await waitFor(observer, "message.new", (m) => m && m.id === forwarded.message_id && m.forwarded_from);
      await ack(name, actor, "message:delete", { conversationId: conversation, messageId: sent.message_id });
      await waitFor(observer, "message.deleted", (m) => m && m.id === sent.message_id);
      out({ client: name, step: "operations-done" });
    }
    // Binary attachments are refused with a clear error event, and the connection stays.
    a.emit("message.send", Buffer.from([1, 2, 3]));
    const refusedBinary = await waitFor(a, "error", (e) => e && /binary/.test(e.message));
    out({ client: "a", binary_refused: refusedBinary });
    // An event the server does not know, with an ack: the native error body.
    const unknown = await a.timeout(TIMEOUT_MS).emitWithAck("no.such.event", {});
    out({ client: "a", ack: "no.such.event", reply: unknown });

    // A native client (driven by the test) shares the conversation.
    out({ step: "await-native" });
    await waitFor(a, "message.new", withText("from native"));
    await waitFor(b, "message.new", withText("from native"));
    await ack("a", a, "message.send", { conversation_id: conversation, client_msg_id: `a-${process.pid}-${Date.now()}`, text: "to native" });
    out({ step: "sent-to-native" });
    a.close();
    b.close();
  },

  // Connection-state recovery across nodes. `a` (default transports) reaches node 1 through a TCP
  // proxy standing in for a load balancer; `b`, on node 2, sends a stream of messages. Midway the
  // proxy cuts every connection and sends new ones to node 2 (the test kills node 1 at that moment):
  // `a` reconnects by itself and must come back recovered, holding every message exactly once
  // (repeats are counted: there must be none).
  async recover() {
    const conversation = config.conversation_id;
    const total = config.messages;
    let upstream = config.nodes[0];
    const open = new Set();
    const proxy = net.createServer((client) => {
      const server = net.connect(upstream.port, upstream.host);
      open.add(client).add(server);
      client.pipe(server).pipe(client);
      const drop = () => { client.destroy(); server.destroy(); open.delete(client); open.delete(server); };
      client.on("error", drop).on("close", drop);
      server.on("error", drop).on("close", drop);
    });
    await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const a = connect("a", { ...config.a, url: `ws://127.0.0.1:${proxy.address().port}` },
      { reconnectionDelay: 200, reconnectionDelayMax: 500 });
    const b = connect("b", config.b);
    await Promise.all([connected(a), connected(b)]);
    await ack("a", a, "conversation.subscribe", { conversation_id: conversation });
    const seqs = new Map();
    let repeats = 0;
    const repeated = [];
    a.on("message.new", (message) => {
      if (seqs.has(message.seq)) { repeats += 1; repeated.push(message.seq); }
      else seqs.set(message.seq, message.text);
    });
    // The next connect is the reconnection; `recovered` is true only when the server restored the session.
    const reconnected = new Promise((resolve) => a.once("connect", () => resolve(a.recovered === true)));
    for (let i = 1; i <= total; i++) {
      await b.timeout(TIMEOUT_MS).emitWithAck("message.send",
        { conversation_id: conversation, client_msg_id: `r-${process.pid}-${i}`, text: `m${i}` });
      if (i === Math.floor(total / 3)) {
        // Let pings confirm some of what `a` has, then cut.
        await new Promise((resolve) => setTimeout(resolve, config.cut_after_ms || 0));
        upstream = config.nodes[1];
        for (const socket of open) socket.destroy();
        out({ step: "cut", received: seqs.size, offset: a._lastOffset });
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const recovered = await Promise.race([
      reconnected,
      new Promise((_, reject) => setTimeout(() => reject(new Error("no reconnect")), TIMEOUT_MS)),
    ]);
    const deadline = Date.now() + TIMEOUT_MS;
    while (seqs.size < total && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const texts = [...seqs.entries()].sort((x, y) => x[0] - y[0]).map(([, text]) => text);
    out({ client: "a", recovered, transport: a.io.engine.transport.name, count: seqs.size, repeats, repeated, texts });
    a.close();
    b.close();
    proxy.close();
  },

  // A token the node refuses: connect_error with a clear message and code, and no reconnection.
  async refused() {
    const socket = connect("a", config.a);
    const error = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no connect_error")), TIMEOUT_MS);
      socket.once("connect", () => reject(new Error("connected with a bad token")));
      socket.once("connect_error", (e) => { clearTimeout(timer); resolve(e); });
    });
    out({ client: "a", event: "connect_error", message: error.message, data: error.data });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    out({ client: "a", active: socket.active, connected: socket.connected });
    socket.close();
  },

  // A connected client whose session the test revokes: a server disconnect, so no reconnection.
  async revoked() {
    const socket = connect("a", config.a);
    await connected(socket);
    out({ step: "connected" });
    const reason = await new Promise((resolve) => socket.once("disconnect", resolve));
    out({ client: "a", event: "disconnect", reason, active: socket.active });
    socket.close();
  },
};

const scenario = scenarios[process.argv[2]];
if (!scenario) {
  out({ error: `unknown scenario ${process.argv[2]}` });
  process.exit(2);
}
scenario().then(
  () => { out({ done: true }); process.exit(0); },
  (e) => { out({ error: String(e && e.stack || e) }); process.exit(1); },
);
