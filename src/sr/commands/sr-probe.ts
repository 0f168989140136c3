// sr_probe (SR_PROBE; SRmaster=true; no SR yet): which flatsnap SRs the storage named
// by device_config holds, as an XML document in a string (xapi passes it through).
//   <SRlist><SR><UUID>..</UUID><Location>..</Location><size>..</size></SR>...</SRlist>
import { escapeXml } from '../../smapi/xmlrpc.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import type { ProbeResult } from '../../backends/backend.js';

export function probeXml(found: readonly ProbeResult[]): string {
  const srs = found
    .map((p) => `<SR><UUID>${escapeXml(p.sr_uuid)}</UUID><Location>${escapeXml(p.handle)}</Location><size>${p.size}</size></SR>`)
    .join('');
  return `<?xml version="1.0" ?><SRlist>${srs}</SRlist>`;
}

register('sr_probe', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    return probeXml(await (await ctx.backend()).probe());
  },
});
