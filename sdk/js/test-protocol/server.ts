/**
 * The dev mode (`caas-dev`) for the protocol recorder: in memory (no data directory), on free loopback
 * ports, with a signing secret this test chooses (so it can mint a token that lapses in seconds, the
 * only way to see `session.expired` without waiting a day). Stopped by {@link DevServer.stop}, and
 * killed when this process exits whatever the reason.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { devBinary, freePort } from '../test-support/dev-process.js';

export class DevServer {
  /** The HS256 secret the process signs tokens with (`CAAS_JWT_SECRET`). */
  readonly jwtSecret = `sk_protocol_${randomBytes(32).toString('hex')}`;
  readonly adminToken = 'dev-admin-token';
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';
  private gatewayPort = 0;
  private socketPort = 0;

  constructor(private readonly binary = devBinary()) {}

  get apiUrl(): string {
    return `http://127.0.0.1:${this.gatewayPort}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.socketPort}/ws`;
  }

  /** The newest 64 KiB the process printed, for failure messages. */
  get log(): string {
    return this.output;
  }

  async start(timeoutMs = 60_000): Promise<void> {
    if (!existsSync(this.binary)) {
      throw new Error(
        `no dev-mode binary at ${this.binary}: build it with \`cargo build -p caas-dev\`, or set CAAS_DEV_BIN (or CARGO_TARGET_DIR)`,
      );
    }
    this.gatewayPort = await freePort();
    this.socketPort = await freePort();
    // Only what the test sets: a developer's CAAS_* variables could point the process at real servers.
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('CAAS_')) env[key] = value;
    Object.assign(env, {
      CAAS_GATEWAY_BIND: `127.0.0.1:${this.gatewayPort}`,
      CAAS_SOCKET_BIND: `127.0.0.1:${this.socketPort}`,
      CAAS_JWT_SECRET: this.jwtSecret,
    });
    const child = spawn(this.binary, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const killOnExit = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-65_536);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let exitInfo: string | undefined;
    this.exited = new Promise((resolveExit) => {
      const done = (info: string): void => {
        exitInfo = info;
        if (this.child === child) this.child = undefined;
        process.removeListener('exit', killOnExit);
        resolveExit();
      };
      child.once('exit', (code, signal) => done(`exited with ${signal ?? `code ${code}`}`));
      child.once('error', (error) => done(`failed to start: ${error.message}`));
    });

    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exitInfo) throw new Error(`caas-dev ${exitInfo} before serving:\n${this.output}`);
      try {
        // Any HTTP answer means the gateway serves (the socket listener is bound before it).
        await fetch(`${this.apiUrl}/api/v1/auth/sessions`, { signal: AbortSignal.timeout(2000) });
        return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`caas-dev did not answer on ${this.apiUrl} within ${timeoutMs} ms:\n${this.output}`);
      }
      await new Promise((wake) => setTimeout(wake, 100));
    }
  }

  /** SIGTERM, then SIGKILL if it lingers; resolves once the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
