/**
 * A model server in its own process, so that a hard kill is a real SIGKILL: the kernel
 * closes its sockets (a reset where data was still unread) and its port refuses from then
 * on. Started by {@link ModelProcess}; on the message `kill` it writes down, synchronously,
 * what was in flight on it and everything it received, then SIGKILLs itself in the same
 * tick (nothing more is read or answered in between).
 *
 *   node load-tests/swap/model-process.ts NAME DEPLOYMENT DELAY_MS REPORT_FILE
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nodeBinary } from './gateway-process.ts';
import { ModelServer } from './model-server.ts';

/** What the process wrote down as it died (or when asked to report). */
export interface DeathReport {
  /** Date.now() just before the SIGKILL. */
  readonly at: number;
  /** Sequence numbers received and not answered. */
  readonly inFlight: string[];
  /** Every sequence number received. */
  readonly received: string[];
  readonly served: number;
}

type Msg = { type: 'listening'; url: string } | { type: 'report'; report: DeathReport };

export class ModelProcess {
  readonly name: string;
  readonly #proc: ChildProcess;
  readonly #file: string;
  readonly exited: Promise<void>;
  #url = '';

  private constructor(name: string, proc: ChildProcess, file: string) {
    this.name = name;
    this.#proc = proc;
    this.#file = file;
    this.exited = new Promise((r) => proc.once('exit', () => r()));
  }

  static async start(name: string, deployment: string, delayMs: number, reportFile: string): Promise<ModelProcess> {
    const proc = fork(fileURLToPath(import.meta.url), [name, deployment, String(delayMs), reportFile], {
      execPath: nodeBinary(),
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const m = new ModelProcess(name, proc, reportFile);
    m.#url = await new Promise<string>((resolve, reject) => {
      proc.once('error', reject);
      proc.once('exit', (code) => reject(new Error(`model process ${name} exited ${code}`)));
      proc.on('message', (msg: Msg) => { if (msg.type === 'listening') resolve(msg.url); });
    });
    return m;
  }

  get url(): string {
    return this.#url;
  }

  /** SIGKILL, after the process wrote down what was in flight on it. */
  async kill(): Promise<DeathReport> {
    this.#proc.send('kill');
    await this.exited;
    return JSON.parse(await readFile(this.#file, 'utf8')) as DeathReport;
  }

  /** What a live process received so far. */
  report(): Promise<DeathReport> {
    return new Promise((resolve) => {
      const on = (msg: Msg): void => {
        if (msg.type !== 'report') return;
        this.#proc.off('message', on);
        resolve(msg.report);
      };
      this.#proc.on('message', on);
      this.#proc.send('report');
    });
  }

  async close(): Promise<void> {
    if (this.#proc.exitCode === null && this.#proc.signalCode === null) this.#proc.kill('SIGTERM');
    await this.exited;
  }
}

if (import.meta.main) {
  const [name = 'model', deployment = 'blue', delay = '0', file = ''] = process.argv.slice(2);
  const m = await ModelServer.start(name, deployment, { delayMs: Number(delay) });
  const report = (): DeathReport => ({ at: Date.now(), inFlight: [...m.inFlight.keys()], received: m.received, served: m.served });
  process.on('message', (msg: string) => {
    if (msg === 'kill') {
      writeFileSync(file, JSON.stringify(report()));
      process.kill(process.pid, 'SIGKILL');
    } else if (msg === 'report') {
      process.send!({ type: 'report', report: report() });
    }
  });
  process.on('SIGTERM', () => process.exit(0));
  process.on('disconnect', () => process.exit(0));
  process.send!({ type: 'listening', url: m.url });
}
