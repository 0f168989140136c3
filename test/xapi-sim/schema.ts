// The classes the simulator serves, with xapi's field names, types and which
// fields get generated setters (RW in datamodel.ml). Reverse fields (SR.VDIs,
// VDI.snapshots, VM.children, ...) are computed from the forward refs, as xapi
// computes its one-to-many relations.

export type FieldType =
  | { t: 'string' }
  | { t: 'int' }
  | { t: 'float' }
  | { t: 'bool' }
  | { t: 'datetime' }
  | { t: 'enum'; values: string[] }
  | { t: 'ref'; cls: string }
  | { t: 'map' } // string -> string
  | { t: 'intmap' } // string -> int64 (SM.features)
  | { t: 'set' } // string set
  | { t: 'refset'; cls: string } // stored set of refs
  | { t: 'rev'; cls: string; field: string }; // computed reverse of cls.field

export interface FieldSpec {
  name: string;
  type: FieldType;
  rw: boolean;
  def?: unknown;
}

export interface ClassSpec {
  name: string;
  fields: FieldSpec[];
  byName: Map<string, FieldSpec>;
  /** has get_all_records etc. exposed (session is not) */
  listed: boolean;
  hasNameLabel: boolean;
}

function parse(spec: string): { type: FieldType; rw: boolean; def?: unknown } {
  const eq = spec.indexOf(' =');
  const def = eq < 0 ? undefined : JSON.parse(spec.slice(eq + 2));
  const [t, ...flags] = (eq < 0 ? spec : spec.slice(0, eq)).split(' ');
  const rw = flags.includes('rw');
  const [kind, arg] = (t ?? '').split(':');
  let type: FieldType;
  switch (kind) {
    case 's':
      type = { t: 'string' };
      break;
    case 'i':
      type = { t: 'int' };
      break;
    case 'f':
      type = { t: 'float' };
      break;
    case 'b':
      type = { t: 'bool' };
      break;
    case 'd':
      type = { t: 'datetime' };
      break;
    case 'e':
      type = { t: 'enum', values: (arg ?? '').split('|') };
      break;
    case 'r':
      type = { t: 'ref', cls: arg! };
      break;
    case 'm':
      type = { t: 'map' };
      break;
    case 'mi':
      type = { t: 'intmap' };
      break;
    case 'ss':
      type = { t: 'set' };
      break;
    case 'rs':
      type = { t: 'refset', cls: arg! };
      break;
    case 'rev': {
      const [cls, field] = (arg ?? '').split('.');
      type = { t: 'rev', cls: cls!, field: field! };
      break;
    }
    default:
      throw new Error(`bad field spec ${spec}`);
  }
  return { type, rw, def };
}

function cls(name: string, fields: Record<string, string>, listed = true): ClassSpec {
  const list: FieldSpec[] = Object.entries(fields).map(([n, s]) => ({ name: n, ...parse(s) }));
  return { name, fields: list, byName: new Map(list.map((f) => [f.name, f])), listed, hasNameLabel: 'name_label' in fields };
}

export const SCHEMA: Record<string, ClassSpec> = {
  session: cls(
    'session',
    {
      uuid: 's',
      this_host: 'r:host',
      this_user: 'r:user',
      last_active: 'd',
      pool: 'b',
      other_config: 'm rw',
      is_local_superuser: 'b',
      subject: 'r:subject',
      validation_time: 'd',
      auth_user_sid: 's',
      auth_user_name: 's',
      rbac_permissions: 'ss',
      tasks: 'rev:task.session',
      parent: 'r:session',
      originator: 's',
      client_certificate: 'b',
    },
    false,
  ),
  pool: cls('pool', {
    uuid: 's',
    name_label: 's rw',
    name_description: 's rw',
    master: 'r:host',
    default_SR: 'r:SR rw',
    suspend_image_SR: 'r:SR rw',
    crash_dump_SR: 'r:SR rw',
    other_config: 'm rw',
    ha_enabled: 'b',
    ha_configuration: 'm',
    blobs: 'm',
    tags: 'ss rw',
    gui_config: 'm rw',
    restrictions: 'm',
    metadata_VDIs: 'rev:VDI.metadata_of_pool',
    cpu_info: 'm',
  }),
  host: cls('host', {
    uuid: 's',
    name_label: 's rw',
    name_description: 's rw',
    memory_overhead: 'i',
    allowed_operations: 'ss',
    current_operations: 'm',
    API_version_major: 'i =2',
    API_version_minor: 'i =21',
    API_version_vendor: 's ="XenSource"',
    API_version_vendor_implementation: 'm',
    enabled: 'b =true',
    software_version: 'm',
    other_config: 'm rw',
    capabilities: 'ss',
    cpu_configuration: 'm',
    sched_policy: 's',
    supported_bootloaders: 'ss',
    resident_VMs: 'rev:VM.resident_on',
    logging: 'm rw',
    PIFs: 'ss',
    suspend_image_sr: 'r:SR rw',
    crash_dump_sr: 'r:SR rw',
    PBDs: 'rev:PBD.host',
    hostname: 's',
    address: 's',
    blobs: 'm',
    tags: 'ss rw',
    external_auth_type: 's',
    local_cache_sr: 'r:SR',
  }),
  SM: cls('SM', {
    uuid: 's',
    name_label: 's',
    name_description: 's',
    type: 's',
    vendor: 's',
    copyright: 's',
    version: 's',
    required_api_version: 's',
    configuration: 'm',
    capabilities: 'ss',
    features: 'mi',
    host_pending_features: 'm',
    other_config: 'm rw',
    driver_filename: 's',
    required_cluster_stack: 'ss',
    supported_image_formats: 'ss',
  }),
  SR: cls('SR', {
    uuid: 's',
    name_label: 's rw',
    name_description: 's rw',
    allowed_operations: 'ss',
    current_operations: 'm',
    VDIs: 'rev:VDI.SR',
    PBDs: 'rev:PBD.SR',
    virtual_allocation: 'i',
    physical_utilisation: 'i =-1',
    physical_size: 'i =-1',
    type: 's',
    content_type: 's',
    shared: 'b',
    other_config: 'm rw',
    tags: 'ss rw',
    sm_config: 'm rw',
    blobs: 'm',
    local_cache_enabled: 'b',
    introduced_by: 'r:DR_task',
    clustered: 'b',
    is_tools_sr: 'b',
  }),
  PBD: cls('PBD', {
    uuid: 's',
    host: 'r:host',
    SR: 'r:SR',
    device_config: 'm',
    currently_attached: 'b',
    other_config: 'm rw',
  }),
  VDI: cls('VDI', {
    uuid: 's',
    name_label: 's',
    name_description: 's',
    allowed_operations: 'ss',
    current_operations: 'm',
    SR: 'r:SR',
    VBDs: 'rev:VBD.VDI',
    crash_dumps: 'ss',
    virtual_size: 'i',
    physical_utilisation: 'i',
    type: 'e:system|user|ephemeral|suspend|crashdump|ha_statefile|metadata|redo_log|rrd|pvs_cache|cbt_metadata ="user"',
    sharable: 'b',
    read_only: 'b',
    other_config: 'm rw',
    storage_lock: 'b',
    location: 's',
    managed: 'b =true',
    missing: 'b',
    parent: 'r:VDI',
    xenstore_data: 'm rw',
    sm_config: 'm rw',
    is_a_snapshot: 'b',
    snapshot_of: 'r:VDI',
    snapshots: 'rev:VDI.snapshot_of',
    snapshot_time: 'd',
    tags: 'ss rw',
    allow_caching: 'b',
    on_boot: 'e:persist|reset ="persist"',
    metadata_of_pool: 'r:pool',
    metadata_latest: 'b',
    is_tools_iso: 'b',
    cbt_enabled: 'b',
  }),
  VBD: cls('VBD', {
    uuid: 's',
    allowed_operations: 'ss',
    current_operations: 'm',
    VM: 'r:VM',
    VDI: 'r:VDI',
    device: 's',
    userdevice: 's rw',
    bootable: 'b rw',
    mode: 'e:RO|RW rw ="RW"',
    type: 'e:CD|Disk|Floppy rw ="Disk"',
    unpluggable: 'b rw',
    storage_lock: 'b',
    empty: 'b',
    other_config: 'm rw',
    currently_attached: 'b',
    status_code: 'i',
    status_detail: 's',
    runtime_properties: 'm',
    qos_algorithm_type: 's rw',
    qos_algorithm_params: 'm rw',
    qos_supported_algorithms: 'ss',
    metrics: 'r:VBD_metrics',
  }),
  VM: cls('VM', {
    uuid: 's',
    allowed_operations: 'ss',
    current_operations: 'm',
    name_label: 's rw',
    name_description: 's rw',
    power_state: 'e:Halted|Paused|Running|Suspended ="Halted"',
    user_version: 'i rw =1',
    is_a_template: 'b rw',
    is_default_template: 'b',
    suspend_VDI: 'r:VDI',
    resident_on: 'r:host',
    scheduled_to_be_resident_on: 'r:host',
    affinity: 'r:host rw',
    memory_overhead: 'i',
    memory_target: 'i',
    memory_static_max: 'i =1073741824',
    memory_dynamic_max: 'i =1073741824',
    memory_dynamic_min: 'i =1073741824',
    memory_static_min: 'i =1073741824',
    VCPUs_params: 'm rw',
    VCPUs_max: 'i =1',
    VCPUs_at_startup: 'i =1',
    actions_after_softreboot: 's ="soft_reboot"',
    actions_after_shutdown: 's rw ="destroy"',
    actions_after_reboot: 's rw ="restart"',
    actions_after_crash: 's rw ="restart"',
    consoles: 'ss',
    VIFs: 'ss',
    VBDs: 'rev:VBD.VM',
    VUSBs: 'ss',
    crash_dumps: 'ss',
    VTPMs: 'ss',
    PV_bootloader: 's rw',
    PV_kernel: 's rw',
    PV_ramdisk: 's rw',
    PV_args: 's rw',
    PV_bootloader_args: 's rw',
    PV_legacy_args: 's rw',
    HVM_boot_policy: 's rw ="BIOS order"',
    HVM_boot_params: 'm rw',
    HVM_shadow_multiplier: 'f =1',
    platform: 'm rw',
    PCI_bus: 's',
    other_config: 'm rw',
    domid: 'i =-1',
    domarch: 's',
    last_boot_CPU_flags: 'm',
    is_control_domain: 'b',
    metrics: 'r:VM_metrics',
    guest_metrics: 'r:VM_guest_metrics',
    last_booted_record: 's',
    recommendations: 's rw',
    xenstore_data: 'm rw',
    ha_always_run: 'b',
    ha_restart_priority: 's',
    is_a_snapshot: 'b',
    snapshot_of: 'r:VM',
    snapshots: 'rev:VM.snapshot_of',
    snapshot_time: 'd',
    transportable_snapshot_id: 's',
    blobs: 'm',
    tags: 'ss rw',
    blocked_operations: 'm rw',
    snapshot_info: 'm',
    snapshot_metadata: 's',
    parent: 'r:VM',
    children: 'rev:VM.parent',
    bios_strings: 'm',
    protection_policy: 'r:VMPP',
    is_snapshot_from_vmpp: 'b',
    snapshot_schedule: 'r:VMSS',
    is_vmss_snapshot: 'b',
    appliance: 'r:VM_appliance',
    start_delay: 'i',
    shutdown_delay: 'i',
    order: 'i',
    VGPUs: 'ss',
    attached_PCIs: 'ss',
    suspend_SR: 'r:SR rw',
    version: 'i',
    generation_id: 's',
    hardware_platform_version: 'i',
    has_vendor_device: 'b rw',
    requires_reboot: 'b',
    reference_label: 's',
    domain_type: 's ="hvm"',
    NVRAM: 'm rw',
    pending_guidances: 'ss',
  }),
  task: cls('task', {
    uuid: 's',
    name_label: 's',
    name_description: 's',
    allowed_operations: 'ss',
    current_operations: 'm',
    created: 'd',
    finished: 'd',
    status: 'e:pending|success|failure|cancelling|cancelled ="pending"',
    resident_on: 'r:host',
    progress: 'f',
    type: 's',
    result: 's',
    error_info: 'ss',
    other_config: 'm rw',
    subtask_of: 'r:task',
    subtasks: 'rev:task.subtask_of',
    backtrace: 's',
    session: 'r:session',
  }),
};

/** Fields of task that xapi does not show in records (internal). */
export const HIDDEN_FIELDS: Record<string, Set<string>> = { task: new Set(['session']) };

export function classOf(name: string): ClassSpec | undefined {
  return SCHEMA[name];
}

/** Case-insensitive class lookup (event classes are lower-case). */
export function classByLower(name: string): ClassSpec | undefined {
  const l = name.toLowerCase();
  return Object.values(SCHEMA).find((c) => c.name.toLowerCase() === l);
}

export function defaultOf(f: FieldSpec): unknown {
  if (f.def !== undefined) return f.def;
  switch (f.type.t) {
    case 'string':
      return '';
    case 'int':
    case 'float':
      return 0;
    case 'bool':
      return false;
    case 'datetime':
      return '19700101T00:00:00Z';
    case 'enum':
      return f.type.values[0];
    case 'ref':
      return 'OpaqueRef:NULL';
    case 'map':
    case 'intmap':
      return {};
    case 'set':
    case 'refset':
      return [];
    case 'rev':
      return undefined;
  }
}

