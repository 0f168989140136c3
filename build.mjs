// Bundles each executable into one CommonJS file under plugin/flatsnap-lib/ and
// writes its launcher into plugin/ with the absolute Node path in the shebang
// (see plugin/launcher.cjs for why a launcher and a V8 code cache).
// plugin/install.sh re-stamps the shebang for the target host's Node.
import { build } from 'esbuild';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

// xapi's own discovery request: the code it runs is what the cache should hold.
const DRIVER_INFO =
  '<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>';

/** A request encoded as xapi's sm_exec writes it: bare string values, no header. */
function xapiCall(command, fields) {
  const value = (v) =>
    typeof v === 'string'
      ? `<value>${v}</value>`
      : Array.isArray(v)
        ? `<value><array><data>${v.map(value).join('')}</data></array></value>`
        : `<value><struct>${Object.entries(v).map(([k, x]) => `<member><name>${k}</name>${value(x)}</member>`).join('')}</struct></value>`;
  return `<methodCall><methodName>${command}</methodName><params><param>${value(fields)}</param></params></methodCall>`;
}

// The driver's cache is written by an ordinary command that needs neither xapi nor
// storage: vdi_attach on an SR directory that does not exist fails fast, after the
// parse, the log, the dispatch, the shared-SR rules, the type analysis and the
// reflink backend's open, which every command runs (it refuses with fault 46).
// Its locks go to a scratch directory.
const scratch = mkdtempSync(join(tmpdir(), 'flatsnap-build-'));
const NO_SR_ATTACH = xapiCall('vdi_attach', {
  host_ref: 'OpaqueRef:NULL',
  command: 'vdi_attach',
  args: ['true'],
  device_config: { SRmaster: 'true', path: join(scratch, 'no-sr') },
  session_ref: 'OpaqueRef:NULL',
  sr_ref: 'OpaqueRef:NULL',
  sr_uuid: '00000000-0000-4000-8000-000000000000',
  vdi_ref: 'OpaqueRef:NULL',
  vdi_location: '00000000-0000-4000-8000-000000000001',
  vdi_uuid: '00000000-0000-4000-8000-000000000001',
});
// The host plugin's warm-up: a well-formed pause of a VDI that is attached nowhere, which
// runs the whole path (parse, validation, datapath, lock) and touches nothing.
const TAPDISK_PAUSE_NOWHERE =
  '<methodCall><methodName>pause</methodName><params><param><value>OpaqueRef:NULL</value></param><param><value><struct><member><name>sr_uuid</name><value>00000000-0000-4000-8000-000000000000</value></member><member><name>vdi_uuid</name><value>00000000-0000-4000-8000-000000000001</value></member></struct></value></param></params></methodCall>';
const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const node = process.env.FLATSNAP_NODE ?? process.execPath;
const lib = 'plugin/flatsnap-lib';
mkdirSync(lib, { recursive: true });

// xapi runs sr_get_driver_info at every toolstack start, for every plugin, and it
// must not pay for the whole driver: info.cjs is the same entry without anything
// loaded on demand (command modules, backends, the shared-SR rules: every dynamic
// import is left out), and the launcher sends exactly xapi's discovery request
// there. Anything else goes to driver.cjs.
const leaveOutDynamicImports = {
  name: 'leave-out-dynamic-imports',
  setup(b) {
    b.onResolve({ filter: /.*/ }, (a) => (a.kind === 'dynamic-import' ? { path: a.path, namespace: 'left-out' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'left-out' }, () => ({ contents: 'throw new Error("info bundle: modules loaded on demand are not included");', loader: 'js' }));
  },
};

// Three build-time changes to winston's dependencies, each for a cost paid on
// every exec (bench/README.md, cold start) and none changing what is logged:
// - @colors/colors probes the terminal when loaded, through process.stdout and
//   process.stderr: creating those stream objects (a pipe's is a net.Socket) costs a
//   seventh of bare Node's start-up. logform's colorizer forces colours on anyway,
//   so the probe is replaced by its "no colour terminal" answer.
// - readable-stream's pipe() compares the destination with process.stdout and
//   process.stderr, which creates both for winston's first transport. Node marks
//   those two objects with _isStdio, so the same comparison is made on the mark.
// - readable-stream takes its Stream base class from Node's `stream`, whose loading
//   costs a tenth of bare Node's start-up; its own browser build uses EventEmitter,
//   which is all the base gives its Readable and Writable (they define pipe themselves).
const STDIO_TEST = 'dest !== process.stdout && dest !== process.stderr';
const trimLoggingDeps = {
  name: 'trim-logging-deps',
  setup(b) {
    b.onResolve({ filter: /\/system\/supports-colors(\.js)?$/ }, (a) =>
      a.importer.includes('/node_modules/@colors/colors/') ? { path: 'supports-colors', namespace: 'no-colour-terminal' } : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'no-colour-terminal' }, () => ({
      contents: 'const none = () => false; module.exports = { supportsColor: none, stdout: false, stderr: false };',
      loader: 'js',
    }));
    b.onLoad({ filter: /\/node_modules\/readable-stream\/lib\/_stream_readable\.js$/ }, (a) => {
      const src = readFileSync(a.path, 'utf8');
      if (!src.includes(STDIO_TEST)) throw new Error(`${a.path}: the stdio test to rewrite is gone; review trimLoggingDeps`);
      return { contents: src.replace(STDIO_TEST, 'dest._isStdio !== true'), loader: 'js' };
    });
    b.onResolve({ filter: /^stream$/ }, (a) =>
      a.importer.includes('/node_modules/readable-stream/')
        ? { path: resolve('node_modules/readable-stream/lib/internal/streams/stream-browser.js') }
        : undefined,
    );
  },
};
const entries = [
  { src: 'src/bin/FlatSnapSR.ts', bundle: 'info.cjs', plugins: [leaveOutDynamicImports], warm: [DRIVER_INFO] },
  { src: 'src/bin/FlatSnapSR.ts', bundle: 'driver.cjs', launcher: 'plugin/FlatSnapSR', info: 'info.cjs', warm: [NO_SR_ATTACH] },
  { src: 'src/bin/flatsnap.ts', bundle: 'cli.cjs', launcher: 'plugin/flatsnap', warm: ['--help'] },
  // The XAPI host plugin (installed into /etc/xapi.d/plugins by plugin/install.sh).
  { src: 'src/bin/flatsnap-tapdisk.ts', bundle: 'tapdisk-plugin.cjs', launcher: 'plugin/flatsnap-tapdisk', warm: [TAPDISK_PAUSE_NOWHERE] },
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
    plugins: [...(e.plugins ?? []), trimLoggingDeps],
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
    execFileSync(via, e.warm, { stdio: 'ignore', env: { ...process.env, FLATSNAP_SMLOG: '/dev/null', FLATSNAP_LOCK_DIR: join(scratch, 'lock') } });
  } catch {
    // The warm-up only matters for the cache; a non-zero exit is fine.
  }
}
rmSync(scratch, { recursive: true, force: true });
