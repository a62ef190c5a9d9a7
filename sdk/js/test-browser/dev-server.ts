/**
 * The dev mode (`caas-dev`) as the browser test runs it: on free loopback ports, with a data directory
 * (so a killed process comes back with its apps, users, conversations, messages, uploads and token
 * secret), serving the demo page from this checkout's files (`CAAS_DEMO_DIR`), not the copy compiled
 * into the binary.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export interface DevServerOptions {
  binary: string;
  dataDir: string;
  /** The `sdk/js` folder: the page is read from its `demo/` and `browser/` on every request. */
  demoDir: string;
  gatewayPort: number;
  socketPort: number;
}

export class DevServer {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** The process's output, kept for failure messages (the newest 64 KiB). */
  private output = '';

  constructor(private readonly options: DevServerOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.options.gatewayPort}`;
  }

  get log(): string {
    return this.output;
  }

  /** Starts the process and resolves once the gateway serves the demo page. */
  async start(timeoutMs = 60_000): Promise<void> {
    if (!existsSync(this.options.binary)) {
      throw new Error(
        `no dev-mode binary at ${this.options.binary}: build it with \`cargo build -p caas-dev\`, or set CAAS_DEV_BIN (or CARGO_TARGET_DIR)`,
      );
    }
    // Only what the test sets: a developer's CAAS_* variables could point the process at real servers.
    const env: NodeJS.ProcessEnv = {};
    for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('CAAS_')) env[key] = value;
    Object.assign(env, {
      CAAS_GATEWAY_BIND: `127.0.0.1:${this.options.gatewayPort}`,
      CAAS_SOCKET_BIND: `127.0.0.1:${this.options.socketPort}`,
      CAAS_DEMO_DIR: this.options.demoDir,
    });
    const child = spawn(this.options.binary, ['--data-dir', this.options.dataDir], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-65_536);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let exitInfo: string | undefined;
    this.exited = new Promise((resolveExit) => {
      child.once('exit', (code, signal) => {
        exitInfo = `exited with ${signal ?? `code ${code}`}`;
        if (this.child === child) this.child = undefined;
        resolveExit();
      });
      child.once('error', (error) => {
        exitInfo = `failed to start: ${error.message}`;
        if (this.child === child) this.child = undefined;
        resolveExit();
      });
    });

    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (exitInfo) throw new Error(`caas-dev ${exitInfo} before serving:\n${this.output}`);
      try {
        const response = await fetch(`${this.url}/demo`, { signal: AbortSignal.timeout(2000) });
        if (response.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`caas-dev did not serve ${this.url}/demo within ${timeoutMs} ms:\n${this.output}`);
      }
      await new Promise((wake) => setTimeout(wake, 100));
    }
  }

  /** Kills the process (SIGKILL: no graceful shutdown, like a crash) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    await this.exited;
  }

  /** Stops it gently (SIGTERM), then for good if it lingers. */
  async stop(graceMs = 5000): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
