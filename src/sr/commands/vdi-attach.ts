// vdi_attach / vdi_detach / vdi_activate / vdi_deactivate: the datapath (src/datapath).
// Attach finds the VDI's bytes through the backend (the VDI's family where the backend
// can find it without hints, so no XenAPI call: attach runs at every VM start); the
// other three work from what attach left on this host, so they need no inventory.
import { SmError } from '../../errors.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { visibleVdi } from '../vdi-common.js';

// Loaded on first use: the tapdisk mode pulls in execa, which no other command of a
// storage call needs, and every xapi exec pays for what the driver loads at start.
async function selectDatapath(): Promise<import('../../datapath/index.js').Datapath> {
  const m = await import('../../datapath/index.js');
  return m.selectDatapath();
}

function writable(ctx: SrContext): boolean {
  if (ctx.req.args.kind !== 'writable') throw new SmError('BadRequest', `${ctx.req.command} needs its writable argument`);
  return ctx.req.args.writable;
}

register('vdi_attach', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const rw = writable(ctx);
    const l = await ctx.lineageFor([{ vdi: ctx.vdi }]);
    const o = visibleVdi(l, ctx.vdi, 'VDIUnavailable');
    const path = await (await ctx.backend()).datapath(o);
    return (await selectDatapath()).attach({ srUuid: ctx.srUuid, vdiUuid: ctx.vdi, path }, rw);
  },
});

register('vdi_detach', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    await (await selectDatapath()).detach({ srUuid: ctx.srUuid, vdiUuid: ctx.vdi });
    return null;
  },
});

// With tapdisk, activate and deactivate keep the VDI's sm_config host_<host ref> key
// (host-tags.ts) under the per-VDI SM lock, so that a live snapshot on the SR master
// can pause this host's tapdisk, and activation waits while one holds the VDI paused.
// Direct mode has no tapdisk to pause and makes no XenAPI call.
register('vdi_activate', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const rw = writable(ctx);
    const dp = await selectDatapath();
    const t = { srUuid: ctx.srUuid, vdiUuid: ctx.vdi };
    if (dp.mode === 'direct') {
      await dp.activate(t, rw);
      return null;
    }
    const { addHostTag, removeHostTag, retryWhilePaused } = await import('../host-tags.js');
    const { Lock } = await import('../locks.js');
    await retryWhilePaused(ctx.vdi, () =>
      Lock.vdi(ctx.vdi).with(async () => {
        if (!(await addHostTag(ctx.xapi.VDI, ctx.vdiRef, ctx.req.host_ref, rw))) return false;
        try {
          await dp.activate(t, rw);
        } catch (e) {
          await removeHostTag(ctx.xapi.VDI, ctx.vdiRef, ctx.req.host_ref).catch(() => undefined);
          throw e;
        }
        return true;
      }),
    );
    return null;
  },
});

register('vdi_deactivate', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const dp = await selectDatapath();
    const t = { srUuid: ctx.srUuid, vdiUuid: ctx.vdi };
    if (dp.mode === 'direct') {
      await dp.deactivate(t);
      return null;
    }
    const { removeHostTag } = await import('../host-tags.js');
    const { Lock } = await import('../locks.js');
    // The key goes once the tapdisk is gone: until then a pause must still find it.
    await Lock.vdi(ctx.vdi).with(async () => {
      await dp.deactivate(t);
      await removeHostTag(ctx.xapi.VDI, ctx.vdiRef, ctx.req.host_ref);
    });
    return null;
  },
});
