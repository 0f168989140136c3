// Kernel tier, one guest: OpenZFS 2.x (zvol and file layouts) and OCFS2 in local mode,
// on Debian's 6.1 kernel under qemu (TCG unless the CPU has real hardware virtualisation).
// One boot for the whole file. The host makes the storage through the guest agent and
// checks the kernel-level facts (smoke tests); the backend suites run inside the guest
// with jest (lib/guest-jest.ts) and their results are asserted here, test by test.
//
// Runs with FLATSNAP_KERNEL_TIER=1 as root (`make test-kernel`); see README.md.
import { join } from 'node:path';
import { failuresOf, GUEST_SHARE, installNode, prepareShare, REPO, runGuestSuite, summaryOf, type Bundles, type SuiteRun } from './lib/guest-jest.js';
import { cleanWorkDir, describeKernelTier, ensureImage, Timings, workDir } from './lib/tier.js';
import { Vm } from './lib/vm.js';

const POOL = 'ktank';
const OCFS2_MNT = '/mnt/ocfs2';
const ZFS_DISK = '/dev/disk/by-id/virtio-ktzfs';
const OCFS2_DISK = '/dev/disk/by-id/virtio-ktocfs2';

describeKernelTier('kernel tier: OpenZFS 2.x and OCFS2 (local) in a qemu guest', () => {
  let vm: Vm;
  let bundles: Bundles;
  let dir = '';
  const timings = new Timings();

  beforeAll(async () => {
    const image = await timings.time('image (cache lookup, or build on a miss)', ensureImage);
    dir = await workDir('vm');
    bundles = await timings.time('bundle the guest suites (esbuild)', () => prepareShare(join(dir, 'share')));
    vm = await Vm.boot({
      name: 'kt-single',
      image,
      workDir: dir,
      smp: 2,
      memMiB: 3072,
      disks: [
        // Small disks: the conformance suites' fill test writes until ENOSPC, at TCG speed.
        { serial: 'ktzfs', file: join(dir, 'zfs.img'), sizeMiB: 512 },
        { serial: 'ktocfs2', file: join(dir, 'ocfs2.img'), sizeMiB: 384 },
      ],
      shares: [
        { tag: 'repo', hostPath: REPO, guestPath: REPO, readonly: true },
        { tag: 'ktshare', hostPath: bundles.share, guestPath: GUEST_SHARE },
      ],
    });
    timings.add(`boot to guest agent (${vm.accel.kind}: ${vm.accel.why})`, vm.bootMs);
    await vm.mountShares();
    await installNode(vm);
    // The storage every test below uses: a pool on one whole virtio disk, OCFS2 (local mode) on the other.
    await timings.time('zpool create + mkfs.ocfs2 -M local + mount', async () => {
      await vm.run('/sbin/modprobe', ['-a', 'zfs', 'ocfs2']);
      await vm.run('/sbin/zpool', ['create', '-f', '-o', 'ashift=12', '-O', 'mountpoint=/mnt/kt', POOL, ZFS_DISK]);
      await vm.run('/sbin/mkfs.ocfs2', ['-q', '-F', '-M', 'local', '--fs-features=refcount,xattr', '-L', 'ktlocal', OCFS2_DISK]);
      await vm.run('/bin/mkdir', ['-p', OCFS2_MNT]);
      await vm.run('/bin/mount', ['-t', 'ocfs2', OCFS2_DISK, OCFS2_MNT]);
    });
  }, 2_400_000);

  afterAll(async () => {
    await vm?.shutdown();
    await cleanWorkDir(dir);
    console.log(`kernel tier (one guest) timings:\n${timings.toString()}`);
  }, 120_000);

  /** Runs of bundled guest suites, each started once and shared by the tests that read it. */
  const runs = new Map<string, Promise<SuiteRun>>();
  function suiteRun(name: string, env: Record<string, string>): Promise<SuiteRun> {
    const key = `${name} ${JSON.stringify(env)}`;
    let p = runs.get(key);
    if (!p) {
      p = timings.time(`guest suite ${key}`, () => runGuestSuite(vm, bundles, name, env)).then((run) => {
        console.log(`guest suite ${key}: ${(run.ms / 1000).toFixed(1)} s\n${summaryOf(run)}`);
        return run;
      });
      runs.set(key, p);
    }
    return p;
  }

  /** Fails with every failing test's name and message among the tests of `run` whose name starts with one of `prefixes`. */
  function expectPassed(run: SuiteRun, prefixes: string[]): void {
    const mine = run.tests.filter((t) => prefixes.some((p) => t.fullName.startsWith(p)));
    const failures = failuresOf(run, prefixes);
    if (failures.length > 0) throw new Error(`${failures.length} failure(s) in the guest:\n\n${failures.join('\n\n')}`);
    expect(mine.filter((t) => t.status === 'passed').length).toBeGreaterThan(10);
    expect(mine.filter((t) => t.status !== 'passed').map((t) => `${t.status}: ${t.fullName}`)).toEqual([]);
  }

  test('the guest runs Debian 6.1 with OpenZFS 2.x built by DKMS, and the repository is shared read-only', async () => {
    expect(await vm.run('/bin/uname', ['-r'])).toMatch(/^6\.1\.\d+-\d+-amd64\n$/);
    const v = await vm.run('/sbin/zfs', ['version']);
    expect(v).toMatch(/^zfs-2\.\d+\.\d+/m);
    expect(v).toMatch(/^zfs-kmod-2\.\d+\.\d+/m);
    const r = await vm.exec('/usr/bin/touch', [join(REPO, '.kernel-tier-write-test')]);
    expect(r.code).not.toBe(0);
    expect(await vm.run(bundles.node, ['-e', 'process.stdout.write(process.version)'])).toBe(process.version);
  });

  test('smoke: the pool is on the whole virtio disk; a sparse zvol appears under /dev/zvol', async () => {
    expect(await vm.run('/sbin/zpool', ['list', '-H', '-o', 'name,health', POOL])).toBe(`${POOL}\tONLINE\n`);
    await vm.run('/sbin/zfs', ['create', '-s', '-b', '16K', '-V', '64M', `${POOL}/smoke`]);
    await vm.run('/bin/udevadm', ['settle']);
    await vm.run('/usr/bin/test', ['-b', `/dev/zvol/${POOL}/smoke`]);
    await vm.run('/sbin/zfs', ['destroy', `${POOL}/smoke`]);
  });

  test('smoke: OCFS2 in local mode; cp --reflink=always shares extents', async () => {
    await vm.sh(`head -c 8M /dev/urandom > ${OCFS2_MNT}/a && cp --reflink=always ${OCFS2_MNT}/a ${OCFS2_MNT}/b && sync`);
    expect(await vm.sh(`filefrag -v ${OCFS2_MNT}/b`)).toMatch(/shared/);
    await vm.sh(`cmp ${OCFS2_MNT}/a ${OCFS2_MNT}/b && rm ${OCFS2_MNT}/a ${OCFS2_MNT}/b`);
  });

  // One jest run in the guest for both ZFS layouts (one jest start-up under emulation), read by two tests.
  const ZFS_ENV = { KT_ZFS_POOL: POOL, KT_ZFS_LAYOUTS: 'zvol,file' };

  test('backend conformance on OpenZFS 2.x, zvol layout (and zvol specifics)', async () => {
    expectPassed(await suiteRun('zfs', ZFS_ENV), ['the guest runs OpenZFS 2.x', 'Backend conformance: zfs on OpenZFS 2.x, zvol layout', 'OpenZFS zvol layout specifics']);
  }, 1_800_000);

  test('backend conformance on OpenZFS 2.x, file layout', async () => {
    expectPassed(await suiteRun('zfs', ZFS_ENV), ['Backend conformance: zfs on OpenZFS 2.x, file layout']);
  }, 1_800_000);

  test('reflink conformance on OCFS2, local mode (and OCFS2 specifics)', async () => {
    expectPassed(await suiteRun('ocfs2', { KT_OCFS2_MNT: OCFS2_MNT }), ['Backend conformance: reflink on OCFS2 (local mode)', 'OCFS2 specifics']);
  }, 1_800_000);

  test('afterwards: the pool scrubs clean and fsck.ocfs2 finds nothing', async () => {
    await vm.run('/sbin/zpool', ['scrub', '-w', POOL]);
    expect(await vm.run('/sbin/zpool', ['status', '-x', POOL])).toMatch(/is healthy/);
    await vm.run('/bin/umount', [OCFS2_MNT]);
    const f = await vm.exec('/sbin/fsck.ocfs2', ['-fn', OCFS2_DISK]);
    expect({ code: f.code, out: f.stdout + f.stderr }).toMatchObject({ code: 0 });
  }, 300_000);
});
