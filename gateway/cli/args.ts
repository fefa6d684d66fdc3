/** `--name VALUE` or `--name=VALUE`, or undefined. */
export function flag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0) return args[i + 1];
  const eq = args.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

/** The first argument that is not an option. */
export function positional(args: readonly string[]): string | undefined {
  return args.find((a) => !a.startsWith('-'));
}

/** Whether the arguments ask for help. */
export function wantsHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}
