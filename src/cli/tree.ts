// `flatsnap tree`: the SR's lineage (or one VDI's) as a tree.
import type { StoredObject } from '../backends/backend.js';
import type { Invocation } from './args.js';
import { type ForestNode, findVdi, forest, kindName, lineageOf, markers, objectJson, quotedLabel, safeIso } from './objects.js';
import { type Io, type Timer, formatBytes, plural, printJson, table } from './output.js';
import { CommandError, type SrView, loadSr, openBackend } from './storage.js';

type TreeArgs = Extract<Invocation, { cmd: 'tree' }>;

export async function treeCommand(a: TreeArgs, io: Io, timer: Timer): Promise<number> {
  const sr = await loadSr(await openBackend(a.target), io, timer);
  let keep: Set<string> | undefined;
  let selected: StoredObject | undefined;
  if (a.vdi !== undefined) {
    selected = findVdi(sr.objects, sr.tree, a.vdi);
    if (selected === undefined) throw new CommandError(`no VDI or object ${a.vdi} on SR ${sr.srUuid} (${sr.where})`);
    keep = lineageOf(sr.objects, selected.id);
  }
  const nodes = forest(sr.objects, keep);
  if (a.json) {
    printJson(io, treeJson(sr, nodes, selected));
    return 0;
  }
  for (const l of renderTree(sr, nodes, selected)) io.out(l);
  return 0;
}

export function summarise(objects: readonly StoredObject[]): Record<string, number> {
  const count = (f: (o: StoredObject) => boolean): number => objects.filter(f).length;
  return {
    objects: objects.length,
    volumes: count((o) => o.kind === 'volume'),
    snapshots: count((o) => o.kind === 'snapshot'),
    internal_snapshots: count((o) => o.kind === 'internal-snapshot'),
    tombstones: count((o) => o.deleted),
    physical_utilisation: objects.reduce((s, o) => s + o.physical_utilisation, 0),
  };
}

function treeJson(sr: SrView, nodes: readonly ForestNode[], selected: StoredObject | undefined): unknown {
  const children = new Map<string, string[]>();
  const shown = new Set(nodes.map((n) => n.obj.id));
  for (const n of nodes) {
    const p = n.obj.parent;
    if (n.depth > 0 && p !== undefined && shown.has(p) && !n.cycle) {
      let l = children.get(p);
      if (!l) children.set(p, (l = []));
      l.push(n.obj.id);
    }
  }
  return {
    sr: { uuid: sr.srUuid, backend: sr.backend.kind, location: sr.where },
    vdi: selected === undefined ? null : { requested: selected.vdi ?? selected.id, object: selected.id },
    summary: { ...summarise(sr.objects), visible_vdis: sr.tree.visible().length },
    roots: nodes.filter((n) => n.depth === 0 && !n.cycle).map((n) => n.obj.id),
    objects: nodes
      .filter((n) => !n.cycle)
      .map((n) => ({ ...objectJson(n.obj, sr.tree), depth: n.depth, parent_gone: n.parentGone, children: children.get(n.obj.id) ?? [] })),
  };
}

/** The human form: a summary line, then one aligned row per object. */
export function renderTree(sr: SrView, nodes: readonly ForestNode[], selected?: StoredObject): string[] {
  const s = summarise(sr.objects);
  const lines: string[] = [];
  lines.push(`SR ${sr.srUuid}  ${sr.backend.kind}: ${sr.where}`);
  const parts = [
    plural(s.volumes!, 'volume'),
    plural(s.snapshots!, 'snapshot'),
    plural(s.internal_snapshots!, 'internal snapshot'),
    plural(s.tombstones!, 'tombstone'),
  ];
  lines.push(`${plural(s.objects!, 'object')}: ${parts.join(', ')}; ${plural(sr.tree.visible().length, 'VDI')} visible to xapi; ${formatBytes(s.physical_utilisation!)} allocated`);
  if (selected !== undefined) lines.push(`lineage of ${selected.vdi !== undefined ? `VDI ${selected.vdi}` : `object ${selected.id}`}: its ancestors and everything below it`);
  if (nodes.length === 0) {
    lines.push('', 'no objects');
    return lines;
  }
  lines.push('');
  const rows = nodes.map((n) => {
    const o = n.obj;
    const m = markers(o).map((x) => `[${x}]`);
    if (n.cycle) m.push('[cycle]');
    const notes: string[] = [];
    const label = quotedLabel(o);
    if (label) notes.push(label);
    if (o.vdi !== undefined && o.vdi !== o.id) notes.push(`(VDI ${o.vdi})`);
    if (n.parentGone) notes.push(`(${o.kind === 'volume' ? 'copied from' : 'of'} ${o.parent}, gone)`);
    if (selected !== undefined && o.id === selected.id) notes.push('<==');
    return [
      `${n.prefix}${o.id}${m.length ? ` ${m.join(' ')}` : ''}`,
      kindName(o),
      safeIso(o.created),
      formatBytes(o.virtual_size),
      formatBytes(o.physical_utilisation),
      notes.join(' '),
    ];
  });
  lines.push(...table(rows, ['left', 'left', 'left', 'right', 'right', 'left'], ['OBJECT', 'KIND', 'CREATED (UTC)', 'SIZE', 'ALLOCATED', 'NAME']));
  return lines;
}
