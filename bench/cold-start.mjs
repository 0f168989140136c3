// Cold start of the installed driver: median wall time and peak RSS of
// plugin/FlatSnapSR answering sr_get_driver_info (what xapi runs at discovery),
// next to bare `node -e 0` in the same run. Target: <= 1.5x bare Node, < 80 MB.
// Two ordinary commands are timed alongside, to show the start-up every other call
// pays: vdi_attach and sr_scan on an SR directory that does not exist, which need
// neither xapi nor storage and fail fast (faults 46 and 47) after the parse, the
// log, the dispatch, the shared-SR rules, the type analysis and the backend's open.
// --instructions adds each command's instruction count under valgrind's callgrind
// (median of 5 runs): unlike wall time it hardly moves with the machine's load.
// Usage: node bench/cold-start.mjs [--runs N] [--instructions] [--record]  (--record writes bench/results/)
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] || 0) || 41;
const DRIVER_INFO =
  '<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>';

/** A request encoded as xapi's sm_exec writes it: bare string values, no header. */
function xapiCall(command, fields) {
  const value = (v) =>
    typeof v === 'string'
      ? `<value>${v}</value>`
      : Array.isArray(v)
        ? `<value><array><data>${v.map(value).join('')}</data></array></value>`
        : `<value><struct>${Object.entries(v).map(([k, x]) => `<member><name>${k}</name>${value(x)}</member>`).join('')}</struct></value>`;
  return `<methodCall><methodName>${command}</methodName><params><param>${value({ host_ref: 'OpaqueRef:NULL', command, ...fields })}</param></params></methodCall>`;
}

const scratch = mkdtempSync(join(tmpdir(), 'flatsnap-cold-'));
const sr = {
  device_config: { SRmaster: 'true', path: join(scratch, 'no-sr') },
  session_ref: 'OpaqueRef:NULL',
  sr_ref: 'OpaqueRef:NULL',
  sr_uuid: '00000000-0000-4000-8000-000000000000',
};
const vdi = { vdi_ref: 'OpaqueRef:NULL', vdi_location: '00000000-0000-4000-8000-000000000001', vdi_uuid: '00000000-0000-4000-8000-000000000001' };

const INFO = 'FlatSnapSR sr_get_driver_info';
const spec = {
  runs,
  env: { FLATSNAP_SMLOG: '/dev/null', FLATSNAP_LOCK_DIR: join(scratch, 'lock') },
  commands: {
    'node -e 0': [process.execPath, '-e', '0'],
    [INFO]: ['plugin/FlatSnapSR', DRIVER_INFO],
    'FlatSnapSR vdi_attach, no SR': ['plugin/FlatSnapSR', xapiCall('vdi_attach', { args: ['true'], ...sr, ...vdi })],
    'FlatSnapSR sr_scan, no SR': ['plugin/FlatSnapSR', xapiCall('sr_scan', { args: [], ...sr })],
  },
};
const loadBefore = loadavg();
let raw;
let instructions;
try {
  raw = JSON.parse(execFileSync('bench/lib/rusage.py', [], { input: JSON.stringify(spec) }).toString());
  if (args.includes('--instructions')) {
    instructions = {};
    const env = { PATH: '/sbin:/usr/sbin:/bin:/usr/bin', ORIGINATOR: 'SM', ...spec.env };
    for (const [name, argv] of Object.entries(spec.commands)) {
      const counts = [];
      for (let i = 0; i < 5; i++) {
        const r = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', ...argv], { env, stdio: ['ignore', 'ignore', 'pipe'] });
        const m = /Collected : (\d+)/.exec(r.stderr?.toString() ?? '');
        if (!m) throw new Error(`valgrind gave no count for ${name} (is valgrind installed?)`);
        counts.push(Number(m[1]));
      }
      instructions[name] = counts;
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
const loadAfter = loadavg();
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = Object.entries(raw).map(([name, r]) => ({ name, wall: median(r.wall_ms), cpu: median(r.cpu_ms), rss: Math.max(...r.maxrss_mb) }));
const bare = rows[0];
for (const r of rows) {
  r.wallRatio = r.wall / bare.wall;
  r.cpuRatio = r.cpu / bare.cpu;
  if (instructions) {
    r.instructions = median(instructions[r.name]);
    r.instructionRatio = r.instructions / median(instructions[bare.name]);
  }
}
const info = rows.find((r) => r.name === INFO);
const ratio = info.wallRatio;
// CPU time (user+sys) barely moves with background load, unlike wall time: a
// second view of the same cost when the machine is busy.
const cpuRatio = info.cpuRatio;
const result = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model,
  runs,
  rows,
  ratio,
  cpuRatio,
  loadavg: loadBefore,
  loadavgAfter: loadAfter,
  targets: { ratio: 1.5, rss_mb: 80 },
  pass: ratio <= 1.5 && info.rss < 80,
};
for (const r of rows) {
  console.log(
    `${r.name.padEnd(30)} median wall ${r.wall.toFixed(1).padStart(6)} ms (x${r.wallRatio.toFixed(2)})   cpu ${r.cpu.toFixed(1).padStart(6)} ms (x${r.cpuRatio.toFixed(2)})   peak RSS ${r.rss.toFixed(1)} MB` +
      (r.instructions ? `   ${(r.instructions / 1e6).toFixed(1)} M instructions (x${r.instructionRatio.toFixed(2)})` : ''),
  );
}
console.log(
  `sr_get_driver_info: wall ratio ${ratio.toFixed(2)} (target <= 1.5), ${result.pass ? 'PASS' : 'MISS'}; cpu ratio ${cpuRatio.toFixed(2)}; load ${loadBefore[0].toFixed(2)} -> ${loadAfter[0].toFixed(2)}`,
);
if (args.includes('--record')) {
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/cold-start.json', `${JSON.stringify(result, null, 2)}\n`);
}
