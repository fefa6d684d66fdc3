import { formatIssues, loadConfigFile } from '../../../config/load.ts';
import { positional } from '../args.ts';
import { usageLine, type Command } from '../command.ts';

export const validate: Command = {
  name: 'validate',
  args: 'FILE',
  summary: 'check a config file (exit 0, or non-zero with one line per problem)',
  async run(args) {
    const file = positional(args);
    if (!file) {
      process.stderr.write(`switchyard validate: FILE is required\n${usageLine(validate)}`);
      return 2;
    }
    const r = await loadConfigFile(file);
    if (r.ok) {
      process.stdout.write(`${file}: ok (${Object.keys(r.config.endpoints).length} endpoints)\n`);
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      return 0;
    }
    process.stderr.write(`${formatIssues(r.issues)}\n`);
    return 1;
  },
};
