// The control module's table: SM command name -> handler. A command that is not in
// the table answers the SM "not implemented" fault (38), which xapi turns into
// SR_OPERATION_NOT_SUPPORTED / UNIMPLEMENTED_IN_SM_BACKEND rather than a crash.
//
// Commands are *declared* (src/sr/commands.ts) with their capabilities and a loader,
// and their module *registers* the code that runs them when it is loaded. So a call
// loads only the module of the command it runs, while sr_get_driver_info still
// derives the advertised capabilities from the whole table, never from a
// hand-written list.
import type { SmCommand, SmRequest } from '../smapi/request.js';
import type { XmlRpcValue } from '../smapi/xmlrpc.js';

export interface CommandContext {
  req: SmRequest;
}

export type RunFn = (ctx: CommandContext) => Promise<XmlRpcValue>;

export interface CommandSpec {
  /** SM capability strings this command provides. */
  capabilities: readonly string[];
  run: RunFn;
}

interface Entry {
  capabilities: readonly string[];
  run?: RunFn;
  load?: () => Promise<unknown>;
}

const table = new Map<SmCommand, Entry>();

/** Declares a command, its capabilities and how to load the module that registers it. */
export function declare(command: SmCommand, capabilities: readonly string[], load: () => Promise<unknown>): void {
  table.set(command, { capabilities, load });
}

/** Called by a command's module (or for a command declared nowhere else, with its capabilities). */
export function register(command: SmCommand, spec: { capabilities?: readonly string[]; run: RunFn }): void {
  const declared = table.get(command);
  table.set(command, { capabilities: spec.capabilities ?? declared?.capabilities ?? [], run: spec.run });
}

export async function lookup(command: SmCommand): Promise<CommandSpec | undefined> {
  const e = table.get(command);
  if (!e) return undefined;
  if (!e.run && e.load) await e.load();
  const loaded = table.get(command)!;
  if (!loaded.run) throw new Error(`${command}: its module registered no handler`);
  return { capabilities: loaded.capabilities, run: loaded.run };
}

export function declaredCommands(): SmCommand[] {
  return [...table.keys()];
}

export function advertisedCapabilities(): string[] {
  const caps = new Set<string>();
  for (const e of table.values()) for (const c of e.capabilities) caps.add(c);
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
