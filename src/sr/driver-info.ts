// sr_get_driver_info: what xapi records in the SM object at discovery. It runs
// without a session, so it must not touch xapi, storage or locks.
import { advertisedCapabilities, configurationKeys, register } from './registry.js';
import { VERSION } from '../version.js';

export const DRIVER_NAME = 'flatsnap';

export function driverInfo() {
  return {
    name: 'flatsnap',
    description: 'Non-linked snapshots: ZFS snapshots and clones, or reflink copies on OCFS2/XFS/btrfs; no VHD chains, no coalesce',
    vendor: 'flatsnap project',
    copyright: '(C) 2026 the flatsnap authors',
    driver_version: VERSION,
    required_api_version: '1.0',
    capabilities: advertisedCapabilities(),
    configuration: configurationKeys(),
    supported_image_formats: ['raw'],
  };
}

register('sr_get_driver_info', { capabilities: [], run: async () => driverInfo() });
