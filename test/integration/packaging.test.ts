import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Ignore } from '@balena/dockerignore';
import { DockerfileParser, type Copy, type Env, type Healthcheck, type Instruction, type JSONInstruction } from 'dockerfile-ast';
import { parseDocument } from 'yaml';
import { parseConfigText } from '../../config/load.ts';
import type { GatewayConfig } from '../../config/schema.ts';
import { deadPort, DEAD_HOST, freePort, startUpstream, type TestUpstream } from '../helpers/gateway.ts';
import { bearer, call, waitFor } from '../helpers/http.ts';

/**
 * The container image, tested without a container engine (none is reachable here): the
 * Dockerfile is read with a Dockerfile parser and checked against what README promises, and
 * what its final stage copies is installed the way its deps stage does (`npm ci --omit=dev`)
 * in a clean directory and started with its ENTRYPOINT and CMD, which proves that nothing the
 * gateway imports at run time is a devDependency.
 */

// The package is CommonJS (module.exports = factory) while its typings declare a default export.
const ignore = createRequire(import.meta.url)('@balena/dockerignore') as () => Ignore;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CONFIG_PATH = '/etc/switchyard/gateway.yaml';
const STATE_DIR = '/var/lib/switchyard';
/** The values the image's config reads from the environment (long enough not to warn). */
const SECRETS = {
  SWITCHYARD_ADMIN_KEY: 'packaging-test-admin-key-0123456789',
  SWITCHYARD_ENDPOINT_KEY: 'packaging-test-endpoint-key-0123456789',
};

interface Stage { readonly name: string | null; readonly image: string; readonly instructions: Instruction[] }

const dockerfile = DockerfileParser.parse(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));

/** The build stages, each with its own instructions (from its FROM on). */
function stages(): Stage[] {
  const out: Stage[] = [];
  for (const i of dockerfile.getInstructions()) {
    if (i.getKeyword() === 'FROM') {
      const from = dockerfile.getFROMs().find((f) => f.getRange().start.line === i.getRange().start.line)!;
      out.push({ name: from.getBuildStage(), image: `${from.getImageName()}:${from.getImageTag()}`, instructions: [] });
    } else {
      assert.ok(out.length > 0, `${i.getKeyword()} before the first FROM`);
      out.at(-1)!.instructions.push(i);
    }
  }
  return out;
}
const STAGES = stages();
const FINAL = STAGES.at(-1)!;
const of = <T extends Instruction>(s: Stage, keyword: string): T[] => s.instructions.filter((i) => i.getKeyword() === keyword) as T[];
const lastOf = <T extends Instruction>(s: Stage, keyword: string): T | undefined => of<T>(s, keyword).at(-1);
/** Exec-form arguments (`["a", "b"]`); undefined for the shell form, which would not get signals. */
const execForm = (i: Instruction | undefined): string[] | undefined => {
  const json = (i as JSONInstruction | undefined)?.getJSONStrings().map((s) => s.getJSONValue());
  return json && json.length > 0 ? json : undefined;
};
/** The commands of a RUN, split at `&&` and `;`. */
const commandsOf = (run: Instruction): string[][] => run.getArguments().map((a) => a.getValue())
  .reduce<string[][]>((acc, w) => (w === '&&' || w === ';' ? [...acc, []] : [...acc.slice(0, -1), [...acc.at(-1)!, w]]), [[]]);
/** ENV of the final stage, in order (a later one wins). */
const ENV = new Map(of<Env>(FINAL, 'ENV')
  .flatMap((e) => e.getProperties().map((p) => [p.getName(), p.getValue() ?? ''] as const)));
/** The final stage's COPY instructions from the build context (not from another stage). */
const contextCopies = of<Copy>(FINAL, 'COPY').filter((c) => c.getFromFlag() === null)
  .map((c) => { const a = c.getArguments().map((x) => x.getValue()); return { sources: a.slice(0, -1), dest: a.at(-1)! }; });
const workdir = lastOf(FINAL, 'WORKDIR')?.getArguments()[0]?.getValue() ?? '/';

/** The image's own config, read with its secrets and the model's URL set. */
async function imageConfig(): Promise<{ config: GatewayConfig }> {
  const copy = contextCopies.find((c) => c.dest === CONFIG_PATH);
  assert.ok(copy, `the final stage copies a config to ${CONFIG_PATH}`);
  const text = await readFile(join(ROOT, copy.sources[0]!), 'utf8');
  const r = parseConfigText(text, { ...SECRETS, SWITCHYARD_MODEL_URL: 'http://127.0.0.1:5001' });
  assert.ok(r.ok, `the image's config is valid: ${r.ok ? '' : JSON.stringify(r.issues)}`);
  assert.deepEqual(r.warnings, []);
  return { config: r.config };
}

describe('Dockerfile, as README describes it', () => {
  test('every stage is built on the official node:24-slim image; a deps stage and a final stage', () => {
    assert.ok(STAGES.length >= 2, 'multi-stage');
    for (const s of STAGES) assert.equal(s.image, 'node:24-slim', `FROM ${s.image}`);
  });

  test('dependencies: npm ci --omit=dev from the lockfile in a stage of their own; the final stage copies node_modules from it', () => {
    const copy = of<Copy>(FINAL, 'COPY').find((c) => c.getFromFlag() !== null);
    assert.ok(copy, 'COPY --from=<deps stage>');
    const deps = STAGES.find((s) => s.name === copy.getFromFlag()!.getValue());
    assert.ok(deps && deps !== FINAL, 'the stage named by --from exists');
    assert.deepEqual(copy.getArguments().map((a) => a.getValue()), [posix.join(lastOf(deps, 'WORKDIR')!.getArguments()[0]!.getValue(), 'node_modules'), './node_modules']);
    const commands = of(deps, 'RUN').flatMap(commandsOf);
    assert.ok(commands.some((c) => c[0] === 'npm' && c[1] === 'ci' && c.includes('--omit=dev')), 'npm ci --omit=dev');
    assert.ok(!STAGES.flatMap((s) => of(s, 'RUN').flatMap(commandsOf)).some((c) => c[0] === 'npm' && c[1] === 'install'), 'never npm install (it may move off the lockfile)');
    const lock = of<Copy>(deps, 'COPY').flatMap((c) => c.getArguments().map((a) => a.getValue()));
    assert.ok(lock.includes('package.json') && lock.includes('package-lock.json'), 'the lockfile is there for npm ci');
  });

  test('runs as a non-root user, the one that owns the writable state directory', () => {
    const user = lastOf(FINAL, 'USER')?.getArguments()[0]?.getValue();
    assert.ok(user, 'USER in the final stage');
    const [uid, gid] = user.split(':');
    assert.match(uid!, /^[1-9]\d*$/, 'a numeric uid (Kubernetes checks runAsNonRoot only against one), not 0');
    const chown = of(FINAL, 'RUN').flatMap(commandsOf).find((c) => c[0] === 'chown');
    assert.deepEqual(chown, ['chown', `${uid}:${gid}`, STATE_DIR]);
    const order = FINAL.instructions.map((i) => i.getKeyword());
    assert.ok(order.lastIndexOf('USER') < order.indexOf('ENTRYPOINT'), 'USER comes before the ENTRYPOINT');
  });

  test('tini is PID 1 and runs the gateway in exec form; serve reads the config from SWITCHYARD_CONFIG', () => {
    const installs = of(FINAL, 'RUN').flatMap(commandsOf).filter((c) => c[0] === 'apt-get' && c[1] === 'install');
    assert.ok(installs.some((c) => c.includes('tini')), 'apt-get install tini');
    const entry = execForm(lastOf(FINAL, 'ENTRYPOINT'));
    assert.deepEqual(entry, ['/usr/bin/tini', '--', 'node', 'bin/switchyard.mjs'], 'exec form, so tini (not a shell) is PID 1');
    assert.deepEqual(execForm(lastOf(FINAL, 'CMD')), ['serve']);
    assert.equal(ENV.get('SWITCHYARD_CONFIG'), CONFIG_PATH);
    assert.ok(!FINAL.instructions.some((i) => i.getKeyword() === 'STOPSIGNAL' && i.getArguments()[0]?.getValue() !== 'SIGTERM'), 'SIGTERM stops it (the drain)');
  });

  test(`the config is at ${CONFIG_PATH}; its listeners bind 0.0.0.0 on the EXPOSEd ports; state and spool are in the writable directory`, async () => {
    const { config } = await imageConfig();
    const s = config.server;
    const exposed = of(FINAL, 'EXPOSE').flatMap((e) => e.getArguments().map((a) => Number(a.getValue().replace(/\/tcp$/, ''))));
    assert.deepEqual(exposed.toSorted(), [s.listen.port, s.private_listen!.port, s.admin_listen.port].toSorted());
    for (const l of [s.listen, s.private_listen!, s.admin_listen]) assert.equal(l.host, '0.0.0.0', 'reachable from outside the container');
    assert.equal(config.state?.file, `${STATE_DIR}/state.json`);
    assert.equal(s.request_spool_dir, `${STATE_DIR}/spool`);
    assert.deepEqual(of(FINAL, 'RUN').flatMap(commandsOf).find((c) => c[0] === 'mkdir'), ['mkdir', '-p', STATE_DIR]);
    assert.equal(config.admin.keys.length, 1, 'the admin listener is reachable: /admin needs a key');
  });

  test('HEALTHCHECK asks /healthz on the admin listener with Node (no curl in slim images)', async () => {
    const hc = lastOf<Healthcheck>(FINAL, 'HEALTHCHECK');
    assert.ok(hc, 'HEALTHCHECK in the final stage');
    assert.equal(hc.getSubcommand()?.getValue(), 'CMD');
    const args = healthcheckArgs(hc);
    assert.equal(args[0], 'node');
    assert.match(args.join(' '), /process\.env\.SWITCHYARD_HEALTHCHECK_URL/);
    const url = new URL(ENV.get('SWITCHYARD_HEALTHCHECK_URL') ?? '');
    const { config } = await imageConfig();
    assert.equal(url.pathname, '/healthz');
    assert.equal(Number(url.port), config.server.admin_listen.port);
    assert.equal(url.hostname, '127.0.0.1', 'inside the container, the admin listener on 0.0.0.0 answers on loopback');
  });

  test('.dockerignore keeps out tests, git, local modules and secrets, and nothing the Dockerfile copies', async () => {
    const ig = ignore().add(await readFile(join(ROOT, '.dockerignore'), 'utf8'));
    for (const { sources } of [...contextCopies, ...STAGES.slice(0, -1).flatMap((s) => of<Copy>(s, 'COPY').map((c) => ({ sources: c.getArguments().slice(0, -1).map((a) => a.getValue()) })))]) {
      for (const src of sources) {
        for (const file of await filesUnder(join(ROOT, src))) {
          assert.equal(ig.ignores(relative(ROOT, file)), false, `${relative(ROOT, file)} is copied by the Dockerfile but .dockerignore leaves it out of the build context`);
        }
      }
    }
    for (const p of ['.git/HEAD', 'node_modules/yaml/package.json', 'test/integration/packaging.test.ts', '.env', 'key.pem', 'deploy/kubernetes/deployment.yaml']) {
      assert.equal(ig.ignores(p), true, `${p} stays out of the build context`);
    }
  });
});

/** The HEALTHCHECK's exec-form command (the JSON after `CMD`). */
function healthcheckArgs(hc: Healthcheck): string[] {
  const text = hc.getArgumentsContent() ?? '';
  return JSON.parse(text.slice(text.indexOf('['))) as string[];
}

async function filesUnder(path: string): Promise<string[]> {
  const entries = await readdir(path, { withFileTypes: true, recursive: true }).catch(() => undefined);
  if (!entries) return [path];
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/**
 * Where a path of the image lands in the test's directory: under WORKDIR → the app directory,
 * anything else → a `rootfs` beside it.
 */
function inImage(dir: string, path: string): string {
  const abs = posix.resolve(workdir, path);
  const rel = posix.relative(workdir, abs);
  return rel.startsWith('..') ? join(dir, 'rootfs', abs) : join(dir, 'app', rel);
}

/**
 * COPY as Docker does it: a directory's contents go into `dest`; a file goes to `dest`, or
 * into it when `dest` ends with `/` (or there are several sources).
 */
async function copyInto(dir: string, sources: readonly string[], dest: string): Promise<void> {
  for (const src of sources) {
    const isDir = (await stat(join(ROOT, src))).isDirectory();
    const target = !isDir && (dest.endsWith('/') || sources.length > 1) ? join(inImage(dir, dest), basename(src)) : inImage(dir, dest);
    await mkdir(dirname(target), { recursive: true });
    await cp(join(ROOT, src), target, { recursive: true });
  }
}

/** `npm ci --omit=dev` offline from the npm cache (filled by the repo's own npm ci); online if that fails. */
function npmCi(cwd: string): { ms: number; offline: boolean } {
  const started = Date.now();
  const npm = process.env.npm_execpath;
  const run = (extra: string): ReturnType<typeof spawnSync> => spawnSync(
    npm ? process.execPath : 'npm',
    [...(npm ? [npm] : []), 'ci', '--omit=dev', extra, '--no-audit', '--no-fund', '--loglevel=error'],
    { cwd, encoding: 'utf8', env: { ...process.env, NODE_ENV: 'production' }, timeout: 120_000 },
  );
  let r = run('--offline');
  const offline = r.status === 0;
  if (!offline) r = run('--prefer-offline');
  assert.equal(r.status, 0, `npm ci --omit=dev failed:\n${String(r.stderr)}`);
  return { ms: Date.now() - started, offline };
}

describe('the image\'s files, installed with npm ci --omit=dev in a clean directory, run with its ENTRYPOINT and CMD', () => {
  let dir: string;
  let model: TestUpstream;
  let proc: ChildProcess;
  let exited: Promise<number | null>;
  let output = '';
  let ports: { pub: number; priv: number; admin: number };
  const held: (() => void)[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-image-'));
    model = await startUpstream('model', (req, res, body) => {
      const answer = (): void => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(JSON.stringify({ url: req.url, body })); };
      if (req.url === '/hold') held.push(answer);
      else answer();
    });
    // What the deps stage does: its COPY, then npm ci --omit=dev.
    const deps = STAGES.find((s) => s.name === of<Copy>(FINAL, 'COPY').find((c) => c.getFromFlag())!.getFromFlag()!.getValue())!;
    for (const c of of<Copy>(deps, 'COPY')) {
      const a = c.getArguments().map((x) => x.getValue());
      await copyInto(dir, a.slice(0, -1), a.at(-1)!);
    }
    const install = npmCi(join(dir, 'app'));
    // What the final stage copies from the build context.
    for (const { sources, dest } of contextCopies) await copyInto(dir, sources, dest);
    await mkdir(inImage(dir, STATE_DIR), { recursive: true });
    // The image's config as it is, but on loopback ports of the test's own and with its
    // writable paths inside the test's directory.
    ports = { pub: await freePort(), priv: await freePort(), admin: await freePort() };
    const configFile = inImage(dir, CONFIG_PATH);
    const doc = parseDocument(await readFile(configFile, 'utf8'));
    doc.setIn(['server', 'listen'], doc.createNode({ host: '127.0.0.1', port: ports.pub }, { flow: true }));
    doc.setIn(['server', 'private_listen'], doc.createNode({ host: '127.0.0.1', port: ports.priv }, { flow: true }));
    doc.setIn(['server', 'admin_listen'], doc.createNode({ host: '127.0.0.1', port: ports.admin }, { flow: true }));
    doc.setIn(['server', 'request_spool_dir'], inImage(dir, String(doc.getIn(['server', 'request_spool_dir']))));
    doc.setIn(['state', 'file'], inImage(dir, String(doc.getIn(['state', 'file']))));
    await writeFile(configFile, doc.toString());

    const started = Date.now();
    const entry = execForm(lastOf(FINAL, 'ENTRYPOINT'))!;
    const program = entry.slice(entry.indexOf('--') + 1);
    assert.equal(program[0], 'node');
    proc = spawn(process.execPath, [...program.slice(1), ...execForm(lastOf(FINAL, 'CMD'))!], {
      cwd: join(dir, 'app'),
      env: { PATH: process.env.PATH, ...Object.fromEntries(ENV), SWITCHYARD_CONFIG: configFile, ...SECRETS, SWITCHYARD_MODEL_URL: model.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    proc.stdout!.on('data', (c: Buffer) => { output += c.toString(); });
    proc.stderr!.on('data', (c: Buffer) => { output += c.toString(); });
    exited = new Promise((r) => proc.once('exit', (code) => r(code)));
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`switchyard exited ${proc.exitCode}:\n${output}`);
      return (await fetch(`http://127.0.0.1:${ports.admin}/readyz`).then((r) => r.status, () => 0)) === 200;
    }, 'the installed gateway to be ready', 60_000);
    // Timings only, for whoever wonders why this file takes a while (nothing asserts on them).
    process.stderr.write(`# npm ci --omit=dev (${install.offline ? 'offline' : 'online'}): ${install.ms} ms; gateway ready in ${Date.now() - started} ms\n`);
  });
  after(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    for (const release of held) release();
    await model?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the test runs on Node 24, as the image does', () => {
    assert.ok(Number(process.versions.node.split('.')[0]) >= 24, `Node ${process.version}`);
  });

  test('node_modules holds the dependencies and no devDependency', async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
    const installed = (name: string): boolean => existsSync(join(dir, 'app', 'node_modules', name, 'package.json'));
    for (const name of Object.keys(pkg.dependencies)) assert.ok(installed(name), `${name} is installed`);
    for (const name of Object.keys(pkg.devDependencies)) assert.equal(installed(name), false, `devDependency ${name} is not installed`);
  });

  test('serves a scoring request through to the model, on the public listener', async () => {
    const r = await call(`http://127.0.0.1:${ports.pub}/endpoints/model/score`, { headers: bearer(SECRETS.SWITCHYARD_ENDPOINT_KEY), body: '{"data":[1]}' });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.headers['azureml-model-deployment'], 'default');
    assert.deepEqual(r.json(), { url: '/score', body: '{"data":[1]}' });
    assert.equal((await call(`http://127.0.0.1:${ports.pub}/endpoints/model/score`, { body: '{}' })).status, 401, 'the key is required');
  });

  test('answers /healthz, and the HEALTHCHECK command passes against it (and fails where nothing answers)', async () => {
    assert.equal((await call(`http://127.0.0.1:${ports.admin}/healthz`)).status, 200);
    const args = healthcheckArgs(lastOf<Healthcheck>(FINAL, 'HEALTHCHECK')!);
    const check = (url: string): number | null => spawnSync(process.execPath, args.slice(1), {
      env: { ...Object.fromEntries(ENV), SWITCHYARD_HEALTHCHECK_URL: url }, timeout: 10_000,
    }).status;
    assert.equal(check(`http://127.0.0.1:${ports.admin}/healthz`), 0);
    assert.equal(check(`http://${DEAD_HOST}:${await deadPort()}/healthz`), 1);
    assert.equal(check(`http://127.0.0.1:${ports.admin}/no-such-path`), 1, 'a non-2xx answer fails it');
  });

  test('SIGTERM drains: the request in flight completes, /readyz says draining, the process exits 0', async () => {
    const inFlight = call(`http://127.0.0.1:${ports.pub}/endpoints/model/hold`, { headers: bearer(SECRETS.SWITCHYARD_ENDPOINT_KEY), body: '{}' });
    await waitFor(() => held.length === 1, 'the request to reach the model');
    proc.kill('SIGTERM');
    await waitFor(async () => (await fetch(`http://127.0.0.1:${ports.admin}/readyz`).then((r) => r.status, () => 0)) === 503, '/readyz 503 while draining');
    assert.equal(proc.exitCode, null, 'still running while a request is in flight');
    held.shift()!();
    assert.equal((await inFlight).status, 200);
    assert.equal(await exited, 0, output);
    for (const secret of Object.values(SECRETS)) assert.ok(!output.includes(secret), 'no key in any log line');
  });
});
