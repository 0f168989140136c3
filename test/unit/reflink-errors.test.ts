// Errno → SM error mapping, file naming, and the native addon's error shape.
import { kindForErrno, toSmError } from '../../src/backends/reflink/fs-errors.js';
import { isTempName, isVdiUuid, sidecarPath, tempOwner, tempPath, volumePath } from '../../src/backends/reflink/names.js';
import { errnoCode, sys } from '../../src/backends/reflink/sys.js';
import { fsKindOf, FS_MAGIC } from '../../src/backends/reflink/fsinfo.js';
import { SmError } from '../../src/errors.js';

const U = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const sysErr = (code: string): Error => Object.assign(new Error(`boom: ${code}`), { code });

describe('errno mapping', () => {
  test.each([
    ['ENOSPC', 'SRNoSpace'],
    ['EDQUOT', 'SRNoSpace'],
    ['EROFS', 'SharedFileSystemNoWrite'],
    ['ENOENT', 'VolNotFound'],
    ['EEXIST', 'VDIExists'],
    ['EIO', 'EIO'],
    ['EUCLEAN', 'EIO'],
    ['ENOTCONN', 'SRUnavailable'],
    ['ESTALE', 'SRUnavailable'],
    ['EFBIG', 'VDISize'],
    ['EOPNOTSUPP', 'SMGeneral'],
    [undefined, 'SMGeneral'],
  ] as const)('%s → %s', (code, kind) => {
    expect(kindForErrno(code)).toBe(kind);
  });

  test('caller overrides for ENOENT, EEXIST and the fallback', () => {
    const m = { notFound: 'SRUnavailable', exists: 'SRExists', fallback: 'VDISnapshot' } as const;
    expect(kindForErrno('ENOENT', m)).toBe('SRUnavailable');
    expect(kindForErrno('EEXIST', m)).toBe('SRExists');
    expect(kindForErrno('EXDEV', m)).toBe('VDISnapshot');
    expect(kindForErrno('ENOSPC', m)).toBe('SRNoSpace');
  });

  test('toSmError keeps SmErrors and puts context in the detail', () => {
    const keep = new SmError('VDISize', 'x');
    expect(toSmError(keep, 'ctx')).toBe(keep);
    const e = toSmError(sysErr('ENOSPC'), 'write /sr/a.json');
    expect(e.kind).toBe('SRNoSpace');
    expect(e.code).toBe(44);
    expect(e.message).toBe('There is insufficient space [opterr=write /sr/a.json: boom: ENOSPC]');
    expect(toSmError('weird', 'ctx').kind).toBe('SMGeneral');
  });

  test('errnoCode only accepts errno-looking codes', () => {
    expect(errnoCode(sysErr('EXDEV'))).toBe('EXDEV');
    expect(errnoCode(Object.assign(new Error(), { code: 'ERR_INVALID_ARG_TYPE' }))).toBeUndefined();
    expect(errnoCode({ code: 5 })).toBeUndefined();
    expect(errnoCode(null)).toBeUndefined();
  });
});

describe('names', () => {
  test('only lower-case uuids name files, so nothing escapes the SR directory', () => {
    expect(isVdiUuid(U)).toBe(true);
    expect(isVdiUuid(U.toUpperCase())).toBe(false);
    expect(volumePath('/sr', U)).toBe(`/sr/${U}`);
    expect(sidecarPath('/sr', U)).toBe(`/sr/${U}.json`);
    for (const bad of ['../etc', `${U}/..`, '', `${U}.json`]) {
      expect(() => volumePath('/sr', bad)).toThrow(SmError);
      expect(() => sidecarPath('/sr', bad)).toThrow(SmError);
    }
  });

  test('temp names are hidden, unique, carry the pid and a sanitised hint', () => {
    const a = tempPath('/sr', `${U}.json`);
    const b = tempPath('/sr', 'x/../y z');
    expect(a).not.toBe(tempPath('/sr', `${U}.json`));
    const name = a.slice('/sr/'.length);
    expect(isTempName(name)).toBe(true);
    expect(tempOwner(name)).toBe(process.pid);
    expect(b.slice('/sr/'.length)).not.toContain('/');
    expect(isVdiUuid(name)).toBe(false);
  });
});

describe('native reflink syscalls (no root needed)', () => {
  test('statfs gives the magic of / and the ENOENT shape of Node errors', () => {
    const n = sys();
    const st = n.statfs('/');
    expect(st.type).toBeGreaterThan(0);
    expect(st.blocks).toBeGreaterThan(0);
    try {
      n.statfs('/no/such/dir');
      throw new Error('statfs of a missing path succeeded');
    } catch (e) {
      expect(e).toMatchObject({ code: 'ENOENT', errno: 2, syscall: 'statfs' });
    }
  });

  test('ficlone and fiemap report bad descriptors as EBADF', () => {
    const n = sys();
    expect(() => n.ficlone(-1, -1)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => n.fiemapCount(-1)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'ioctl(FS_IOC_FIEMAP)' }));
    // (A TypeError of the main realm: jest's vm context has its own TypeError, so match the text.)
    expect(() => n.ficlone('a' as unknown as number, 1)).toThrow(/ficlone\(srcFd: number, dstFd: number\)/);
  });

  test('magic numbers name the three reflink filesystems', () => {
    expect(fsKindOf(FS_MAGIC.xfs)).toBe('xfs');
    expect(fsKindOf(0x9123683e)).toBe('btrfs');
    expect(fsKindOf(0x7461636f)).toBe('ocfs2');
    expect(fsKindOf(0xef53)).toBe('other');
  });
});
