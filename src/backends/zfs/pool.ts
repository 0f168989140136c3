// The SR on ZFS: its root dataset (device-config:dataset), marked `flatsnap:sr=<uuid>`.
// createSr makes the root (parents too) or adopts an empty filesystem; it never takes
// over a dataset that holds anything. deleteSr destroys a root createSr made and only
// releases (un-marks) one it adopted.
import { SmError } from '../../errors.js';
import { isUuid } from '../../lineage/index.js';
import type { ProbeResult, SrStats } from '../backend.js';
import { isZfsError } from './errors.js';
import { parentOf } from './names.js';
import type { GetResult, ZfsDataset } from './parse.js';
import { rmdir } from 'node:fs/promises';
import { type ZfsCtx, SR_MOUNT_BASE } from './context.js';
import { FORMAT_VERSION, PROP } from './records.js';

export function requireSrUuid(sr: string): string {
  if (typeof sr !== 'string' || !isUuid(sr)) throw new SmError('InvalidArg', `SR uuid is not a lower-case uuid: ${JSON.stringify(sr)?.slice(0, 80)}`);
  return sr;
}

/** The root and what lies directly below it (children, its own snapshots); undefined if it does not exist. */
async function lookAtRoot(ctx: ZfsCtx, props: readonly string[]): Promise<GetResult | undefined> {
  try {
    return await ctx.cli.get([ctx.root], ['type', ...props], { depth: 1 });
  } catch (e) {
    if (isZfsError(e, 'NotFound')) return undefined;
    throw e;
  }
}

function rootOf(ctx: ZfsCtx, r: GetResult): ZfsDataset {
  const d = r.datasets.get(ctx.root);
  if (d === undefined) throw new SmError('SRUnavailable', `zfs get printed nothing for ${ctx.root}`);
  return d;
}

function below(ctx: ZfsCtx, r: GetResult): string[] {
  return [...r.datasets.keys()].filter((n) => n !== ctx.root).sort();
}

/**
 * Raw-file layout: VDI datasets inherit the root's mountpoint, so the root needs a real
 * one. Sets it where there is none (mountpoint=none or legacy), then mounts what is not.
 */
async function ensureMountpoint(ctx: ZfsCtx, sr: string): Promise<void> {
  const d = (await ctx.cli.get([ctx.root], ['mountpoint', 'mounted', 'canmount'])).datasets.get(ctx.root);
  if (d?.mountpoint === undefined || !d.mountpoint.startsWith('/')) {
    const mp = ctx.mountpoint ?? `${SR_MOUNT_BASE}/${sr}`;
    ctx.log.info(`flatsnap: ${ctx.root} has mountpoint=${String(d?.mountpoint)}; setting ${mp} (raw-file VDIs live below it)`);
    await ctx.cli.set(ctx.root, { props: { mountpoint: mp } });
  }
  await ctx.cli.mountAll(ctx.root);
}

/** The flatsnap SR the nearest existing ancestor of the root belongs to, if any (a command per missing level). */
async function enclosingSr(ctx: ZfsCtx): Promise<{ sr: string; at: string } | undefined> {
  for (let p = parentOf(ctx.root); p !== undefined; p = parentOf(p)) {
    let d: ZfsDataset | undefined;
    try {
      d = (await ctx.cli.get([p], [PROP.sr])).datasets.get(p);
    } catch (e) {
      if (isZfsError(e, 'NotFound')) continue;
      throw e;
    }
    const v = d?.props.get(PROP.sr);
    if (v === undefined || v.source === 'none') return undefined;
    return { sr: v.value, at: v.source === 'inherited' ? String(v.inheritedFrom) : p };
  }
  return undefined;
}

export async function createSr(ctx: ZfsCtx, srUuid: string): Promise<void> {
  const sr = requireSrUuid(srUuid);
  await ctx.cli.requireHealthyPool(ctx.pool);
  const raw = !(await ctx.cli.features()).volumes;
  const r = await lookAtRoot(ctx, ['mountpoint', PROP.sr, ...(raw ? [] : ['volmode'])]);
  if (r === undefined) {
    const outer = await enclosingSr(ctx);
    if (outer !== undefined) throw new SmError('SRExists', `${ctx.root} would lie inside flatsnap SR ${outer.sr} (${outer.at}); refusing to nest SRs`);
    await ctx.cli.createFilesystem(ctx.root, {
      parents: true,
      ...(raw && ctx.mountpoint !== undefined ? { props: { mountpoint: ctx.mountpoint } } : {}),
      // zvols inherit it (volumes.ts createVolume says why not per zvol): dom0 must not scan guests' partitions.
      ...(raw ? {} : { props: { volmode: 'dev' } }),
      user: { [PROP.sr]: sr, [PROP.format]: FORMAT_VERSION, [PROP.madeRoot]: '1' },
    });
    if (raw) {
      try {
        await ensureMountpoint(ctx, sr);
      } catch (e) {
        await ctx.cli.destroy(ctx.root).catch((de: unknown) => ctx.log.warn(`flatsnap: could not remove ${ctx.root} again: ${String(de)}`));
        throw e;
      }
    }
    ctx.log.info(`flatsnap: created SR ${sr} as ${ctx.root}`);
    return;
  }
  const d = rootOf(ctx, r);
  if (d.type !== 'filesystem') throw new SmError('SRExists', `${ctx.root} is a ${d.type}, not a filesystem; refusing it as an SR root`);
  const own = d.user[PROP.sr];
  const inherited = d.props.get(PROP.sr);
  if (own === undefined && inherited?.source === 'inherited') {
    throw new SmError('SRExists', `${ctx.root} lies inside flatsnap SR ${inherited.value} (${String(inherited.inheritedFrom)}); refusing to nest SRs`);
  }
  if (own !== undefined && own !== sr) throw new SmError('SRExists', `${ctx.root} already holds flatsnap SR ${own}; refusing to make it SR ${sr}`);
  if (own === undefined) {
    const others = below(ctx, r);
    if (others.length > 0) {
      throw new SmError(
        'SRExists',
        `${ctx.root} is not empty: it holds ${others.length} dataset(s) or snapshot(s) flatsnap did not make (${others.slice(0, 3).join(', ')}); refusing to adopt it`,
      );
    }
    await ctx.cli.set(ctx.root, { user: { [PROP.sr]: sr, [PROP.format]: FORMAT_VERSION } });
    ctx.log.info(`flatsnap: adopted the empty dataset ${ctx.root} as SR ${sr}`);
  }
  if (raw) await ensureMountpoint(ctx, sr);
  else await ensureVolmode(ctx, d);
}

/** The SR root's volmode=dev, which its zvols inherit (SRs made before it was set, or on zfs-fuse and imported). */
async function ensureVolmode(ctx: ZfsCtx, root: ZfsDataset): Promise<void> {
  if (root.props.get('volmode')?.value === 'dev') return;
  ctx.log.info(`flatsnap: setting volmode=dev on ${ctx.root} (its zvols inherit it)`);
  await ctx.cli.set(ctx.root, { props: { volmode: 'dev' } });
}

/** The root's SR uuid, checked against `sr`: SRUnavailable if missing or another SR's. */
async function requireOurRoot(ctx: ZfsCtx, sr: string, props: readonly string[] = []): Promise<GetResult> {
  const r = await lookAtRoot(ctx, [PROP.sr, ...props]);
  if (r === undefined) throw new SmError('SRUnavailable', `the SR root ${ctx.root} does not exist`);
  const own = rootOf(ctx, r).user[PROP.sr];
  if (own === undefined) throw new SmError('SRUnavailable', `${ctx.root} is not a flatsnap SR (no ${PROP.sr})`);
  if (own !== sr) throw new SmError('SRUnavailable', `${ctx.root} holds flatsnap SR ${own}, not ${sr}`);
  return r;
}

export async function attachSr(ctx: ZfsCtx, srUuid: string): Promise<void> {
  const sr = requireSrUuid(srUuid);
  await ctx.cli.requireHealthyPool(ctx.pool);
  const volumes = (await ctx.cli.features()).volumes;
  const r = await requireOurRoot(ctx, sr, volumes ? ['volmode'] : []);
  if (volumes) await ensureVolmode(ctx, rootOf(ctx, r));
  // A zfs-fuse daemon that restarted mounts nothing; OpenZFS normally has, and then this is one get.
  const mounted = await ctx.cli.mountAll(ctx.root);
  if (mounted.length > 0) ctx.log.info(`flatsnap: mounted ${mounted.length} dataset(s) under ${ctx.root}`);
}

export async function deleteSr(ctx: ZfsCtx, srUuid: string): Promise<void> {
  const sr = requireSrUuid(srUuid);
  const r = await requireOurRoot(ctx, sr, [PROP.madeRoot]);
  const others = below(ctx, r);
  if (others.length > 0) {
    throw new SmError('SRNotEmpty', `${ctx.root} still holds ${others.length} dataset(s) or snapshot(s) (${others.slice(0, 3).join(', ')})`);
  }
  if (rootOf(ctx, r).user[PROP.madeRoot] === '1') {
    await ctx.cli.destroy(ctx.root);
    // zfs-fuse leaves the mountpoint directory behind; the default one is ours
    // (attach chose it), and rmdir only ever removes it when it is empty.
    await rmdir(`${SR_MOUNT_BASE}/${sr}`).catch(() => undefined);
    ctx.log.info(`flatsnap: destroyed SR ${sr} (${ctx.root})`);
    return;
  }
  // Adopted: give the dataset back as it was found, minus our marks.
  for (const p of [PROP.sr, PROP.format]) await ctx.cli.inherit(ctx.root, p);
  ctx.log.info(`flatsnap: released SR ${sr}: ${ctx.root} is no longer marked`);
}

export async function srStats(ctx: ZfsCtx): Promise<SrStats> {
  // What the SR may use honours quotas and reservations: used + available of the root.
  let s;
  try {
    s = await ctx.cli.space(ctx.root);
  } catch (e) {
    if (isZfsError(e, 'NotFound')) throw new SmError('SRUnavailable', `the SR root ${ctx.root} does not exist`);
    throw e;
  }
  return { physical_size: s.used + s.available, physical_utilisation: s.used };
}

/** SRs at the configured dataset, or directly below it. One command. */
export async function probeSr(ctx: ZfsCtx): Promise<ProbeResult[]> {
  const r = await lookAtRoot(ctx, ['used', 'available', PROP.sr]);
  if (r === undefined) return [];
  const out: ProbeResult[] = [];
  for (const d of r.datasets.values()) {
    const sr = d.user[PROP.sr];
    if (d.type !== 'filesystem' || sr === undefined || !isUuid(sr)) continue;
    out.push({ sr_uuid: sr, handle: d.name, size: (d.used ?? 0) + (d.available ?? 0) });
  }
  return out;
}
