// Cold start of the installed driver: median wall time and peak RSS of
// plugin/FlatSnapSR answering sr_get_driver_info (what xapi runs at discovery),
// next to bare `node -e 0` in the same run. Target: <= 1.5x bare Node, < 80 MB.
// Usage: node bench/cold-start.mjs [--runs N] [--record]  (--record writes bench/results/)
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] || 0) || 41;
const DRIVER_INFO =
  '<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>';

const spec = {
  runs,
  env: { FLATSNAP_SMLOG: '/dev/null' },
  commands: { 'node -e 0': [process.execPath, '-e', '0'], 'plugin/FlatSnapSR': ['plugin/FlatSnapSR', DRIVER_INFO] },
};
const raw = JSON.parse(execFileSync('bench/lib/rusage.py', [], { input: JSON.stringify(spec) }).toString());
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rows = Object.entries(raw).map(([name, r]) => ({ name, wall: median(r.wall_ms), cpu: median(r.cpu_ms), rss: Math.max(...r.maxrss_mb) }));
const ratio = rows[1].wall / rows[0].wall;
// CPU time (user+sys) barely moves with background load, unlike wall time: a
// second view of the same cost when the machine is busy.
const cpuRatio = rows[1].cpu / rows[0].cpu;
const result = {
  date: new Date().toISOString(),
  node: process.version,
  cpu: cpus()[0]?.model,
  runs,
  rows,
  ratio,
  cpuRatio,
  loadavg: loadavg(),
  targets: { ratio: 1.5, rss_mb: 80 },
  pass: ratio <= 1.5 && rows[1].rss < 80,
};
for (const r of rows) console.log(`${r.name.padEnd(20)} median wall ${r.wall.toFixed(1).padStart(6)} ms   cpu ${r.cpu.toFixed(1).padStart(6)} ms   peak RSS ${r.rss.toFixed(1)} MB`);
console.log(`wall ratio ${ratio.toFixed(2)} (target <= 1.5), ${result.pass ? 'PASS' : 'MISS'}; cpu ratio ${cpuRatio.toFixed(2)}; load ${loadavg()[0].toFixed(2)}`);
if (args.includes('--record')) {
  mkdirSync('bench/results', { recursive: true });
  writeFileSync('bench/results/cold-start.json', `${JSON.stringify(result, null, 2)}\n`);
}
