// Every declared command's module registers the code that runs it, and driver
// info advertises the declared capabilities without loading any of them.
import '../../src/sr/commands.js';
import { advertisedCapabilities, declaredCommands, lookup } from '../../src/sr/registry.js';

test('driver info knows every capability before any command module is loaded', () => {
  expect(advertisedCapabilities()).toEqual(
    expect.arrayContaining(['VDI_SNAPSHOT', 'VDI_CLONE', 'VDI_DELETE', 'VDI_CREATE', 'VDI_UPDATE', 'SR_UPDATE', 'VDI_REVERT']),
  );
  expect(advertisedCapabilities()).not.toContain('VDI_ATTACH_OFFLINE');
});

test.each(declaredCommands().map((c) => [c]))('%s loads and registers its handler', async (cmd) => {
  const spec = await lookup(cmd);
  expect(typeof spec?.run).toBe('function');
});
