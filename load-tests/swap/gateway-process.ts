/**
 * A real `switchyard serve --config FILE` child process for the swap test, with its JSON
 * log (stdout) kept: every general line parsed, access lines only counted unless they
 * carry a non-2xx status (reading 30,000 access lines would cost the run CPU it needs).
 * Also the small HTTP helpers the scenario needs: a fresh-connection GET (so that with two
 * processes on one port, each call may land on either), metric parsing, free ports.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));
const NODE24 = fileURLToPath(new URL('../../node_modules/.bin/node', import.meta.url));

/** Node 24 (the gateway's runtime): this process's own if it is one, else the project's pinned one. */
export function nodeBinary(): string {
  return Number(process.versions.node.split('.')[0]) >= 24 ? process.execPath : NODE24;
}

export type LogLine = Record<string, unknown> & { msg?: string; time?: number; level?: number };

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Date.now() at exit. */
  readonly at: number;
}

export class GatewayProcess {
  readonly label: string;
  readonly proc: ChildProcess;
  readonly exited: Promise<Exit>;
  readonly adminUrl: string;
  readonly publicUrl: string;
  /** Every non-access log line, parsed (plus stderr lines as `{msg:"stderr", text}`). */
  readonly lines: LogLine[] = [];
  /** Access lines with a status outside 2xx, parsed. */
  readonly badAccess: LogLine[] = [];
  accessLines = 0;
  #partial = '';

  /** `replace`: start beside a gateway already on these ports (`serve --replace`, a rolling restart). */
  constructor(label: string, configFile: string, ports: { pub: number; admin: number }, replace = false) {
    this.label = label;
    this.adminUrl = `http://127.0.0.1:${ports.admin}`;
    this.publicUrl = `http://127.0.0.1:${ports.pub}`;
    this.proc = spawn(nodeBinary(), [BIN, 'serve', '--config', configFile, '--workers', '1', ...(replace ? ['--replace'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.#stdout(chunk));
    this.proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      for (const text of chunk.split('\n')) if (text) this.lines.push({ msg: 'stderr', text });
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })));
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  #stdout(chunk: string): void {
    const text = this.#partial + chunk;
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line) continue;
      if (line.includes('"msg":"request"}')) {
        this.accessLines++;
        if (line.includes('"status":2')) continue;
        this.badAccess.push(parse(line));
        continue;
      }
      this.lines.push(parse(line));
    }
  }

  /** Log lines with this message. */
  find(msg: string): LogLine[] {
    return this.lines.filter((l) => l.msg === msg);
  }

  /** Wait until a log line matching `pred` was written (the gateway flushes its log at least once a second). */
  async waitForLine(pred: (l: LogLine) => boolean, what: string, timeoutMs = 5_000): Promise<LogLine> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines.find(pred);
      if (l) return l;
      if (Date.now() > until) throw new Error(`${this.label}: no log line for ${what} within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  /** Wait for admin /readyz 200 (with one process on the admin port: this one's answer). */
  async waitReady(timeoutMs = 15_000): Promise<void> {
    await waitFor(async () => {
      if (!this.running) throw new Error(`${this.label} exited: ${this.tail()}`);
      return (await get(`${this.adminUrl}/readyz`).then((r) => r.status, () => 0)) === 200;
    }, `${this.label} /readyz 200`, timeoutMs);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.proc.kill(sig);
  }

  /** Stop for good (end of a run): SIGTERM, then SIGKILL if it is still there after `ms`. */
  async stop(ms = 10_000): Promise<Exit> {
    this.signal('SIGTERM');
    const t = setTimeout(() => this.signal('SIGKILL'), ms);
    const e = await this.exited;
    clearTimeout(t);
    return e;
  }

  /** The last log lines, for an error message. */
  tail(n = 15): string {
    return this.lines.slice(-n).map((l) => JSON.stringify(l)).join('\n');
  }
}

function parse(line: string): LogLine {
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    return { msg: 'unparsed', text: line };
  }
}

export interface Got {
  readonly status: number;
  readonly body: string;
}

/** GET on a new connection (no keep-alive, no pooling): with two processes on one port the kernel picks either. */
export function get(url: string, headers: Record<string, string> = {}, timeoutMs = 2_000): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * One sample of a Prometheus text exposition: the value of `name` whose labels include
 * every pair of `labels` (the first such series), or undefined.
 */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (!Object.entries(labels).every(([k, v]) => rest.includes(`${k}="${v}"`))) continue;
    const value = Number(rest.slice(rest.lastIndexOf(' ') + 1));
    if (!Number.isNaN(value)) return value;
  }
  return undefined;
}

/** Poll `check` until it returns true; throw after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 20): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Ports are fixed before the gateway starts, so a second process can bind the same ones (reusePort). */
export { freePort } from '../bench-lib.ts';
