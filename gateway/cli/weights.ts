/**
 * The arguments of `switchyard traffic` and `switchyard mirror` (`blue=90 green=10`), checked
 * here before anything is sent, and the merge patch they become. Azure ML's
 * `--traffic "blue=90 green=10"` is the model: the deployments named get those weights and
 * every other one 0, so a command states the whole split and no old weight lingers. The
 * gateway checks everything again (it is the authority); these checks exist for a message
 * that names the argument at fault instead of a field path of the config.
 */

export type Weights = readonly (readonly [string, number])[];

export type Parsed<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

const PAIR = /^([^=\s]+)=(.*)$/;

/**
 * `DEP=N` arguments, each N a whole number from 0 to `max`; a name given twice, or once
 * with `=` missing, is an error. `what` names the numbers in messages ("weight", "percent").
 */
export function parseWeights(args: readonly string[], max: number, what: string): Parsed<Weights> {
  const out: [string, number][] = [];
  for (const a of args) {
    const m = PAIR.exec(a);
    if (!m) return { ok: false, error: `${JSON.stringify(a)} is not DEPLOYMENT=${what.toUpperCase()} (e.g. blue=90)` };
    const [, name = '', text = ''] = m;
    if (!/^\d{1,3}$/.test(text) || Number(text) > max) {
      return { ok: false, error: `${name}=${text}: the ${what} must be a whole number from 0 to ${max}` };
    }
    if (out.some(([n]) => n === name)) return { ok: false, error: `${name} is given twice` };
    out.push([name, Number(text)]);
  }
  return { ok: true, value: out };
}

/** What the commands need of an endpoint's config, as the admin API shows it. */
export interface SplitConfig {
  readonly deployments?: Readonly<Record<string, unknown>>;
  readonly traffic?: Readonly<Record<string, number>>;
  readonly mirror_traffic?: Readonly<Record<string, number>>;
}

function unknownNames(endpoint: string, cfg: SplitConfig, weights: Weights): string | undefined {
  const have = Object.keys(cfg.deployments ?? {});
  const missing = weights.map(([n]) => n).filter((n) => !have.includes(n));
  if (!missing.length) return undefined;
  const names = missing.map((n) => JSON.stringify(n)).join(', ');
  return `endpoint ${endpoint} has no deployment named ${names} (it has: ${have.join(', ') || 'none'})`;
}

/** Every deployment's share, 0 for those without one, in the config's order. */
export function fullSplit(cfg: SplitConfig, field: 'traffic' | 'mirror_traffic'): Record<string, number> {
  const current = cfg[field] ?? {};
  const names = [...new Set([...Object.keys(cfg.deployments ?? {}), ...Object.keys(current)])];
  return Object.fromEntries(names.map((n) => [n, current[n] ?? 0]));
}

/** Why a traffic split does not add up, or undefined (checked before the gateway is asked anything). */
export function sumError(weights: Weights): string | undefined {
  const sum = weights.reduce((s, [, w]) => s + w, 0);
  return sum === 100 || sum === 0 ? undefined : `the weights must sum to 100 (or 0), got ${sum}; deployments not named get 0`;
}

/**
 * The merge patch `{traffic: {...}}` for `traffic ENDPOINT DEP=W...`: the named weights, and
 * 0 for every other deployment that has a weight now. The weights must sum to 100 (or 0:
 * the endpoint then routes nothing but pinned requests, as Azure allows).
 */
export function trafficPatch(endpoint: string, cfg: SplitConfig, weights: Weights): Parsed<{ traffic: Record<string, number> }> {
  const sum = sumError(weights);
  if (sum) return { ok: false, error: sum };
  const unknown = unknownNames(endpoint, cfg, weights);
  if (unknown) return { ok: false, error: unknown };
  const traffic: Record<string, number> = {};
  for (const n of Object.keys(cfg.traffic ?? {})) traffic[n] = 0;
  for (const [n, w] of weights) traffic[n] = w;
  const mirrored = weights.find(([n, w]) => w > 0 && (cfg.mirror_traffic?.[n] ?? 0) > 0);
  if (mirrored) {
    return { ok: false, error: `${mirrored[0]} is the mirror target (mirror_traffic); stop the mirror first (switchyard mirror ${endpoint} --off)` };
  }
  return { ok: true, value: { traffic } };
}

/**
 * The merge patch `{mirror_traffic: {...}}` for `mirror ENDPOINT DEP=PERCENT` (one target,
 * at most 50%, not a deployment with live traffic) or, with no weights, for `--off`: every
 * mirror share set to 0.
 */
export function mirrorPatch(endpoint: string, cfg: SplitConfig, weights: Weights): Parsed<{ mirror_traffic: Record<string, number> }> {
  if (weights.length > 1) return { ok: false, error: 'mirror to one deployment only (DEPLOYMENT=PERCENT)' };
  const unknown = unknownNames(endpoint, cfg, weights);
  if (unknown) return { ok: false, error: unknown };
  const target = weights[0];
  if (target && target[1] > 0 && (cfg.traffic?.[target[0]] ?? 0) > 0) {
    return {
      ok: false,
      error: `${target[0]} has live traffic (${cfg.traffic?.[target[0]]}%); a deployment with live traffic cannot also be the mirror (set its traffic to 0 first)`,
    };
  }
  const mirror: Record<string, number> = {};
  for (const n of Object.keys(cfg.mirror_traffic ?? {})) mirror[n] = 0;
  if (target) mirror[target[0]] = target[1];
  return { ok: true, value: { mirror_traffic: mirror } };
}

/** `blue 90%, green 10%` (every deployment, 0% included). */
export function formatSplit(split: Readonly<Record<string, number>>): string {
  const parts = Object.entries(split).map(([n, w]) => `${n} ${w}%`);
  return parts.length ? parts.join(', ') : 'no deployments';
}
