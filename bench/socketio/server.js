// The peers for the load benchmark, in two shapes:
// - plain: a Socket.IO 4 server doing what the seed's transport did — check the token, join rooms,
//   broadcast — and nothing else (no persistence, no sequence numbers);
// - stack (REDIS_URL and KAFKA_BROKERS set): the replaced Node.js system's own shape, run as several
//   processes — rooms shared through `@socket.io/redis-adapter` (every broadcast goes through Redis
//   pub/sub to every process) and each message produced to Kafka with kafkajs (acks from all in-sync
//   replicas), awaited before it is broadcast and acknowledged: the same class of work as the socket node.
// Tokens are the same HS256 JWTs the socket node accepts, checked with the same secret.
//
//   CAAS_JWT_SECRET=… PORT=0 NODE_PATH=<dir with socket.io> node bench/socketio/server.js
//   … REDIS_URL=redis://127.0.0.1:6379 KAFKA_BROKERS=127.0.0.1:9092 KAFKA_TOPIC=t node bench/socketio/server.js
// prints {"port":N} once listening.
'use strict';
const crypto = require('crypto');
const http = require('http');
const { Server } = require('socket.io');

const secret = process.env.CAAS_JWT_SECRET;
if (!secret) throw new Error('CAAS_JWT_SECRET is required');

function verify(token) {
  const [header, payload, signature] = String(token || '').split('.');
  if (!signature) return null;
  const expected = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  if (expected.length !== signature.length ||
      !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) return null;
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
  return claims.exp * 1000 > Date.now() ? claims : null;
}

// Resolves to a function that takes a message and resolves once the message is stored, or to null in
// the plain shape.
async function startStack(io) {
  const { REDIS_URL, KAFKA_BROKERS } = process.env;
  if (!REDIS_URL && !KAFKA_BROKERS) return null;
  const { createClient } = require('redis');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const { Kafka, logLevel } = require('kafkajs');
  const pubClient = createClient({ url: REDIS_URL });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  io.adapter(createAdapter(pubClient, subClient));

  const topic = process.env.KAFKA_TOPIC || 'socketio-messages';
  const kafka = new Kafka({ clientId: 'socketio-stack', brokers: KAFKA_BROKERS.split(','), logLevel: logLevel.ERROR });
  const admin = kafka.admin();
  await admin.connect();
  // Every process tries; the second finds it there.
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }).catch(() => {});
  await admin.disconnect();
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  return (message) => producer.send({
    topic,
    acks: -1,
    messages: [{ key: message.conversationId, value: JSON.stringify(message) }],
  });
}

async function main() {
  const server = http.createServer();
  const io = new Server(server, { transports: ['websocket'], serveClient: false });
  const store = await startStack(io);
  io.use((socket, next) => {
    const claims = verify(socket.handshake.auth && socket.handshake.auth.token);
    if (!claims) return next(new Error('unauthorized'));
    socket.data.userId = claims.sub;
    next();
  });
  io.on('connection', (socket) => {
    socket.on('join', (conversationId, ack) => {
      socket.join(String(conversationId));
      if (typeof ack === 'function') ack({ ok: true });
    });
    socket.on('sendMessage', async (message, ack) => {
      const { conversationId, messageContent } = message || {};
      const event = { conversationId, senderId: socket.data.userId, messageContent };
      if (store) {
        try {
          await store({ ...event, id: crypto.randomUUID(), createdAt: Date.now() });
        } catch (e) {
          if (typeof ack === 'function') ack({ ok: false, error: String(e.message || e) });
          return;
        }
      }
      io.to(String(conversationId)).emit('message', event);
      if (typeof ack === 'function') ack({ ok: true });
    });
  });
  server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
    console.log(JSON.stringify({ port: server.address().port }));
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
