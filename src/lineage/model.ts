// The lineage model's vocabulary: storage objects, backend traits, plan actions, errors.
import { formatInternalSnapshotName, formatSnapshotName } from './names.js';

/**
 * - `volume`: a writable dataset / file. Backs a live VDI, or nothing (hidden: a tombstone, a
 *   volume unbound by a revert, or the helper clone behind a snapshot of a snapshot).
 * - `snapshot`: a read-only storage snapshot that backs a snapshot VDI (its id is the VDI uuid).
 * - `internal-snapshot`: a hidden snapshot taken to clone a live volume; never a VDI.
 */
export type ObjectKind = 'volume' | 'snapshot' | 'internal-snapshot';

export interface LineageObject {
  /** Object id (a uuid). Volumes and snapshots start with id === their VDI uuid. */
  readonly id: string;
  readonly kind: ObjectKind;
  /** The VDI this object backs, if any. Kept on tombstoned snapshots (their name embeds it). */
  readonly vdi?: string;
  /**
   * Snapshot kinds: the volume they were taken of. Volumes: the (internal) snapshot they were
   * cloned from (reflink: the object they were copied from), none if created empty. With a
   * dependent backend this is a storage dependency: the parent outlives its children.
   */
  readonly parent?: string;
  /** Creation time, ms since the epoch (UTC); for snapshots, the time in their name. */
  readonly created: number;
  /** Tombstone (the paper's isDeleted): gone for XAPI, kept on storage while something needs it. */
  readonly deleted: boolean;
}

/** What the storage underneath can do, as far as lineage is concerned. */
export interface Capabilities {
  /**
   * true (ZFS): a snapshot lives inside its dataset and a clone needs its origin snapshot, so a
   * parent cannot be destroyed before its children. false (reflink): every object is an
   * independent file, `parent` is provenance only and every delete is immediate.
   */
  readonly dependent: boolean;
}

export const ZFS_CAPABILITIES: Capabilities = Object.freeze({ dependent: true });
export const REFLINK_CAPABILITIES: Capabilities = Object.freeze({ dependent: false });

/**
 * One step for a backend to carry out, in plan order. None of them is ever a recursive or
 * forcing operation: no `zfs destroy -r/-R/-d`, no `zfs rollback -r/-R`, no `zfs promote`.
 */
export type Action =
  /** Create an empty volume for a new VDI (zfs create / new file). */
  | { readonly op: 'create'; readonly object: string; readonly vdi: string; readonly time: number }
  /**
   * Snapshot volume `of` as `of@name` (reflink: copy `of` to a new file). A VDI snapshot has
   * vdi === object; an internal one has no vdi.
   */
  | {
      readonly op: 'snapshot';
      readonly object: string;
      readonly of: string;
      readonly kind: 'snapshot' | 'internal-snapshot';
      readonly name: string;
      readonly vdi?: string;
      readonly time: number;
    }
  /** Clone snapshot `from` into a new volume (reflink: copy `from`). No vdi: hidden helper. */
  | { readonly op: 'clone'; readonly object: string; readonly from: string; readonly vdi?: string; readonly time: number }
  /** Persist the tombstone flag. Written before any destroy, so a crash leaves work for gcPlan. */
  | { readonly op: 'mark-tombstone'; readonly object: string }
  /** Tell xapi the VDI is gone (VDI.db_forget), if the caller is not xapi's own vdi_delete. */
  | { readonly op: 'forget-in-xapi'; readonly vdi: string }
  /**
   * Re-point `vdi` from volume `from` to volume `to` (ZFS: rename both datasets or rewrite the
   * vdi property; reflink: rename(2) over the old path). Afterwards `from` backs nothing.
   */
  | { readonly op: 'swap-vdi'; readonly vdi: string; readonly from: string; readonly to: string }
  /**
   * `zfs rollback object@snapshot` where snapshot is the newest snapshot of object, so plain
   * rollback suffices (never -r). optional: only reclaims a tombstone's head; a failure may be
   * ignored.
   */
  | { readonly op: 'rollback'; readonly object: string; readonly snapshot: string; readonly optional: boolean }
  /** Destroy one object that has no remaining children (plain zfs destroy / unlink). */
  | { readonly op: 'destroy'; readonly object: string };

export type ActionOp = Action['op'];

/** An ordered list of actions; applying them in order to storage and to the tree keeps both in step. */
export type Plan = readonly Action[];

export type LineageErrorCode =
  | 'not-found' // no visible VDI / no object with that id
  | 'wrong-kind' // e.g. revert to something that is not a snapshot VDI
  | 'exists' // a new id / vdi is already taken
  | 'invalid' // an action breaks a model rule (a plan bug or a corrupt tree)
  | 'blocked'; // destroying something that still has children on a dependent backend

export class LineageError extends Error {
  constructor(
    readonly code: LineageErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'LineageError';
  }
}

export function isSnapshotKind(kind: ObjectKind): boolean {
  return kind !== 'volume';
}

/** A VDI xapi may see: backs a VDI, is not a tombstone, is not internal. */
export function isVisible(o: LineageObject): boolean {
  return o.vdi !== undefined && !o.deleted && o.kind !== 'internal-snapshot';
}

/** The storage snapshot name of a snapshot-kind object (its id and creation time). */
export function snapshotNameOf(o: LineageObject): string {
  switch (o.kind) {
    case 'snapshot':
      return formatSnapshotName(o.created, o.id);
    case 'internal-snapshot':
      return formatInternalSnapshotName(o.created, o.id);
    case 'volume':
      throw new LineageError('wrong-kind', `${o.id} is a volume, not a snapshot`);
  }
}
