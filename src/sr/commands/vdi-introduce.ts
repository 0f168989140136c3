// vdi_introduce (VDI_INTRODUCE; new_uuid, vdi_location, vdi_sm_config): make a row
// for a VDI storage has, e.g. after `xe vdi-forget`. flatsnap VDIs have
// location == uuid, so the two must agree.
import { SmError } from '../../errors.js';
import { vdisInSr } from '../../xapi/vdi.js';
import { NULL_REF } from '../../xapi/wire.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { metaOf, vdiInfo, visibleVdi } from '../vdi-common.js';
import { introduceRecord } from '../xapi-sync.js';
import { passThrough } from './vdi-create.js';

register('vdi_introduce', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const { req } = ctx;
    const uuid = req.new_uuid!;
    const location = ctx.vdi;
    if (uuid !== location) {
      throw new SmError('InvalidArg', `flatsnap VDIs have location == uuid: cannot introduce location ${location} as uuid ${uuid}`);
    }
    const l = await ctx.lineage();
    const o = visibleVdi(l, location, 'VolNotFound');
    const records = await ctx.xapi.VDI.get_all_records_where(vdisInSr(ctx.srRef));
    const refByUuid = new Map<string, string>();
    for (const [ref, r] of records) {
      if (r.location.toLowerCase() === location) throw new SmError('VDIExists', `VDI ${location} is already known to xapi (${r.uuid})`);
      refByUuid.set(r.uuid.toLowerCase(), ref);
    }
    const meta = metaOf(o);
    await ctx.xapi.VDI.db_introduce({
      ...introduceRecord(l.tree, o, meta, ctx.srRef, passThrough(req.vdi_sm_config)),
      snapshot_of: refByUuid.get(meta.snapshot_of) ?? NULL_REF,
    });
    return vdiInfo(location);
  },
});
