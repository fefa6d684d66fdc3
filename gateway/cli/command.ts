/**
 * One `switchyard` command: a row of the table in cli.ts. The usage text, `--help` and the
 * list printed for an unknown command are all generated from these rows.
 */
export interface Command {
  /** The word after `switchyard`. */
  readonly name: string;
  /** Other words that run it (`--help`, `-h`). */
  readonly aliases?: readonly string[];
  /** The arguments, as the usage line shows them. */
  readonly args: string;
  /** What it does, in one line. */
  readonly summary: string;
  /** Further lines for `switchyard NAME --help`. */
  readonly details?: string;
  /** Exit code for commands that finish; undefined for ones that keep running (servers). */
  readonly run: (args: readonly string[]) => Promise<number | undefined>;
}

/** `usage: switchyard NAME ARGS`, for a command's help and its argument errors. */
export function usageLine(c: Command): string {
  return `usage: switchyard ${c.name}${c.args ? ` ${c.args}` : ''}\n`;
}

/** `switchyard NAME: PROBLEM` and the usage line on stderr; exit code 2 (a usage error). */
export function usageError(c: Command, problem: string): number {
  process.stderr.write(`switchyard ${c.name}: ${problem}\n${usageLine(c)}`);
  return 2;
}
