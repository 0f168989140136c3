// Bundles each executable into one file so a driver call loads one script, not
// hundreds of modules, and stamps the absolute Node path into the shebang:
// xapi runs plugins with PATH=/sbin:/usr/sbin:/bin:/usr/bin and no HOME.
// plugin/install.sh re-stamps the shebang for the target host's Node.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync, readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const node = process.env.FLATSNAP_NODE ?? process.execPath;

const entries = [{ in: 'src/bin/FlatSnapSR.ts', out: 'plugin/FlatSnapSR' }];
for (const e of entries) {
  if (!existsSync(e.in)) continue;
  await build({
    entryPoints: [e.in],
    outfile: e.out,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    minify: true,
    legalComments: 'none',
    define: { __FLATSNAP_VERSION__: JSON.stringify(pkg.version) },
    // CommonJS dependencies (winston, xmlrpc) call require() for Node built-ins.
    banner: { js: `#!${node}\nimport{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);` },
    logLevel: 'warning',
  });
  chmodSync(e.out, 0o755);
}
if (existsSync('native/build/flatsnap.node')) copyFileSync('native/build/flatsnap.node', 'plugin/flatsnap.node');
