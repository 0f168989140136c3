// Which mount an SR directory lives on, and with which options, from
// /proc/self/mounts: the one thing statfs(2) cannot tell is a mount option, and
// one OCFS2 option, `localflocks`, quietly turns the cross-host lock of a shared
// SR into a per-host one (docs/shared-srs.md).
import { readFileSync, realpathSync } from 'node:fs';

export interface MountEntry {
  source: string;
  mountpoint: string;
  fstype: string;
  /** Comma-separated options, split; empty items dropped (OCFS2 prints ",localflocks,"). */
  options: string[];
}

/** The kernel escapes space, tab, newline and backslash in mounts as \ooo octal. */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mounts (fstab format); malformed lines are skipped. */
export function parseMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    out.push({
      source: unescape(f[0]!),
      mountpoint: unescape(f[1]!),
      fstype: f[2]!,
      options: f[3]!.split(',').filter((o) => o !== ''),
    });
  }
  return out;
}

function contains(mountpoint: string, path: string): boolean {
  if (mountpoint === '/') return path.startsWith('/');
  return path === mountpoint || path.startsWith(`${mountpoint}/`);
}

/**
 * The mount `path` (absolute, symlinks already resolved) is on: the deepest mountpoint
 * containing it; of several mounts on one mountpoint the last one listed, which is the
 * one on top.
 */
export function mountOf(entries: readonly MountEntry[], path: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of entries) {
    if (!contains(m.mountpoint, path)) continue;
    if (best === undefined || m.mountpoint.length >= best.mountpoint.length) best = m;
  }
  return best;
}

/**
 * Why flock(2) on this mount would not exclude the other hosts of a pool, or undefined.
 * OCFS2 hands flock to its DLM unless mounted with `localflocks`; a local OCFS2 mount
 * (no heartbeat: one node only) has no other host to exclude, so there it does not matter.
 */
export function clusterFlockProblem(m: MountEntry): string | undefined {
  if (m.fstype !== 'ocfs2' || !m.options.includes('localflocks')) return undefined;
  if (m.options.includes('heartbeat=none') || m.options.includes('nocluster')) return undefined;
  return (
    `${m.mountpoint} is OCFS2 mounted with "localflocks": flock(2) locks then stay on each host, ` +
    'so the cross-host lock of a shared SR would not keep two hosts from changing it at once. ' +
    'Remount it without localflocks on every host'
  );
}

/** The mount entry of directory `dir`, undefined when it or /proc/self/mounts cannot be read. */
export function readMountOf(dir: string, mountsFile = '/proc/self/mounts'): MountEntry | undefined {
  let real: string;
  let text: string;
  try {
    real = realpathSync(dir);
    text = readFileSync(mountsFile, 'utf8');
  } catch {
    return undefined;
  }
  return mountOf(parseMounts(text), real);
}
