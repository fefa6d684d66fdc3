import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { waitFor } from './http.ts';

const BIN = fileURLToPath(new URL('../../bin/switchyard.mjs', import.meta.url));

export type Line = Record<string, unknown> & { msg?: string; pid?: number };
let fifos = 0;

/**
 * A `serve --workers N` process, its stdout parsed as JSON lines. The primary and every
 * worker write to that one stdout, so it is a real pipe here (a FIFO), as under a shell
 * pipeline or a container runtime: spawn's 'pipe' is a Unix socket pair, on which 8 KiB
 * writes landed whole anyway, so lines mixed by writes over PIPE_BUF could not show there.
 */
export class Served {
  readonly proc: ChildProcess;
  /** The read end of the gateway's stdout. */
  readonly out: Socket;
  readonly lines: Line[] = [];
  /** Lines that are not whole JSON (two processes' writes mixed): must stay empty. */
  readonly broken: string[] = [];
  /** The primary exited and everything written to stdout was read (every writer closed it). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = '';
  #partial = '';

  /** Our copy of the write end, kept only to make it non-blocking later (see {@link nonBlocking}). */
  #writeEnd: number | undefined;

  /** The FIFO is made beside `file`. */
  constructor(file: string, workers: number, opts: { keepWriteEnd?: boolean } = {}) {
    const fifo = join(dirname(file), `stdout-${++fifos}.fifo`);
    execFileSync('mkfifo', [fifo]);
    const readEnd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const writeEnd = openSync(fifo, constants.O_WRONLY);
    this.proc = spawn(process.execPath, [BIN, 'serve', '--config', file, '--workers', String(workers)], { stdio: ['ignore', writeEnd, 'pipe'] });
    // Held, the pipe would never end.
    if (opts.keepWriteEnd) this.#writeEnd = writeEnd;
    else closeSync(writeEnd);
    // A small buffer here: a paused reader stops reading soon, so the pipe fills (net.Socket
    // passes the option on to its stream; its type does not list it).
    const reader = { fd: readEnd, readable: true, writable: false, readableHighWaterMark: 1024 };
    this.out = new Socket(reader);
    this.out.setEncoding('utf8').on('data', (chunk: string) => {
      const parts = (this.#partial + chunk).split('\n');
      this.#partial = parts.pop() ?? '';
      for (const p of parts) {
        if (!p) continue;
        try {
          this.lines.push(JSON.parse(p) as Line);
        } catch {
          this.broken.push(p);
        }
      }
    });
    const drained = new Promise((r) => this.out.once('close', r));
    this.proc.stderr!.setEncoding('utf8').on('data', (c: string) => { this.stderr += c; });
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => this.proc.once('exit', (code, signal) => r({ code, signal })));
    this.exited = Promise.all([exit, drained]).then(([e]) => e);
  }

  /**
   * Make the gateway's stdout non-blocking, as any process holding the pipe does by touching
   * Node's process.stdout (libuv sets O_NONBLOCK on the pipe, which all its holders share).
   * Workers must be running: libuv clears it on a child's stdio when it starts one.
   */
  nonBlocking(): void {
    if (this.#writeEnd === undefined) throw new Error('Served without keepWriteEnd');
    new Socket({ fd: this.#writeEnd, readable: false, writable: true }).destroy();
    this.#writeEnd = undefined;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  find(msg: string, from = 0): Line[] {
    return this.lines.slice(from).filter((l) => l.msg === msg);
  }

  /** Wait for a log line (the gateway flushes its log at least once a second). */
  async line(pred: (l: Line) => boolean, what: string, from = 0): Promise<Line> {
    await waitFor(() => this.lines.slice(from).some(pred), what);
    return this.lines.slice(from).find(pred)!;
  }

  /** Workers follow a killed primary out (their IPC channel closes); the pipe's end is not waited for past that. */
  async stop(): Promise<void> {
    if (this.running) this.proc.kill('SIGKILL');
    if (this.#writeEnd !== undefined) closeSync(this.#writeEnd);
    this.#writeEnd = undefined;
    await Promise.race([this.exited, sleep(5_000, undefined, { ref: false })]);
    this.out.destroy();
  }
}
