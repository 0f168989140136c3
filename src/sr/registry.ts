// The control module's table: SM command name -> handler. A command that is not in
// the table answers the SM "not implemented" fault (38), which xapi turns into
// SR_OPERATION_NOT_SUPPORTED / UNIMPLEMENTED_IN_SM_BACKEND rather than a crash.
// Capabilities advertised by sr_get_driver_info are derived from this table, so
// the driver never claims what it cannot do.
import type { SmCommand, SmRequest } from '../smapi/request.js';
import type { XmlRpcValue } from '../smapi/xmlrpc.js';

export interface CommandContext {
  req: SmRequest;
}

export interface CommandSpec {
  /** SM capability strings this command provides (a capability needs all of its commands). */
  capabilities: readonly string[];
  run(ctx: CommandContext): Promise<XmlRpcValue>;
}

const table = new Map<SmCommand, CommandSpec>();

export function register(command: SmCommand, spec: CommandSpec): void {
  table.set(command, spec);
}

export function lookup(command: SmCommand): CommandSpec | undefined {
  return table.get(command);
}

export function advertisedCapabilities(): string[] {
  const caps = new Set<string>();
  for (const spec of table.values()) for (const c of spec.capabilities) caps.add(c);
  return [...caps].sort();
}

/** device_config keys with their descriptions, registered by the backends' type analysis. */
const configuration: Array<{ key: string; description: string }> = [];

export function registerConfigKey(key: string, description: string): void {
  if (!configuration.some((c) => c.key === key)) configuration.push({ key, description });
}

export function configurationKeys(): Array<{ key: string; description: string }> {
  return [...configuration];
}
