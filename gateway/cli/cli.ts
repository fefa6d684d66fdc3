import { readFile } from 'node:fs/promises';
import { parseArgs, wantsHelp } from './args.ts';
import { usageError, usageLine, type Command } from './command.ts';
import { ADMIN_KEY_ENV, ADMIN_URL_ENV } from './admin-client.ts';
import { apply } from './commands/apply.ts';
import { audit } from './commands/audit.ts';
import { del } from './commands/delete.ts';
import { demo } from './commands/demo.ts';
import { get } from './commands/get.ts';
import { keys } from './commands/keys.ts';
import { modelServer } from './commands/model-server.ts';
import { serve } from './commands/serve.ts';
import { status } from './commands/status.ts';
import { mirror, traffic } from './commands/traffic.ts';
import { validate } from './commands/validate.ts';

/** What a bare `switchyard` runs. */
const DEFAULT = demo;

const help: Command = {
  name: 'help',
  aliases: ['--help', '-h'],
  args: '[COMMAND]',
  summary: 'this text, or one command\'s usage (or: COMMAND --help)',
  run(args) {
    const a = parseArgs(args, { positionals: { min: 0, max: 1 } });
    if (!a.ok) return Promise.resolve(usageError(help, a.error));
    const name = a.positionals[0];
    if (name === undefined) {
      process.stdout.write(usage());
      return Promise.resolve(0);
    }
    const cmd = lookup(name);
    if (!cmd) return Promise.resolve(unknown(name));
    process.stdout.write(commandHelp(cmd));
    return Promise.resolve(0);
  },
};

const version: Command = {
  name: 'version',
  aliases: ['--version', '-v'],
  args: '',
  summary: 'print the version',
  async run(args) {
    const a = parseArgs(args, {});
    if (!a.ok) return usageError(version, a.error);
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  },
};

/** The commands that run the gateway or check its config, in the order `--help` lists them. */
const LOCAL: readonly Command[] = [serve, validate, demo, modelServer];
/** The commands over a running gateway's admin API (SPEC §5). */
const ADMIN: readonly Command[] = [status, traffic, mirror, get, apply, del, keys, audit];
const OTHER: readonly Command[] = [help, version];

/** Every command, in the order `--help` lists them. */
export const COMMANDS: readonly Command[] = [...LOCAL, ...ADMIN, ...OTHER];

const byName = new Map<string, Command>(COMMANDS.flatMap((c) => [c.name, ...(c.aliases ?? [])].map((n) => [n, c] as const)));

function lookup(name: string): Command | undefined {
  return byName.get(name);
}

function line(c: Command, width: number): string {
  const head = `  switchyard ${c.name}${c.args ? ` ${c.args}` : ''}`;
  const aliases = c.aliases?.length ? ` (also ${c.aliases.join(', ')})` : '';
  return head.length <= width
    ? `${head.padEnd(width)}  ${c.summary}${aliases}\n`
    : `${head}\n${' '.repeat(width + 2)}${c.summary}${aliases}\n`;
}

/** The usage text, generated from the table. */
export function usage(): string {
  const width = 40;
  return `usage: switchyard [COMMAND] [ARGS]\n(a bare \`switchyard\` runs \`switchyard ${DEFAULT.name}\`)\n\n`
    + LOCAL.map((c) => line(c, width)).join('')
    + `\nover a running gateway's admin API (${ADMIN_URL_ENV}, ${ADMIN_KEY_ENV}):\n${ADMIN.map((c) => line(c, width)).join('')}`
    + `\n${OTHER.map((c) => line(c, width)).join('')}`;
}

function commandHelp(c: Command): string {
  return `${usageLine(c)}  ${c.summary}\n${c.details ? `${c.details.replace(/^/gm, '  ')}\n` : ''}`;
}

function unknown(name: string): number {
  process.stderr.write(`switchyard: unknown command ${JSON.stringify(name)}\n${usage()}`);
  return 2;
}

/** The `switchyard` command. Returns the exit code for commands that finish. */
export async function main(argv: readonly string[]): Promise<number | undefined> {
  const [name, ...args] = argv;
  if (name === undefined) return DEFAULT.run([]);
  const cmd = lookup(name);
  if (!cmd) return unknown(name);
  if (cmd !== help && wantsHelp(args)) {
    process.stdout.write(commandHelp(cmd));
    return 0;
  }
  return cmd.run(args);
}
