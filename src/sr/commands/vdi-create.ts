// vdi_create (SR master only): a new, thin (sparse) VDI. The row is db_introduce'd
// before answering (xapi looks it up by uuid); a failed introduce destroys the new
// volume again. location == uuid.
import type { VdiMeta } from '../../backends/backend.js';
import { SmError } from '../../errors.js';
import { log } from '../../log.js';
import { isUuid, parseXapiTime } from '../../smapi/validate.js';
import { XapiError } from '../../xapi/errors.js';
import { NULL_REF } from '../../xapi/wire.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { runPlan } from '../run-plan.js';
import { withUndo } from '../undo.js';
import { vdiInfo } from '../vdi-common.js';
import { updateSrSizesQuietly } from '../xapi-apply.js';
import { EPOCH, SM_PASS_THROUGH, introduceRecord, xapiTime } from '../xapi-sync.js';

const REF = /^OpaqueRef:/;

/** sm_config keys xapi hands us that must survive onto the new VDI. */
export function passThrough(sm: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of SM_PASS_THROUGH) if (sm?.[k] !== undefined) out[k] = sm[k]!;
  return out;
}

register('vdi_create', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    ctx.requireMaster();
    const { req } = ctx;
    if (req.args.kind !== 'vdi_create') throw new SmError('BadRequest', 'vdi_create without its arguments');
    const a = req.args;
    const snapshotTime = a.snapshot_time === '' ? EPOCH : xapiTime(parseXapiTime('snapshot_time', a.snapshot_time).getTime());
    const snapshotOfUuid = isUuid(a.snapshot_of) ? a.snapshot_of.toLowerCase() : '';
    if (a.snapshot_of !== '' && snapshotOfUuid === '' && !REF.test(a.snapshot_of)) {
      throw new SmError('BadRequest', `snapshot_of is neither a VDI ref nor a uuid: ${JSON.stringify(a.snapshot_of)}`);
    }
    const meta: VdiMeta = {
      name_label: a.name_label,
      name_description: a.name_description,
      vdi_type: req.vdi_type ?? 'user',
      is_a_snapshot: a.is_a_snapshot,
      snapshot_time: snapshotTime,
      snapshot_of: snapshotOfUuid,
      read_only: a.read_only,
    };

    const backend = await ctx.backend();
    // A fresh uuid needs nothing of the SR (storage refuses a name that exists anyway); the
    // deterministic one of a pool metadata backup is checked against the whole SR.
    const l = req.vdi_uuid === undefined ? await ctx.lineageFor([]) : await ctx.lineage();
    const vdi = req.vdi_uuid ?? ctx.newUuid();
    if (l.tree.get(vdi) !== undefined || l.tree.byVdi(vdi) !== undefined) {
      throw new SmError('VDIExists', `VDI ${vdi} already exists in SR ${ctx.srUuid}`);
    }
    const plan = l.tree.planCreate(vdi, ctx.now());
    const what = `vdi_create of ${vdi}`;

    const result = await withUndo(async (undo) => {
      const r = await runPlan({ backend, tree: l.tree, objects: l.objects }, plan, {
        fail: 'VDICreate',
        undo,
        what,
        meta: () => meta,
        size: a.virtual_size,
      });
      const o = l.objects.get(vdi) ?? r.created[0];
      if (o === undefined) throw new SmError('VDICreate', `${what}: the backend reported no object`);
      let snapshotOf = NULL_REF;
      if (REF.test(a.snapshot_of)) snapshotOf = a.snapshot_of;
      else if (snapshotOfUuid !== '') {
        snapshotOf = await ctx.xapi.VDI.get_by_uuid(snapshotOfUuid).catch((e: unknown) => {
          if (e instanceof XapiError) return NULL_REF;
          throw e;
        });
      }
      await ctx.xapi.VDI.db_introduce({
        ...introduceRecord(l.tree, o, meta, ctx.srRef, passThrough(req.vdi_sm_config)),
        snapshot_of: snapshotOf,
        ...(a.metadata_of_pool !== '' ? { metadata_of_pool: a.metadata_of_pool } : {}),
      });
      log().info(`${what}: ${o.virtual_size} bytes (${a.virtual_size} asked), ${backend.describe()}`);
      return vdiInfo(vdi);
    });
    await updateSrSizesQuietly(ctx, l);
    return result;
  },
});
