// Starts and stops the real isobar daemon for the end-to-end tests.
import { spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const root = resolve(import.meta.dirname, '..', '..');

/** A port free at the time of asking, on the loopback interface. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** Polls `check` until it returns a value other than undefined. */
export async function eventually(what, check, timeoutMs = 20_000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    }
    await sleep(everyMs);
  }
}

/**
 * The daemon with its embedded MQTT server, SQLite and the simulator, in a
 * directory of its own. `restart()` keeps the ports and the data.
 */
export class Daemon {
  /** `extra`: more TOML lines, after the others (say, a `[web.auth]` table). */
  static async start({ stations = 12, interval = '1s', extra = [] } = {}) {
    const d = new Daemon();
    d.dir = mkdtempSync(join(tmpdir(), 'isobar-e2e-'));
    d.webPort = await freePort();
    d.mqttPort = await freePort();
    d.config = join(d.dir, 'isobar.toml');
    writeFileSync(
      d.config,
      [
        '[web]',
        `listen = "127.0.0.1:${d.webPort}"`,
        '[mqtt]',
        'mode = "embedded"',
        `listen = "127.0.0.1:${d.mqttPort}"`,
        '[storage]',
        'backend = "sqlite"',
        `data_dir = ${JSON.stringify(join(d.dir, 'data'))}`,
        '[archive]',
        'backend = "off"',
        '[simulator]',
        `stations = ${stations}`,
        `interval = "${interval}"`,
        'seed = 7',
        ...extra,
        '',
      ].join('\n'),
    );
    d.bin = process.env.ISOBAR_BIN ?? join(root, 'target', 'debug', 'isobar');
    await d.spawn();
    return d;
  }

  get url() {
    return `http://127.0.0.1:${this.webPort}`;
  }

  async spawn() {
    const log = openSync(join(this.dir, 'daemon.log'), 'a');
    this.child = spawn(this.bin, ['run', '--config', this.config], {
      stdio: ['ignore', log, log],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
    });
    this.exited = new Promise((ok) => {
      this.child.once('exit', (code, signal) => ok({ code, signal }));
      // Not started at all (no such binary, say).
      this.child.once('error', (error) => ok({ error }));
    });
    const early = this.exited.then(({ code, signal, error }) => {
      if (error) throw new Error(`could not start ${this.bin}: ${error.message}`);
      throw new Error(`isobar exited (${code ?? signal}) before it was ready:\n${this.logs()}`);
    });
    await Promise.race([
      eventually('the daemon to be ready', async () => (await fetch(`${this.url}/ready`)).ok, 60_000),
      early,
    ]);
  }

  logs() {
    try {
      return readFileSync(join(this.dir, 'daemon.log'), 'utf8').split('\n').slice(-60).join('\n');
    } catch {
      return '(no log)';
    }
  }

  async stop() {
    if (this.child === undefined || this.child.exitCode !== null || this.child.pid === undefined) return;
    this.child.kill('SIGTERM');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 20_000);
    await this.exited;
    clearTimeout(killer);
  }

  async restart() {
    await this.stop();
    await this.spawn();
  }

  async close() {
    await this.stop();
    if (process.env.E2E_KEEP !== '1') rmSync(this.dir, { recursive: true, force: true });
  }
}
