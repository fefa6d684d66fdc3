import type { Command } from '../command.ts';

/**
 * SPEC §5's CLI over the admin API, not built in this version. Each is in the table so that
 * `--help` lists it and running it says so (exit 2), rather than "unknown command".
 */
function planned(name: string, args: string, summary: string, meanwhile: string): Command {
  return {
    name,
    args,
    summary,
    planned: true,
    run() {
      process.stderr.write(`switchyard ${name}: not in this version (SPEC §5). Meanwhile: ${meanwhile}\n`);
      return Promise.resolve(2);
    },
  };
}

export const plannedCommands: readonly Command[] = [
  planned('traffic', 'ENDPOINT DEPLOYMENT=WEIGHT...', 'set an endpoint\'s traffic split', 'edit `traffic` in the config file and save (it reloads live).'),
  planned('mirror', 'ENDPOINT DEPLOYMENT=PERCENT', 'set an endpoint\'s shadow traffic',
    'edit `mirror_traffic` in the config file and save (it reloads live); `switchyard status ENDPOINT` shows the shadow report.'),
  planned('keys', 'regenerate ENDPOINT primary|secondary', 'regenerate an endpoint key',
    'POST $SWITCHYARD_ADMIN_URL/admin/endpoints/ENDPOINT/keys/regenerate with {"key_type":"primary"} and the admin key.'),
];
