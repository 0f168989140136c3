// FlatSnapSR / flatsnap launcher, copied by the build with the absolute Node path
// in its shebang (xapi gives plugins PATH=/sbin:/usr/sbin:/bin:/usr/bin, no HOME).
//
// It runs one bundled file from flatsnap-lib/ through vm.Script with a V8 code
// cache beside it: compiling the bundle from source costs more than all the rest
// of a cold start, and xapi execs us once per storage call. A missing or
// rejected cache (new Node, new bundle) just means a normal compile, after
// which a fresh cache is written atomically for the next call.
'use strict';
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const Module = require('module');

// xapi's discovery call, exactly as sm_exec writes it, runs the small info bundle
// (see build.mjs); any other request, in any encoding, runs the whole driver.
const INFO_REQUEST = '<methodCall><methodName>sr_get_driver_info</methodName>';
const info = '@INFO@';
const lib = path.join(path.dirname(fs.realpathSync(__filename)), 'flatsnap-lib');
const bundle = info && process.argv.length === 3 && process.argv[2].startsWith(INFO_REQUEST) ? info : '@BUNDLE@';
const file = path.join(lib, bundle);
const cacheFile = `${file}.cache`;
const source = fs.readFileSync(file, 'utf8');
let cachedData;
try {
  cachedData = fs.readFileSync(cacheFile);
} catch {
  cachedData = undefined;
}
const script = new vm.Script(Module.wrap(source), { filename: file, cachedData });
if (cachedData === undefined || script.cachedDataRejected) {
  process.once('exit', () => {
    try {
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
    } catch {
      // A read-only install still works, only without the cache.
    }
  });
}
const mod = { exports: {} };
script.runInThisContext()(mod.exports, Module.createRequire(file), mod, file, lib);
