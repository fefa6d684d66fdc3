import { ADMIN_HELP, clientFor, failCall, outputOf, printJson, type AdminView } from '../admin-command.ts';
import { printable } from '../admin-client.ts';
import { parseArgs } from '../args.ts';
import { usageError, type Command } from '../command.ts';
import { formatSplit, fullSplit, mirrorPatch, parseWeights, sumError, trafficPatch, type Parsed, type SplitConfig, type Weights } from '../weights.ts';

/**
 * `switchyard traffic` and `switchyard mirror`: read the endpoint (and its ETag), build the
 * merge patch from the arguments, PATCH it with `If-Match`. Between the read and the write
 * someone else may have changed the endpoint; the gateway then answers 412 and nothing
 * changes (the patch was built on what this command saw, so it must not land on another
 * version).
 */

/** Whether a `{field: {deployment: share}}` patch sets every share to what it is (absent is 0). */
export function changesNothing(cfg: Readonly<Record<string, unknown>>, patch: Readonly<Record<string, unknown>>): boolean {
  return Object.entries(patch).every(([field, shares]) => {
    const now = (cfg[field] ?? {}) as Readonly<Record<string, unknown>>;
    return Object.entries(shares as Readonly<Record<string, number>>).every(([d, v]) => (now[d] ?? 0) === v);
  });
}

async function patchSplit(
  cmd: Command,
  endpoint: string,
  output: 'text' | 'json',
  build: (cfg: SplitConfig) => Parsed<Record<string, unknown>>,
  describe: (cfg: SplitConfig) => string,
): Promise<number> {
  const client = clientFor(cmd);
  if (typeof client === 'number') return client;
  try {
    const current = await client.endpoint<AdminView>(endpoint);
    const patch = build(current.body.config ?? {});
    // A deployment the endpoint does not have, or a rule of the split: the arguments are at fault.
    if (!patch.ok) return usageError(cmd, patch.error);
    // Already so: nothing is written. A write would still be an edit: an audit entry, and an
    // endpoint the config file defines would become an API override (see live-doc.ts).
    const same = changesNothing(current.body.config ?? {}, patch.value);
    const r = same ? current : await client.editEndpoint<AdminView>('PATCH', endpoint, { body: patch.value, ifMatch: current.etag });
    if (output === 'json') printJson(r.body);
    else process.stdout.write(`${printable(endpoint)}: ${printable(describe(r.body.config ?? {}))}${same ? ' (unchanged)' : ''}\n`);
    return 0;
  } catch (err) {
    return failCall(cmd, client, err, endpoint);
  }
}

export const traffic: Command = {
  name: 'traffic',
  args: 'ENDPOINT DEPLOYMENT=WEIGHT... [--output text|json]',
  summary: 'set the traffic split (deployments not named get 0)',
  details: 'switchyard traffic cars blue=90 green=10: weights are whole percents that sum to 100 (or 0: only requests\n'
    + 'pinned with azureml-model-deployment are served). Every deployment not named gets 0. The endpoint is read,\n'
    + 'then patched only if nobody changed it meanwhile (If-Match). Prints the resulting split\n'
    + '(`cars: traffic blue 90%, green 10%`); --output json prints the endpoint as the admin API shows it.\n'
    + ADMIN_HELP,
  run(args) {
    const a = parseArgs(args, { options: ['--output'], positionals: { min: 0, max: Infinity } });
    if (!a.ok) return Promise.resolve(usageError(traffic, a.error));
    const output = outputOf(traffic, a, ['text', 'json']);
    if (typeof output === 'number') return Promise.resolve(output);
    const [endpoint, ...pairs] = a.positionals;
    if (endpoint === undefined) return Promise.resolve(usageError(traffic, 'ENDPOINT is required'));
    if (!pairs.length) return Promise.resolve(usageError(traffic, 'give at least one DEPLOYMENT=WEIGHT (e.g. blue=90 green=10)'));
    const w = parseWeights(pairs, 100, 'weight');
    if (!w.ok) return Promise.resolve(usageError(traffic, w.error));
    const sum = sumError(w.value);
    if (sum) return Promise.resolve(usageError(traffic, sum));
    return patchSplit(traffic, endpoint, output, (cfg) => trafficPatch(endpoint, cfg, w.value),
      (cfg) => `traffic ${formatSplit(fullSplit(cfg, 'traffic'))}`);
  },
};

/** `mirroring 10% of live traffic to shadow`, or `mirror off`. */
function describeMirror(cfg: SplitConfig): string {
  const on = Object.entries(cfg.mirror_traffic ?? {}).filter(([, p]) => p > 0);
  return on.length ? on.map(([d, p]) => `mirroring ${p}% of live traffic to ${d}`).join('; ') : 'mirror off';
}

export const mirror: Command = {
  name: 'mirror',
  args: 'ENDPOINT DEPLOYMENT=PERCENT|--off [--output text|json]',
  summary: 'mirror a share of live traffic to a deployment, or stop',
  details: 'switchyard mirror cars shadow=10: 10% of the requests the split routes are also sent to shadow, whose\n'
    + 'answers are compared and discarded (`switchyard status cars` shows the shadow report). One target, at most\n'
    + '50%, not a deployment with live traffic; any other mirror share is set to 0. DEPLOYMENT=0 or --off stops\n'
    + 'mirroring. Read, then patched with If-Match, as `traffic` is. --output json prints the endpoint.\n'
    + ADMIN_HELP,
  run(args) {
    const a = parseArgs(args, { options: ['--output'], flags: ['--off'], positionals: { min: 0, max: Infinity } });
    if (!a.ok) return Promise.resolve(usageError(mirror, a.error));
    const output = outputOf(mirror, a, ['text', 'json']);
    if (typeof output === 'number') return Promise.resolve(output);
    const [endpoint, ...pairs] = a.positionals;
    if (endpoint === undefined) return Promise.resolve(usageError(mirror, 'ENDPOINT is required'));
    const off = a.options.has('--off');
    if (off && pairs.length) return Promise.resolve(usageError(mirror, '--off takes no DEPLOYMENT=PERCENT'));
    if (!off && pairs.length !== 1) {
      return Promise.resolve(usageError(mirror, pairs.length ? 'mirror to one deployment only (one DEPLOYMENT=PERCENT)' : 'give DEPLOYMENT=PERCENT (e.g. shadow=10), or --off'));
    }
    let weights: Weights = [];
    if (!off) {
      const w = parseWeights(pairs, 50, 'percent');
      if (!w.ok) return Promise.resolve(usageError(mirror, w.error));
      weights = w.value;
    }
    return patchSplit(mirror, endpoint, output, (cfg) => mirrorPatch(endpoint, cfg, weights), describeMirror);
  },
};
