// What the ZFS backend's pool and volume functions share: the command layer, the SR
// root, and the injectable bits (clock-free waits, file checks, logging) that let
// unit tests script every command.
import type { ZfsCli, ZfsLogger } from './cli.js';
import type { ZfsRunner } from './commands.js';
import type { KnownDatasets } from './known.js';

export interface ZfsCtx {
  readonly cli: ZfsCli;
  /** The SR root dataset, device-config:dataset (POOL/PATH). */
  readonly root: string;
  readonly pool: string;
  readonly log: ZfsLogger;
  /** For the commands cli.ts lacks (commands.ts). */
  readonly run: ZfsRunner;
  /** The text of /proc/self/mounts (injectable for tests). */
  readonly readMounts: () => string;
  readonly fileExists: (path: string) => boolean;
  readonly sleep: (ms: number) => Promise<void>;
  /** How long to wait for udev to make a /dev/zvol/... node. */
  readonly zvolTimeoutMs: number;
  /** Raw-file layout: the root's mountpoint when it has none usable (default /var/run/sr-mount/<sr uuid>). */
  readonly mountpoint: string | undefined;
  /** What this instance has read and not changed since (known.ts); locate() looks here first. */
  readonly known: KnownDatasets;
}

/** Volume block size (zvols) and record size (raw-file datasets): see backend.ts. */
export const BLOCK_SIZE = 16384;
/** Raw images are whole 512-byte sectors, what tapdisk's aio driver addresses. */
export const SECTOR = 512;
/** Where XCP-ng keeps SR mounts; used for a raw-file SR root that has no mountpoint. */
export const SR_MOUNT_BASE = '/var/run/sr-mount';
