/**
 * `${VAR}` and `${VAR:-default}` substitution (SPEC §2), done on the parsed YAML's string
 * values rather than on the raw text, so a value can never inject YAML structure.
 */

export const PATTERN = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** A variable that is referenced, unset and has no default. */
export interface MissingVar { readonly path: string; readonly name: string }

/**
 * Replace variables in every string of `value`; report unset ones with their field path,
 * and add the path of every string that had a variable to `replaced`.
 */
export function substituteEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  missing: MissingVar[] = [],
  path = '',
  replaced?: Set<string>,
): unknown {
  if (typeof value === 'string') {
    if (!value.includes('${')) return value;
    replaced?.add(path);
    return value.replace(PATTERN, (_m, name: string, def: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      missing.push({ path, name });
      return '';
    });
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => substituteEnv(v, env, missing, `${path}.${i}`, replaced));
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = substituteEnv(v, env, missing, path ? `${path}.${k}` : k, replaced);
    }
    return out;
  }
  return value;
}
