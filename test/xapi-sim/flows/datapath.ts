// Attaching VDIs (dom0 for copies, guests for VM.start) through the SM the way
// xapi's SMAPIv1 adapter does: vdi_attach [rw] -> vdi_activate [rw] (only if
// VDI_ACTIVATE), and back: vdi_deactivate -> vdi_detach. The simulator cannot run
// tapdisk: for byte copies it reads and writes the attach result's `params`
// path (a file or block device) directly.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { hostOf, type Ctx } from '../api.js';
import { hasCap, smAttach, smUnit, type AttachInfo } from '../sm-exec.js';
import { ApiError } from '../wire.js';
import { vdiSr } from './common.js';

export async function attachActivate(ctx: Ctx, vdi: string, writable: boolean): Promise<AttachInfo> {
  const sr = vdiSr(ctx, vdi);
  const w = String(writable);
  const info = await smAttach(ctx, { cmd: 'vdi_attach', sr, vdi, args: [w] });
  const host = ctx.db.field<string>('host', hostOf(ctx), 'uuid');
  const smc = { ...ctx.db.field<Record<string, string>>('VDI', vdi, 'sm_config') };
  smc[`read-caching-enabled-on-${host}`] = String(!info.o_direct);
  if (info.o_direct) smc[`read-caching-reason-${host}`] = info.o_direct_reason;
  ctx.db.set('VDI', vdi, 'sm_config', smc);
  try {
    if (hasCap(ctx, sr, 'VDI_ACTIVATE')) await smUnit(ctx, { cmd: 'vdi_activate', sr, vdi, args: [w] });
  } catch (e) {
    await smUnit(ctx, { cmd: 'vdi_detach', sr, vdi }).catch(() => undefined);
    throw e;
  }
  if (writable) {
    const oc = { ...ctx.db.field<Record<string, string>>('VDI', vdi, 'other_config') };
    if (Object.hasOwn(oc, 'content_id')) {
      delete oc.content_id;
      ctx.db.set('VDI', vdi, 'other_config', oc);
    }
  }
  return info;
}

export async function deactivateDetach(ctx: Ctx, vdi: string): Promise<void> {
  if (!ctx.db.has('VDI', vdi)) return;
  const sr = vdiSr(ctx, vdi);
  if (hasCap(ctx, sr, 'VDI_DEACTIVATE')) await smUnit(ctx, { cmd: 'vdi_deactivate', sr, vdi });
  const oc = { ...ctx.db.field<Record<string, string>>('VDI', vdi, 'other_config') };
  if (!Object.hasOwn(oc, 'content_id')) {
    oc.content_id = randomUUID();
    ctx.db.set('VDI', vdi, 'other_config', oc);
  }
  await smUnit(ctx, { cmd: 'vdi_detach', sr, vdi });
  const host = ctx.db.field<string>('host', hostOf(ctx), 'uuid');
  const smc = { ...ctx.db.field<Record<string, string>>('VDI', vdi, 'sm_config') };
  delete smc[`read-caching-enabled-on-${host}`];
  delete smc[`read-caching-reason-${host}`];
  ctx.db.set('VDI', vdi, 'sm_config', smc);
}

/** The control domain of the host `ctx` runs on. */
function dom0Of(ctx: Ctx): string {
  const host = hostOf(ctx);
  if (host === ctx.sim.host) return ctx.sim.dom0;
  return ctx.db.where('VM', (v) => v.is_control_domain === true && v.resident_on === host)[0] ?? ctx.sim.dom0;
}

/** A dom0 VBD for the duration of fn, as Sm_fs_ops.with_block_attached_device does. */
export async function withDom0Attached<T>(ctx: Ctx, vdi: string, writable: boolean, fn: (path: string) => Promise<T>): Promise<T> {
  const dom0 = dom0Of(ctx);
  const vbd = ctx.db.create('VBD', {
    VM: dom0,
    VDI: vdi,
    userdevice: String(ctx.db.where('VBD', (v) => v.VM === dom0).length),
    mode: writable ? 'RW' : 'RO',
    type: 'Disk',
    unpluggable: true,
    other_config: {},
  });
  try {
    const info = await attachActivate(ctx, vdi, writable);
    ctx.db.set('VBD', vbd, 'currently_attached', true);
    try {
      if (info.params === undefined || info.params === '') {
        throw new ApiError('INTERNAL_ERROR', ['xapi-sim: vdi_attach returned no params path to copy data through']);
      }
      return await fn(info.params);
    } finally {
      ctx.db.set('VBD', vbd, 'currently_attached', false);
      await deactivateDetach(ctx, vdi);
    }
  } finally {
    if (ctx.db.has('VBD', vbd)) ctx.db.destroy('VBD', vbd);
  }
}

const CHUNK = 1 << 20;

/** sparse_dd stand-in: copies `size` bytes; zero chunks are skipped when the target is fresh. */
export async function sparseCopy(src: string, dst: string, size: number, dstIsFresh: boolean): Promise<void> {
  const a = await fs.open(src, 'r');
  try {
    const b = await fs.open(dst, 'r+');
    try {
      const buf = Buffer.alloc(CHUNK);
      const zero = Buffer.alloc(CHUNK);
      for (let off = 0; off < size; off += CHUNK) {
        const want = Math.min(CHUNK, size - off);
        const { bytesRead } = await a.read(buf, 0, want, off);
        if (bytesRead < want) buf.fill(0, bytesRead, want);
        const chunk = buf.subarray(0, want);
        if (dstIsFresh && chunk.equals(zero.subarray(0, want))) continue;
        await b.write(chunk, 0, want, off);
      }
      await b.sync();
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
}
