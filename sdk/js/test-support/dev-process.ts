/**
 * What the SDK's test suites that run the dev mode (`caas-dev`) share: where its binary is, and a free
 * loopback port to put it on.
 */
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** `CAAS_DEV_BIN`, else `$CARGO_TARGET_DIR` (or `~/.cache/caas/target`) + `/debug/caas-dev`. */
export function devBinary(): string {
  if (process.env.CAAS_DEV_BIN) return resolve(process.env.CAAS_DEV_BIN);
  const target = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(homedir(), '.cache', 'caas', 'target');
  return join(target, 'debug', 'caas-dev');
}

/** A loopback port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}
