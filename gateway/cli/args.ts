/** What a command accepts: options that take a value, and how many other arguments. */
export interface ArgSpec {
  /** `--name VALUE` or `--name=VALUE`; anything else starting with `-` is refused. */
  readonly options?: readonly string[];
  /** `--name` alone (no value); parsed as the value `'true'`. */
  readonly flags?: readonly string[];
  /** At least `min` and at most `max` arguments that are not options (default 0 and 0). */
  readonly positionals?: { readonly min: number; readonly max: number };
}

export type ParsedArgs =
  | { readonly ok: true; readonly options: ReadonlyMap<string, string>; readonly positionals: readonly string[] }
  | { readonly ok: false; readonly error: string };

/**
 * Strict parsing: an unknown option (`validate f --strict`, `serve --bogus`), a missing
 * value, an option given twice or an argument too many is an error, never ignored: a flag
 * the user believes in but the command skips is worse than a usage message. `--` ends the
 * options; a lone `-` is an argument.
 */
export function parseArgs(args: readonly string[], spec: ArgSpec): ParsedArgs {
  const known = new Set(spec.options ?? []);
  const flags = new Set(spec.flags ?? []);
  const { min, max } = spec.positionals ?? { min: 0, max: 0 };
  const options = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--') {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (options.has(name)) return { ok: false, error: `${name} given twice` };
    if (flags.has(name)) {
      if (eq > 0) return { ok: false, error: `${name} takes no value` };
      options.set(name, 'true');
      continue;
    }
    if (!known.has(name)) return { ok: false, error: `unknown option ${name}` };
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined || value === '') return { ok: false, error: `${name} needs a value` };
    options.set(name, value);
  }
  if (positionals.length > max) {
    return { ok: false, error: max === 0 ? `takes no arguments (got ${positionals.length})` : `too many arguments (at most ${max})` };
  }
  if (positionals.length < min) return { ok: false, error: 'missing arguments' };
  return { ok: true, options, positionals };
}

/** Whether the arguments ask for help. */
export function wantsHelp(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  const opts = end < 0 ? args : args.slice(0, end);
  return opts.includes('--help') || opts.includes('-h');
}

/** A TCP port number (0 picks a free port), or undefined. */
export function portNumber(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65_535 ? n : undefined;
}
