// `flatsnap relayout --all-srs`: the periodic relayout (docs/fragmentation.md) of every
// flatsnap reflink SR plugged on this host, as the cron job plugin/install.sh writes runs it.
//
// Which SRs: a reflink SR's directory is whatever its device-config:path says, anywhere on
// the host (nothing is mounted under /var/run/sr-mount for it), and its relayout setting
// is device-config:relayout, both held by xapi in this host's PBD of the SR. So xapi is
// asked (the local socket by default): this host's plugged PBDs of SRs of type flatsnap
// with a path, minus those with relayout=off. A shared SR (OCFS2) is plugged on every
// host but relayouted only by its SR master, the pool master, where the driver also runs
// its relayouts after snapshots: the hosts do not each read and rewrite the same disks.
// Before touching a directory its SR marker must name the SR (a path whose filesystem is
// not mounted is skipped, not relayouted).
import { readFileSync } from 'node:fs';
import { DEFAULT_RELAYOUT_THRESHOLD, RELAYOUT_DEFAULT, UNSHARE_DEFAULT } from '../backends/reflink/relayout-policy.js';
import type { RelayoutResult } from '../backends/reflink/relayout.js';
import { analyseDeviceConfig } from '../backends/type-analysis.js';
import { log } from '../log.js';
import type { XapiClient } from '../xapi/client.js';
import type { Invocation } from './args.js';
import { type Io, type Timer, printJson } from './output.js';
import { describe, relayoutLiveDisks } from './relayout.js';
import { CommandError, describeError } from './storage.js';
import { withXapi } from './xapi-session.js';

type AllSrsArgs = Extract<Invocation, { cmd: 'relayout'; allSrs: true }>;

/** The SR type xapi records for this driver (src/sr/driver-info.ts, not imported: it registers SM commands). */
const SR_TYPE = 'flatsnap';

/** Where xapi's installer records this host's uuid (INSTALLATION_UUID). */
export const INVENTORY = '/etc/xensource-inventory';

/** This host's uuid from the inventory file (KEY='value' lines). */
export function hostUuidFrom(text: string): string | undefined {
  const m = /^INSTALLATION_UUID=['"]?([0-9a-fA-F-]{36})['"]?\s*$/m.exec(text);
  return m?.[1]?.toLowerCase();
}

export interface SrTarget {
  sr: string;
  name_label: string;
  path: string;
  /** Runs at which a live disk is relayouted: --min-extents, else the SR's device-config:relayout. */
  threshold: number;
  /** device-config:unshare: also move the snapshots off the live images still sharing blocks. */
  unshare: boolean;
  /** device-config:unshare=auto: the unshare only while the filesystem keeps its share free. */
  unshareIfRoom: boolean;
  /** false when device-config:relayout is off (the SR is there for its unshare only). */
  rewrite: boolean;
}

export interface SrSkipped {
  sr: string;
  name_label: string;
  path?: string;
  skipped: string;
}

/**
 * The flatsnap reflink SRs plugged on host `hostRef` (pure: from the records xapi gave).
 * SRs of other types and flatsnap's ZFS SRs are left out altogether; the others are
 * targets or skipped with the reason.
 */
export function selectSrs(
  hostRef: string,
  poolMaster: string,
  pbds: ReadonlyMap<string, { host: string; SR: string; device_config: Readonly<Record<string, string>>; currently_attached: boolean }>,
  srs: ReadonlyMap<string, { uuid: string; name_label: string; type: string; shared: boolean }>,
  minExtents: number | undefined,
): { targets: SrTarget[]; skipped: SrSkipped[] } {
  const targets: SrTarget[] = [];
  const skipped: SrSkipped[] = [];
  for (const p of pbds.values()) {
    if (p.host !== hostRef || !p.currently_attached) continue;
    const sr = srs.get(p.SR);
    if (sr === undefined || sr.type !== SR_TYPE || p.device_config.path === undefined) continue;
    const base = { sr: sr.uuid, name_label: sr.name_label };
    let cfg: ReturnType<typeof analyseDeviceConfig>;
    try {
      cfg = analyseDeviceConfig(p.device_config);
    } catch (e) {
      skipped.push({ ...base, skipped: `device-config refused: ${describeError(e)}` });
      continue;
    }
    if (cfg.kind !== 'reflink') continue;
    const policy = cfg.relayout ?? RELAYOUT_DEFAULT;
    const mode = cfg.unshare ?? UNSHARE_DEFAULT;
    const unshare = mode !== 'off';
    if (!policy.enabled && !unshare) skipped.push({ ...base, path: cfg.path, skipped: 'device-config:relayout and unshare are off' });
    else if (sr.shared && hostRef !== poolMaster) skipped.push({ ...base, path: cfg.path, skipped: 'a shared SR: its SR master (the pool master) relayouts it' });
    else
      targets.push({
        ...base,
        path: cfg.path,
        threshold: minExtents ?? (policy.enabled ? policy.threshold : DEFAULT_RELAYOUT_THRESHOLD),
        unshare,
        unshareIfRoom: mode === 'auto',
        rewrite: policy.enabled,
      });
  }
  const bySr = (a: { sr: string }, b: { sr: string }): number => (a.sr < b.sr ? -1 : a.sr > b.sr ? 1 : 0);
  return { targets: targets.sort(bySr), skipped: skipped.sort(bySr) };
}

/** This host's flatsnap reflink SRs, from xapi. */
export async function findSrs(x: XapiClient, hostUuid: string, minExtents: number | undefined): Promise<{ targets: SrTarget[]; skipped: SrSkipped[] }> {
  const hostRef = await x.host.get_by_uuid(hostUuid);
  const master = await x.pool.master();
  const pbds = await x.PBD.get_all_records();
  const srs = new Map<string, { uuid: string; name_label: string; type: string; shared: boolean }>();
  for (const p of pbds.values()) {
    if (p.host !== hostRef || !p.currently_attached || srs.has(p.SR)) continue;
    srs.set(p.SR, await x.SR.get_record(p.SR));
  }
  return selectSrs(hostRef, master, pbds, srs, minExtents);
}

export type SrOutcome = (SrTarget & { results: RelayoutResult[] }) | SrSkipped | (SrTarget & { error: string });

export async function relayoutAllSrsCommand(a: AllSrsArgs, io: Io, timer: Timer): Promise<number> {
  let host = a.host;
  if (host === undefined) {
    let text: string;
    try {
      text = readFileSync(INVENTORY, 'utf8');
    } catch (e) {
      throw new CommandError(`cannot read ${INVENTORY} for this host's uuid (${(e as { code?: string }).code ?? String(e)}): give --host UUID`);
    }
    host = hostUuidFrom(text);
    if (host === undefined) throw new CommandError(`${INVENTORY} has no INSTALLATION_UUID: give --host UUID`);
  }
  const hostUuid = host;
  const found = await timer.time('xapi', () => withXapi(a.xapi, (x) => findSrs(x, hostUuid, a.minExtents)));
  const outcomes: SrOutcome[] = [...found.skipped];
  const { readMarker } = await import('../backends/reflink/pool.js');
  await timer.time('relayout', async () => {
    for (const t of found.targets) {
      const marker = await readMarker(t.path).catch(() => undefined);
      if (marker?.sr_uuid !== t.sr) {
        const why = `${t.path} holds ${marker === undefined ? 'no flatsnap SR marker' : `SR ${marker.sr_uuid}`} (not mounted?)`;
        log().warn(`flatsnap: relayout --all-srs: SR ${t.sr} skipped: ${why}`);
        outcomes.push({ sr: t.sr, name_label: t.name_label, path: t.path, skipped: why });
        continue;
      }
      try {
        const results = await relayoutLiveDisks(t.path, t.threshold, { unshare: t.unshare, unshareIfRoom: t.unshareIfRoom, rewrite: t.rewrite });
        log().info(`flatsnap: relayout --all-srs: SR ${t.sr} (${t.path}): ${results.length} disk(s) with ${t.threshold} runs or more relayouted`);
        outcomes.push({ ...t, results });
      } catch (e) {
        // One SR's failure (logged by relayoutLogged) must not keep the others from theirs.
        outcomes.push({ ...t, error: describeError(e) });
        log().error(`flatsnap: relayout --all-srs: SR ${t.sr} (${t.path}): ${describeError(e)}`);
      }
    }
  });
  outcomes.sort((x, y) => (x.sr < y.sr ? -1 : x.sr > y.sr ? 1 : 0));
  if (a.json) printJson(io, outcomes);
  else if (outcomes.length === 0) io.out('no flatsnap reflink SR is plugged on this host');
  else {
    for (const o of outcomes) {
      const head = `SR ${o.sr} "${o.name_label}"${o.path !== undefined ? ` (${o.path})` : ''}`;
      if ('skipped' in o) io.out(`${head}: skipped: ${o.skipped}`);
      else if ('error' in o) io.out(`${head}: FAILED: ${o.error}`);
      else {
        const what = o.rewrite ? `${o.threshold} runs or more${o.unshare ? ' or shared blocks' : ''}` : 'shared blocks';
        io.out(`${head}: ${o.results.length === 0 ? `no disk with ${what}` : `${o.results.length} disk(s) with ${what}`}`);
        for (const r of o.results) io.out(`  ${describe(r)}`);
      }
    }
  }
  return outcomes.some((o) => 'error' in o) ? 3 : 0;
}
