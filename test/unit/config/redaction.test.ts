import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatIssues, parseConfigText } from '../../../config/load.ts';

/**
 * Issue 7 item 3: a one-character typo around a literal key must never put the key into an
 * error message (they go to logs and CI output). Every insertion of a structural character
 * and every deletion around the key's line, in each way a key can be written, run through
 * the loader; no message may contain any 6-character piece of the key.
 */
const SECRET = 'k-SECRET-abcdef123456';
const PIECES = Array.from({ length: SECRET.length - 5 }, (_, i) => SECRET.slice(i, i + 6));

const head = `server:
  listen: { host: 127.0.0.1, port: 8080 }
admin:
  keys: [admin-key-1]
endpoints:
  cars:
    traffic: { blue: 100 }
`;
const tail = `    deployments:
      blue: { instances: [http://10.0.0.11:5001] }
`;

/** Each style: the document, and the lines (as text) the typos land on. */
const STYLES: Record<string, string> = {
  'flow, double-quoted': `    keys: { primary: "${SECRET}" }\n`,
  'flow, single-quoted': `    keys: { primary: '${SECRET}' }\n`,
  'flow, plain': `    keys: { primary: ${SECRET} }\n`,
  'flow, two keys': `    keys: { primary: "${SECRET}", secondary: "${SECRET}" }\n`,
  'block, plain': `    keys:\n      primary: ${SECRET}\n`,
  'block, quoted': `    keys:\n      secondary: "${SECRET}"\n`,
};
const ADMIN_STYLES: Record<string, string> = {
  'admin list, flow': `admin:\n  keys: ["${SECRET}", other-admin-key]\n`,
  'admin list, block': `admin:\n  keys:\n    - ${SECRET}\n`,
};
// `?` and `? ` (YAML's explicit-key indicator) make a collection a map key, which the yaml
// library stringifies into a process warning unless told not to (issue 7 follow-up).
const CHARS = [':', ' ', '{', '}', '"', '\n', "'", ',', '[', ']', '-', '#', '?', '? '];

/** Every one-character insertion of CHARS and every deletion within [from, to) of `doc`. */
function* mutations(doc: string, from: number, to: number): Generator<string> {
  for (let i = from; i <= to; i++) {
    for (const c of CHARS) yield doc.slice(0, i) + c + doc.slice(i);
    if (i < to) yield doc.slice(0, i) + doc.slice(i + 1);
  }
}

function leaks(doc: string): string | undefined {
  const r = parseConfigText(doc, {});
  const out = r.ok ? r.warnings.join('\n') : formatIssues(r.issues);
  return PIECES.find((p) => out.includes(p)) ? out : undefined;
}

test('no one-character typo around a literal key puts the key into a message or a process warning', async () => {
  // Node warnings (process.emitWarning) go to stderr, i.e. into the same logs.
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  let tried = 0;
  let refused = 0;
  const leaked: string[] = [];
  const run = (doc: string, from: number, to: number): void => {
    for (const m of mutations(doc, from, to)) {
      tried++;
      const r = parseConfigText(m, {});
      if (!r.ok) refused++;
      const out = leaks(m);
      if (out !== undefined) leaked.push(`--- config:\n${m}--- said:\n${out}`);
    }
  };
  for (const lines of Object.values(STYLES)) {
    const doc = head + lines + tail;
    // The key's lines plus the line break before and after them.
    run(doc, head.length - 1, head.length + lines.length);
  }
  for (const lines of Object.values(ADMIN_STYLES)) {
    const doc = head.replace('admin:\n  keys: [admin-key-1]\n', lines);
    const from = doc.indexOf(lines);
    run(doc, Math.max(0, from - 1), from + lines.length);
  }
  // Warnings are emitted on the next tick: let them arrive.
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  assert.ok(tried > 1000, `${tried} mutations tried`);
  assert.ok(refused > tried / 3, `most typos are refused (${refused} of ${tried})`);
  assert.deepEqual(leaked.slice(0, 3), [], `${leaked.length} of ${tried} typos leaked the key`);
  assert.deepEqual(warnings.filter((w) => PIECES.some((p) => w.includes(p))).slice(0, 3), [], 'no process warning carries the key');
  assert.deepEqual(warnings.slice(0, 3), [], 'the config loader emits no process warnings at all');
});

test('the missing-colon typo of the issue names line and column, and the likely fix', () => {
  const doc = `${head}    keys: { primary "${SECRET}" }\n${tail}`;
  const r = parseConfigText(doc, {});
  assert.ok(!r.ok);
  const text = formatIssues(r.issues);
  assert.ok(!PIECES.some((p) => text.includes(p)), text);
  assert.match(text, /^endpoints\.cars\.keys: unknown key at line 8, column 13 \(not shown: it may hold a secret\); is the ": " \(a colon and a space\) after primary missing\?$/m);
});

test('a YAML syntax error reports line, column and kind, never the source line', () => {
  const doc = `${head}    keys: { primary: "${SECRET} }\n${tail}`; // unclosed quote
  const r = parseConfigText(doc, {});
  assert.ok(!r.ok);
  const text = formatIssues(r.issues);
  assert.ok(!PIECES.some((p) => text.includes(p)), text);
  assert.match(text, /^\(file\): not valid YAML at line \d+, column \d+: /m);
});

test('line and column count in the text as written, ${VAR} included', () => {
  // `${CARS_KEY_1}` is masked while parsing; the column must still be the user's column.
  const doc = `${head}    keys: { primary: "\${CARS_KEY_1}", secondary "${SECRET}" }\n${tail}`;
  const r = parseConfigText(doc, { CARS_KEY_1: 'k1-value-xyz' });
  assert.ok(!r.ok);
  const text = formatIssues(r.issues);
  assert.ok(!PIECES.some((p) => text.includes(p)), text);
  assert.match(text, /unknown key at line 8, column 39 /);
});

test('a key from the environment is never quoted either', () => {
  const doc = `${head}    keys: { primary: "\${CARS_KEY_1}" }\n    colour: red\n${tail}`;
  const r = parseConfigText(doc, { CARS_KEY_1: ` ${SECRET}` });
  assert.ok(!r.ok);
  const text = formatIssues(r.issues);
  assert.ok(!PIECES.some((p) => text.includes(p)), text);
  assert.match(text, /^endpoints\.cars\.keys\.primary: has leading or trailing whitespace/m);
});
