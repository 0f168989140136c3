// The one interface every storage backend implements (Incus-style: one contract,
// per backend a pool file, a volume file and CLI helpers). A backend knows
// storage, not XAPI: it carries out the lineage module's plan actions on real
// objects and reads everything back in one bulk inventory. Deciding *what* to
// do (tombstone or destroy, clone of what) is src/lineage's job; talking to
// xapi is the control module's (src/sr/).
import type { Capabilities, LineageObject } from '../lineage/index.js';

/** What storage keeps about a VDI, so an SR re-introduced into a fresh pool comes back whole. */
export interface VdiMeta {
  name_label: string;
  name_description: string;
  /** xapi's VDI type: user, system, suspend, ... */
  vdi_type: string;
  is_a_snapshot: boolean;
  /** xapi DateTime text (19700101T00:00:00Z when not a snapshot). */
  snapshot_time: string;
  /** uuid of the VDI this is a snapshot of, '' if none (xapi's snapshot_of, by uuid). */
  snapshot_of: string;
  read_only: boolean;
}

/** A storage object with its lineage fields and what storage says about it. */
export interface StoredObject extends LineageObject {
  /** Present when the object backs (or, as a tombstone, backed) a VDI. */
  readonly meta?: VdiMeta;
  /** Bytes the guest sees. */
  readonly virtual_size: number;
  /** Bytes the object uses on storage (ZFS `used`/`referenced`, file blocks). */
  readonly physical_utilisation: number;
  /** Backend's own handle: dataset/snapshot name, or file path. For logs and `flatsnap tree`. */
  readonly handle: string;
}

export interface SrStats {
  physical_size: number;
  physical_utilisation: number;
}

/** What `sr_probe` reports for an SR found on this storage. */
export interface ProbeResult {
  sr_uuid: string;
  handle: string;
  size: number;
}

/**
 * What xapi's row of a VDI says about where its object lives (flatsnap's own sm_config
 * keys, xapi-sync.ts). Only a hint: it may be missing (rows made before the key existed)
 * or stale (a crash between a storage change and the row's update).
 */
export interface VdiHint {
  vdi: string;
  /** sm_config flatsnap-object: the object's id. */
  object?: string;
  /** sm_config flatsnap-volume: for a snapshot VDI, the volume object it lives in. */
  volume?: string;
}

export interface Backend {
  readonly kind: 'zfs' | 'reflink';
  readonly capabilities: Capabilities;
  /** Where the SR lives, for messages: "zfs dataset tank/sr" or "xfs at /srv/sr". */
  describe(): string;

  // --- the SR (pool) -------------------------------------------------------
  /** Makes the SR's root on storage; refuses a root that holds anything not ours. */
  createSr(srUuid: string): Promise<void>;
  /** Removes the SR's root; the caller has checked that no VDI is left. */
  deleteSr(srUuid: string): Promise<void>;
  /** Checks the storage is there and belongs to this SR; idempotent. */
  attachSr(srUuid: string): Promise<void>;
  detachSr(srUuid: string): Promise<void>;
  stats(): Promise<SrStats>;
  probe(): Promise<ProbeResult[]>;

  // --- objects ---------------------------------------------------------------
  /**
   * Every object under the SR, tombstones and internal snapshots included, in one bulk read.
   * It may first complete storage work a crash interrupted (reflink: a swap-vdi), as every
   * change (create ... resize) may: call those on the SR master under the SR lock.
   * datapath and health only read and may be called on any host.
   */
  inventory(): Promise<StoredObject[]>;
  /**
   * Optional: the part of the SR the lineage decisions about some VDIs need, read without
   * listing every object, so that per-VDI commands do not grow with the SR. It holds every
   * object that claims one of the VDIs, with its ancestors, and on a dependent backend
   * everything connected to them through parent links (the whole clone tree they are in:
   * deletes and reverts decide on descendants); on an independent one descendants decide
   * nothing. Plans and lineage stamps from it come out as from inventory(). What the
   * caller will decide narrows it: `descendants: false` (snapshot, clone, update, attach,
   * resize: nothing is destroyed or retired) lets a dependent backend leave out what hangs
   * below; `ancestors: false` (no lineage stamp of the VDIs' existing objects is taken, only
   * plans and stamps of what they make) lets an independent one leave the ancestors out.
   * undefined when the backend cannot tell cheaply or surely (a hint missing or stale, a
   * pending swap, a parent it cannot find by name): the caller falls back to inventory().
   * Only reads; like inventory(), call it on the SR master under the SR lock.
   */
  family?(hints: readonly VdiHint[], opts?: { ancestors?: boolean; descendants?: boolean }): Promise<StoredObject[] | undefined>;

  // Lineage plan actions (src/lineage model.ts `Action`), one method each. Each
  // either completes or leaves storage as it was, so the control module can undo
  // finished steps in reverse when a later one fails.
  //
  // `time` (create, clone) is the plan action's `time`, recorded as the object's `created` so
  // that what storage reports matches the model exactly; Date.now() when omitted. Snapshots
  // take theirs from `name`.
  create(id: string, meta: VdiMeta, size: number, time?: number): Promise<StoredObject>;
  snapshot(id: string, of: StoredObject, name: string, kind: 'snapshot' | 'internal-snapshot', meta?: VdiMeta): Promise<StoredObject>;
  clone(id: string, from: StoredObject, meta?: VdiMeta, time?: number): Promise<StoredObject>;
  markTombstone(obj: StoredObject): Promise<void>;
  /** Re-points a VDI from volume `from` to volume `to`: afterwards `to` answers for the VDI. */
  swapVdi(vdi: string, from: StoredObject, to: StoredObject): Promise<void>;
  /** Plain rollback of `obj` to its newest snapshot `snapshot`; never destroys newer snapshots. */
  rollback(obj: StoredObject, snapshot: StoredObject): Promise<void>;
  destroy(obj: StoredObject): Promise<void>;

  // --- a VDI's data and metadata ------------------------------------------
  setMeta(obj: StoredObject, meta: VdiMeta): Promise<void>;
  /** Grows the VDI; refuses to shrink. Returns the new virtual size (rounded up if needed). */
  resize(obj: StoredObject, size: number): Promise<number>;
  /** A dom0 path to the VDI's bytes (block device or file) for tapdisk `aio:` or a dom0 copy. */
  datapath(obj: StoredObject): Promise<string>;
  /** Storage facts for `flatsnap check` (e.g. extent counts on reflink). */
  health?(obj: StoredObject): Promise<Record<string, number | string>>;
}
