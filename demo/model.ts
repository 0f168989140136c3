// What the demo expects, independently of the driver: every VDI it made, what each
// holds, where it came from and when, which were deleted. From this it predicts what
// storage keeps (tombstones) and what `flatsnap seek` must answer.
import type { DiskState } from './data.js';

export interface ModelVdi {
  uuid: string;
  ref: string;
  location: string;
  label: string;
  kind: 'disk' | 'snapshot';
  /** The VDI it was snapshotted or cloned from (uuid). */
  parent?: string;
  /** The API call that made it ran within [t0, t1] (ms). */
  t0: number;
  t1: number;
  state: DiskState;
  deleted: boolean;
}

export class Model {
  readonly vdis = new Map<string, ModelVdi>();

  constructor(
    /** ZFS-like: deleted objects stay (as tombstones) while something kept depends on them. */
    readonly dependent: boolean,
  ) {}

  add(v: ModelVdi): ModelVdi {
    this.vdis.set(v.uuid, v);
    return v;
  }

  get(uuid: string): ModelVdi {
    const v = this.vdis.get(uuid);
    if (!v) throw new Error(`the demo made no VDI ${uuid}`);
    return v;
  }

  byLabel(label: string): ModelVdi {
    const v = [...this.vdis.values()].find((x) => x.label === label);
    if (!v) throw new Error(`the demo made no VDI "${label}"`);
    return v;
  }

  live(): ModelVdi[] {
    return [...this.vdis.values()].filter((v) => !v.deleted);
  }

  children(uuid: string): ModelVdi[] {
    return [...this.vdis.values()].filter((v) => v.parent === uuid);
  }

  /** Whether storage still holds the object: not deleted, or a tombstone something kept needs. */
  kept(v: ModelVdi): boolean {
    if (!v.deleted) return true;
    return this.dependent && this.children(v.uuid).some((c) => this.kept(c));
  }

  tombstones(): ModelVdi[] {
    return [...this.vdis.values()].filter((v) => v.deleted && this.kept(v));
  }

  /**
   * flatsnap seek's rule: the disk's newest (not deleted) snapshot taken at or before t;
   * older than the disk itself, the same question for what it was cloned from at the
   * time it was cloned, back along what storage still holds. (Creation times are only
   * known to lie within each call, so `t` must not fall inside one.)
   */
  seek(disk: string, t: number): ModelVdi | undefined {
    const created = (v: ModelVdi) => (v.t0 + v.t1) / 2;
    let limit = t;
    for (let cur: ModelVdi | undefined = this.get(disk); cur !== undefined && this.kept(cur); ) {
      if (cur.kind === 'disk') {
        const own = this.children(cur.uuid).filter((c) => c.kind === 'snapshot' && !c.deleted && c.t1 <= limit);
        own.sort((a, b) => created(b) - created(a));
        if (own[0]) return own[0];
      } else if (!cur.deleted && cur.t1 <= limit) {
        return cur;
      }
      limit = Math.min(limit, created(cur));
      cur = cur.parent === undefined ? undefined : this.vdis.get(cur.parent);
    }
    return undefined;
  }
}
