import { formatIssues, loadConfigFile } from '../../../config/load.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';

export const validate: Command = {
  name: 'validate',
  args: 'FILE',
  summary: 'check config files, each FILE given (exit 0, or non-zero with one line per problem)',
  details: 'Every FILE is checked. With one FILE: `FILE: ok (N endpoints)` on stdout, or one `field.path: problem`\n'
    + 'line per problem on stderr. With several, each line starts with its file, and each file gets a result line\n'
    + '(`FILE: ok (N endpoints)` or `FILE: invalid (N problems)`). Warnings (`warning: ...`) do not fail it.',
  async run(args) {
    const a = parseArgs(args, { positionals: { min: 0, max: Infinity } });
    if (!a.ok) return usageError(validate, a.error);
    const files = a.positionals;
    if (!files.length) return usageError(validate, 'FILE is required');
    const many = files.length > 1;
    let failed = 0;
    for (const file of files) {
      const prefix = many ? `${file}: ` : '';
      const r = await loadConfigFile(file);
      if (r.ok) {
        process.stdout.write(`${file}: ok (${Object.keys(r.config.endpoints).length} endpoints)\n`);
        for (const w of r.warnings) process.stderr.write(`warning: ${prefix}${w}\n`);
        continue;
      }
      failed++;
      process.stderr.write(`${formatIssues(r.issues).replace(/^/gm, prefix)}\n`);
      if (many) process.stderr.write(`${file}: invalid (${r.issues.length} problem${r.issues.length === 1 ? '' : 's'})\n`);
    }
    return failed ? 1 : 0;
  },
};
