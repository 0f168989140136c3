// Markdown tables of the recorded storage benchmarks (bench/results/{snapshot-size,delete,
// scan,fragmentation,fragmentation-measures*}.json), as pasted into bench/README.md.
// Usage: node bench/lib/tables.mjs [snapshot-size|delete|scan|fragmentation ...]
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GiB, MiB, ROOT } from './common.mjs';

const load = (name) => {
  const f = join(ROOT, 'bench', 'results', `${name}.json`);
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : undefined;
};
const ms = (x) => (x === undefined || Number.isNaN(x) ? '–' : x >= 10000 ? `${(x / 1000).toFixed(1)} s` : x < 1 ? `${Math.round(x * 1000)} µs` : `${Math.round(x)} ms`);
const size = (b) => (b >= GiB ? `${b / GiB} GiB` : `${b / MiB} MiB`);
const bytes = (b) => (Math.abs(b) >= MiB ? `${(b / MiB).toFixed(1)} MiB` : `${Math.round(b / 1024)} KiB`);
const n = (x) => x.toLocaleString('en-US');
const table = (head, rows) => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
const footer = (d) => `_${d.date.slice(0, 16).replace('T', ' ')} UTC, ${d.machine.cpu} × ${d.machine.cores}, ${d.machine.memory_gib} GiB, Linux ${d.machine.kernel}, Node ${d.machine.node}${d.machine.zfs_fuse ? `, zfs-fuse ${d.machine.zfs_fuse}` : ''}; build ${d.build?.git_head ?? '?'}${d.build?.git_changed_files ? ` + ${d.build.git_changed_files} changed files` : ''} (driver.cjs ${d.build?.driver_cjs_sha256 ?? '?'}); load average ${d.machine.loadavg_start[0]} → ${d.loadavg_end?.[0]}._`;

const out = {
  'snapshot-size'(d) {
    const rows = [];
    for (const b of d.backends) {
      for (const k of b.disks) {
        const c = b.copies?.find((x) => x.virtual_size === k.virtual_size);
        rows.push([
          b.backend === 'zfs' ? 'zfs-fuse' : 'XFS reflink',
          size(k.virtual_size),
          `${ms(k.snapshot_api_ms.median)} (${ms(k.snapshot_api_ms.min)}–${ms(k.snapshot_api_ms.max)})`,
          ms(k.vdi_snapshot_plugin_ms.median),
          c ? ms(c.cp_reflink_ms.median) : '',
          c ? `${ms(c.dd_sparse_copy_ms.median)}` : '',
          c ? `${ms(c.dd_full_copy_ms.median)}${c.runs !== k.snapshot_api_ms.n ? ` (${c.runs} runs)` : ''}` : '',
        ]);
      }
      rows.push([`**ratio**`, `**8 GiB / 256 MiB**`, `**${b.ratio_api}**`, `**${b.ratio_plugin}**`, '', '', '']);
    }
    return `${table(['backend', 'disk', 'VDI.snapshot, median (min–max)', 'plugin vdi_snapshot', 'cp --reflink=always', 'dd sparse copy', 'dd full copy'], rows)}\n\n${footer(d)}`;
  },
  delete(d) {
    const parts = [];
    for (const b of d.backends) {
      const rows = b.rows.map((r) => [
        `${r.rewritten_mib} MiB`,
        ms(r.delete_api_ms.median),
        ms(r.delete_plugin_ms.median),
        bytes(r.delete_written_bytes.median),
        bytes(r.freed_bytes.median),
        `${r.vhd_coalesce_bytes / MiB} MiB read + ${r.vhd_coalesce_bytes / MiB} MiB written`,
        ms(r.dd_copy_n_mib_ms.median),
      ]);
      parts.push(
        `**${b.backend === 'zfs' ? 'zfs-fuse' : 'XFS reflink'}** (${b.storage}; one settle alone writes ${bytes(b.settle_only_written_bytes.median)}, subtracted)\n\n` +
          table(['rewritten N', 'VDI.destroy', 'plugin vdi_delete', 'device writes by the delete', 'space freed', 'VHD coalesce would copy', 'dd of N MiB (for scale)'], rows) +
          `\n\ndelete time N=256 / N=16: API ${b.time_ratio_api}, plugin ${b.time_ratio_plugin}`,
      );
    }
    return `${parts.join('\n\n')}\n\n${footer(d)}`;
  },
  scan(d) {
    const rows = [];
    for (const b of d.backends) {
      const name = `${b.backend === 'zfs' ? 'zfs-fuse' : 'XFS reflink'}, ${n(b.vdis)} + ${n(b.snapshots)}`;
      const f = b.first_scan;
      const fs = f.runs?.find((r) => r.cmd === 'sr_scan');
      if (f.error) rows.push([name, 'first scan', `FAILED: ${f.error}`, '', '', '', '', '']);
      else
        rows.push([
          name,
          'first scan',
          ms(f.api_ms),
          ms(f.xapi_wait_ms),
          `${ms(fs.plugin_ms)} / ${ms(fs.plugin_excl_xapi_ms)}`,
          `${n(f.xapi_calls)} (${Object.entries(f.xapi_calls_by_method).map(([k, v]) => `${k} ${n(v)}`).join(', ')})`,
          `${f.zfs_commands} (${f.runs.map((r) => r.zfs_commands).join('+')})`,
          f.sm_runs.join(', '),
        ]);
      const r = b.rescan;
      const rs = r.runs_of_median.find((x) => x.cmd === 'sr_scan');
      rows.push([
        name,
        `no-op rescan (median of ${r.api_ms.n})`,
        ms(r.api_ms.median),
        ms(r.runs_of_median.reduce((a, x) => a + x.xapi_wait_ms, 0)),
        `${ms(r.sr_scan_plugin_ms.median)} / ${ms(r.sr_scan_excl_xapi_ms.median)}`,
        `${r.xapi_calls} (${Object.entries(r.xapi_calls_by_method).map(([k, v]) => `${k} ${v}`).join(', ')})`,
        `${r.zfs_commands} (${r.runs_of_median.map((x) => x.zfs_commands).join('+')})`,
        'sr_scan, sr_update',
      ]);
      void rs;
    }
    const extra = d.backends.map((b) => `${b.backend === 'zfs' ? 'zfs-fuse' : 'XFS reflink'} (${n(b.vdis * 6)} objects): VDI.snapshot ${ms(b.snapshot_in_big_sr.api_ms.median)}, plugin vdi_snapshot ${ms(b.snapshot_in_big_sr.plugin_ms.median)}`);
    const create = d.backends.map((b) => `${b.backend === 'zfs' ? 'zfs-fuse' : 'XFS reflink'}: pilot ${b.creation.pilot_objects} objects in ${b.creation.pilot_s} s → ${n(b.creation.requested_vdis * 6)} objects extrapolated ${b.creation.extrapolated_s_for_requested} s; made ${n(b.vdis * 6)} in ${b.creation.total_s} s`);
    return (
      table(['SR', 'scan', 'SR.scan wall', 'simulator answering', 'sr_scan (first run): plugin / excl. XAPI wait', 'plugin XenAPI calls', 'zfs commands (per run)', 'plugin runs'], rows) +
      `\n\nVDI.snapshot of one disk in the big SR (median of 3): ${extra.join('; ')}.\n\nCreation (backend classes in-process, 8 VDIs at a time): ${create.join('; ')}.\n\n${footer(d)}`
    );
  },
  fragmentation(d) {
    const rows = d.checkpoints.map((c) => [
      c.n,
      `${n(c.extents)} (${n(c.shared_extents)} shared)`,
      n(c.randread_2k.iops),
      `${n(c.randwrite_2k_cow.iops)}${c.randwrite_2k_in_place ? ` (in place: ${n(c.randwrite_2k_in_place.iops)})` : ''}`,
      `${Math.round(c.seqread_1m.bw_mib_s)} MiB/s`,
      ms(c.snapshot_api_ms.median),
      ms(c.snapshot_plugin_ms.median),
      ms(c.ficlone_ms.median),
    ]);
    return `${table(['N diverged snapshots', 'extents of the live image', '2 KiB rand read IOPS', '2 KiB rand write IOPS (CoW)', '1 MiB seq read', 'VDI.snapshot', 'plugin vdi_snapshot', 'FICLONE alone'], rows)}\n\n${footer(d)}`;
  },
};

// bench/fragmentation-measures.mjs: one row per variant and checkpoint.
function fragmentationMeasures(d) {
  const rows = [];
  for (const v of d.variants) {
    for (const c of v.checkpoints) {
      rows.push([
        v.variant,
        c.n,
        `${n(c.extents)} (${n(c.fragments)})`,
        `${n(Math.round(c.fs_used_mib))} MiB`,
        n(c.randread_2k.iops),
        `${n(c.randwrite_2k_cow.iops)}${c.randwrite_2k_in_place ? ` (in place: ${n(c.randwrite_2k_in_place.iops)})` : ''}`,
        ms(c.ficlone_ms.median),
        ms(c.snapshot_plugin_ms.median),
        ms(c.snapshot_api_ms.median),
      ]);
    }
  }
  const ratios = d.variants.map((v) => `${v.variant}: ${Object.entries(v.ratios).map(([k, r]) => `N=${k.slice(1)} plugin ×${r.snapshot_plugin}, read ×${r.randread_2k}, CoW write ×${r.randwrite_2k_cow}`).join('; ')}`);
  return `${table(['variant', 'N', 'extents (fragments) of the live image', 'used on the fs', '2 KiB rand read IOPS', '2 KiB rand write IOPS (CoW)', 'FICLONE alone', 'plugin vdi_snapshot', 'VDI.snapshot'], rows)}\n\nRatios to N = 0: ${ratios.join(' — ')}.\n\n${footer(d)}`;
}
for (const k of ['fragmentation-measures', 'fragmentation-measures-none', 'fragmentation-measures-relayout']) out[k] = fragmentationMeasures;

const which = process.argv.slice(2);
for (const name of which.length ? which : Object.keys(out)) {
  const d = load(name);
  if (!d) continue;
  console.log(`### ${name}\n\n${out[name](d)}\n`);
}
