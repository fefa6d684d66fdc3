import type { GatewayConfig } from '../../../config/schema.ts';
import { ADMIN_HELP, EXIT, clientFor, failCall, outputOf, printJson, type AdminView } from '../admin-command.ts';
import { printable } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';
import { diffEndpoints, formatChanges, redactKeys, type Change } from '../config-diff.ts';

/**
 * What loading `cfg` as the gateway's config would change in the endpoints it runs now: a
 * plan before applying. Like is compared with like: the file went through the same schema as
 * the gateway's config (defaults filled), and its keys are redacted as the admin API shows
 * them, so keys compare as present or absent only.
 */
export function fileChanges(running: readonly AdminView[], cfg: GatewayConfig): Change[] {
  const before = Object.fromEntries(running.map((v) => [String(v.name ?? ''), v.config ?? {}]));
  const after = Object.fromEntries(Object.entries(cfg.endpoints).map(([n, ep]) => [n, redactKeys(ep)]));
  return diffEndpoints(before, after);
}

async function diffRun(file: string, cfg: GatewayConfig, output: 'text' | 'json'): Promise<number> {
  const client = clientFor(validate);
  if (typeof client === 'number') return client;
  let running: AdminView[];
  try {
    running = (await client.endpoints<{ endpoints?: AdminView[] }>()).body.endpoints ?? [];
  } catch (err) {
    return failCall(validate, client, err, undefined);
  }
  const changes = fileChanges(running, cfg);
  if (output === 'json') {
    printJson({ file, ok: true, endpoints: Object.keys(cfg.endpoints).length, admin_url: client.url, changes });
    return EXIT.ok;
  }
  process.stdout.write(formatChanges(changes));
  // An API edit outlives a file that still says what it said when the edit was made: for
  // those endpoints the plan holds only if the file changes them.
  const edited = running.filter((v) => v.source === 'api' && changes.some((c) => c.path === `endpoints.${v.name}` || c.path.startsWith(`endpoints.${v.name}.`)));
  for (const v of edited) {
    const n = printable(String(v.name));
    process.stderr.write(`note: ${n} runs an edit made through the admin API; if ${file} becomes the gateway's config file, it replaces that edit only if its endpoints.${n} differs from what the file said when the edit was made\n`);
  }
  return EXIT.ok;
}

export const validate: Command = {
  name: 'validate',
  args: 'FILE [--diff]',
  summary: 'check config files (one line per problem); --diff: what FILE would change',
  details: 'Every FILE is checked. With one FILE: `FILE: ok (N endpoints)` on stdout, or one `field.path: problem`\n'
    + 'line per problem on stderr. With several, each line starts with its file, and each file gets a result line\n'
    + '(`FILE: ok (N endpoints)` or `FILE: invalid (N problems)`). Warnings (`warning: ...`) do not fail it.\n'
    + '--diff (one FILE): also print what loading FILE as the gateway\'s config would change in the endpoints the\n'
    + 'running gateway serves, field by field (`~ endpoints.cars.traffic.blue: 100 -> 90`, `+ endpoints.vans`,\n'
    + '`- endpoints.dogs`), without changing anything. Keys compare as present or absent (the gateway never shows\n'
    + 'them); ${ENV} references are resolved from this shell\'s environment. --output json prints\n'
    + '{file, ok, endpoints, admin_url, changes}.\n'
    + ADMIN_HELP,
  async run(args) {
    const a = parseArgs(args, { options: ['--output'], flags: ['--diff'], positionals: { min: 0, max: Infinity } });
    if (!a.ok) return usageError(validate, a.error);
    const files = a.positionals;
    if (!files.length) return usageError(validate, 'FILE is required');
    const diff = a.options.has('--diff');
    if (a.options.has('--output') && !diff) return usageError(validate, '--output goes with --diff');
    const output = outputOf(validate, a, ['text', 'json']);
    if (typeof output === 'number') return output;
    if (diff && files.length > 1) return usageError(validate, '--diff takes one FILE');
    // Loaded on use: the schema (zod) is most of the CLI's start-up time, and only this command needs it.
    const { formatIssues, loadConfigFile } = await import('../../../config/load.ts');
    const many = files.length > 1;
    let failed = 0;
    for (const file of files) {
      const prefix = many ? `${file}: ` : '';
      const r = await loadConfigFile(file);
      if (r.ok) {
        if (output === 'text') process.stdout.write(`${file}: ok (${Object.keys(r.config.endpoints).length} endpoints)\n`);
        for (const w of r.warnings) process.stderr.write(`warning: ${prefix}${w}\n`);
        if (diff) return diffRun(file, r.config, output);
        continue;
      }
      failed++;
      process.stderr.write(`${formatIssues(r.issues).replace(/^/gm, prefix)}\n`);
      if (many) process.stderr.write(`${file}: invalid (${r.issues.length} problem${r.issues.length === 1 ? '' : 's'})\n`);
    }
    return failed ? 1 : 0;
  },
};
