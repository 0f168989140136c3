// A plan under construction: a copy-on-write overlay on a store. Each emitted action is
// applied to the overlay through the same reducer the tree uses, so a planner sees the
// effect of its earlier steps (cascades) and an illegal step fails at planning time.
import { type Store, reduce } from './apply.js';
import { type Action, type Capabilities, type LineageObject, isVisible } from './model.js';

export class Draft implements Store {
  readonly caps: Capabilities;
  readonly actions: Action[] = [];
  // null = removed in this draft; absent = as in the base.
  private readonly objs = new Map<string, LineageObject | null>();
  private readonly kids = new Map<string, Set<string>>();
  private readonly vdis = new Map<string, string | null>();

  constructor(private readonly base: Store) {
    this.caps = base.caps;
  }

  emit(a: Action): void {
    reduce(this, a);
    this.actions.push(a);
  }

  get(id: string): LineageObject | undefined {
    const o = this.objs.get(id);
    if (o === null) return undefined;
    return o ?? this.base.get(id);
  }

  children(id: string): ReadonlySet<string> {
    return this.kids.get(id) ?? this.base.children(id);
  }

  byVdi(vdi: string): LineageObject | undefined {
    const id = this.vdiOwner(vdi);
    const o = id === undefined ? undefined : this.get(id);
    return o !== undefined && isVisible(o) && o.vdi === vdi ? o : undefined;
  }

  put(o: LineageObject): void {
    const old = this.get(o.id);
    this.objs.set(o.id, o);
    if (old === undefined && o.parent !== undefined) this.ownKids(o.parent).add(o.id);
    if (old !== undefined) this.unmapVdi(old);
    if (isVisible(o) && o.vdi !== undefined) this.vdis.set(o.vdi, o.id);
  }

  remove(id: string): void {
    const old = this.get(id);
    if (old === undefined) return;
    this.objs.set(id, null);
    if (old.parent !== undefined) this.ownKids(old.parent).delete(id);
    this.unmapVdi(old);
  }

  private vdiOwner(vdi: string): string | undefined {
    const id = this.vdis.get(vdi);
    if (id === null) return undefined;
    return id ?? this.base.byVdi(vdi)?.id;
  }

  private unmapVdi(old: LineageObject): void {
    if (old.vdi !== undefined && this.vdiOwner(old.vdi) === old.id) this.vdis.set(old.vdi, null);
  }

  private ownKids(parent: string): Set<string> {
    let s = this.kids.get(parent);
    if (s === undefined) {
      s = new Set(this.base.children(parent));
      this.kids.set(parent, s);
    }
    return s;
  }
}
