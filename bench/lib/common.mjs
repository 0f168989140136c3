// Shared pieces of the storage benchmarks (snapshot-size, delete, scan, fragmentation):
// options, root check, statistics, machine facts, results files, the TypeScript modules
// of the repository (loaded through tsx, so harnesses and backends are the tested ones),
// and a cleanup stack that also runs on SIGINT/SIGTERM and uncaught errors.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tsImport } from 'tsx/esm/api';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../../..');
export const PLUGIN = join(ROOT, 'plugin', 'FlatSnapSR');
export const MiB = 1 << 20;
export const GiB = 1 << 30;

// ---- options ---------------------------------------------------------------------
const argv = process.argv.slice(2);
export const flag = (name) => argv.includes(`--${name}`);
export const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 || argv[i + 1] === undefined ? dflt : argv[i + 1];
};

/** Exit 2 (not a failure of the driver: the bench cannot run here) unless root and built. */
export function preflight(name, { needs = [] } = {}) {
  if (process.getuid?.() !== 0) {
    console.error(`${name}: needs root (ZFS pools, loop devices, mounts); run it as root`);
    process.exit(2);
  }
  if (!existsSync(PLUGIN)) {
    console.error(`${name}: ${PLUGIN} is missing: run make build first`);
    process.exit(2);
  }
  for (const tool of needs) {
    const found = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', '/usr/local/sbin', '/usr/local/bin'].some((d) => existsSync(join(d, tool)));
    if (!found) {
      console.error(`${name}: ${tool} is not installed`);
      process.exit(2);
    }
  }
}

// ---- statistics --------------------------------------------------------------------
export const median = (xs) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
export const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round((s.length - 1) * q)))];
};
export const sum = (xs) => xs.reduce((a, b) => a + b, 0);
export const round = (x, d = 1) => (Number.isFinite(x) ? Math.round(x * 10 ** d) / 10 ** d : x);
/** median, min, max and every sample, rounded. */
export const stats = (xs, d = 1) => ({ median: round(median(xs), d), min: round(Math.min(...xs), d), max: round(Math.max(...xs), d), n: xs.length, samples: xs.map((x) => round(x, d)) });
export const fmtMs = (x) => (x >= 10000 ? `${(x / 1000).toFixed(1)} s` : x < 1 ? `${Math.round(x * 1000)} µs` : `${x.toFixed(1)} ms`);
export const fmtBytes = (b) => {
  const a = Math.abs(b);
  if (a >= GiB) return `${(b / GiB).toFixed(2)} GiB`;
  if (a >= MiB) return `${(b / MiB).toFixed(1)} MiB`;
  if (a >= 1024) return `${(b / 1024).toFixed(0)} KiB`;
  return `${b} B`;
};
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const now = () => performance.now();

/** Deterministic PRNG (mulberry32), for offsets that are the same on every run. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- machine and results -------------------------------------------------------------
function tryRun(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch {
    return undefined;
  }
}

export function machine() {
  const c = cpus();
  let disk;
  try {
    disk = `vda (virtio; queue/rotational=${readFileSync('/sys/block/vda/queue/rotational', 'utf8').trim()}); loop images live on it`;
  } catch {
    disk = undefined;
  }
  const zfsFuse = tryRun('dpkg-query', ['-W', '-f', '${Version}', 'zfs-fuse']);
  const xfsprogs = tryRun('dpkg-query', ['-W', '-f', '${Version}', 'xfsprogs']);
  return {
    cpu: c[0]?.model,
    cores: c.length,
    memory_gib: Math.round(totalmem() / GiB),
    kernel: release(),
    node: process.version,
    ...(zfsFuse ? { zfs_fuse: zfsFuse } : {}),
    ...(xfsprogs ? { xfsprogs } : {}),
    ...(disk ? { disk } : {}),
    loadavg_start: loadavg().map((x) => round(x, 2)),
  };
}

export function writeResult(file, result) {
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const path = join(ROOT, 'bench', 'results', file);
  writeFileSync(path, `${JSON.stringify({ ...result, loadavg_end: loadavg().map((x) => round(x, 2)) }, null, 2)}\n`);
  console.log(`recorded ${path}`);
}

/** The build being measured: git commit, whether the tree had changes, hashes of the bundle and addon. */
export function pluginIdentity(dir = join(ROOT, 'plugin')) {
  const hash = (f) => {
    try {
      return createHash('sha256').update(readFileSync(f)).digest('hex').slice(0, 16);
    } catch {
      return undefined;
    }
  };
  return {
    git_head: tryRun('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']),
    git_changed_files: (tryRun('git', ['-C', ROOT, 'status', '--porcelain']) ?? '').split('\n').filter(Boolean).length,
    driver_cjs_sha256: hash(join(dir, 'flatsnap-lib', 'driver.cjs')),
    flatsnap_node_sha256: hash(join(dir, 'flatsnap-lib', 'flatsnap.node')),
  };
}

// ---- the repository's TypeScript modules -----------------------------------------------
// The native addon the in-process backends load (src/native.ts looks at FLATSNAP_NATIVE
// first): a private copy, for the same reason as the plugin copy in sim.mjs.
if (!process.env.FLATSNAP_NATIVE && existsSync(join(ROOT, 'native', 'build', 'flatsnap.node'))) {
  const dir = mkdtempSync(join(tmpdir(), `flatsnap-bench-native-${process.pid}-`));
  copyFileSync(join(ROOT, 'native', 'build', 'flatsnap.node'), join(dir, 'flatsnap.node'));
  process.env.FLATSNAP_NATIVE = join(dir, 'flatsnap.node');
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
}

/** Imports a .ts module of the repository (path relative to the repo root) through tsx. */
export function loadTs(rel) {
  return tsImport(join(ROOT, rel), import.meta.url);
}

// ---- cleanup -------------------------------------------------------------------------
/**
 * A stack of undo functions run in reverse order, once, on normal end, on an error and on
 * SIGINT/SIGTERM. Each step runs even if an earlier one failed; failures are printed.
 */
export class Cleanup {
  #steps = [];
  #done;

  constructor() {
    const onSignal = (sig) => {
      console.error(`\n${sig}: cleaning up`);
      void this.run().finally(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  }

  /** Registers `fn` (async ok); returns a function that runs it now and unregisters it. */
  add(what, fn) {
    const step = { what, fn };
    this.#steps.push(step);
    return async () => {
      const i = this.#steps.indexOf(step);
      if (i < 0) return;
      this.#steps.splice(i, 1);
      await fn();
    };
  }

  run() {
    this.#done ??= (async () => {
      while (this.#steps.length) {
        const { what, fn } = this.#steps.pop();
        try {
          await fn();
        } catch (e) {
          console.error(`cleanup: ${what}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    })();
    return this.#done;
  }
}

/** Runs `main(cleanup)`, then the cleanup; exit 1 on an error (after cleaning up). */
export async function runBench(main) {
  const cleanup = new Cleanup();
  let code = 0;
  try {
    await main(cleanup);
  } catch (e) {
    console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
    code = 1;
  } finally {
    await cleanup.run();
  }
  process.exit(code);
}
