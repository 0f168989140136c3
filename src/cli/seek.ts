// `flatsnap seek`: a disk's state at time T, by binary search in the lineage's timestamp
// index (LineageTree.seek): its newest snapshot VDI taken at or before T, following the
// lineage back through the snapshot it was cloned from when T is older than the disk.
import type { StoredObject } from '../backends/backend.js';
import { LineageError } from '../lineage/index.js';
import type { Invocation } from './args.js';
import { type ObjectJson, objectJson, quotedLabel, safeIso } from './objects.js';
import { type Io, type Timer, printJson, table } from './output.js';
import { CommandError, type SrView, loadSr, openBackend } from './storage.js';
import { isoTime } from './time.js';
import { type VmDisks, disksOfVm } from './vm-disks.js';
import { withXapi } from './xapi-session.js';

type SeekArgs = Extract<Invocation, { cmd: 'seek' }>;

export interface SeekHit extends ObjectJson {
  /** The volume the snapshot was taken of. */
  volume: string | null;
  /** false: a snapshot from the disk's lineage before it was cloned (T is older than the disk). */
  own: boolean;
}

export interface SeekAnswer {
  vdi: string;
  snapshot: SeekHit | null;
}

/** Seeks one visible VDI of the SR. A VDI that is not visible on this SR is a CommandError. */
export function seekVdi(sr: SrView, vdi: string, at: number): SeekAnswer {
  const cur = sr.tree.byVdi(vdi);
  if (cur === undefined) {
    const tomb = sr.objects.find((o) => o.vdi === vdi);
    if (tomb !== undefined) throw new CommandError(`VDI ${vdi} is deleted (a tombstone on SR ${sr.srUuid}); seek a VDI that exists`);
    throw new CommandError(`no VDI ${vdi} on SR ${sr.srUuid} (${sr.where})`);
  }
  let hit;
  try {
    hit = sr.tree.seek(vdi, at);
  } catch (e) {
    if (e instanceof LineageError) throw new CommandError(`seek of VDI ${vdi}: ${e.message}`);
    throw e;
  }
  if (hit === undefined) return { vdi, snapshot: null };
  const stored = sr.byId.get(hit.id)!;
  return {
    vdi,
    snapshot: { ...objectJson(stored, sr.tree), volume: hit.parent ?? null, own: hit.id === cur.id || hit.parent === cur.id },
  };
}

interface DiskAnswer {
  userdevice: string;
  vbd: string;
  type: string;
  vdi: string | null;
  sr: string | null;
  name_label: string | null;
  snapshot: SeekHit | null;
  /** Why the disk was not sought (empty drive, other SR). */
  skipped: string | null;
}

export async function seekCommand(a: SeekArgs, io: Io, timer: Timer): Promise<number> {
  const backend = await openBackend(a.target);
  let vm: VmDisks | undefined;
  if (a.vm !== undefined) {
    const vmUuid = a.vm;
    vm = await timer.time('xapi', () => withXapi(a.xapi!, (x) => disksOfVm(x, vmUuid)));
  }
  const sr = await loadSr(backend, io, timer);
  const srJson = { uuid: sr.srUuid, backend: sr.backend.kind, location: sr.where };

  if (vm === undefined) {
    const answer = timer.timeSync('seek', () => seekVdi(sr, a.vdi!, a.at));
    if (a.json) printJson(io, { sr: srJson, at: isoTime(a.at), at_ms: a.at, ...answer });
    else io.out(describeAnswer(sr, answer, a.at));
    return 0;
  }

  const disks: DiskAnswer[] = [];
  timer.timeSync('seek', () => {
    for (const d of vm.disks) {
      const base = { userdevice: d.userdevice, vbd: d.vbd, type: d.type, vdi: d.vdi?.uuid ?? null, sr: d.vdi?.sr_uuid ?? null, name_label: d.vdi?.name_label ?? null };
      let skipped: string | null = null;
      let snapshot: SeekHit | null = null;
      if (d.vdi === undefined) skipped = `empty ${d.type} drive`;
      else if (d.vdi.sr_uuid !== sr.srUuid) skipped = `on SR ${d.vdi.sr_uuid}, not this one`;
      else {
        try {
          snapshot = seekVdi(sr, d.vdi.uuid, a.at).snapshot;
        } catch (e) {
          // One disk xapi knows but storage does not (see flatsnap check) must not hide the others.
          if (!(e instanceof CommandError)) throw e;
          skipped = e.message;
        }
      }
      disks.push({ ...base, snapshot, skipped });
    }
  });
  // A disk of this SR that could not be sought (xapi and storage disagree) is a problem: exit 1.
  const status = disks.some((d) => d.skipped !== null && d.sr === sr.srUuid) ? 1 : 0;
  if (a.json) {
    printJson(io, { sr: srJson, at: isoTime(a.at), at_ms: a.at, vm: vm.vm, disks });
    return status;
  }
  io.out(`VM ${vm.vm.uuid} ${JSON.stringify(vm.vm.name_label)} at ${isoTime(a.at)}`);
  const rows = disks.map((d) => [
    d.userdevice,
    d.vdi ?? '-',
    d.skipped !== null ? `skipped: ${d.skipped}` : d.snapshot === null ? 'none (no snapshot that old)' : d.snapshot.id,
    d.snapshot === null ? '' : d.snapshot.created_iso,
    d.snapshot === null ? '' : `${JSON.stringify(d.snapshot.name_label ?? '')}${d.snapshot.own ? '' : ' (before the disk was cloned)'}`,
  ]);
  for (const l of table(rows, [], ['DEVICE', 'VDI', 'SNAPSHOT', 'TAKEN (UTC)', 'NAME'])) io.out(l);
  return status;
}

function describeAnswer(sr: SrView, ans: SeekAnswer, at: number): string {
  const head = `VDI ${ans.vdi} at ${isoTime(at)}:`;
  if (ans.snapshot === null) {
    const first = oldestReachable(sr, ans.vdi);
    return `${head} none (no snapshot that old${first ? `; the oldest is ${first.id}, taken ${safeIso(first.created)}` : ''})`;
  }
  const s = sr.byId.get(ans.snapshot.id)!;
  const label = quotedLabel(s);
  const from = ans.snapshot.own ? '' : ` (of ${ans.snapshot.volume}, from before the disk was cloned)`;
  return `${head} snapshot ${s.id}${label ? ` ${label}` : ''}, taken ${safeIso(s.created)}${from}`;
}

/** The oldest snapshot seek could ever answer for this VDI (for the "none" message). */
function oldestReachable(sr: SrView, vdi: string): StoredObject | undefined {
  let best: StoredObject | undefined;
  const seen = new Set<string>();
  for (let cur = sr.tree.byVdi(vdi); cur !== undefined && !seen.has(cur.id); cur = cur.parent === undefined ? undefined : sr.tree.get(cur.parent)) {
    seen.add(cur.id);
    const first = sr.tree.snapshotIndex(cur.id)?.first();
    const cand = first === undefined ? (cur.kind === 'snapshot' && sr.tree.isVisible(cur.id) ? cur : undefined) : sr.tree.get(first.uuid);
    if (cand !== undefined && (best === undefined || cand.created < best.created)) best = sr.byId.get(cand.id);
  }
  return best;
}
