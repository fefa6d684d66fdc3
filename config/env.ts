/**
 * `${VAR}` and `${VAR:-default}` substitution (SPEC §2), done on the parsed YAML's string
 * values rather than on the raw text, so a value can never inject YAML structure.
 *
 * Strict about anything that looks like a reference but is not one: `"${CARS_KEY_1"`,
 * `"${ CARS_KEY_1 }"`, `"${CARS_KEY_1:default}"` or a bare `"$CARS_KEY_1"` would otherwise
 * become the literal text (a key nobody can send, or worse, one that anybody who reads the
 * file can), and `"${CARS_KEY_1}}"` the value plus a `}`. Each of these is an error naming
 * the field, never quoting it (the text may be a key). `$$` is a literal `$`; a `$` followed
 * by anything but a letter, `_`, `{` or `$` is kept as it is (`pa$5`, `cost: 5$`).
 */

/** A well-formed reference, anywhere in a text (for masking before YAML parsing). */
export const PATTERN = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
/** A well-formed reference at the current position. */
const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/y;

/** A problem with a string's variables: where, and what (never the string itself). */
export interface EnvProblem { readonly path: string; readonly message: string }

/** What is wrong with a `$` at `i` of `s` that does not start a well-formed reference. */
function malformed(s: string, i: number): string | undefined {
  const next = s[i + 1];
  if (next === '{') {
    const close = s.indexOf('}', i);
    const inner = close < 0 ? undefined : s.slice(i + 2, close);
    const why = inner === undefined ? 'no closing }'
      : /^\s|\s$/.test(inner) ? 'spaces inside the braces'
      : /^[A-Za-z_][A-Za-z0-9_]*:[^-]/.test(inner) || /^[A-Za-z_][A-Za-z0-9_]*:$/.test(inner) ? 'a default is written ${NAME:-default}'
      : 'a name is letters, digits and _, not starting with a digit';
    return `a malformed \${...} reference (${why}); write \${NAME} or \${NAME:-default}, and $$ for a literal $`;
  }
  if (next !== undefined && /[A-Za-z_]/.test(next)) {
    return 'a bare $NAME is not substituted; write ${NAME} for a variable, or $$ for a literal $';
  }
  return undefined;
}

/**
 * The string with its references replaced, or the problems found in it. `$$` is a `$`.
 * `missing` gets the unset variables that have no default.
 */
function substituteString(s: string, env: NodeJS.ProcessEnv, path: string, problems: EnvProblem[]): string {
  let out = '';
  let i = 0;
  while (i < s.length) {
    const at = s.indexOf('$', i);
    if (at < 0) {
      out += s.slice(i);
      break;
    }
    out += s.slice(i, at);
    if (s[at + 1] === '$') {
      out += '$';
      i = at + 2;
      continue;
    }
    REFERENCE.lastIndex = at;
    const m = REFERENCE.exec(s);
    if (m) {
      const [whole, name = '', def] = m;
      i = at + whole.length;
      if (s[i] === '}') {
        problems.push({ path, message: `a stray } right after \${${name}} (is there one } too many?)` });
        return s;
      }
      const v = env[name];
      if (v !== undefined && v !== '') out += v;
      else if (def !== undefined) out += def;
      else problems.push({ path, message: `environment variable ${name} is not set and has no default` });
      continue;
    }
    const why = malformed(s, at);
    if (why) {
      problems.push({ path, message: why });
      return s;
    }
    out += '$';
    i = at + 1;
  }
  return out;
}

/**
 * Replace variables in every string of `value`; report problems (unset variables, malformed
 * references) with their field path, and add the path of every string that had a `$` to
 * `replaced`.
 */
export function substituteEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  problems: EnvProblem[] = [],
  path = '',
  replaced?: Set<string>,
): unknown {
  if (typeof value === 'string') {
    if (!value.includes('$')) return value;
    replaced?.add(path);
    return substituteString(value, env, path || '(root)', problems);
  }
  if (Array.isArray(value)) {
    return value.map((v, i) => substituteEnv(v, env, problems, `${path}.${i}`, replaced));
  }
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      // Defined, not assigned: a member named `__proto__` stays a member (the schema refuses it)
      // instead of becoming the object's prototype, whose fields the schema would then read.
      Object.defineProperty(out, k, { value: substituteEnv(v, env, problems, path ? `${path}.${k}` : k, replaced), enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return value;
}
