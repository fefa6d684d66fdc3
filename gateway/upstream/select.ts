import type { Instance } from './instance.ts';

/**
 * Power of two choices on in-flight count: two random distinct candidates, the less
 * busy one wins. Close to least-loaded without scanning, and without the herding a strict
 * "least" pick causes when every gateway replica sees the same counts.
 */
export function pickInstance(
  instances: readonly Instance[],
  now: number,
  random: () => number,
  exclude?: readonly Instance[],
): Instance | undefined {
  const n = instances.length;
  if (n === 1) {
    const only = instances[0];
    return only && only.takesTraffic(now) && !exclude?.includes(only) ? only : undefined;
  }
  const a = instances[Math.floor(random() * n)];
  let b = instances[Math.floor(random() * (n - 1))];
  if (b === a) b = instances[n - 1];
  const okA = a !== undefined && !exclude?.includes(a) && a.takesTraffic(now) ? a : undefined;
  const okB = b !== undefined && !exclude?.includes(b) && b.takesTraffic(now) ? b : undefined;
  if (okA && okB) return okA.inFlight <= okB.inFlight ? okA : okB;
  if (okA ?? okB) return okA ?? okB;
  // Both picks unusable: fall back to a scan so one bad pair never hides a good instance.
  let best: Instance | undefined;
  for (const i of instances) {
    if (exclude?.includes(i) || !i.takesTraffic(now)) continue;
    if (!best || i.inFlight < best.inFlight) best = i;
  }
  return best;
}
