// A fake tap-ctl for tests: blktap's state in state.json beside the script, so each
// copy (one per simulated host) is its own host's blktap. `allocate` makes a real
// block node (mknod: needs root) for the driver's backend node to copy: in
// <dir>/tapdevs, or in <root>/dev/xen/blktap-2 when installed as <root>/usr/sbin/tap-ctl.
//
// - state.json: { next, taps: [{minor, pid, args, ro, paused}], log: ["<argv>"...],
//   events: [{cmd, args, seen}] } where `seen` lists the directory of the tapdisk's
//   image at pause and unpause (what storage held while the guest was held);
// - a file named fail-<command> beside the script makes that command fail (exit 1);
//   FAKE_TAP_FAIL_OPEN=1 in the environment makes `open` fail.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const FAKE_TAP_CTL = `#!${process.execPath}
// A fake tap-ctl: blktap's state in state.json next to this script.
const fs = require('fs'); const path = require('path'); const cp = require('child_process');
const dir = path.dirname(process.argv[1]);
const file = path.join(dir, 'state.json');
const st = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : { next: 0, taps: [], log: [], events: [] };
st.events = st.events || [];
const [cmd, ...rest] = process.argv.slice(2);
const opt = (k) => { const i = rest.indexOf(k); return i < 0 ? undefined : rest[i + 1]; };
st.log.push([cmd, ...rest].join(' '));
const save = () => fs.writeFileSync(file, JSON.stringify(st));
if (fs.existsSync(path.join(dir, 'fail-' + cmd))) { save(); console.error(cmd + ' failed (fail-' + cmd + ')'); process.exit(1); }
const tap = () => st.taps.find((t) => t.minor === Number(opt('-m')));
const seen = (t) => { const img = t && t.args && t.args.replace(/^aio:/, ''); try { return img ? fs.readdirSync(path.dirname(img)).sort() : []; } catch { return []; } };
switch (cmd) {
  case 'list':
    for (const t of st.taps) console.log([t.pid !== undefined ? 'pid=' + t.pid : '', 'minor=' + t.minor, 'state=' + (t.paused ? '0x2' : '0'), t.args ? 'args=' + t.args : ''].filter(Boolean).join(' '));
    break;
  case 'allocate': {
    const m = st.next++;
    // Installed as <root>/usr/sbin/tap-ctl (a simulated host): <root>/dev/xen/blktap-2, as blktap.
    const devs = path.basename(dir) === 'sbin' ? path.join(dir, '..', '..', 'dev', 'xen', 'blktap-2') : path.join(dir, 'tapdevs');
    const dev = path.join(devs, 'tapdev' + m);
    fs.mkdirSync(path.dirname(dev), { recursive: true });
    cp.execFileSync('mknod', [dev, 'b', '254', String(m)]);
    st.taps.push({ minor: m });
    console.log(dev);
    break;
  }
  case 'spawn': console.log(String(40000 + st.next)); break;
  case 'attach': tap().pid = Number(opt('-p')); break;
  case 'open':
    if (process.env.FAKE_TAP_FAIL_OPEN) { save(); console.error('open failed'); process.exit(1); }
    tap().args = opt('-a'); tap().ro = rest.includes('-R'); break;
  case 'pause': {
    const t = tap();
    if (!t || t.pid !== Number(opt('-p'))) { save(); console.error('no such tapdisk'); process.exit(1); }
    t.paused = true; st.events.push({ cmd, args: t.args, seen: seen(t) }); break;
  }
  case 'unpause': {
    const t = tap();
    if (!t || t.pid !== Number(opt('-p'))) { save(); console.error('no such tapdisk'); process.exit(1); }
    if (opt('-a') !== undefined) t.args = opt('-a');
    delete t.paused; st.events.push({ cmd, args: t.args, seen: seen(t) }); break;
  }
  case 'close': delete tap().args; break;
  case 'detach': delete tap().pid; break;
  case 'free': st.taps = st.taps.filter((t) => t.minor !== Number(opt('-m'))); break;
  default: console.error('unknown ' + cmd); process.exit(2);
}
save();
`;

export interface FakeTap {
  pid?: number;
  minor: number;
  args?: string;
  ro?: boolean;
  paused?: boolean;
}

export interface FakeTapState {
  next: number;
  taps: FakeTap[];
  log: string[];
  events: Array<{ cmd: 'pause' | 'unpause'; args?: string; seen: string[] }>;
}

/** Writes the fake as `<dir>/tap-ctl`; returns its path. */
export function installFakeTapCtl(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'tap-ctl');
  writeFileSync(file, FAKE_TAP_CTL);
  chmodSync(file, 0o755);
  return file;
}

/** The fake's state (everything it was asked, and what runs) in `dir`. */
export function fakeTapState(dir: string): FakeTapState {
  try {
    const st = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as FakeTapState;
    return { ...st, events: st.events ?? [] };
  } catch {
    return { next: 0, taps: [], log: [], events: [] };
  }
}
