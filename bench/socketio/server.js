// The peer baseline for the load benchmark: a Socket.IO 4 server doing what the seed's transport did —
// check the token, join rooms, broadcast — and nothing else (no persistence, no sequence numbers).
// Tokens are the same HS256 JWTs the socket node accepts, checked with the same secret.
//
//   CAAS_JWT_SECRET=… PORT=0 NODE_PATH=<dir with socket.io> node bench/socketio/server.js
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

const server = http.createServer();
const io = new Server(server, { transports: ['websocket'], serveClient: false });
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
  socket.on('sendMessage', (message, ack) => {
    const { conversationId, messageContent } = message || {};
    io.to(String(conversationId)).emit('message', { conversationId, senderId: socket.data.userId, messageContent });
    if (typeof ack === 'function') ack({ ok: true });
  });
});
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on('SIGTERM', () => process.exit(0));
