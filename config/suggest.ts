/**
 * "Did you mean" for misspelt config keys: the closest known key by optimal-string-alignment
 * distance (Levenshtein plus adjacent transpositions, so `lsiten` is one edit from `listen`).
 * A dozen lines do not justify a dependency.
 */

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row: number[] = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const prev = rows[i - 1] ?? [];
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (rows[i - 2]?.[j - 2] ?? 0) + 1);
      row.push(d);
    }
    rows.push(row);
  }
  return rows[a.length]?.[b.length] ?? Math.max(a.length, b.length);
}

/**
 * The known key `word` most likely meant, or undefined when none is close: at most 2 edits,
 * and fewer than half the word's length (so `ab` does not "mean" `auth_mode`).
 */
export function suggest(word: string, known: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(w, k);
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return bestD <= 2 && bestD * 2 < Math.max(w.length, 2) ? best : undefined;
}
