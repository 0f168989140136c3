// The demo's report: numbered steps with what they mimic and how long they took,
// check lines (OK / MISMATCH / FAIL) and the counts the summary prints.

export function fmtBytes(n: number): string {
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  if (v < 1024) return `${sign}${v} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let u = -1;
  do {
    v /= 1024;
    u++;
  } while (v >= 1024 && u < units.length - 1);
  return `${sign}${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}

export function fmtSecs(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

/** A fixed-width table: the first row is the header. */
export function table(rows: readonly (readonly string[])[], right: ReadonlySet<number> = new Set()): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 && !right.has(i) ? c : right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

export interface StepTiming {
  n: number;
  title: string;
  ms: number;
  ok: boolean;
}

export class Report {
  readonly steps: StepTiming[] = [];
  checks = 0;
  failed: string[] = [];
  sums = { ok: 0, mismatch: 0 };
  private n = 0;
  readonly started = Date.now();

  constructor(private readonly write: (s: string) => void = (s) => process.stdout.write(s)) {}

  out(s = ''): void {
    this.write(`${s}\n`);
  }

  /** An indented line inside the current step. */
  line(s = ''): void {
    this.out(s === '' ? '' : `     ${s}`);
  }

  lines(ls: readonly string[], indent = ''): void {
    for (const l of ls) this.line(`${indent}${l}`);
  }

  heading(s: string): void {
    this.out('');
    this.out(s);
    this.out('='.repeat(Math.min(s.length, 100)));
  }

  /**
   * One numbered step: its title, what XenCenter/xapi action it mimics, then whatever
   * `fn` reports; its duration at the end. A throw from `fn` fails the step and goes on.
   */
  async step<T>(title: string, mimics: string, fn: () => Promise<T>): Promise<T> {
    const n = ++this.n;
    this.out('');
    this.out(`[${String(n).padStart(2)}] ${title}`);
    this.line(`mimics: ${mimics}`);
    const t0 = Date.now();
    let ok = false;
    let how = 'FAILED';
    try {
      const r = await fn();
      ok = true;
      how = 'done';
      return r;
    } catch (e) {
      if ((e as Error).name === 'AbortedError') how = 'STOPPED';
      throw e;
    } finally {
      const ms = Date.now() - t0;
      this.steps.push({ n, title, ms, ok });
      this.line(`${how} in ${fmtSecs(ms)}`);
    }
  }

  /** A check line; false ones are collected for the summary. */
  check(ok: boolean, text: string, detail: readonly string[] = []): boolean {
    this.checks++;
    this.line(`${(ok ? 'OK' : 'FAIL').padEnd(9)}${text}`);
    if (!ok) {
      this.failed.push(`step ${this.n}: ${text.replace(/\s+/g, ' ')}`);
      this.lines(detail, '         ');
    }
    return ok;
  }

  /** A checksum line: OK or MISMATCH. */
  checksum(ok: boolean, text: string, detail: readonly string[] = []): boolean {
    this.checks++;
    if (ok) this.sums.ok++;
    else {
      this.sums.mismatch++;
      this.failed.push(`step ${this.n}: sha256 MISMATCH ${text.replace(/\s+/g, ' ')}`);
    }
    this.line(`${(ok ? 'OK' : 'MISMATCH').padEnd(9)}sha256 ${text}`);
    if (!ok) this.lines(detail, '         ');
    return ok;
  }

  get allPassed(): boolean {
    return this.failed.length === 0 && this.steps.every((s) => s.ok);
  }
}
