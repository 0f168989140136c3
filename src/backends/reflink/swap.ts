// swap-vdi on files: VDI V moves from volume `from` (the image `<V>`) to the hidden
// volume `to` (the image `<to>.hidden`); afterwards `to` is the image `<V>` and `from`
// the hidden image `<from>.hidden`, its data intact (a revert keeps it as a tombstone
// or destroys it in the next plan step).
//
// Two images and three sidecars change, and no filesystem can do that in one step,
// so the swap is journalled: an intent file `.flatsnap-swap.<V>.json` holding both
// final records is made durable first (the commit point), then these steps run,
// each one idempotent and each followed by an fsync of the directory so they reach
// the disk in order:
//
//   1. link(<V>, <from>.hidden)       from's data gets its second, final name
//   2. rename(<to>.hidden, <V>)       atomically replaces <V>: V now reads to's data
//   3. write <from>.hidden.json       from's final record (no vdi)
//   4. write <V>.json                 to's final record (vdi V, V's metadata)
//   5. unlink <to>.hidden.json
//   6. unlink the intent
//
// Crash windows:
//   - before the intent is durable: nothing changed (at worst a temp file, reaped).
//   - after it: storage may be in any state between two steps; the next inventory()
//     or attachSr() rolls the swap forward from the intent (`completeSwap`), never back.
//     Which of steps 1-2 already ran is told by which names exist: `<to>.hidden` exists
//     until step 2, and step 1 happens before it. `<from>.hidden` cannot be a stale
//     leftover: swapVdi refuses to start when that name is taken. Steps 3-6 are plain
//     rewrites and unlinks and are simply redone.
//   - at no point is <V> missing (link before rename), and at no point is from's data
//     without a name: the rename in step 2 only drops the <V> name after step 1 gave
//     the same inode the <from>.hidden name, durably.
// Until the roll-forward the sidecar <V>.json may still describe `from`: that is why
// every reader of records (the backend's inventory and object lookup) first completes
// pending swaps.
import { link, lstat, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { SmError } from '../../errors.js';
import { fsyncDir, removeDurably, writeFileNew } from './atomic.js';
import { mapErrors } from './fs-errors.js';
import { objectName, swapPath } from './names.js';
import { type ObjectRecord, readSidecarText, removeRecord, validateRecord, writeRecord } from './sidecar.js';
import { errnoCode } from './sys.js';

export const SWAP_FORMAT = 'flatsnap-swap';
export const SWAP_VERSION = 1;

export interface SwapIntent {
  vdi: string;
  /** from's final record: no vdi; it will be the image `<from.id>.hidden`. */
  from: ObjectRecord;
  /** to's final record: vdi V; it will be the image `<V>`. */
  to: ObjectRecord;
}

export type SwapStep = 'intent' | 'link-old' | 'rename-new' | 'old-sidecar' | 'new-sidecar' | 'drop-sidecar' | 'done';

/** Test hook: called after each durable step; a throw there simulates a crash at that point. */
export type AfterStep = (step: SwapStep) => void | Promise<void>;

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return false;
    throw e;
  }
}

function encodeIntent(i: SwapIntent): string {
  return `${JSON.stringify({ format: SWAP_FORMAT, version: SWAP_VERSION, vdi: i.vdi, from: i.from, to: i.to }, null, 2)}\n`;
}

/** Reads the intent of a swap of `vdi`; SMGeneral if it is unreadable (needs a human). */
export async function readIntent(dir: string, vdi: string): Promise<SwapIntent | undefined> {
  const path = swapPath(dir, vdi);
  const text = await readSidecarText(path);
  if (text === undefined) return undefined;
  const bad = (why: string): SmError =>
    new SmError('SMGeneral', `${path}: an interrupted swap of VDI ${vdi} cannot be completed: ${why}; inspect the SR by hand`);
  let x: Record<string, unknown>;
  try {
    x = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw bad('not JSON');
  }
  if (x.format !== SWAP_FORMAT || x.version !== SWAP_VERSION || x.vdi !== vdi) throw bad('not a swap intent of this VDI');
  const to = validateRecord(x.to, vdi);
  if (!to.ok) throw bad(`to: ${to.problem}`);
  const fromId = (x.from as { id?: unknown } | null)?.id;
  if (typeof fromId !== 'string') throw bad('from has no id');
  const from = validateRecord(x.from, objectName(fromId));
  if (!from.ok) throw bad(`from: ${from.problem}`);
  return { vdi, from: from.record, to: to.record };
}

/**
 * Starts and completes a swap. `from` is the record at `<vdi>`, `to` the record at
 * `<to.id>.hidden`, both as they are on storage; the caller has checked the preconditions.
 */
export async function swapFiles(dir: string, vdi: string, from: ObjectRecord, to: ObjectRecord, after?: AfterStep): Promise<void> {
  const { vdi: _unbound, ...fromFinal } = from;
  const toFinal: ObjectRecord = { ...to, vdi, deleted: false };
  if (from.meta !== undefined) toFinal.meta = from.meta; // the VDI's name, type... move with the VDI
  const intent: SwapIntent = { vdi, from: fromFinal, to: toFinal };
  // Checks both final records before anything is written.
  for (const [r, name] of [[fromFinal, objectName(from.id)], [toFinal, vdi]] as const) {
    const v = validateRecord(r, name);
    if (!v.ok) throw new SmError('InvalidArg', `swap of VDI ${vdi}: ${v.problem}`);
  }
  const path = swapPath(dir, vdi);
  await mapErrors(`create ${path}`, { exists: 'SMGeneral', fallback: 'SMGeneral', notFound: 'SRUnavailable' }, () =>
    writeFileNew(path, encodeIntent(intent)),
  );
  await after?.('intent');
  await completeSwap(dir, intent, after);
}

/** Carries a swap whose intent is durable through to the end; idempotent. */
export async function completeSwap(dir: string, intent: SwapIntent, after?: AfterStep): Promise<void> {
  const v = intent.vdi;
  const vPath = join(dir, objectName(v, v));
  const oldName = objectName(intent.from.id);
  const newName = objectName(intent.to.id);
  const oldPath = join(dir, oldName);
  const newPath = join(dir, newName);
  await mapErrors(`swap VDI ${v} onto ${intent.to.id}`, { fallback: 'SMGeneral', notFound: 'VolNotFound' }, async () => {
    if (await exists(newPath)) {
      if (!(await exists(oldPath))) {
        await link(vPath, oldPath);
        await fsyncDir(dir);
        await after?.('link-old');
      }
      await rename(newPath, vPath);
      await fsyncDir(dir);
      await after?.('rename-new');
    } else if (!(await exists(oldPath)) || !(await exists(vPath))) {
      throw new SmError(
        'SMGeneral',
        `swap of VDI ${v}: neither ${newName} nor both of ${v} and ${oldName} exist; inspect the SR by hand (intent ${swapPath(dir, v)})`,
      );
    }
  });
  await writeRecord(dir, oldName, intent.from);
  await after?.('old-sidecar');
  await writeRecord(dir, v, intent.to);
  await after?.('new-sidecar');
  await removeRecord(dir, newName);
  await after?.('drop-sidecar');
  await mapErrors(`remove ${swapPath(dir, v)}`, { fallback: 'SMGeneral' }, () => removeDurably(swapPath(dir, v)));
  await after?.('done');
}
