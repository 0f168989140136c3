// FLATSNAP_DEMO_PROFILE=1: where the demo's time goes (printed at the end on stderr).
const on = process.env.FLATSNAP_DEMO_PROFILE === '1';
const spent = new Map<string, { n: number; ms: number }>();

export async function timed<T>(what: string, fn: () => Promise<T>): Promise<T> {
  if (!on) return fn();
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    const e = spent.get(what) ?? { n: 0, ms: 0 };
    e.n++;
    e.ms += performance.now() - t0;
    spent.set(what, e);
  }
}

export function profileReport(): void {
  if (!on) return;
  const rows = [...spent.entries()].sort((a, b) => b[1].ms - a[1].ms);
  for (const [k, v] of rows) process.stderr.write(`profile ${k.padEnd(28)} ${String(v.n).padStart(5)} x ${(v.ms / 1000).toFixed(2).padStart(7)} s\n`);
}
