// @ts-check
/**
 * A compact end-of-test summary for handleSummary(): every threshold with its verdict and
 * the value it judged, the request latency, and lines of the script's own; plus the whole
 * summary as JSON in the file SUMMARY_JSON names (for CI), when set. A script that exports
 * handleSummary replaces k6's default summary, so only scripts with a table worth reading
 * (split.js) use it.
 */

/**
 * The part of k6's summary data used here.
 * @typedef {{ type: string, values: Record<string, number>, thresholds?: Record<string, { ok: boolean }> }} SummaryMetric
 * @typedef {{ metrics: Record<string, SummaryMetric> }} SummaryData
 */

/** The figure a threshold expression judges (`p(99)<250` → the p(99) value). */
function judged(/** @type {string} */ expr, /** @type {SummaryMetric} */ m) {
  const stat = /^\s*([a-z]+(?:\(\d+(?:\.\d+)?\))?)/.exec(expr);
  const v = stat && stat[1] !== undefined ? m.values[stat[1]] : undefined;
  return v === undefined ? '' : ` (${stat ? stat[1] : ''} ${Math.round(v * 10000) / 10000})`;
}

/**
 * @param {SummaryData} data
 * @param {string[]} lines the script's own, printed first
 * @returns {Record<string, string>}
 */
export function summarize(data, lines) {
  const out = [...lines, '', 'thresholds:'];
  let failed = 0;
  for (const name of Object.keys(data.metrics).sort()) {
    const m = data.metrics[name];
    if (!m || !m.thresholds) continue;
    for (const [expr, t] of Object.entries(m.thresholds)) {
      if (!t.ok) failed++;
      out.push(`  ${t.ok ? 'ok  ' : 'FAIL'} ${name} ${expr}${judged(expr, m)}`);
    }
  }
  const d = data.metrics.http_req_duration;
  if (d) out.push('', `http_req_duration: med ${d.values.med?.toFixed(2)} ms, p(99) ${d.values['p(99)']?.toFixed(2)} ms, max ${d.values.max?.toFixed(2)} ms`);
  out.push(failed ? `${failed} threshold(s) failed` : 'all thresholds passed', '');
  /** @type {Record<string, string>} */
  const files = { stdout: out.join('\n') };
  if (__ENV.SUMMARY_JSON) files[__ENV.SUMMARY_JSON] = JSON.stringify(data, null, 2);
  return files;
}
