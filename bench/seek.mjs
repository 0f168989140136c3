// seek at 10^3, 10^4, 10^5 snapshots of one disk.
//
// (1) In memory: LineageTree as the CLI and the driver use it (src/lineage, bundled here
//     with esbuild). Build time of the tree and its timestamp index from the records
//     (median of several builds), then tree.seek(vdi, T) for random T: median and p90 ns
//     per seek over many batches, next to a linear scan of the same records (what a
//     lookup costs without the index). Every answer is checked against the scan.
// (2) End to end: `plugin/flatsnap seek --path DIR --vdi V --at T --json --timings` on a
//     reflink SR directory holding that many snapshots, in the ReflinkBackend's on-disk
//     format, written directly by this script: the SR marker, one sidecar per object
//     (format flatsnap-vdi version 2, exactly what the backend writes) and one image per
//     object, an EMPTY SPARSE file (ftruncate to the virtual size, no blocks: the command
//     only stats images, it never reads them). No FICLONE is done: making 10^5 real reflink
//     copies (with the backend's fsyncs) is slow and would measure the filesystem, not seek.
//     The first run's answer is checked against the scan, and the 10^3 SR is passed
//     through `flatsnap check` to prove the files are what the backend itself reads.
//     Wall time per command (median), and the phases the command reports with --timings.
//     Warm page cache (the files were just written); --cold drops caches before each run.
//
// Usage: make build && node bench/seek.mjs [--dir DIR] [--sizes 1000,10000,100000]
//        [--e2e-sizes LIST | --no-e2e] [--runs N] [--cold] [--keep] [--record] [--label L]
//   --dir    where the SR directories go (default: a temp dir); its filesystem is recorded
//   --record writes bench/results/seek.json (or seek-<label>.json with --label)
import { build } from 'esbuild';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const CLI = join(ROOT, 'plugin', 'flatsnap');

// ---- options ---------------------------------------------------------------
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? dflt : argv[i + 1];
};
const flag = (name) => argv.includes(`--${name}`);
const SIZES = String(opt('sizes', '1000,10000,100000')).split(',').map(Number);
const E2E_SIZES = flag('no-e2e') ? [] : String(opt('e2e-sizes', SIZES.join(','))).split(',').map(Number);
const E2E_RUNS = Number(opt('runs', 0)) || undefined;
const COLD = flag('cold');
const KEEP = flag('keep');
const LABEL = opt('label', '');
if (!existsSync(CLI)) {
  console.error(`${CLI} is missing: run make build first`);
  process.exit(2);
}

// ---- the lineage module, bundled from src ----------------------------------
async function loadLineage() {
  const out = await build({
    stdin: {
      contents: "export { LineageTree, REFLINK_CAPABILITIES } from './src/lineage/index.ts';",
      resolveDir: ROOT,
      loader: 'ts',
    },
    bundle: true,
    format: 'esm',
    platform: 'node',
    write: false,
    logLevel: 'warning',
  });
  const dir = mkdtempSync(join(tmpdir(), 'flatsnap-bench-lib-'));
  const file = join(dir, 'lineage.mjs');
  writeFileSync(file, out.outputFiles[0].text);
  try {
    return await import(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const { LineageTree, REFLINK_CAPABILITIES } = await loadLineage();

// ---- data --------------------------------------------------------------------
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const T0 = Date.UTC(2026, 0, 1);
const STEP = 5 * 60_000; // one snapshot every 5 minutes (10^5 of them span ~347 days)
const XAPI_EPOCH = '19700101T00:00:00Z';
const xapiTime = (ms) => new Date(ms).toISOString().replace(/-/g, '').replace(/\.\d{3}Z$/, 'Z');

/** One disk (created at T0) and n snapshot VDIs of it, at distinct times 5 min apart with jitter. */
function makeSr(n, seed) {
  const rnd = mulberry32(seed);
  const vdi = randomUUID();
  const volume = { id: vdi, kind: 'volume', vdi, created: T0, deleted: false };
  const snaps = [];
  for (let i = 0; i < n; i++) {
    const id = randomUUID();
    snaps.push({ id, kind: 'snapshot', vdi: id, parent: vdi, created: T0 + (i + 1) * STEP + Math.floor(rnd() * (STEP - 1)), deleted: false });
  }
  // Storage returns objects in no time order: shuffle (Fisher-Yates).
  for (let i = snaps.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [snaps[i], snaps[j]] = [snaps[j], snaps[i]];
  }
  return { vdi, records: [volume, ...snaps], first: T0 + STEP, last: T0 + (n + 1) * STEP };
}

/** The answer without an index: the latest snapshot at or before t (greatest id on ties). */
function linearSeek(records, vdi, t) {
  let best;
  for (const o of records) {
    if (o.kind !== 'snapshot' || o.parent !== vdi || o.created > t) continue;
    if (best === undefined || o.created > best.created || (o.created === best.created && o.id > best.id)) best = o;
  }
  return best;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
};
const nowNs = () => process.hrtime.bigint();

// ---- (1) in memory ---------------------------------------------------------
function inMemory(n) {
  const { vdi, records, first, last } = makeSr(n, 0x5eed + n);
  const rnd = mulberry32(n);
  // Query times from an hour before the first snapshot to an hour after the last.
  const query = () => first - 3600_000 + Math.floor(rnd() * (last - first + 2 * 3600_000));

  const builds = [];
  let tree;
  const buildRuns = n >= 100_000 ? 7 : n >= 10_000 ? 15 : 41;
  for (let i = 0; i < buildRuns; i++) {
    const t0 = nowNs();
    tree = new LineageTree(REFLINK_CAPABILITIES, records);
    builds.push(Number(nowNs() - t0) / 1e6);
  }

  // Correctness first: 2000 random times (and the edges) against the scan.
  for (const t of [first - 1, first, last, ...Array.from({ length: 2000 }, query)]) {
    const a = tree.seek(vdi, t)?.id;
    const b = linearSeek(records, vdi, t)?.id;
    if (a !== b) throw new Error(`seek mismatch at n=${n}, t=${t}: index ${a}, scan ${b}`);
  }

  // Timing: batches of B seeks at pre-drawn random times; ns per seek = batch / B.
  const B = 1000;
  const batches = 300;
  const times = Array.from({ length: B * 16 }, query);
  let sink = 0;
  for (let w = 0; w < 20; w++) for (let i = 0; i < B; i++) sink += tree.seek(vdi, times[i])?.created ?? 0; // warm-up (JIT)
  const perSeek = [];
  for (let k = 0; k < batches; k++) {
    const off = (k % 16) * B;
    const t0 = nowNs();
    for (let i = 0; i < B; i++) sink += tree.seek(vdi, times[off + i])?.created ?? 0;
    perSeek.push(Number(nowNs() - t0) / B);
  }
  // The timestamp index alone (the disk's TimeIndex): the binary search without the tree's
  // per-call work (VDI lookup, lineage walk set, object lookup).
  const index = tree.snapshotIndex(vdi);
  for (let w = 0; w < 20; w++) for (let i = 0; i < B; i++) sink += index.seek(times[i])?.time ?? 0;
  const perIndexSeek = [];
  for (let k = 0; k < batches; k++) {
    const off = (k % 16) * B;
    const t0 = nowNs();
    for (let i = 0; i < B; i++) sink += index.seek(times[off + i])?.time ?? 0;
    perIndexSeek.push(Number(nowNs() - t0) / B);
  }

  // Cache-hot: the same 64 times over and over, so the ~log2(n) entries each search visits
  // stay in L1/L2: what the search itself costs, without cache misses on a large index.
  const hot = (fn) => {
    const out = [];
    for (let w = 0; w < 20; w++) for (let i = 0; i < B; i++) sink += fn(times[i & 63]);
    for (let k = 0; k < batches; k++) {
      const t0 = nowNs();
      for (let i = 0; i < B; i++) sink += fn(times[i & 63]);
      out.push(Number(nowNs() - t0) / B);
    }
    return median(out);
  };
  const treeHot = hot((t) => tree.seek(vdi, t)?.created ?? 0);
  const indexHot = hot((t) => index.seek(t)?.time ?? 0);

  // The same question without the index (fewer runs: it is O(n)).
  const scans = [];
  const scanRuns = Math.max(20, Math.min(2000, Math.floor(2e7 / n)));
  for (let k = 0; k < scanRuns; k++) {
    const t = times[k % times.length];
    const t0 = nowNs();
    sink += linearSeek(records, vdi, t)?.created ?? 0;
    scans.push(Number(nowNs() - t0));
  }
  if (sink === 42) console.log(''); // keep the work observable
  return {
    n,
    objects: records.length,
    build_ms_median: median(builds),
    build_runs: buildRuns,
    seek_ns_median: median(perSeek),
    seek_ns_p90: pct(perSeek, 0.9),
    seeks_timed: B * batches,
    index_seek_ns_median: median(perIndexSeek),
    index_seek_ns_p90: pct(perIndexSeek, 0.9),
    seek_hot_ns_median: treeHot,
    index_seek_hot_ns_median: indexHot,
    linear_scan_ns_median: median(scans),
    linear_scans_timed: scanRuns,
    log2_n: Math.log2(n),
  };
}

// ---- (2) end to end ----------------------------------------------------------
const FS_TYPES = { 0xef53: 'ext4', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x01021994: 'tmpfs', 0x7461636f: 'ocfs2', 0x794c7630: 'overlayfs' };
const VIRTUAL = 1 << 30; // every image: 1 GiB virtual, 0 bytes allocated

function meta(o, vdi) {
  const snap = o.kind === 'snapshot';
  return {
    name_label: snap ? `snap ${o.created}` : 'disk0',
    name_description: '',
    vdi_type: 'user',
    is_a_snapshot: snap,
    snapshot_time: snap ? xapiTime(o.created) : XAPI_EPOCH,
    snapshot_of: snap ? vdi : '',
    read_only: snap,
  };
}

/** The SR directory in the ReflinkBackend's format (names.ts, sidecar.ts, pool.ts). */
function writeSr(dir, sr) {
  mkdirSync(dir, { recursive: true });
  const marker = { format: 'flatsnap-sr', version: 1, sr_uuid: randomUUID(), created: Date.now(), backend: 'reflink' };
  writeFileSync(join(dir, '.flatsnap-sr.json'), `${JSON.stringify(marker, null, 2)}\n`);
  for (const o of sr.records) {
    const doc = { format: 'flatsnap-vdi', version: 2, id: o.id, kind: o.kind, vdi: o.vdi };
    if (o.parent !== undefined) doc.parent = o.parent;
    Object.assign(doc, { created: o.created, deleted: o.deleted, meta: meta(o, sr.vdi) });
    writeFileSync(join(dir, `${o.vdi}.json`), `${JSON.stringify(doc, null, 2)}\n`);
    const fd = openSync(join(dir, o.vdi), 'w', 0o600);
    ftruncateSync(fd, VIRTUAL);
    closeSync(fd);
  }
}

function runCli(args) {
  const t0 = nowNs();
  const r = spawnSync(CLI, args, {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env: { PATH: process.env.PATH, FLATSNAP_LOCK_DIR: join(tmpdir(), 'flatsnap-bench-locks'), FLATSNAP_SMLOG: '/dev/null' },
  });
  const wall = Number(nowNs() - t0) / 1e6;
  return { ...r, wall };
}

/** "timings: probe 0.40 ms, inventory 12.1 ms, index 300.0 µs, ..." -> { probe: 0.4, ... } in ms. */
function parseTimings(stderr) {
  const line = stderr.split('\n').find((l) => l.startsWith('timings: '));
  if (!line) throw new Error(`no timings in: ${stderr}`);
  const out = {};
  for (const part of line.slice(9).split(', ')) {
    const m = /^(\S+) ([\d.]+) (ms|µs)$/.exec(part);
    if (m) out[m[1]] = Number(m[2]) / (m[3] === 'µs' ? 1000 : 1);
  }
  return out;
}

function dropCaches() {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

function endToEnd(n, base) {
  const sr = makeSr(n, 0xe2e + n);
  const dir = join(base, `sr-${n}`);
  rmSync(dir, { recursive: true, force: true });
  const c0 = nowNs();
  writeSr(dir, sr);
  const createS = Number(nowNs() - c0) / 1e9;
  const fsType = FS_TYPES[statfsSync(dir).type] ?? `0x${statfsSync(dir).type.toString(16)}`;
  if (n <= 1000) {
    // The files are what the backend itself reads and accepts.
    const chk = runCli(['check', '--path', dir, '--no-health', '--json']);
    const doc = JSON.parse(chk.stdout);
    if (chk.status !== 0 || !doc.ok || doc.summary.objects !== n + 1) throw new Error(`flatsnap check of the generated SR: ${chk.stdout}\n${chk.stderr}`);
  }
  const rnd = mulberry32(0xabc + n);
  const runs = E2E_RUNS ?? (n >= 100_000 ? 7 : 15);
  const walls = [];
  const phases = {};
  for (let k = 0; k < runs + 1; k++) {
    const t = sr.first - 3600_000 + Math.floor(rnd() * (sr.last - sr.first + 2 * 3600_000));
    if (COLD) dropCaches();
    const r = runCli(['seek', '--path', dir, '--vdi', sr.vdi, '--at', new Date(t).toISOString(), '--json', '--timings']);
    if (r.status !== 0) throw new Error(`flatsnap seek failed (${r.status ?? r.signal} ${r.error ?? ""}): ${r.stderr}`);
    const doc = JSON.parse(r.stdout);
    const want = linearSeek(sr.records, sr.vdi, t)?.id ?? null;
    if ((doc.snapshot?.id ?? null) !== want) throw new Error(`seek answered ${doc.snapshot?.id} for ${t}, the scan ${want}`);
    if (k === 0 && !COLD) continue; // the first run warms the page cache and the V8 code cache
    walls.push(r.wall);
    for (const [name, ms] of Object.entries(parseTimings(r.stderr))) (phases[name] ??= []).push(ms);
  }
  if (!KEEP) rmSync(dir, { recursive: true, force: true });
  return {
    n,
    files: 2 * (n + 1) + 1,
    filesystem: fsType,
    create_s: createS,
    runs: walls.length,
    cache: COLD ? 'cold (drop_caches before each run)' : 'warm',
    wall_ms_median: median(walls),
    wall_ms_min: Math.min(...walls),
    phases_ms_median: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, median(v)])),
  };
}

// ---- run -------------------------------------------------------------------
const loadBefore = loadavg();
const fmt = (x, d = 1) => x.toFixed(d);
console.log('in memory: LineageTree build and seek (ns per seek: median of 300 batches of 1000 random seeks)');
const mem = [];
for (const n of SIZES) {
  const r = inMemory(n);
  mem.push(r);
  console.log(
    `  n=${String(n).padStart(6)}  build ${fmt(r.build_ms_median, 2).padStart(8)} ms   tree.seek median ${fmt(r.seek_ns_median).padStart(6)} ns (p90 ${fmt(r.seek_ns_p90).padStart(6)})` +
      `   index.seek ${fmt(r.index_seek_ns_median).padStart(6)} ns (p90 ${fmt(r.index_seek_ns_p90).padStart(6)})` +
      `   cache-hot tree/index ${fmt(r.seek_hot_ns_median).padStart(5)}/${fmt(r.index_seek_hot_ns_median).padStart(5)} ns   linear scan ${fmt(r.linear_scan_ns_median / 1000, 1).padStart(8)} µs`,
  );
}
const base = opt('dir', undefined) ?? mkdtempSync(join(tmpdir(), 'flatsnap-bench-seek-'));
mkdirSync(base, { recursive: true });
console.log(`end to end: plugin/flatsnap seek --json on a reflink SR directory in ${base}`);
const e2e = [];
for (const n of E2E_SIZES) {
  const r = endToEnd(n, base);
  e2e.push(r);
  const p = r.phases_ms_median;
  console.log(
    `  n=${String(n).padStart(6)}  ${r.files} files on ${r.filesystem} (written in ${fmt(r.create_s)} s)  wall median ${fmt(r.wall_ms_median)} ms` +
      `  [probe ${fmt(p.probe ?? 0, 2)}, inventory ${fmt(p.inventory ?? 0)}, index ${fmt(p.index ?? 0, 2)}, seek ${fmt((p.seek ?? 0) * 1000, 1)} µs]`,
  );
}
if (opt('dir', undefined) === undefined && !KEEP) rmSync(base, { recursive: true, force: true });

const lo = mem[0];
const hi = mem[mem.length - 1];
const summary = {
  seek_ns_ratio: hi.seek_ns_median / lo.seek_ns_median,
  index_seek_ns_ratio: hi.index_seek_ns_median / lo.index_seek_ns_median,
  seek_hot_ns_ratio: hi.seek_hot_ns_median / lo.seek_hot_ns_median,
  index_seek_hot_ns_ratio: hi.index_seek_hot_ns_median / lo.index_seek_hot_ns_median,
  log2_n_ratio: hi.log2_n / lo.log2_n,
  n_ratio: hi.n / lo.n,
  linear_scan_ratio: hi.linear_scan_ns_median / lo.linear_scan_ns_median,
};
console.log(
  `n x${summary.n_ratio}: tree.seek x${fmt(summary.seek_ns_ratio, 2)} (cache-hot x${fmt(summary.seek_hot_ns_ratio, 2)}), index.seek x${fmt(summary.index_seek_ns_ratio, 2)} (cache-hot x${fmt(summary.index_seek_hot_ns_ratio, 2)}); log2 n x${fmt(summary.log2_n_ratio, 2)}; linear scan x${fmt(summary.linear_scan_ratio, 0)}`,
);

const cpu = cpus();
const result = {
  benchmark: 'seek',
  date: new Date().toISOString(),
  machine: {
    cpu: cpu[0]?.model,
    cores: cpu.length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    // 1/5/15-minute load averages when the run started and ended: other work on the machine.
    load_average: { start: loadBefore.map((x) => Number(x.toFixed(2))), end: loadavg().map((x) => Number(x.toFixed(2))) },
  },
  method: {
    data: 'one disk (volume) and n snapshot VDIs of it, one every 5 minutes with random jitter, records in shuffled order',
    in_memory:
      'new LineageTree(REFLINK_CAPABILITIES, records) from src/lineage (bundled by esbuild); tree.seek(vdi, T) for uniform random T from 1 h before the first snapshot to 1 h after the last; every answer checked against a linear scan',
    end_to_end:
      'plugin/flatsnap seek --path DIR --vdi V --at T --json --timings (spawned, wall time); DIR written by this script in the reflink backend format: SR marker, one version-2 sidecar per object, each image an empty sparse 1 GiB file (no reflink copies); first run discarded (warms caches); answers checked',
    cache: COLD ? 'cold' : 'warm',
  },
  in_memory: mem,
  end_to_end: e2e,
  summary,
};
if (flag('record')) {
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const file = join(ROOT, 'bench', 'results', LABEL ? `seek-${LABEL}.json` : 'seek.json');
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`recorded ${file}`);
}
