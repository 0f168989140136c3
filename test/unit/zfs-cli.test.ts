// The ZFS command layer with a scripted runner: exact argv arrays, busy retry
// with backoff, the zfs-fuse workarounds, and what never gets run.
import { ZfsCli, type ZfsLogger } from '../../src/backends/zfs/cli.js';
import { ZfsError } from '../../src/backends/zfs/errors.js';
import type { Exec, ExecResult } from '../../src/backends/zfs/exec.js';
import { featuresFor, type ZfsFeatures } from '../../src/backends/zfs/features.js';
import { parseZfsVersion } from '../../src/backends/zfs/parse.js';

type Reply = Partial<ExecResult>;
type Responder = (args: readonly string[], bin: string) => Reply | undefined;

const quiet: ZfsLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

function harness(features: ZfsFeatures | undefined, respond: Responder = () => undefined) {
  const calls: Array<{ bin: string; args: string[] }> = [];
  const sleeps: number[] = [];
  const exec: Exec = async (bin, args) => {
    calls.push({ bin, args: [...args] });
    const r = respond(args, bin) ?? {};
    return { exitCode: 0, stdout: '', stderr: '', signal: undefined, timedOut: false, spawnError: undefined, ...r };
  };
  const cli = new ZfsCli({
    exec,
    zfsBin: '/usr/sbin/zfs',
    zpoolBin: '/usr/sbin/zpool',
    logger: quiet,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    ...(features ? { features } : {}),
    fileExists: () => false,
  });
  const zfsArgs = () => calls.filter((c) => c.bin === '/usr/sbin/zfs').map((c) => c.args);
  return { cli, calls, sleeps, zfsArgs };
}

const OPENZFS = featuresFor('openzfs', parseZfsVersion('zfs-2.2.2-1\nzfs-kmod-2.2.2-1'));
const FUSE = featuresFor('zfs-fuse');
const fail = (stderr: string, exitCode = 1): Reply => ({ exitCode, stderr });

async function caught(p: Promise<unknown>): Promise<ZfsError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ZfsError) return e;
    throw e;
  }
  throw new Error('expected a ZfsError');
}

describe('argv: always arrays, names checked, user values encoded', () => {
  test('create filesystem with native and user properties', async () => {
    const h = harness(OPENZFS);
    await h.cli.createFilesystem('tank/sr/v1', {
      props: { mountpoint: '/run/x' },
      user: { 'flatsnap:uuid': 'u-1', 'flatsnap:name': 'a\tb c%', 'flatsnap:description': '' },
    });
    expect(h.zfsArgs()).toEqual([
      ['create', '-o', 'mountpoint=/run/x', '-o', 'flatsnap:uuid=u-1', '-o', 'flatsnap:name=a%09b c%25', '-o', 'flatsnap:description=%', 'tank/sr/v1'],
    ]);
  });

  test('sparse zvol, size rounded up to the volblocksize', async () => {
    const h = harness(OPENZFS);
    expect(await h.cli.createVolume('tank/sr/v', 1_000_000, { volblocksize: 65536, user: { 'flatsnap:uuid': 'u' } })).toBe(1_048_576);
    expect(await h.cli.createVolume('tank/sr/w', 1_000_000, { sparse: false })).toBe(1_015_808);
    expect(h.zfsArgs()).toEqual([
      ['create', '-s', '-b', '65536', '-V', '1048576', '-o', 'flatsnap:uuid=u', 'tank/sr/v'],
      ['create', '-V', '1015808', 'tank/sr/w'],
    ]);
  });

  test('no zvols on zfs-fuse: refused without running anything', async () => {
    const h = harness(FUSE);
    const e = await caught(h.cli.createVolume('p/sr/v', 1 << 20));
    expect(e.kind).toBe('Unsupported');
    expect(h.calls).toEqual([]);
  });

  test('snapshot and clone carry their properties atomically', async () => {
    const h = harness(FUSE);
    await h.cli.snapshot('p/sr/v@s1', { user: { 'flatsnap:uuid': 's1', 'flatsnap:is-a-snapshot': 'true' } });
    await h.cli.clone('p/sr/v@s1', 'p/sr/c1', { user: { 'flatsnap:uuid': 'c1' } });
    expect(h.zfsArgs()).toEqual([
      ['snapshot', '-o', 'flatsnap:uuid=s1', '-o', 'flatsnap:is-a-snapshot=true', 'p/sr/v@s1'],
      ['clone', '-o', 'flatsnap:uuid=c1', 'p/sr/v@s1', 'p/sr/c1'],
    ]);
  });

  test('bad names never reach zfs', async () => {
    const h = harness(OPENZFS);
    await expect(h.cli.createFilesystem('-rf')).rejects.toThrow(/invalid ZFS dataset name/);
    await expect(h.cli.destroy('tank/a b')).rejects.toThrow(/invalid ZFS/);
    await expect(h.cli.snapshot('tank/a')).rejects.toThrow(/invalid ZFS snapshot name/);
    await expect(h.cli.set('tank/a', { user: { 'Bad:Name': 'x' } })).rejects.toThrow(/user property name/);
    await expect(h.cli.set('tank/a', { props: { mountpoint: '/a\nb' } })).rejects.toThrow(ZfsError);
    expect(h.calls).toEqual([]);
  });

  test('a user value too long for ZFS is refused before running', async () => {
    const h = harness(OPENZFS);
    const e = await caught(h.cli.set('tank/a', { user: { 'flatsnap:description': 'x'.repeat(4096) } }));
    expect(e.kind).toBe('InvalidArgument');
    expect(e.toSmError().kind).toBe('InvalidArg');
    expect(h.calls).toEqual([]);
  });
});

describe('destroy rules', () => {
  test('flags: -r only when asked, -d only for snapshots, never -R or -f', async () => {
    const h = harness(OPENZFS);
    await h.cli.destroy('tank/sr/v');
    await h.cli.destroy('tank/sr/v', { recursive: true });
    await h.cli.destroy('tank/sr/v@s', { defer: true });
    expect(h.zfsArgs()).toEqual([
      ['destroy', 'tank/sr/v'],
      ['destroy', '-r', 'tank/sr/v'],
      ['destroy', '-d', 'tank/sr/v@s'],
    ]);
    await expect(h.cli.destroy('tank/sr/v', { defer: true })).rejects.toThrow(/snapshots only/);
    await expect(h.cli.destroy('tank')).rejects.toThrow(/root dataset of pool/);
    expect(h.calls).toHaveLength(3);
  });

  test('dependent clones: typed error with the dependents; missingOk only forgives NotFound', async () => {
    const h = harness(OPENZFS, (a) =>
      a[0] === 'destroy' && a.at(-1) === 'p/x@s'
        ? fail("cannot destroy 'p/x@s': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\np/y\n")
        : a[0] === 'destroy'
          ? fail("cannot open 'p/gone': dataset does not exist\n")
          : undefined,
    );
    const e = await caught(h.cli.destroy('p/x@s', { missingOk: true }));
    expect(e.kind).toBe('HasClones');
    expect(e.dependents).toEqual(['p/y']);
    await h.cli.destroy('p/gone', { missingOk: true });
    expect((await caught(h.cli.destroy('p/gone'))).kind).toBe('NotFound');
  });

  test('zfs-fuse: a mounted filesystem is unmounted first, and mounted again if zfs refuses', async () => {
    const h = harness(FUSE, (a) => {
      if (a[0] === 'get') return { stdout: 'p/sr/v\ttype\tfilesystem\t-\np/sr/v\tmounted\tyes\t-\n' };
      if (a[0] === 'destroy') return fail("cannot destroy 'p/sr/v': filesystem has children\nuse '-r' to destroy the following datasets:\np/sr/v@s\n");
      return undefined;
    });
    const e = await caught(h.cli.destroy('p/sr/v'));
    expect(e.kind).toBe('HasChildren');
    expect(h.zfsArgs()).toEqual([
      ['get', '-H', '-p', '-o', 'name,property,value,source', 'type,mounted', 'p/sr/v'],
      ['unmount', 'p/sr/v'],
      ['destroy', 'p/sr/v'],
      ['mount', 'p/sr/v'],
    ]);
  });
});

describe('busy: bounded exponential backoff, then VDIInUse', () => {
  test('succeeds on the third run after 100 + 200 ms', async () => {
    let n = 0;
    const h = harness(OPENZFS, () => (++n < 3 ? fail("cannot destroy 'p/x': dataset is busy\n") : undefined));
    await h.cli.destroy('p/x');
    expect(h.calls).toHaveLength(3);
    expect(h.sleeps).toEqual([100, 200]);
  });

  test('gives up after 5 runs and 1.5 s of waiting', async () => {
    const h = harness(OPENZFS, () => fail("cannot unmount '/p/x': pool or dataset is busy\n"));
    const e = await caught(h.cli.unmount('p/x'));
    expect(e.kind).toBe('Busy');
    expect(e.attempts).toBe(5);
    expect(h.calls).toHaveLength(5);
    expect(h.sleeps).toEqual([100, 200, 400, 800]);
    expect(e.toSmError().kind).toBe('VDIInUse');
    expect(e.toSmError().code).toBe(24);
  });

  test('other errors are not retried', async () => {
    const h = harness(OPENZFS, () => fail("cannot create 'p/x': out of space\n"));
    const e = await caught(h.cli.createFilesystem('p/x'));
    expect(e.kind).toBe('NoSpace');
    expect(e.toSmError().code).toBe(44);
    expect(h.calls).toHaveLength(1);
  });
});

describe('reading', () => {
  const scanOut = 'p/sr\ttype\tfilesystem\t-\np/sr/v\ttype\tfilesystem\t-\np/sr/v@s\ttype\tsnapshot\t-\n';

  test('one zfs get per scan; -t on OpenZFS', async () => {
    const h = harness(OPENZFS, () => ({ stdout: scanOut }));
    const r = await h.cli.scan('p/sr', ['flatsnap:uuid']);
    expect(r.datasets.size).toBe(3);
    expect(h.zfsArgs()).toEqual([
      [
        'get',
        '-H',
        '-p',
        '-r',
        '-t',
        'filesystem,volume,snapshot',
        '-o',
        'name,property,value,source',
        'type,origin,used,referenced,available,volsize,volblocksize,refreservation,refquota,creation,createtxg,guid,mounted,mountpoint,canmount,defer_destroy,userrefs,flatsnap:uuid',
        'p/sr',
      ],
    ]);
  });

  test('zfs-fuse has no get -t: types filtered client-side', async () => {
    const h = harness(FUSE, () => ({ stdout: scanOut }));
    const r = await h.cli.get(['p/sr'], ['used'], { recursive: true, types: ['filesystem'] });
    expect([...r.datasets.keys()]).toEqual(['p/sr', 'p/sr/v']);
    expect(h.zfsArgs()).toEqual([['get', '-H', '-p', '-r', '-o', 'name,property,value,source', 'type,used', 'p/sr']]);
  });

  test('getDataset / exists: NotFound is undefined / false', async () => {
    const h = harness(OPENZFS, () => fail("cannot open 'p/nope': dataset does not exist\n"));
    expect(await h.cli.getDataset('p/nope')).toBeUndefined();
    expect(await h.cli.exists('p/nope')).toBe(false);
  });

  test('pool stats: -p where zpool has it', async () => {
    const o = harness(OPENZFS, () => ({ stdout: 'tank\t100\t40\t60\tONLINE\n' }));
    expect(await o.cli.poolStats('tank')).toEqual({ name: 'tank', size: 100, allocated: 40, free: 60, health: 'ONLINE', exact: true });
    expect(o.calls[0]).toEqual({ bin: '/usr/sbin/zpool', args: ['list', '-H', '-p', '-o', 'name,size,allocated,free,health', 'tank'] });
    const f = harness(FUSE, () => ({ stdout: 'tank\t1.98G\t556K\t1.98G\tDEGRADED\n' }));
    const s = await f.cli.poolStats('tank');
    expect(s.exact).toBe(false);
    expect(s.allocated).toBe(556 * 1024);
    expect(f.calls[0]!.args).toEqual(['list', '-H', '-o', 'name,size,allocated,free,health', 'tank']);
  });

  test('requireHealthyPool: SRUnavailable when FAULTED', async () => {
    const h = harness(OPENZFS, () => ({ stdout: 'FAULTED\n' }));
    await expect(h.cli.requireHealthyPool('tank')).rejects.toMatchObject({ kind: 'SRUnavailable' });
  });
});

describe('zfs-fuse renames', () => {
  test('mounted subtree unmounted, renamed, mounted under the new name', async () => {
    const h = harness(FUSE, (a) =>
      a[0] === 'get'
        ? {
            stdout: [
              'p/sr/a\ttype\tfilesystem\t-',
              'p/sr/a\tmounted\tyes\t-',
              'p/sr/a@s\ttype\tsnapshot\t-',
              'p/sr/a@s\tmounted\t-\t-',
              'p/sr/a/b\ttype\tfilesystem\t-',
              'p/sr/a/b\tmounted\tyes\t-',
              '',
            ].join('\n'),
          }
        : undefined,
    );
    await h.cli.rename('p/sr/a', 'p/sr/z');
    expect(h.zfsArgs().slice(1)).toEqual([
      ['unmount', 'p/sr/a/b'],
      ['unmount', 'p/sr/a'],
      ['rename', 'p/sr/a', 'p/sr/z'],
      ['mount', 'p/sr/z'],
      ['mount', 'p/sr/z/b'],
    ]);
  });

  test('OpenZFS renames directly; snapshots stay within their dataset', async () => {
    const h = harness(OPENZFS);
    await h.cli.rename('p/sr/a', 'p/sr/z');
    await h.cli.rename('p/sr/a@s', 'p/sr/a@t');
    expect(h.zfsArgs()).toEqual([
      ['rename', 'p/sr/a', 'p/sr/z'],
      ['rename', 'p/sr/a@s', 'p/sr/a@t'],
    ]);
    await expect(h.cli.rename('p/sr/a@s', 'p/sr/b@s')).rejects.toThrow(/within its dataset/);
  });
});

describe('set and inherit', () => {
  test('one atomic zfs set on OpenZFS, one per property on zfs-fuse', async () => {
    const o = harness(OPENZFS);
    await o.cli.set('p/v', { props: { refquota: '1024' }, user: { 'flatsnap:name': 'n', 'flatsnap:tombstone': 'true' } });
    expect(o.zfsArgs()).toEqual([['set', 'refquota=1024', 'flatsnap:name=n', 'flatsnap:tombstone=true', 'p/v']]);
    const f = harness(FUSE);
    await f.cli.set('p/v', { user: { 'flatsnap:name': 'n', 'flatsnap:tombstone': 'true' } });
    expect(f.zfsArgs()).toEqual([
      ['set', 'flatsnap:name=n', 'p/v'],
      ['set', 'flatsnap:tombstone=true', 'p/v'],
    ]);
  });

  test('volsize, refquota, inherit', async () => {
    const h = harness(OPENZFS);
    await h.cli.setVolsize('p/v', 2147483648);
    await h.cli.setRefquota('p/f', 1073741824);
    await h.cli.setRefquota('p/f', null);
    await h.cli.inherit('p/f', 'flatsnap:tombstone');
    expect(h.zfsArgs()).toEqual([
      ['set', 'volsize=2147483648', 'p/v'],
      ['set', 'refquota=1073741824', 'p/f'],
      ['set', 'refquota=none', 'p/f'],
      ['inherit', 'flatsnap:tombstone', 'p/f'],
    ]);
  });
});

describe('mount helpers are idempotent', () => {
  test('already mounted / not mounted are fine', async () => {
    const h = harness(FUSE, (a) =>
      a[0] === 'mount' ? fail("cannot mount 'p/x': filesystem already mounted\n") : fail("cannot unmount 'p/x': not currently mounted\n"),
    );
    await h.cli.mount('p/x');
    await h.cli.unmount('p/x');
    expect(h.zfsArgs()).toEqual([
      ['mount', 'p/x'],
      ['unmount', 'p/x'],
    ]);
  });
});

describe('features and failures of the program itself', () => {
  test('detected once per instance with `zfs version`', async () => {
    const h = harness(undefined, (a) => (a[0] === 'version' ? { stdout: 'zfs-2.2.2-1\nzfs-kmod-2.2.2-1\n' } : undefined));
    await h.cli.createFilesystem('p/a');
    await h.cli.createFilesystem('p/b');
    expect((await h.cli.features()).flavor).toBe('openzfs');
    expect(h.zfsArgs()).toEqual([['version'], ['create', 'p/a'], ['create', 'p/b']]);
  });

  test('zfs missing -> NotInstalled (SRUnavailable "zfs is not installed"), retried on the next call', async () => {
    const h = harness(undefined, () => ({ exitCode: undefined, spawnError: 'ENOENT' }));
    const e = await caught(h.cli.exists('p/a'));
    expect(e.kind).toBe('NotInstalled');
    expect(e.toSmError().message).toContain('zfs is not installed');
    await caught(h.cli.exists('p/a'));
    expect(h.zfsArgs().filter((a) => a[0] === 'version')).toHaveLength(2);
  });

  test('a hung command -> Timeout (SRUnavailable)', async () => {
    const h = harness(OPENZFS, () => ({ exitCode: undefined, timedOut: true, signal: 'SIGTERM' }));
    const e = await caught(h.cli.snapshot('p/a@s'));
    expect(e.kind).toBe('Timeout');
    expect(e.toSmError().kind).toBe('SRUnavailable');
  });

  test('zfs-fuse aborting with "internal error" is classified from its message', async () => {
    const h = harness(FUSE, () => ({ exitCode: undefined, signal: 'SIGABRT', stderr: 'internal error: Argument list too long\n' }));
    expect((await caught(h.cli.set('p/a', { props: { quota: '1' } }))).kind).toBe('InvalidArgument');
  });
});
