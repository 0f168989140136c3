// The table of SM commands: what each provides, and the module that runs it,
// loaded only when that command is called (see registry.ts for why).
import { declare } from './registry.js';
import './driver-info.js';
// Light (validation only; the backends themselves load on first use), and it
// registers the device-config keys that driver info documents.
import '../backends/type-analysis.js';

declare('sr_attach', [], () => import('./commands/sr-attach.js'));
declare('sr_create', [], () => import('./commands/sr-create.js'));
declare('sr_delete', [], () => import('./commands/sr-delete.js'));
declare('sr_detach', [], () => import('./commands/sr-detach.js'));
declare('sr_probe', ['SR_PROBE'], () => import('./commands/sr-probe.js'));
declare('sr_scan', [], () => import('./commands/sr-scan.js'));
declare('sr_update', ['SR_UPDATE'], () => import('./commands/sr-update.js'));
declare('vdi_attach', ['VDI_ATTACH'], () => import('./commands/vdi-attach.js'));
declare('vdi_detach', ['VDI_DETACH'], () => import('./commands/vdi-attach.js'));
declare('vdi_activate', ['VDI_ACTIVATE'], () => import('./commands/vdi-attach.js'));
declare('vdi_deactivate', ['VDI_DEACTIVATE'], () => import('./commands/vdi-attach.js'));
declare('vdi_clone', ['VDI_CLONE'], () => import('./commands/vdi-clone.js'));
declare('vdi_create', ['VDI_CREATE', 'THIN_PROVISIONING'], () => import('./commands/vdi-create.js'));
declare('vdi_delete', ['VDI_DELETE'], () => import('./commands/vdi-delete.js'));
declare('vdi_epoch_begin', [], () => import('./commands/vdi-epoch.js'));
declare('vdi_epoch_end', [], () => import('./commands/vdi-epoch.js'));
declare('vdi_introduce', ['VDI_INTRODUCE'], () => import('./commands/vdi-introduce.js'));
declare('vdi_resize', ['VDI_RESIZE'], () => import('./commands/vdi-resize.js'));
declare('vdi_revert', ['VDI_REVERT'], () => import('./commands/vdi-revert.js'));
declare('vdi_snapshot', ['VDI_SNAPSHOT'], () => import('./commands/vdi-snapshot.js'));
declare('vdi_update', ['VDI_UPDATE'], () => import('./commands/vdi-update.js'));
