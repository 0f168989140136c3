// Kernel tier, two guests: a two-node OCFS2 cluster (o2cb, local heartbeat) on one shared
// raw disk. node0 is the SR master: it makes the SR, VDIs, snapshots and clones; node1
// attaches the SR and reads the VDIs as vdi_attach does (inventory + datapath). Checked:
// the objects and bytes both hosts see, coherence after the master's later changes, what
// the locks do across hosts, and that the cross-host lock (flock on the SR marker, which
// o2cb's DLM makes cluster-wide) holds: a non-master's vdi_attach waits while the master is
// in the middle of a revert, and completes the swap if the master dies in it.
//
// The nodes talk over one point-to-point qemu socket netdev on 127.0.0.1 (the guests'
// 10.0.0.x addresses exist only on that virtual wire): no user-mode networking, no taps,
// no bridges. Runs with FLATSNAP_KERNEL_TIER=1 as root (`make test-kernel`).
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { GUEST_SHARE, guestEnv, installNode, prepareShare, REPO, type Bundles } from './lib/guest-jest.js';
import { cleanWorkDir, describeKernelTier, ensureImage, Timings, workDir } from './lib/tier.js';
import { Vm } from './lib/vm.js';
import type { GuestProcess } from './lib/qga.js';

const CLUSTER = 'ktclu';
const DISK = '/dev/disk/by-id/virtio-ktshared';
const MNT = '/mnt/shared';
const SR_DIR = `${MNT}/sr`;
const SR = '6c1f0d2e-4b7a-4d55-9a57-3a1b2c3d4e5f';

const clusterConf = `node:
	ip_port = 7777
	ip_address = 10.0.0.1
	number = 0
	name = node0
	cluster = ${CLUSTER}

node:
	ip_port = 7777
	ip_address = 10.0.0.2
	number = 1
	name = node1
	cluster = ${CLUSTER}

cluster:
	node_count = 2
	heartbeat_mode = local
	name = ${CLUSTER}
`;

/** A free TCP port on 127.0.0.1 for the netdev between the two guests. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until something listens on 127.0.0.1:`port` (/proc/net/tcp, state 0A), without
 * connecting: node0's qemu accepts exactly one connection, node1's. If node1's qemu tries
 * before node0's listens, its non-blocking connect fails after qemu started, and the
 * guests come up without a link (seen once under load: "no link to the other node").
 */
async function waitListening(port: number, timeoutMs = 60_000): Promise<void> {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const t0 = Date.now(); ; await sleep(100)) {
    const lines = (await readFile('/proc/net/tcp', 'utf8')).split('\n');
    if (lines.some((l) => { const f = l.trim().split(/\s+/); return f[1] === local && f[3] === '0A'; })) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms (node0's qemu netdev)`);
  }
}

async function waitHostFile(path: string, proc: GuestProcess, timeoutMs = 300_000): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path)) {
    const done = await proc.poll();
    if (done) throw new Error(`the guest step ended before ${path} appeared: ${done.code}\n${done.stdout}\n${done.stderr}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${path}`);
    await sleep(200);
  }
}

type Obj = { id: string; vdi?: string; deleted: boolean; kind: string; parent?: string; handle: string };

describeKernelTier('kernel tier: two-node OCFS2 cluster (o2cb, local heartbeat)', () => {
  let n0: Vm;
  let n1: Vm;
  let bundles: Bundles;
  let marks: string;
  let dir = '';
  const timings = new Timings();

  /** One step of guest/cluster-node.ts on a node; throws with the guest's error. */
  async function step<T = Record<string, unknown>>(vm: Vm, op: string, args: Record<string, unknown>): Promise<T> {
    const r = await vm.exec(bundles.node, ['--require', `${GUEST_SHARE}/setup.cjs`, `${GUEST_SHARE}/bin/cluster-node.cjs`, op, JSON.stringify(args)], { env: guestEnv(), timeoutMs: 600_000 });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(last) as Record<string, unknown>;
    } catch {
      throw new Error(`${vm.opts.name} ${op}: exit ${r.code}, no JSON result\n${r.stdout}\n${r.stderr}`);
    }
    if (r.code !== 0 || v.error !== undefined) throw new Error(`${vm.opts.name} ${op} failed: ${String(v.error)} (code ${String(v.code)})\n${String(v.stack)}\n${r.stderr}`);
    return v as T;
  }

  async function spawnStep(vm: Vm, op: string, args: Record<string, unknown>): Promise<GuestProcess> {
    return vm.spawn(bundles.node, ['--require', `${GUEST_SHARE}/setup.cjs`, `${GUEST_SHARE}/bin/cluster-node.cjs`, op, JSON.stringify(args)], { env: guestEnv() });
  }

  beforeAll(async () => {
    const image = await timings.time('image (cache lookup, or build on a miss)', ensureImage);
    dir = await workDir('cluster');
    bundles = await timings.time('bundle the guest code (esbuild)', () => prepareShare(join(dir, 'share')));
    marks = join(bundles.share, 'marks');
    await mkdir(marks, { recursive: true });
    const port = await freePort();
    const common = (i: number) => ({
      name: `kt-node${i}`,
      hostname: `node${i}`,
      image,
      workDir: dir,
      smp: 1,
      memMiB: 1536,
      disks: [{ serial: 'ktshared', file: join(dir, 'shared.img'), sizeMiB: 768, shared: true }],
      shares: [
        { tag: 'repo', hostPath: REPO, guestPath: REPO, readonly: true },
        { tag: 'ktshare', hostPath: bundles.share, guestPath: GUEST_SHARE },
      ],
    });
    const t0 = Date.now();
    // node0 listens, node1 connects: one TCP connection on 127.0.0.1 carries the guests' ethernet.
    n0 = await Vm.start({ ...common(0), extraArgs: ['-netdev', `socket,id=n0,listen=127.0.0.1:${port}`, '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:4b:54:01'] });
    await waitListening(port);
    n1 = await Vm.start({ ...common(1), extraArgs: ['-netdev', `socket,id=n0,connect=127.0.0.1:${port}`, '-device', 'virtio-net-pci,netdev=n0,mac=52:54:00:4b:54:02'] });
    await Promise.all([n0.ready(), n1.ready()]);
    timings.add(`boot both guests (${n0.accel.kind}: ${n0.accel.why})`, Date.now() - t0);
    await Promise.all([n0, n1].map(async (vm) => {
      await vm.mountShares();
      await installNode(vm);
    }));
    await timings.time('network + o2cb cluster registration on both nodes', () =>
      Promise.all(
        [n0, n1].map((vm, i) =>
          vm.sh(
            `B=/usr/local/bin/busybox; $B ip link set lo up
             IF=$(ls /sys/class/net | grep -v '^lo$' | head -1)
             $B ip addr add 10.0.0.${i + 1}/24 dev $IF; $B ip link set $IF up
             mkdir -p /etc/ocfs2 /dlm; cat > /etc/ocfs2/cluster.conf
             modprobe -a ocfs2_stack_o2cb ocfs2_dlmfs ocfs2
             mount -t ocfs2_dlmfs ocfs2_dlmfs /dlm
             o2cb register-cluster ${CLUSTER}
             for t in $(seq 50); do $B ping -c 1 -W 1 10.0.0.${2 - i} >/dev/null 2>&1 && exit 0; sleep 0.2; done
             echo "no link to the other node" >&2; exit 1`,
            { input: clusterConf },
          ),
        ),
      ),
    );
    await timings.time('mkfs.ocfs2 -N 2 on node0', () =>
      n0.run('/sbin/mkfs.ocfs2', ['-q', '-F', '-N', '2', '--fs-features=refcount,xattr', '--cluster-stack=o2cb', `--cluster-name=${CLUSTER}`, '-L', 'ktshared', DISK]),
    );
    await timings.time('mount on both nodes (heartbeat + DLM join)', () =>
      Promise.all([n0, n1].map((vm) => vm.sh(`mkdir -p ${MNT} && mount -t ocfs2 ${DISK} ${MNT}`, { timeoutMs: 180_000 }))),
    );
  }, 2_400_000);

  afterAll(async () => {
    await Promise.all([n0, n1].map((vm) => vm?.exec('/bin/umount', [MNT], { timeoutMs: 60_000 }).catch(() => undefined)));
    await Promise.all([n0?.shutdown(), n1?.shutdown()]);
    await cleanWorkDir(dir);
    console.log(`kernel tier (two-node OCFS2) timings:\n${timings.toString()}`);
  }, 180_000);

  test('both nodes have the filesystem mounted in cluster mode, and each sees the other in the heartbeat', async () => {
    for (const vm of [n0, n1]) {
      expect(await vm.sh(`grep ' ${MNT} ocfs2 ' /proc/mounts`)).toContain('ocfs2');
      const hb = await vm.sh(`mounted.ocfs2 -f ${DISK}`);
      expect(hb).toMatch(/node0/);
      expect(hb).toMatch(/node1/);
    }
    // What one node writes, the other reads, through the cluster's locks.
    await n0.sh(`echo from-node0 > ${MNT}/hello && sync`);
    expect(await n1.sh(`cat ${MNT}/hello`)).toBe('from-node0\n');
    await n1.sh(`rm ${MNT}/hello`);
    expect((await n0.exec('/usr/bin/test', ['-e', `${MNT}/hello`])).code).toBe(1);
  });

  let built: { ids: Record<'v' | 's1' | 'c' | 's2', string>; hashes: Record<string, string> };

  test('the master makes the SR, a VDI, snapshots and a clone; the other host attaches and reads the same objects and bytes', async () => {
    const made = await step<{ describe: string }>(n0, 'create-sr', { dir: SR_DIR, sr: SR });
    expect(made.describe).toMatch(/^ocfs2 at /);
    const att = await step<{ describe: string; probe: Array<{ sr_uuid: string }> }>(n1, 'attach', { dir: SR_DIR, sr: SR });
    expect(att.probe.map((p) => p.sr_uuid)).toEqual([SR]);
    built = await timings.time('master: create, snapshot, clone, writes', () => step(n0, 'build', { dir: SR_DIR }));
    const master = await step<{ objects: Obj[] }>(n0, 'inventory', { dir: SR_DIR });
    const other = await timings.time('other host: inventory + read every VDI', () =>
      step<{ objects: Obj[]; hashes: Record<string, string>; errors: Record<string, string> }>(n1, 'read', { dir: SR_DIR }),
    );
    expect(other.errors).toEqual({});
    expect(other.objects).toEqual(master.objects);
    expect(other.objects.map((o) => o.id).sort()).toEqual(Object.values(built.ids).sort());
    expect(other.hashes).toEqual(built.hashes);
  }, 600_000);

  test('the other host sees the master’s later writes and deletions', async () => {
    const { hash } = await step<{ hash: string }>(n0, 'write', { dir: SR_DIR, id: built.ids.c, seed: 'later' });
    await step(n0, 'remove', { dir: SR_DIR, id: built.ids.s2 });
    const other = await step<{ objects: Obj[]; hashes: Record<string, string>; errors: Record<string, string> }>(n1, 'read', { dir: SR_DIR });
    expect(other.errors).toEqual({});
    expect(other.objects.map((o) => o.id).sort()).toEqual([built.ids.v, built.ids.s1, built.ids.c].sort());
    expect(other.hashes[built.ids.c]).toBe(hash);
    expect(other.hashes[built.ids.s1]).toBe(built.hashes[built.ids.s1]);
    expect(other.hashes[built.ids.v]).toBe(built.hashes[built.ids.v]);
  }, 600_000);

  test('flock(2) on the shared filesystem excludes across hosts (the DLM), and is free again once released', async () => {
    const lock = `${MNT}/cluster.lock`;
    const marker = `${GUEST_SHARE}/marks/flock.held`;
    const release = `${GUEST_SHARE}/marks/flock.release`;
    const holder = await n0.spawn('/usr/bin/flock', ['-x', lock, '/bin/sh', '-c', `touch ${marker}; while [ ! -e ${release} ]; do sleep 0.2; done`]);
    await waitHostFile(join(marks, 'flock.held'), holder);
    expect((await n1.exec('/usr/bin/flock', ['-n', '-x', lock, '/bin/true'])).code).toBe(1);
    await writeFile(join(marks, 'flock.release'), '');
    expect((await holder.wait(60_000)).code).toBe(0);
    expect((await n1.exec('/usr/bin/flock', ['-n', '-x', lock, '/bin/true'])).code).toBe(0);
  }, 300_000);

  test('the SM lock (fcntl, lock.py’s kind) excludes on its own host only: on OCFS2 with o2cb POSIX locks are node-local', async () => {
    // flatsnap's SM locks live in /var/lock/sm (per host), like the stock SM's. This pins down
    // that even an fcntl lock on the shared filesystem itself would not exclude another host
    // (o2cb has no plocks): why the cross-host lock (src/sr/cluster-lock.ts) is flock.
    const path = `${MNT}/locks/${SR}/sr`;
    const marker = `${GUEST_SHARE}/marks/fcntl.held`;
    const release = `${GUEST_SHARE}/marks/fcntl.release`;
    const holder = await spawnStep(n0, 'fcntl-hold', { path, marker, release });
    await waitHostFile(join(marks, 'fcntl.held'), holder);
    const sameHost = await step<{ acquired: boolean }>(n0, 'fcntl-try', { path });
    const otherHost = await step<{ acquired: boolean }>(n1, 'fcntl-try', { path });
    await writeFile(join(marks, 'fcntl.release'), '');
    expect((await holder.wait(60_000)).code).toBe(0);
    expect(sameHost.acquired).toBe(false);
    expect(otherHost.acquired).toBe(true);
  }, 300_000);

  type Read = { objects: Obj[]; before: string[]; after: string[]; hashes: Record<string, string>; errors: Record<string, string> };

  /**
   * The master starts a revert (swap-vdi) of a fresh VDI and pauses in it after its first
   * durable step, holding the cross-host lock; the other host then starts a vdi_attach-like
   * read. Returns when the read is waiting for the lock: the host files `started` exists
   * and `locked` does not, a few seconds after the read asked for it.
   */
  async function pausedSwapWithWaitingReader(tag: string, crash: boolean) {
    const r = await step<{ v: string; s: string; fresh: string; hOld: string; hNew: string }>(n0, 'prepare-revert', { dir: SR_DIR });
    const m = (n: string) => `${GUEST_SHARE}/marks/${tag}.${n}`;
    const swap = await spawnStep(n0, 'swap-paused', {
      dir: SR_DIR, v: r.v, fresh: r.fresh, hold: 'link-old', marker: m('held'), release: m('release'), ...(crash ? { crash: m('crash') } : {}),
    });
    await waitHostFile(join(marks, `${tag}.held`), swap);
    const reader = await spawnStep(n1, 'read', { dir: SR_DIR, started: m('started'), locked: m('locked') });
    await waitHostFile(join(marks, `${tag}.started`), reader);
    await sleep(5000);
    const readerWaited = !existsSync(join(marks, `${tag}.locked`)) && (await reader.poll()) === undefined;
    return { r, swap, reader, readerWaited, release: () => writeFile(join(marks, `${tag}.${crash ? 'crash' : 'release'}`), '') };
  }

  const lastJson = <T,>(stdout: string): T => JSON.parse(stdout.trim().split('\n').pop() ?? '{}') as T;

  test('while the master is in the middle of a revert (swap-vdi), the other host’s vdi_attach waits on the cross-host lock, then reads the finished swap', async () => {
    const { r, swap, reader, readerWaited, release } = await pausedSwapWithWaitingReader('swap', false);
    await release();
    const res = await swap.wait(300_000);
    const out = lastJson<{ vdiNow?: string; error?: string }>(res.stdout);
    const rd = await reader.wait(300_000);
    const read = lastJson<Read & { error?: string }>(rd.stdout);
    // All facts at once, so a failure shows the whole story:
    expect({
      // node1 could not get the shared lock while node0 held the exclusive one (o2cb's DLM),
      readerWaitedForTheMaster: readerWaited,
      // the master's swap completed: the VDI is backed by the fresh object,
      masterSwap: { code: res.code, error: out.error, vdiNow: out.vdiNow },
      // and node1 then read the finished state: the VDI has the snapshot's bytes, the old
      // volume (now hidden) its own, and the read changed nothing.
      otherHost: {
        code: rd.code, error: read.error, errors: read.errors, changed: read.before.join('\n') === read.after.join('\n') ? 'nothing' : read.after,
        vdi: read.hashes[r.fresh], old: read.hashes[r.v], vdiOf: read.objects.find((o) => o.vdi === r.v && !o.deleted)?.id,
      },
    }).toEqual({
      readerWaitedForTheMaster: true,
      masterSwap: { code: 0, error: undefined, vdiNow: r.fresh },
      otherHost: { code: 0, error: undefined, errors: {}, changed: 'nothing', vdi: r.hOld, old: r.hNew, vdiOf: r.fresh },
    });
  }, 600_000);

  test('when the master dies in the middle of a swap, its lock goes with it and the other host’s vdi_attach completes the swap (never both, never half)', async () => {
    const { r, swap, reader, readerWaited, release } = await pausedSwapWithWaitingReader('crash', true);
    await release();
    const res = await swap.wait(300_000);
    const rd = await reader.wait(300_000);
    const read = lastJson<Read & { error?: string }>(rd.stdout);
    const swapLeft = (l: string[]) => l.filter((n) => n.startsWith('.flatsnap-swap.')).length;
    expect({
      readerWaitedForTheMaster: readerWaited,
      masterDied: { code: res.code, said: res.stdout.trim() },
      otherHost: {
        code: rd.code, error: read.error, errors: read.errors, swapIntentBefore: swapLeft(read.before), swapIntentAfter: swapLeft(read.after),
        vdi: read.hashes[r.fresh], old: read.hashes[r.v], vdiOf: read.objects.find((o) => o.vdi === r.v && !o.deleted)?.id,
      },
    }).toEqual({
      readerWaitedForTheMaster: true,
      masterDied: { code: 128 + 9, said: '' },
      otherHost: { code: 0, error: undefined, errors: {}, swapIntentBefore: 1, swapIntentAfter: 0, vdi: r.hOld, old: r.hNew, vdiOf: r.fresh },
    });
  }, 600_000);

  test('the master deletes everything and the SR; both hosts unmount cleanly and fsck.ocfs2 finds nothing', async () => {
    const d = await step<{ left: string[] }>(n0, 'delete-all', { dir: SR_DIR, sr: SR });
    expect(d.left).toEqual([]);
    const other = await n1.sh(`ls -A ${SR_DIR}`);
    expect(other).toBe('');
    // One after the other: when both leave the DLM domain at once, o2dlm logs a harmless
    // "Domain ... not joined" (a lock resource migrated to a node that is leaving too).
    await timings.time('umount on both nodes (node1, then node0)', async () => {
      for (const vm of [n1, n0]) await vm.run('/bin/umount', [MNT], { timeoutMs: 120_000 });
    });
    const f = await n0.exec('/sbin/fsck.ocfs2', ['-fn', DISK], { timeoutMs: 300_000 });
    expect({ code: f.code, out: f.stdout + f.stderr }).toMatchObject({ code: 0 });
  }, 600_000);
});
