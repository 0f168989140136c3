// `flatsnap check`: what storage holds against the lineage rules, against a second
// look at storage (reflink: the directory listing, which also sees what the inventory
// skips), and with --xapi against the SR's VDIs in xapi. Exit status 1 if any error or
// warning is found, or anything is reclaimable.
import type { StoredObject } from '../backends/backend.js';
import type { FsKind } from '../backends/reflink/fsinfo.js';
import type { ReflinkBackend } from '../backends/reflink/backend.js';
import { checkLineage, compareInventory } from '../lineage/index.js';
import { vdisInSr } from '../xapi/vdi.js';
import { XapiError } from '../xapi/errors.js';
import type { VdiRecord } from '../xapi/records.js';
import type { Invocation } from './args.js';
import { kindName, markers, quotedLabel } from './objects.js';
import { type Io, type Timer, formatBytes, plural, printJson, table } from './output.js';
import { describeError, loadSr, openBackend, reflinkListing, type SrView } from './storage.js';
import { summarise } from './tree.js';
import { withXapi } from './xapi-session.js';
import { AUTO_UNSHARE_FREE_SHARE, DEFAULT_RELAYOUT_THRESHOLD, RELAYOUT_DEFAULT, type RelayoutPolicy } from '../backends/reflink/relayout-policy.js';

type CheckArgs = Extract<Invocation, { cmd: 'check' }>;

export type Severity = 'error' | 'warning' | 'info';

export interface Finding {
  severity: Severity;
  code: string;
  /** Object id (or image name's uuid) concerned, if any. */
  object: string | null;
  vdi: string | null;
  message: string;
}

/** Temp files younger than this may be a running command's work (as the backend's reaping rule). */
const TEMP_AGE_MS = 15 * 60 * 1000;

const finding = (severity: Severity, code: string, message: string, object: string | null = null, vdi: string | null = null): Finding => ({
  severity,
  code,
  object,
  vdi,
  message,
});

/** Structural issues of the records (reclaimable leftovers are reported separately). */
export function lineageFindings(sr: SrView): Finding[] {
  return checkLineage(sr.objects, sr.backend.capabilities)
    .filter((i) => i.code !== 'reclaimable')
    .map((i) => finding(i.severity, i.code, i.message, i.object, sr.byId.get(i.object)?.vdi ?? null));
}

/** Reflink: the directory against the inventory; crash leftovers; foreign files. */
async function storageFindings(sr: SrView): Promise<Finding[]> {
  const l = await reflinkListing(sr.backend);
  if (l === undefined) return [];
  const out: Finding[] = [];
  const diff = compareInventory(sr.tree, l.vdis.map((e) => e.record?.id ?? e.uuid));
  const byUuid = new Map(l.vdis.map((e) => [e.record?.id ?? e.uuid, e]));
  for (const id of diff.unknown) {
    const e = byUuid.get(id)!;
    out.push(
      finding(
        'error',
        'unreadable-object',
        `image ${e.name} has no valid record (${e.problem ?? 'unknown problem'}): the SR ignores it, so xapi never sees it; restore its sidecar ${e.name}.json or remove the image`,
        e.uuid,
        e.hidden ? null : e.uuid,
      ),
    );
  }
  for (const id of diff.missing) out.push(finding('error', 'missing-object', `object ${id} vanished from ${l.dir} while being checked`, id));
  for (const name of l.orphanSidecars) {
    out.push(finding('warning', 'orphan-sidecar', `${name}.json has no image (an interrupted create or delete); sr-attach removes it once it is 15 minutes old`, name.replace(/\.hidden$/, '')));
  }
  for (const t of l.temps) {
    const age = l.tempAgesMs.get(t);
    if (age !== undefined && age < TEMP_AGE_MS) out.push(finding('info', 'work-in-progress', `${t}: a temporary file ${Math.round(age / 1000)} s old (a running operation?)`));
    else out.push(finding('warning', 'stale-temp', `${t}: a temporary file left by a crash; sr-attach removes it`));
  }
  for (const vdi of l.swaps) {
    out.push(finding('warning', 'pending-swap', `VDI ${vdi} has an interrupted swap; the next sr-scan on the SR master completes it`, null, vdi));
  }
  for (const name of l.other) out.push(finding('info', 'foreign-entry', `${name} is not a flatsnap file (left alone)`));
  if (!l.marker) out.push(finding('error', 'no-marker', `${l.dir} has no SR marker any more`));
  return out;
}

interface XapiView {
  where: string;
  sr_known: boolean;
  vdis_in_xapi: number;
  visible_on_storage: number;
  missing_on_storage: string[];
  unknown_to_xapi: string[];
}

/** The SR's VDIs in xapi against the VDIs storage makes visible. */
export function compareWithXapi(sr: SrView, vdis: readonly VdiRecord[] | undefined, where: string): { view: XapiView; findings: Finding[] } {
  const findings: Finding[] = [];
  const visible = sr.tree.visible();
  const view: XapiView = {
    where,
    sr_known: vdis !== undefined,
    vdis_in_xapi: vdis?.length ?? 0,
    visible_on_storage: visible.length,
    missing_on_storage: [],
    unknown_to_xapi: [],
  };
  if (vdis === undefined) {
    findings.push(finding('warning', 'sr-not-in-xapi', `xapi has no SR ${sr.srUuid} (forgotten, or another pool's): sr-introduce and sr-scan bring it back`));
    return { view, findings };
  }
  const inXapi = new Map(vdis.map((v) => [v.uuid, v]));
  for (const v of [...vdis].sort((a, b) => (a.uuid < b.uuid ? -1 : 1))) {
    const o = sr.tree.byVdi(v.uuid);
    if (o === undefined) {
      view.missing_on_storage.push(v.uuid);
      const tomb = sr.objects.find((x) => x.vdi === v.uuid);
      const why = tomb !== undefined ? 'storage holds it only as a tombstone (deleted)' : 'storage has no object for it';
      findings.push(finding('error', 'missing-on-storage', `xapi has VDI ${v.uuid} ${JSON.stringify(v.name_label)}, but ${why}`, tomb?.id ?? null, v.uuid));
      continue;
    }
    const s = sr.byId.get(o.id)!;
    if (v.is_a_snapshot !== (o.kind === 'snapshot')) {
      findings.push(
        finding('warning', 'snapshot-flag-mismatch', `VDI ${v.uuid}: xapi says is_a_snapshot=${v.is_a_snapshot}, storage holds a ${o.kind}`, o.id, v.uuid),
      );
    }
    if (v.virtual_size !== s.virtual_size) {
      findings.push(
        finding('warning', 'size-mismatch', `VDI ${v.uuid}: xapi says ${v.virtual_size} bytes, storage ${s.virtual_size} (sr-scan updates xapi)`, o.id, v.uuid),
      );
    }
  }
  for (const o of visible) {
    if (inXapi.has(o.vdi!)) continue;
    view.unknown_to_xapi.push(o.vdi!);
    findings.push(finding('warning', 'unknown-to-xapi', `storage has VDI ${o.vdi} that xapi does not know; an sr-scan introduces it`, o.id, o.vdi!));
  }
  return { view, findings };
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export async function checkCommand(a: CheckArgs, io: Io, timer: Timer): Promise<number> {
  const backend = await openBackend(a.target);
  const sr = await loadSr(backend, io, timer);
  const findings: Finding[] = timer.timeSync('lineage', () => lineageFindings(sr));
  findings.push(...(await timer.time('listing', () => storageFindings(sr))));

  let reclaim: Array<{ op: string; object: string; kind: string | null; markers: string[]; physical_utilisation: number | null }> = [];
  try {
    const plan = sr.tree.gcPlan();
    reclaim = plan.map((act) => {
      const id = act.op === 'forget-in-xapi' ? act.vdi : act.op === 'swap-vdi' ? act.from : act.object;
      const o = sr.byId.get(id);
      return { op: act.op, object: id, kind: o?.kind ?? null, markers: o ? markers(o) : [], physical_utilisation: o?.physical_utilisation ?? null };
    });
  } catch (e) {
    findings.push(finding('error', 'gc-plan-failed', `the lineage cannot plan garbage collection: ${describeError(e)}`));
  }

  let xapiView: XapiView | null = null;
  if (a.xapi !== undefined) {
    const opts = a.xapi;
    const vdis = await timer.time('xapi', () =>
      withXapi(opts, async (x): Promise<VdiRecord[] | undefined> => {
        let ref: string;
        try {
          ref = await x.SR.get_by_uuid(sr.srUuid);
        } catch (e) {
          if (e instanceof XapiError && (e.code === 'UUID_INVALID' || e.code === 'HANDLE_INVALID')) return undefined;
          throw e;
        }
        return [...(await x.VDI.get_all_records_where(vdisInSr(ref))).values()];
      }),
    );
    const r = compareWithXapi(sr, vdis, opts.where);
    xapiView = r.view;
    findings.push(...r.findings);
  }

  let health: Array<Record<string, unknown>> = [];
  const probe = backend.health?.bind(backend);
  if (a.health && probe !== undefined) {
    health = await timer.time('health', () =>
      mapLimit(sr.objects, 8, async (o: StoredObject) => {
        const base = { id: o.id, vdi: o.vdi ?? null, kind: o.kind };
        try {
          return { ...base, ...(await probe(o)) };
        } catch (e) {
          findings.push(finding('warning', 'health-failed', `extent map of ${o.id}: ${describeError(e)}`, o.id, o.vdi ?? null));
          return { ...base, error: describeError(e) };
        }
      }),
    );
    health.sort((x, y) => Number(y.fragments ?? 0) - Number(x.fragments ?? 0) || String(x.id).localeCompare(String(y.id)));
    findings.push(...fragmentationFindings(sr, health));
    if (backend.kind === 'reflink') {
      const dir = (backend as ReflinkBackend).dir;
      const { identifyFs } = await import('../backends/reflink/fsinfo.js');
      findings.push(...sharingFindings(sr, health, identifyFs(dir).kind, dir));
    }
  }

  const count = (s: Severity): number => findings.filter((f) => f.severity === s).length;
  const problems = count('error') + count('warning') + (reclaim.length > 0 ? 1 : 0);
  const ok = problems === 0;
  if (a.json) {
    printJson(io, {
      sr: { uuid: sr.srUuid, backend: backend.kind, location: sr.where },
      ok,
      summary: { ...summarise(sr.objects), visible_vdis: sr.tree.visible().length, errors: count('error'), warnings: count('warning'), infos: count('info') },
      findings,
      reclaimable: reclaim,
      xapi: xapiView,
      health: a.health && probe !== undefined ? health : null,
    });
    return ok ? 0 : 1;
  }

  io.out(`SR ${sr.srUuid}  ${backend.kind}: ${sr.where}`);
  const s = summarise(sr.objects);
  io.out(`${plural(s.objects!, 'object')}, ${plural(sr.tree.visible().length, 'VDI')} visible to xapi, ${plural(s.tombstones!, 'tombstone')}, ${formatBytes(s.physical_utilisation!)} allocated`);
  io.out('');
  if (findings.length === 0) io.out('findings: none');
  else {
    io.out('findings:');
    const order: Record<Severity, number> = { error: 0, warning: 1, info: 2 };
    const rows = [...findings]
      .sort((x, y) => order[x.severity] - order[y.severity])
      .map((f) => [f.severity.toUpperCase(), f.code, f.object ?? f.vdi ?? '-', f.message]);
    for (const l of table(rows)) io.out(`  ${l}`);
  }
  io.out('');
  if (reclaim.length === 0) io.out('reclaimable: nothing');
  else {
    const bytes = reclaim.filter((r) => r.op === 'destroy').reduce((n, r) => n + (r.physical_utilisation ?? 0), 0);
    io.out(`reclaimable: ${plural(reclaim.length, 'action')}, ${formatBytes(bytes)} allocated (run flatsnap gc):`);
    const rows = reclaim.map((r) => {
      const o = sr.byId.get(r.object);
      return [r.op, r.object, o ? `${kindName(o)}${r.markers.map((m) => ` [${m}]`).join('')}` : '', r.physical_utilisation === null ? '' : formatBytes(r.physical_utilisation), o ? quotedLabel(o) : ''];
    });
    for (const l of table(rows, ['left', 'left', 'left', 'right'])) io.out(`  ${l}`);
  }
  if (xapiView !== null) {
    io.out('');
    io.out(
      xapiView.sr_known
        ? `xapi (${xapiView.where}): ${plural(xapiView.vdis_in_xapi, 'VDI')} in xapi, ${xapiView.visible_on_storage} visible on storage; missing on storage: ${xapiView.missing_on_storage.length}, unknown to xapi: ${xapiView.unknown_to_xapi.length}`
        : `xapi (${xapiView.where}): the SR is not in xapi`,
    );
  }
  if (a.health && probe !== undefined) {
    io.out('');
    for (const l of renderHealth(sr, health)) io.out(l);
  }
  io.out('');
  io.out(ok ? 'result: OK' : `result: ${plural(count('error'), 'error')}, ${plural(count('warning'), 'warning')}${reclaim.length > 0 ? ', reclaimable objects' : ''}`);
  return ok ? 0 : 1;
}

/**
 * Reflink: each live disk at or over the relayout threshold, as info (not a problem: the
 * next snapshot starts a relayout, docs/fragmentation.md). Snapshots copy the whole extent
 * map of the disk they are taken of, so this is what the next snapshot will cost.
 */
export function fragmentationFindings(sr: SrView, health: ReadonlyArray<Record<string, unknown>>): Finding[] {
  if (sr.backend.kind !== 'reflink') return [];
  const policy = (sr.backend as { relayout?: RelayoutPolicy }).relayout ?? RELAYOUT_DEFAULT;
  const threshold = policy.enabled ? policy.threshold : DEFAULT_RELAYOUT_THRESHOLD;
  const out: Finding[] = [];
  for (const h of health) {
    const o = sr.byId.get(String(h.id));
    // The relayout's own measure: physically contiguous runs (FRAGMENTS), see relayout-trigger.ts.
    if (o === undefined || o.kind !== 'volume' || o.vdi === undefined || o.deleted || typeof h.fragments !== 'number' || h.fragments < threshold) continue;
    out.push(
      finding(
        'info',
        'fragmented',
        `VDI ${o.vdi} has ${String(h.extents)} extents in ${h.fragments} fragments (relayout threshold ${threshold}${policy.enabled ? '' : ', relayout off'}): each snapshot copies its whole extent map; ` +
          `${policy.enabled ? 'its next snapshot starts a relayout, or ' : ''}run flatsnap relayout --path DIR --vdi ${o.vdi}`,
        o.id,
        o.vdi,
      ),
    );
  }
  return out;
}

/**
 * Reflink: live disks with snapshots of their own whose blocks are still shared, as info.
 * The guest's first write into a shared block is copy on write, 4-8x slower on XFS
 * (docs/fragmentation.md, "Unshare"). Right after a snapshot that is the background unshare
 * still at work; later it is an unshare that stopped (unshare=auto at its reserve, a full
 * filesystem: SMlog says why) or unshare=off. Not on OCFS2, whose FIEMAP keeps calling a
 * cluster shared once its count is back to one, nor on other filesystems (full copies).
 */
export function sharingFindings(sr: SrView, health: ReadonlyArray<Record<string, unknown>>, fsKind: FsKind, dir: string): Finding[] {
  if (sr.backend.kind !== 'reflink' || (fsKind !== 'xfs' && fsKind !== 'btrfs')) return [];
  const out: Finding[] = [];
  for (const h of health) {
    const o = sr.byId.get(String(h.id));
    // Only disks with snapshot VDIs of their own (the tree's per-volume snapshot index).
    if (o === undefined || o.kind !== 'volume' || o.vdi === undefined || o.deleted || sr.tree.snapshotIndex(o.id) === undefined) continue;
    if (typeof h.shared_bytes !== 'number' || h.shared_bytes === 0) continue;
    out.push(
      finding(
        'info',
        'shared',
        `VDI ${o.vdi} shares ${formatBytes(h.shared_bytes)} of its blocks: the guest's first writes there are copy on write. ` +
          `After a snapshot the background unshare gives the disk blocks of its own (device-config:unshare, auto: while ${AUTO_UNSHARE_FREE_SHARE * 100} % of the filesystem stays free; SMlog says why a run stopped); ` +
          `now: flatsnap relayout --path ${dir} --vdi ${o.vdi} --unshare --no-relayout`,
        o.id,
        o.vdi,
      ),
    );
  }
  return out;
}

const HEALTH_META = new Set(['id', 'vdi', 'kind', 'error']);
const isBytes = (k: string): boolean => /bytes$|^used$|^referenced$|size$/.test(k);

/** The per-object storage facts: reflink's extent counts, or whatever else the backend reports. */
function renderHealth(sr: SrView, health: ReadonlyArray<Record<string, unknown>>): string[] {
  const reflink = sr.backend.kind === 'reflink';
  const keys = reflink
    ? ['extents', 'fragments', 'shared_extents', 'allocated_bytes']
    : [...new Set(health.flatMap((h) => Object.keys(h).filter((k) => !HEALTH_META.has(k) && typeof h[k] === 'number')))];
  const heads = reflink ? ['EXTENTS', 'FRAGMENTS', 'SHARED', 'ALLOCATED'] : keys.map((k) => k.toUpperCase());
  const rows = health.map((h) => {
    const o = sr.byId.get(String(h.id));
    const cells = keys.map((k) => {
      const v = h[k];
      return typeof v !== 'number' ? '-' : isBytes(k) ? formatBytes(v) : String(v);
    });
    const note = h.error !== undefined ? `error: ${String(h.error)}` : o ? quotedLabel(o) : '';
    return [String(h.id), o ? `${kindName(o)}${markers(o).map((m) => ` [${m}]`).join('')}` : '', ...cells, note];
  });
  return [
    reflink
      ? 'extents (FIEMAP; FRAGMENTS = physically discontiguous runs, SHARED = extents shared with other objects):'
      : `storage facts (${sr.backend.kind}):`,
    ...table(rows, ['left', 'left', ...keys.map((): 'right' => 'right')], ['OBJECT', 'KIND', ...heads, 'NAME']).map((l) => `  ${l}`),
  ];
}
