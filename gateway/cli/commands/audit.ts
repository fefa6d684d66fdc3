import { ADMIN_HELP, clientFor, failCall, outputOf, printJson } from '../admin-command.ts';
import { printable } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';
import { formatValue } from '../config-diff.ts';

/** An audit entry as `GET /admin/audit` lists it (read defensively). */
export interface AuditEntryView {
  readonly version?: unknown;
  readonly previous_version?: unknown;
  readonly at?: unknown;
  readonly by?: unknown;
  readonly action?: unknown;
  readonly endpoint?: unknown;
  readonly change?: unknown;
}

const text = (v: unknown): string => printable(v === undefined || v === null ? '' : String(v));

/** The table: newest first, one change a line, the change itself clipped to one line. */
export function formatAudit(entries: readonly AuditEntryView[]): string {
  if (!entries.length) return 'no changes made through the admin API\n';
  const rows = [
    ['VERSION', 'AT', 'BY', 'ACTION', 'ENDPOINT', 'CHANGE'],
    ...entries.map((e) => [
      `${text(e.previous_version)}→${text(e.version)}`,
      text(e.at).replace(/\.\d+Z$/, 'Z'),
      text(e.by),
      text(e.action),
      text(e.endpoint),
      e.change === undefined ? '' : formatValue(e.change),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n') + '\n';
}

/** `switchyard audit [ENDPOINT]`: the last changes made through the admin API. */
export const audit: Command = {
  name: 'audit',
  args: '[ENDPOINT] [--output table|json]',
  summary: 'the last 100 changes made through the admin API',
  details: 'One line per change: the live document\'s version before→after, when, who (admin_key:NAME or aad_token:OID, or\n'
    + 'file when a config file change superseded an API edit), the action, the endpoint and what was asked (keys\n'
    + 'redacted). ENDPOINT keeps that endpoint\'s changes only. --output json prints the admin API\'s answer.\n'
    + ADMIN_HELP,
  async run(args) {
    const a = parseArgs(args, { options: ['--output'], positionals: { min: 0, max: 1 } });
    if (!a.ok) return usageError(audit, a.error);
    const output = outputOf(audit, a, ['table', 'json']);
    if (typeof output === 'number') return output;
    const endpoint = a.positionals[0];
    const client = clientFor(audit);
    if (typeof client === 'number') return client;
    try {
      const r = await client.audit<{ entries?: AuditEntryView[] }>();
      const entries = (r.body.entries ?? []).filter((e) => endpoint === undefined || e.endpoint === endpoint);
      if (output === 'json') printJson({ ...r.body, entries });
      else process.stdout.write(formatAudit(entries));
      return 0;
    } catch (err) {
      return failCall(audit, client, err, undefined);
    }
  },
};
