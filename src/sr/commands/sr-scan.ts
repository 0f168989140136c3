// sr_scan (SR master only): reconcile xapi's VDI rows with storage. One inventory,
// one get_all_records_where for the SR, then only the writes that change something
// (xapi-sync.ts diffScan): a second scan writes nothing, which xapi needs (it re-runs
// a scan that changed the SR's VDI set, up to 10 times).
import { log } from '../../log.js';
import { vdisInSr } from '../../xapi/vdi.js';
import { SrContext } from '../context.js';
import { collectGarbage } from '../gc.js';
import { register } from '../registry.js';
import { applyMetaWrites, applyXapiWrites, updateSrSizesQuietly } from '../xapi-apply.js';
import { diffScan } from '../xapi-sync.js';

register('sr_scan', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    ctx.requireMaster();
    const backend = await ctx.backend();
    const l = await ctx.lineage();
    const reclaimed = await collectGarbage(ctx, l);
    const records = await ctx.xapi.VDI.get_all_records_where(vdisInSr(ctx.srRef));
    const plan = diffScan(l.tree, l.objects, records, ctx.srRef);
    // An unmounted or replaced root must never pass for an SR that lost its VDIs: before
    // forgetting anything, check the storage is there and is this SR.
    if (plan.xapi.some((w) => w.op === 'forget')) await backend.attachSr(ctx.srUuid);
    const refByUuid = new Map([...records].map(([ref, r]) => [r.uuid.toLowerCase(), ref] as const));
    await applyXapiWrites(ctx.xapi, plan.xapi, refByUuid);
    try {
      await applyMetaWrites(backend, l.objects, plan.storage);
    } catch (e) {
      log().warn(`sr_scan: could not store xapi's VDI fields on storage (next scan retries): ${e instanceof Error ? e.message : String(e)}`);
    }
    await updateSrSizesQuietly(ctx, l);
    const counts = new Map<string, number>();
    for (const w of plan.xapi) counts.set(w.op, (counts.get(w.op) ?? 0) + 1);
    const summary = [...counts].map(([op, n]) => `${op} ${n}`).join(', ') || 'no xapi changes';
    log().info(
      `sr_scan: ${l.tree.visible().length} VDI(s) on storage, ${records.size} in xapi: ${summary}; ${plan.storage.length} metadata update(s)` +
        (reclaimed ? `; ${reclaimed} garbage action(s)` : ''),
    );
    return null;
  },
});
