// Output helpers: where lines go, aligned tables, sizes, phase timings.
import { performance } from 'node:perf_hooks';

export interface Io {
  /** One line of the result (stdout). */
  out(line: string): void;
  /** One line of diagnostics (stderr). */
  err(line: string): void;
}

export const stdio: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

/** The whole JSON document on one write (pretty: it is read by people too, and jq does not mind). */
export function printJson(io: Io, doc: unknown): void {
  io.out(JSON.stringify(doc, null, 2));
}

export type Align = 'left' | 'right';

/**
 * Rows as aligned columns separated by two spaces; the last column is never padded.
 * `header` (optional) is printed first, aligned the same way.
 */
export function table(rows: readonly (readonly string[])[], align: readonly Align[] = [], header?: readonly string[]): string[] {
  const all = header ? [header, ...rows] : [...rows];
  const cols = Math.max(0, ...all.map((r) => r.length));
  const width: number[] = [];
  for (let c = 0; c < cols; c++) width.push(Math.max(0, ...all.map((r) => displayWidth(r[c] ?? ''))));
  return all.map((r) =>
    r
      .map((cell, c) => {
        if (c === r.length - 1 && align[c] !== 'right') return cell;
        const pad = ' '.repeat(width[c]! - displayWidth(cell));
        return align[c] === 'right' ? pad + cell : cell + pad;
      })
      .join('  ')
      .replace(/\s+$/, ''),
  );
}

/** Columns a string takes in a terminal (every character here is one column wide). */
function displayWidth(s: string): number {
  return [...s].length;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 -> "1.5 KiB"; whole bytes below 1 KiB. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return '?';
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${v} B`;
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${UNITS[u]}`;
}

/** "1 object", "2 objects". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Phase timings of one command, printed on stderr with --timings. */
export class Timer {
  private readonly start = performance.now();
  readonly phases: Array<{ name: string; ms: number }> = [];

  async time<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      this.add(name, performance.now() - t0);
    }
  }

  timeSync<T>(name: string, fn: () => T): T {
    const t0 = performance.now();
    try {
      return fn();
    } finally {
      this.add(name, performance.now() - t0);
    }
  }

  add(name: string, ms: number): void {
    const p = this.phases.find((x) => x.name === name);
    if (p) p.ms += ms;
    else this.phases.push({ name, ms });
  }

  /** "timings: probe 0.4 ms, inventory 12.1 ms, ..., total 13.0 ms" (total since the Timer was made). */
  summary(): string {
    const fmt = (ms: number): string => (ms < 0.1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(ms < 10 ? 2 : 1)} ms`);
    const parts = this.phases.map((p) => `${p.name} ${fmt(p.ms)}`);
    parts.push(`total ${fmt(performance.now() - this.start)}`);
    return `timings: ${parts.join(', ')}`;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.phases.map((p) => [p.name, p.ms]));
  }
}
