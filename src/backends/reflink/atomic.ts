// Durable file updates, the Qubes reflink driver's discipline: write a temporary
// file in the same directory, fsync it, rename it over the target, fsync the
// directory. A crash leaves either the old or the new content under the real
// name, plus at worst a `.flatsnap-tmp.*` file that listing reports as stale.
//
// These helpers throw the raw Node errors (with `code`); the functions built on
// them map those to SmErrors with their own context.
import { link, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, basename } from 'node:path';
import { errnoCode } from './sys.js';
import { tempPath } from './names.js';

/** fsync(2) on a directory, so entries created, renamed or removed in it are durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** unlink that tolerates a missing file; true if something was removed. */
export async function unlinkIfExists(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw e;
  }
}

/** Best-effort cleanup on an error path: never throws, never hides the first error. */
export async function discard(path: string, fh?: FileHandle): Promise<void> {
  if (fh) await fh.close().catch(() => undefined);
  await unlink(path).catch(() => undefined);
}

/**
 * Replaces (or creates) `path` with `data` atomically and durably: temp file in
 * the same directory (O_EXCL), write, fsync, rename, fsync the directory.
 * On failure the temp file is removed and `path` is untouched.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  const tmp = tempPath(dir, basename(path));
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx', mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (e) {
    await discard(tmp, fh);
    throw e;
  }
  await fsyncDir(dir);
}

/**
 * Creates `path` with `data` durably, refusing to replace it: like writeFileAtomic, but the
 * temp file is published with link(2) (EEXIST if `path` exists, which is then untouched).
 */
export async function writeFileNew(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const dir = dirname(path);
  const tmp = tempPath(dir, basename(path));
  let fh: FileHandle | undefined;
  let linked = false;
  try {
    fh = await open(tmp, 'wx', mode);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await link(tmp, path);
    linked = true;
    await unlink(tmp);
    await fsyncDir(dir);
  } catch (e) {
    await discard(tmp, fh);
    // Failed after the link (unlink or fsync): take the new name back, so a failure never leaves it.
    if (linked) await unlink(path).catch(() => undefined);
    throw e;
  }
}

/**
 * Gives the finished temp file `tmp` its real name `final` (same directory) and
 * makes that durable. With `replace: false` an existing `final` is an EEXIST
 * error and is left alone: link(2) + unlink(2) instead of rename(2), the
 * no-replace rename Node can do (it has no renameat2 RENAME_NOREPLACE). A crash
 * between the two leaves `tmp` as a second name of the same inode, which
 * stale-temp cleanup removes harmlessly.
 */
export async function publish(tmp: string, final: string, opts: { replace: boolean }): Promise<void> {
  if (opts.replace) {
    await rename(tmp, final);
  } else {
    await link(tmp, final);
    await unlink(tmp);
  }
  await fsyncDir(dirname(final));
}

/** unlink + fsync of the directory; false if the file was already gone. */
export async function removeDurably(path: string): Promise<boolean> {
  const removed = await unlinkIfExists(path);
  if (removed) await fsyncDir(dirname(path));
  return removed;
}
