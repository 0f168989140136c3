// What one backend instance (one SM call) has read about its datasets, so that the steps
// of a plan do not `zfs get` again what the family or the inventory has just read: a
// snapshot delete was 8 commands, two of them re-reads of the snapshot (its locate before
// the tombstone `set` and again before the `destroy`) and one a look for a read view
// the listing had already shown not to exist. locate() takes a dataset from here; every
// change volumes.ts makes updates or drops what it changed. This is sound because while
// a flatsnap process holds the SR lock nothing else changes the SR's datasets (ZFS SRs
// are local to one host), so what it read stays true until it changes it itself.
import type { ZfsDataset } from './parse.js';

export class KnownDatasets {
  private readonly byName = new Map<string, ZfsDataset>();
  /** The read views (`<root>/<id>.view`) that exist, once a listing of the root's children was read. */
  private views: Set<string> | undefined;

  remember(datasets: Iterable<ZfsDataset>): void {
    for (const d of datasets) this.byName.set(d.name, d);
  }

  /** Every view there is, from a listing of all of the root's children. */
  rememberViews(names: Iterable<string>): void {
    this.views = new Set(names);
  }

  get(name: string): ZfsDataset | undefined {
    return this.byName.get(name);
  }

  forget(name: string): void {
    this.byName.delete(name);
  }

  /** After a successful `zfs set` of user properties. */
  setUser(name: string, changes: Readonly<Record<string, string>>): void {
    const d = this.byName.get(name);
    if (d !== undefined) this.byName.set(name, { ...d, user: { ...d.user, ...changes } });
  }

  /** After a successful `zfs inherit` of a user property. */
  dropUser(name: string, key: string): void {
    const d = this.byName.get(name);
    if (d === undefined) return;
    const { [key]: _gone, ...user } = d.user;
    this.byName.set(name, { ...d, user });
  }

  /** After a successful `zfs mount`. */
  mounted(name: string): void {
    const d = this.byName.get(name);
    if (d !== undefined) this.byName.set(name, { ...d, mounted: true });
  }

  /** false when the last listing showed no such view; undefined when no listing was read. */
  viewExists(name: string): boolean | undefined {
    return this.views?.has(name);
  }

  addView(name: string): void {
    this.views?.add(name);
  }

  removeView(name: string): void {
    this.views?.delete(name);
  }
}
