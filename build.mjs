// Bundles each executable into one CommonJS file under plugin/flatsnap-lib/ and
// writes its launcher into plugin/ with the absolute Node path in the shebang
// (see plugin/launcher.cjs for why a launcher and a V8 code cache).
// plugin/install.sh re-stamps the shebang for the target host's Node.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

// xapi's own discovery request: the code it runs is what the cache should hold.
const DRIVER_INFO =
  '<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>';
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const node = process.env.FLATSNAP_NODE ?? process.execPath;
const lib = 'plugin/flatsnap-lib';
mkdirSync(lib, { recursive: true });

const entries = [
  { src: 'src/bin/FlatSnapSR.ts', bundle: 'driver.cjs', launcher: 'plugin/FlatSnapSR', warm: [DRIVER_INFO] },
  { src: 'src/bin/flatsnap.ts', bundle: 'cli.cjs', launcher: 'plugin/flatsnap', warm: ['--help'] },
];
const launcher = readFileSync('plugin/launcher.cjs', 'utf8');
if (existsSync('native/build/flatsnap.node')) copyFileSync('native/build/flatsnap.node', `${lib}/flatsnap.node`);

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
    define: { __FLATSNAP_VERSION__: JSON.stringify(pkg.version), 'import.meta.url': '__flatsnapModuleUrl' },
    banner: { js: "const __flatsnapModuleUrl=require('url').pathToFileURL(__filename).href;" },
    logLevel: 'warning',
  });
  rmSync(`${out}.cache`, { force: true });
  writeFileSync(e.launcher, `#!${node}\n${launcher.replace('@BUNDLE@', e.bundle)}`);
  chmodSync(e.launcher, 0o755);
  // One warm-up run writes the V8 code cache, so the first real call is fast too.
  try {
    execFileSync(e.launcher, e.warm, { stdio: 'ignore', env: { ...process.env, FLATSNAP_SMLOG: '/dev/null' } });
  } catch {
    // The warm-up only matters for the cache; a non-zero exit is fine.
  }
}
