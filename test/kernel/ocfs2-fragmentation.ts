// How a reflink disk fragments on OCFS2, measured in a kernel tier guest (not part of any
// test run: a measurement, as bench/ is for XFS). Boots one guest as test/kernel/vm.test.ts
// does and, for each cluster size and variant, makes a fresh OCFS2 filesystem in local mode
// (mkfs.ocfs2 -M local -C SIZE), mounts it and runs guest/ocfs2-fragmentation.ts there.
//
//   node --import tsx test/kernel/ocfs2-fragmentation.ts [--quick] [--out FILE]
//
// As root, with qemu (the kernel tier's prerequisites, test/kernel/README.md). Writes
// bench/results/ocfs2-fragmentation.json (--quick: a small run for trying it out, printed
// only). Under TCG (no hardware virtualisation) every time is slow: compare ratios.
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { GUEST_SHARE, guestEnv, installNode, prepareShare, REPO } from './lib/guest-jest.js';
import { cleanWorkDir, ensureImage, kernelTierMissing, workDir } from './lib/tier.js';
import { Vm } from './lib/vm.js';

const DISK = '/dev/disk/by-id/virtio-ktfrag';
const MNT = '/mnt/ocfs2';

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outIdx = argv.indexOf('--out');
const out = outIdx >= 0 ? argv[outIdx + 1] : quick ? undefined : join(REPO, 'bench', 'results', 'ocfs2-fragmentation.json');
const params = quick ? { sizeMiB: 64, cycles: 4, checkpoints: [0, 2, 4], share: 0.1, seed: 5 } : { sizeMiB: 256, cycles: 32, checkpoints: [0, 8, 32], share: 0.1, seed: 5 };
const CLUSTER_SIZES = ['4K', '1M'];
// The writes in random order (as a guest makes them), with no relayout, the relayout as the
// driver runs it (windows of 16 MiB with >= 16 runs) and with >= 4: OCFS2 copies on write
// in 1 MiB pieces, so 16 runs per window is its worst case. And in file order (as the XFS
// bench writes), without relayout: OCFS2 then allocates the pieces one after the other.
const VARIANTS = [
  { variant: 'none', order: 'random' },
  { variant: 'relayout', order: 'random' },
  { variant: 'relayout', order: 'random', minWindowExtents: 4 },
  { variant: 'none', order: 'file' },
] as const;

async function main(): Promise<void> {
  const missing = kernelTierMissing();
  if (missing) throw new Error(`cannot run: ${missing}`);
  const image = await ensureImage();
  const dir = await workDir('ocfs2-frag');
  const bundles = await prepareShare(join(dir, 'share'));
  const vm = await Vm.boot({
    name: 'kt-frag',
    image,
    workDir: dir,
    smp: 2,
    memMiB: 3072,
    // 32 cycles at 1 MiB clusters copy ~200 MiB each: sparse on the host, up to ~8 GiB used.
    disks: [{ serial: 'ktfrag', file: join(dir, 'frag.img'), sizeMiB: 16 * 1024 }],
    shares: [
      { tag: 'repo', hostPath: REPO, guestPath: REPO, readonly: true },
      { tag: 'ktshare', hostPath: bundles.share, guestPath: GUEST_SHARE },
    ],
  });
  const runs: Array<Record<string, unknown>> = [];
  const started = new Date();
  const load0 = loadavg();
  try {
    console.log(`guest up in ${(vm.bootMs / 1000).toFixed(1)} s (${vm.accel.why}); progress: ${join(bundles.share, 'results', 'fragmentation.log')}`);
    await vm.mountShares();
    await installNode(vm);
    await vm.run('/sbin/modprobe', ['ocfs2']);
    await vm.run('/bin/mkdir', ['-p', MNT]);
    const kernel = (await vm.run('/bin/uname', ['-r'])).trim();
    const tools = (await vm.sh("dpkg-query -W -f '${Version}' ocfs2-tools")).trim();
    for (const cs of CLUSTER_SIZES) {
      for (const vr of VARIANTS) {
        const label = `${vr.variant}${'minWindowExtents' in vr ? ` (>= ${vr.minWindowExtents} runs per window)` : ''}, ${vr.order} order`;
        // Over the previous run's filesystem mkfs.ocfs2 asks before overwriting it, even with -F.
        await vm.run('/sbin/mkfs.ocfs2', ['-q', '-F', '-M', 'local', '--fs-features=refcount,xattr', '-C', cs, '-L', 'ktfrag', DISK], { input: 'y\n' });
        await vm.run('/bin/mount', ['-t', 'ocfs2', DISK, MNT]);
        const t0 = Date.now();
        const args = { mnt: MNT, ...vr, ...params, log: `${GUEST_SHARE}/results/fragmentation.log` };
        const r = await vm.exec(bundles.node, [`${GUEST_SHARE}/bin/ocfs2-fragmentation.cjs`, JSON.stringify(args)], { env: guestEnv(), timeoutMs: 4 * 3600_000 });
        if (r.code !== 0) throw new Error(`cluster ${cs}, ${label}: exited ${r.code}\n${r.stderr.slice(-4000)}`);
        const doc = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
        const run = { cluster_size: cs, label, ...doc, wall_s: Math.round((Date.now() - t0) / 1000) };
        runs.push(run);
        console.log(summary(run));
        await vm.run('/bin/umount', [MNT]);
        const f = await vm.exec('/sbin/fsck.ocfs2', ['-fn', DISK]);
        if (f.code !== 0) throw new Error(`fsck.ocfs2 after cluster ${cs}, ${label}: exit ${f.code}\n${f.stdout}${f.stderr}`);
      }
    }
    const git = await execa('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO, reject: false });
    // The measured code is the working tree's, bundled: say which.
    const changed = await execa('git', ['status', '--porcelain', '--', 'src'], { cwd: REPO, reject: false });
    const bundle = createHash('sha256').update(await readFile(join(bundles.share, 'bin', 'ocfs2-fragmentation.cjs'))).digest('hex').slice(0, 16);
    const result = {
      benchmark: 'ocfs2-fragmentation',
      date: started.toISOString(),
      quick,
      machine: {
        host_cpu: cpus()[0]?.model ?? '?',
        host_cores: cpus().length,
        host_memory_gib: Math.round(totalmem() / 2 ** 30),
        loadavg_start: load0,
        loadavg_end: loadavg(),
        guest: `qemu ${vm.accel.kind} (${vm.accel.why}), 2 vCPUs, 3 GiB; Debian kernel ${kernel}; ocfs2-tools ${tools}`,
        node: process.version,
      },
      build: {
        git_head: String(git.stdout).trim(),
        src_changed_files: String(changed.stdout).split('\n').filter((l) => l.trim() !== '').length,
        guest_bundle_sha256: bundle,
      },
      storage: 'OCFS2 in local mode (mkfs.ocfs2 -M local --fs-features=refcount,xattr -C <cluster size>) on a 16 GiB virtio disk (sparse raw file on the host, cache=unsafe), a fresh filesystem per run',
      method: {
        disk: `${params.sizeMiB} MiB VDI of a flatsnap reflink SR (the backend, in the guest), written in full with random data`,
        cycle: `backend snapshot, then (variant "relayout") relayoutVdi, after every snapshot whatever the disk's run count (device-config:relayout=1), windows of 16 MiB with >= 16 runs (the default) or >= 4, then ${params.share * 100} % of the disk rewritten in distinct random 64 KiB blocks, written in random order or in file order (write_order), fsync`,
        checkpoints: `after N = ${params.checkpoints.join(', ')} cycles: FIEMAP extents and physically contiguous runs (fragments) of the live image, the space used on the filesystem, FICLONE of the live image into a scratch file through the native addon (3 times, median)`,
        emulation: 'TCG unless the host has vmx/svm: absolute times are many times those of real hardware; compare ratios',
      },
      params,
      runs,
    };
    const text = `${JSON.stringify(result, null, 2)}\n`;
    if (out) {
      await writeFile(out, text);
      console.log(`wrote ${out}`);
    } else console.log(text);
  } finally {
    await vm.shutdown();
    await cleanWorkDir(dir);
  }
}

function summary(run: Record<string, unknown>): string {
  const cps = run.checkpoints as Array<{ n: number; extents: number; fragments: number; fs_used_mib: number; ficlone_ms: { median: number } }>;
  const rows = cps.map((c) => `  N=${String(c.n).padStart(2)}: ${c.extents} extents (${c.fragments} runs), FICLONE ${c.ficlone_ms.median} ms, ${c.fs_used_mib} MiB used`);
  return [`cluster ${String(run.cluster_size)}, ${String(run.label)} (${String(run.wall_s)} s):`, ...rows].join('\n');
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exit(1);
});
