// Type analysis: which backend an SR uses, decided from its device_config alone.
//
//   device-config:dataset=POOL/PATH     ZFS: VDIs are zvols, snapshots and clones
//   device-config:path=/abs/dir         reflink: VDIs are files on OCFS2/XFS/btrfs
//                  [allow-copy=true]    (full copies where FICLONE is unavailable)
//                  [relayout=auto|off|N] (background relayout of fragmented images)
//                  [unshare=auto|on|off] (live images keep blocks of their own after a snapshot)
//
// Exactly one of dataset/path must be given. Every value is checked before any
// backend sees it, so a bad device_config is refused without touching storage.
// The keys are registered with their descriptions so sr_get_driver_info
// documents them (xe sm-list shows them as the SM's configuration).
import { SmError } from '../errors.js';
import { requireAbsolutePath, show } from '../smapi/validate.js';
import { registerConfigKey } from '../sr/registry.js';
import type { Backend } from './backend.js';
import { DEFAULT_RELAYOUT_THRESHOLD, RELAYOUT_DEFAULT, type RelayoutPolicy, AUTO_UNSHARE_FREE_SHARE, UNSHARE_DEFAULT, type UnshareMode } from './reflink/relayout-policy.js';

export const CONFIG_KEYS = {
  dataset: 'dataset',
  path: 'path',
  allowCopy: 'allow-copy',
  relayout: 'relayout',
  unshare: 'unshare',
} as const;

registerConfigKey(
  CONFIG_KEYS.dataset,
  'ZFS backend: the dataset that holds the SR, POOL/PATH (created by sr-create if missing; VDIs are zvols below it). Exclusive with path.',
);
registerConfigKey(
  CONFIG_KEYS.path,
  'Reflink backend: absolute path of the SR directory on an OCFS2, XFS (reflink=1) or btrfs mount (VDIs are sparse raw files). Exclusive with dataset.',
);
registerConfigKey(
  CONFIG_KEYS.allowCopy,
  'Reflink backend, optional, default false: "true" allows full copies where the filesystem cannot reflink (testing and evaluation only: snapshots then cost a full copy).',
);

registerConfigKey(
  CONFIG_KEYS.relayout,
  `Reflink backend, optional, default "auto": after a snapshot, a live image with at least ${DEFAULT_RELAYOUT_THRESHOLD} extents is rewritten contiguously in the background, still sharing its blocks with its snapshots (docs/fragmentation.md). A number sets that extent threshold; "off" disables it.`,
);

registerConfigKey(
  CONFIG_KEYS.unshare,
  `Reflink backend, optional, default "${UNSHARE_DEFAULT}": after each snapshot, the snapshots move off the live image's blocks in the background (onto the previous snapshot's equal blocks, the rest onto a copy), so that the guest writes in place instead of copy on write. It costs one more copy of each snapshotted disk in space, and reads the disk twice per snapshot (docs/fragmentation.md). "auto" does it only while ${AUTO_UNSHARE_FREE_SHARE * 100} % of the filesystem stays free, "on" down to the last spare margin, "off" never.`
);

export type BackendConfig =
  | { readonly kind: 'zfs'; readonly dataset: string }
  | { readonly kind: 'reflink'; readonly path: string; readonly allowCopy: boolean; readonly relayout?: RelayoutPolicy; readonly unshare?: UnshareMode };

// A strict subset of ZFS's dataset names (src/backends/zfs/names.ts): components of
// letters, digits, '_', '.', ':', '-', never starting with '-' or '.'; the pool name
// begins with a letter. No '@' (snapshot), '#' (bookmark), '%', spaces or control characters.
const COMPONENT = /^[A-Za-z0-9_][A-Za-z0-9_.:-]*$/;
const POOL = /^[A-Za-z][A-Za-z0-9_.:-]*$/;
const RESERVED_POOL = /^(mirror|raidz|draid|spare|log|cache|special|dedup)|^c[0-9]/;
const MAX_DATASET = 255;

/** device-config:dataset, checked: POOL/PATH (at least one component below the pool). */
export function requireDatasetConfig(v: string): string {
  const bad = (why: string): SmError => new SmError('InvalidArg', `device-config:dataset ${show(v)} ${why}`);
  if (v === '') throw bad('is empty');
  if (v.startsWith('/')) throw bad('must not start with "/": give POOL/PATH, not a mountpoint');
  if (v.includes('@')) throw bad('names a snapshot ("@"): give a filesystem, POOL/PATH');
  if (v.length > MAX_DATASET) throw bad(`is longer than ${MAX_DATASET} characters`);
  const parts = v.split('/');
  if (parts.some((p) => p === '')) throw bad('has an empty component ("//" or a trailing "/")');
  const [pool, ...rest] = parts as [string, ...string[]];
  if (!POOL.test(pool) || RESERVED_POOL.test(pool)) throw bad(`has an invalid pool name ${show(pool)}`);
  for (const p of rest) {
    if (!COMPONENT.test(p)) throw bad(`has an invalid component ${show(p)} (allowed: letters, digits, "_", ".", ":", "-"; not first "-" or ".")`);
  }
  if (rest.length === 0) throw bad('is a whole pool: give a dataset below it, POOL/PATH, so the SR never owns the pool root');
  return v;
}

function parseAllowCopy(v: string | undefined): boolean {
  if (v === undefined || v === '' || v === 'false') return false;
  if (v === 'true') return true;
  throw new SmError('InvalidArg', `device-config:${CONFIG_KEYS.allowCopy} must be "true" or "false", got ${show(v)}`);
}

/** device-config:relayout: "auto" (or empty), "off", or a positive extent threshold. */
export function parseRelayout(v: string): RelayoutPolicy {
  if (v === '' || v === 'auto' || v === 'on' || v === 'true') return RELAYOUT_DEFAULT;
  if (v === 'off' || v === 'false') return { enabled: false };
  if (/^[1-9][0-9]{0,8}$/.test(v)) return { enabled: true, threshold: Number(v) };
  throw new SmError('InvalidArg', `device-config:${CONFIG_KEYS.relayout} must be "auto", "off" or an extent count (1 to 999999999), got ${show(v)}`);
}

/** device-config:unshare: "auto" (or empty), "on" or "off". */
export function parseUnshare(v: string): UnshareMode {
  if (v === '' || v === 'auto') return 'auto';
  if (v === 'on' || v === 'true') return 'on';
  if (v === 'off' || v === 'false') return 'off';
  throw new SmError('InvalidArg', `device-config:${CONFIG_KEYS.unshare} must be "auto", "on" or "off", got ${show(v)}`);
}

/** Which backend `device_config` selects, with its checked parameters. Never touches storage. */
export function analyseDeviceConfig(dc: Readonly<Record<string, string>>): BackendConfig {
  const dataset = dc[CONFIG_KEYS.dataset];
  const path = dc[CONFIG_KEYS.path];
  const keys = `device-config:${CONFIG_KEYS.dataset}=POOL/PATH (ZFS) or device-config:${CONFIG_KEYS.path}=/absolute/dir (reflink, optional ${CONFIG_KEYS.allowCopy}=true)`;
  if (dataset !== undefined && path !== undefined) {
    throw new SmError('InvalidArg', `device-config has both ${CONFIG_KEYS.dataset} and ${CONFIG_KEYS.path}; give exactly one of ${keys}`);
  }
  if (dataset === undefined && path === undefined) {
    throw new SmError('ConfigParamsMissing', `device-config needs exactly one of ${keys}`);
  }
  if (dataset !== undefined) {
    for (const k of [CONFIG_KEYS.allowCopy, CONFIG_KEYS.relayout, CONFIG_KEYS.unshare]) {
      if (dc[k] !== undefined) throw new SmError('InvalidArg', `device-config:${k} applies to the reflink backend (path=...), not to dataset=...`);
    }
    return { kind: 'zfs', dataset: requireDatasetConfig(dataset) };
  }
  let abs: string;
  try {
    abs = requireAbsolutePath(`device-config:${CONFIG_KEYS.path}`, path!);
  } catch (e) {
    throw new SmError('InvalidArg', e instanceof SmError ? (e.detail ?? e.message) : String(e));
  }
  if (abs === '/') throw new SmError('InvalidArg', `device-config:${CONFIG_KEYS.path} must not be the root directory`);
  const relayout = dc[CONFIG_KEYS.relayout];
  const unshare = dc[CONFIG_KEYS.unshare];
  return {
    kind: 'reflink',
    path: abs,
    allowCopy: parseAllowCopy(dc[CONFIG_KEYS.allowCopy]),
    ...(relayout !== undefined ? { relayout: parseRelayout(relayout) } : {}),
    ...(unshare !== undefined ? { unshare: parseUnshare(unshare) } : {}),
  };
}

/**
 * Builds the backend for a checked configuration. Each backend's code is loaded here,
 * on first use: a call only evaluates the backend it works on (the ZFS backend brings
 * execa along), and sr_get_driver_info none.
 */
export async function backendFor(cfg: BackendConfig): Promise<Backend> {
  switch (cfg.kind) {
    case 'reflink': {
      const { ReflinkBackend } = await import('./reflink/backend.js');
      return new ReflinkBackend(cfg.path, {
        allowCopy: cfg.allowCopy,
        ...(cfg.relayout ? { relayout: cfg.relayout } : {}),
        ...(cfg.unshare !== undefined ? { unshare: cfg.unshare } : {}),
      });
    }
    case 'zfs': {
      const { ZfsBackend } = await import('./zfs/backend.js');
      return new ZfsBackend(cfg.dataset);
    }
  }
}

/** The backend `device_config` selects (checked first: a bad one never reaches a backend). */
export function openBackend(dc: Readonly<Record<string, string>>): Promise<Backend> {
  try {
    return backendFor(analyseDeviceConfig(dc));
  } catch (e) {
    return Promise.reject(e);
  }
}
