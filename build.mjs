// Bundles each executable into one CommonJS file under plugin/flatsnap-lib/ and
// writes its launcher into plugin/ with the absolute Node path in the shebang
// (see plugin/launcher.cjs for why a launcher and a V8 code cache).
// plugin/install.sh re-stamps the shebang for the target host's Node.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

// xapi's own discovery request: the code it runs is what the cache should hold.
const DRIVER_INFO =
  '<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>';
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const node = process.env.FLATSNAP_NODE ?? process.execPath;
const lib = 'plugin/flatsnap-lib';
mkdirSync(lib, { recursive: true });

// xapi runs sr_get_driver_info at every toolstack start, for every plugin, and it
// must not pay for the whole driver: info.cjs is the same entry with the command
// modules stubbed out (they are only ever loaded lazily), and the launcher sends
// exactly xapi's discovery request there. Anything else goes to driver.cjs.
const stubCommands = {
  name: 'stub-command-modules',
  setup(b) {
    b.onResolve({ filter: /^\.\/commands\/.*\.js$/ }, (a) => (a.importer.endsWith('src/sr/commands.ts') ? { path: a.path, namespace: 'stub' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'stub' }, () => ({ contents: 'throw new Error("info bundle: command modules are not included");', loader: 'js' }));
  },
};
const entries = [
  { src: 'src/bin/FlatSnapSR.ts', bundle: 'info.cjs', plugins: [stubCommands], warm: [DRIVER_INFO] },
  { src: 'src/bin/FlatSnapSR.ts', bundle: 'driver.cjs', launcher: 'plugin/FlatSnapSR', info: 'info.cjs', warm: ['<methodCall/>'] },
  { src: 'src/bin/flatsnap.ts', bundle: 'cli.cjs', launcher: 'plugin/flatsnap', warm: ['--help'] },
];
const launcher = readFileSync('plugin/launcher.cjs', 'utf8');
// Copy then rename: overwriting a loaded .node file in place makes every running
// plugin or CLI that has it mapped die with SIGSEGV at its next native call.
if (existsSync('native/build/flatsnap.node')) {
  copyFileSync('native/build/flatsnap.node', `${lib}/flatsnap.node.tmp`);
  renameSync(`${lib}/flatsnap.node.tmp`, `${lib}/flatsnap.node`);
}

for (const e of entries) {
  if (!existsSync(e.src)) continue;
  const out = `${lib}/${e.bundle}`;
  await build({
    entryPoints: [e.src],
    outfile: out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: true,
    legalComments: 'none',
    // NODE_ENV=production selects winston's no-op debug helper (@dabh/diagnostics),
    // which otherwise brings a colour library into every start.
    define: {
      __FLATSNAP_VERSION__: JSON.stringify(pkg.version),
      'import.meta.url': '__flatsnapModuleUrl',
      'process.env.NODE_ENV': '"production"',
    },
    banner: { js: "const __flatsnapModuleUrl=require('url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
    plugins: e.plugins ?? [],
  });
  rmSync(`${out}.cache`, { force: true });
}
for (const e of entries) {
  if (!existsSync(e.src) || !e.launcher) continue;
  writeFileSync(e.launcher, `#!${node}\n${launcher.replace('@BUNDLE@', e.bundle).replace('@INFO@', e.info ?? '')}`);
  chmodSync(e.launcher, 0o755);
}
for (const e of entries) {
  if (!existsSync(e.src)) continue;
  // One warm-up run writes each bundle's V8 code cache, so the first real call is fast too.
  const via = e.launcher ?? 'plugin/FlatSnapSR';
  try {
    execFileSync(via, e.warm, { stdio: 'ignore', env: { ...process.env, FLATSNAP_SMLOG: '/dev/null' } });
  } catch {
    // The warm-up only matters for the cache; a non-zero exit is fine.
  }
}
