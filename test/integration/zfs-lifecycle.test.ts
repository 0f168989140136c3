// The acceptance lifecycle on a real pool (zfs-fuse: the raw-file layout): the lineage
// planners decide, the ZFS backend carries out each action, the tree records it. A seeded
// random sequence of writes, snapshots (of volumes and of snapshot VDIs), clones (of
// snapshots and of live volumes), classic reverts (delete the disk, clone the snapshot),
// vdi_reverts (rollback or clone + swap) and deletes; after every step what ZFS holds
// must be exactly the model's records, and the VDIs must read what was written into
// them (sha256 over the whole disk). Then every VDI is deleted and gcPlan run: the SR
// root must hold nothing, and the space must be back.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { StoredObject, VdiMeta } from '../../src/backends/backend.js';
import { ZfsBackend } from '../../src/backends/zfs/backend.js';
import { ZfsCli, type ZfsLogger } from '../../src/backends/zfs/cli.js';
import { type Action, type LineageObject, type Plan, LineageTree, ZFS_CAPABILITIES } from '../../src/lineage/index.js';
import { hashOf } from '../conformance/backend-conformance.js';
import { describeZfs } from './harness/zfs-pool.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZE = 4 * MiB;
const STEPS = Number(process.env.FLATSNAP_LIFECYCLE_STEPS ?? 45);
const SEEDS = [1, 2, 3];
/** Steps after which every visible VDI's content is checked (afterwards: only those the step touched, and all at the end). */
const FULL_CHECKS = 12;
const EPOCH = '19700101T00:00:00Z';

const warnings: string[] = [];
/** Plan actions carried out, over all seeds. */
const seen = new Map<string, number>();
const logger: ZfsLogger = { debug: () => undefined, info: () => undefined, warn: (m) => warnings.push(m) };

/** mulberry32: small, seedable, good enough to pick operations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function zeroHash(): string {
  return createHash('sha256').update(Buffer.alloc(SIZE)).digest('hex');
}

/** 64 KiB from `seed` at three places (start, an unaligned middle, the end), synced; returns the hash of the whole disk. */
async function writeAt(path: string, seed: string): Promise<string> {
  const fh = await open(path, 'r+');
  try {
    for (const off of [0, MiB + 4096, SIZE - 64 * KiB]) {
      const unit = createHash('sha256').update(`${seed}@${off}`).digest();
      const buf = Buffer.alloc(64 * KiB);
      for (let i = 0; i < buf.length; i += unit.length) unit.copy(buf, i);
      await fh.write(buf, 0, buf.length, off);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return hashOf(path);
}

const record = (o: LineageObject) => ({
  id: o.id,
  kind: o.kind,
  created: o.created,
  deleted: o.deleted,
  ...(o.vdi !== undefined ? { vdi: o.vdi } : {}),
  ...(o.parent !== undefined ? { parent: o.parent } : {}),
});

describeZfs(
  'zfs lifecycle',
  (ctx) => {
    afterAll(() => {
      // Nothing on storage the backend did not recognise.
      expect(warnings.filter((w) => /not a flatsnap object/.test(w))).toEqual([]);
      // Every kind of plan action was carried out on real ZFS at least once.
      const ops = ['create', 'snapshot', 'clone', 'mark-tombstone', 'forget-in-xapi', 'swap-vdi', 'rollback', 'destroy'];
      expect(ops.filter((op) => !seen.has(op))).toEqual([]);
    });

    test.each(SEEDS)(
      'seed %i: random snapshot / clone / revert / delete on ZFS, then delete all: nothing left, space back',
      async (seed) => {
        const rand = prng(seed);
        const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
        const uuid = (): string => {
          const h = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join('');
          return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${'89ab'[Math.floor(rand() * 4)]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
        };
        let clock = Date.now();
        const tick = (): number => (clock = Math.max(clock + 1, Date.now()));

        const root = `${ctx.pool.name}/lc${seed}/sr`;
        const cli = new ZfsCli({ logger });
        const b = new ZfsBackend(root, { logger, mountpoint: `${ctx.pool.mountBase}/lc${seed}` });
        const sr = uuid();
        await b.createSr(sr);
        await b.attachSr(sr);
        /**
         * The pool's `used` counts its MOS too (a hidden child of the pool root: the pool
         * history, where ZFS logs every command, and the space maps), which grows with every
         * command and is never given back. So: `data` = pool used minus MOS, where MOS =
         * the pool's usedbychildren minus what its visible children use.
         */
        const space = async () => {
          const r = await cli.get([ctx.pool.name], ['used', 'usedbychildren', 'usedbysnapshots'], { depth: 1 });
          const num = (name: string, k: string) => Number(r.datasets.get(name)!.props.get(k)!.value);
          const kids = [...r.datasets.keys()].filter((n) => n !== ctx.pool.name && !n.includes('@'));
          const mos = num(ctx.pool.name, 'usedbychildren') - kids.reduce((t, n) => t + num(n, 'used'), 0);
          const sr = (await cli.get([root], ['used', 'usedbychildren', 'usedbysnapshots'])).datasets.get(root)!;
          const srNum = (k: string) => Number(sr.props.get(k)!.value);
          return { data: num(ctx.pool.name, 'used') - mos, mos, sr: srNum('used'), children: srNum('usedbychildren'), snaps: srNum('usedbysnapshots') };
        };
        const baseline = await space();

        const tree = new LineageTree(ZFS_CAPABILITIES);
        const stored = new Map<string, StoredObject>();
        /** VDI uuid -> sha256 of what it must read. */
        const expected = new Map<string, string>();
        const counts: Record<string, number> = {};

        const obj = (id: string): StoredObject => {
          const t = tree.get(id);
          const s = stored.get(id);
          if (t === undefined || s === undefined) throw new Error(`unknown object ${id}`);
          return { virtual_size: s.virtual_size, physical_utilisation: s.physical_utilisation, handle: s.handle, ...t };
        };
        const metaFor = (a: Extract<Action, { readonly object: string }>): VdiMeta => {
          const snapOf = a.op === 'snapshot' ? (tree.get(a.of)?.vdi ?? '') : '';
          const t = 'time' in a ? a.time : 0;
          return {
            name_label: `${a.op} ${a.object}`,
            name_description: `seed ${seed}`,
            vdi_type: 'user',
            is_a_snapshot: a.op === 'snapshot',
            snapshot_time: a.op === 'snapshot' ? new Date(t).toISOString().replace(/-/g, '').replace(/\.\d{3}Z$/, 'Z') : EPOCH,
            snapshot_of: snapOf,
            read_only: a.op === 'snapshot',
          };
        };

        async function apply(plan: Plan): Promise<void> {
          for (const a of plan) {
            counts[a.op] = (counts[a.op] ?? 0) + 1;
            seen.set(a.op, (seen.get(a.op) ?? 0) + 1);
            switch (a.op) {
              case 'create':
                stored.set(a.object, await b.create(a.object, metaFor(a), SIZE, a.time));
                break;
              case 'snapshot':
                stored.set(a.object, await b.snapshot(a.object, obj(a.of), a.name, a.kind, a.vdi !== undefined ? metaFor(a) : undefined));
                break;
              case 'clone':
                stored.set(a.object, await b.clone(a.object, obj(a.from), a.vdi !== undefined ? metaFor(a) : undefined, a.time));
                break;
              case 'mark-tombstone':
                await b.markTombstone(obj(a.object));
                break;
              case 'forget-in-xapi':
                break;
              case 'swap-vdi':
                await b.swapVdi(a.vdi, obj(a.from), obj(a.to));
                break;
              case 'rollback':
                try {
                  await b.rollback(obj(a.object), obj(a.snapshot));
                } catch (e) {
                  if (!a.optional) throw e;
                  counts['rollback-failed'] = (counts['rollback-failed'] ?? 0) + 1;
                }
                break;
              case 'destroy':
                await b.destroy(obj(a.object));
                stored.delete(a.object);
                break;
            }
            tree.applyAction(a);
          }
        }

        const visible = (kind?: 'volume' | 'snapshot'): LineageObject[] => tree.visible().filter((o) => kind === undefined || o.kind === kind);
        const newVdi = () => ({ vdi: uuid(), time: tick(), newId: uuid });

        async function checkStorage(touched: readonly string[], all: boolean): Promise<void> {
          const inv = await b.inventory();
          expect(inv.map(record)).toEqual(tree.list().map(record));
          expect(tree.validate()).toEqual([]);
          expect(tree.gcPlan()).toEqual([]);
          for (const o of tree.visible()) {
            if (!all && !touched.includes(o.vdi!)) continue;
            expect({ vdi: o.vdi, hash: await hashOf(await b.datapath(obj(o.id))) }).toEqual({ vdi: o.vdi, hash: expected.get(o.vdi!) });
          }
        }

        for (let step = 0; step < STEPS; step++) {
          const touched: string[] = [];
          const vols = visible('volume');
          const snaps = visible('snapshot');
          const ops: string[] = ['create'];
          if (vols.length > 0) ops.push('write', 'write', 'write', 'snapshot', 'snapshot', 'clone-live');
          if (snaps.length > 0) ops.push('snapshot-of-snapshot', 'clone-snapshot', 'clone-snapshot');
          if (vols.length + snaps.length > 1) ops.push('delete', 'delete');
          const revertable = snaps.filter((s) => tree.isVisible(s.parent!));
          if (revertable.length > 0) ops.push('classic-revert', 'vdi-revert');
          const op = vols.length + snaps.length === 0 ? 'create' : pick(ops);
          switch (op) {
            case 'create': {
              const n = newVdi();
              await apply(tree.planCreate(n.vdi, n.time));
              expected.set(n.vdi, zeroHash());
              touched.push(n.vdi);
              break;
            }
            case 'write': {
              const v = pick(vols);
              expected.set(v.vdi!, await writeAt(await b.datapath(obj(v.id)), `${seed}/${step}`));
              touched.push(v.vdi!);
              break;
            }
            case 'snapshot':
            case 'snapshot-of-snapshot':
            case 'clone-live':
            case 'clone-snapshot': {
              const src = pick(op === 'snapshot' || op === 'clone-live' ? vols : snaps);
              const n = newVdi();
              await apply(op.startsWith('snapshot') ? tree.planSnapshot(src.vdi!, n) : tree.planClone(src.vdi!, n));
              expected.set(n.vdi, expected.get(src.vdi!)!);
              touched.push(n.vdi, src.vdi!);
              break;
            }
            case 'delete': {
              const v = pick([...vols, ...snaps]);
              await apply(tree.planDelete(v.vdi!));
              expected.delete(v.vdi!);
              break;
            }
            case 'classic-revert': {
              // XCP-ng 8.3's VM.revert: vdi_delete(current disk), then vdi_clone(snapshot).
              const s = pick(revertable);
              const disk = tree.get(s.parent!)!;
              await apply(tree.planDelete(disk.vdi!));
              expected.delete(disk.vdi!);
              const n = newVdi();
              await apply(tree.planClone(s.vdi!, n));
              expected.set(n.vdi, expected.get(s.vdi!)!);
              touched.push(n.vdi, s.vdi!);
              break;
            }
            case 'vdi-revert': {
              const s = pick(revertable);
              const disk = tree.get(s.parent!)!;
              // Half the time without the rollback fast path: clone + swap-vdi + retire.
              const fast = rand() < 0.5;
              await apply(tree.planRevert(s.vdi!, disk.vdi!, { time: tick(), newId: uuid, ...(fast ? {} : { rollback: false }) }));
              expected.set(disk.vdi!, expected.get(s.vdi!)!);
              touched.push(disk.vdi!, s.vdi!);
              break;
            }
          }
          counts[`op:${op}`] = (counts[`op:${op}`] ?? 0) + 1;
          await checkStorage(touched, step < FULL_CHECKS);
        }
        await checkStorage([], true);

        // Delete every visible VDI, then whatever gcPlan still finds (nothing, by the rule).
        for (let v = tree.visible()[0]; v !== undefined; v = tree.visible()[0]) await apply(tree.planDelete(v.vdi!));
        const gc = tree.gcPlan();
        expect(gc).toEqual([]);
        await apply(gc);
        expect(tree.size).toBe(0);
        expect(await b.inventory()).toEqual([]);
        expect((await cli.listNames(root, { recursive: true })).filter((n) => n !== root)).toEqual([]);

        // Space: nothing below the SR root, exactly; the pool's data back to where it was but
        // for the SR root's own directory, which keeps its largest size once the mountpoint
        // directories of the VDI datasets were made in it (a ZAP never shrinks; 8 KiB here).
        const end = await space();
        expect({ children: end.children, snaps: end.snaps }).toEqual({ children: 0, snaps: 0 });
        expect(end.sr - baseline.sr).toBeLessThanOrEqual(16 * KiB);
        expect(end.data - baseline.data).toBe(end.sr - baseline.sr);
        // eslint-disable-next-line no-console
        console.log(`seed ${seed}: ${JSON.stringify(counts)}; pool data ${baseline.data} -> ${end.data}, SR root ${baseline.sr} -> ${end.sr}, MOS ${baseline.mos} -> ${end.mos}`);
        await b.deleteSr(sr);
      },
      600_000,
    );
  },
  { sizeMiB: 1024, tag: 'lifecycle' },
);
