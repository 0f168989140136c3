// vdi_update: refresh one VDI's row from storage (sizes, read_only, our sm_config
// key, our lineage keys in other_config, each only if it differs; users' keys are
// never touched) and store xapi's fields (name, description, type, snapshot fields)
// with the object, so a renamed VDI keeps its name when the SR is introduced
// elsewhere. xapi calls it after every snapshot/clone, on VDI.update and after a
// rename.
import { log } from '../../log.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { visibleVdi } from '../vdi-common.js';
import { applyXapiWrites } from '../xapi-apply.js';
import { diffVdi } from '../xapi-sync.js';

register('vdi_update', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const rec = await ctx.vdiRecord(ctx.vdiRef);
    const l = await ctx.lineageFor([{ vdi: ctx.vdi, ref: ctx.vdiRef }], { stamps: true });
    const o = visibleVdi(l, ctx.vdi);
    // Only this VDI's own ref resolves without more calls; sr_scan resolves the rest.
    const d = diffVdi(l.tree, o, ctx.vdiRef, rec, (ref) => (ref === ctx.vdiRef ? rec.uuid : undefined));
    await applyXapiWrites(ctx.xapi, d.xapi, new Map());
    if (d.meta !== undefined) await (await ctx.backend()).setMeta(o, d.meta);
    if (d.xapi.length > 0 || d.meta !== undefined) {
      log().info(`vdi_update of ${ctx.vdi}: ${d.xapi.length} xapi write(s)${d.meta ? ', metadata stored' : ''}`);
    }
    return null;
  },
});
