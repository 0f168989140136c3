// Running test code inside a guest: the driver runs there, not on the host (README.md says
// why). The host bundles each guest entry point (test/kernel/guest/*.ts) with esbuild into
// one CommonJS file, as build.mjs bundles the driver for dom0, and puts it in the run's 9p
// share; the guest runs it with the host's own Node binary (same Debian 12 libc) from the
// share, and jest from the repository (mounted read-only at the same path). Bundling
// means no TypeScript compiler and no module resolution under emulation: jest starts in a
// few seconds and only runs plain JS.
import { build } from 'esbuild';
import { copyFile, link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Vm } from './vm.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const GUEST_SRC = join(REPO, 'test', 'kernel', 'guest');

/** Where a run's share is mounted in every guest. */
export const GUEST_SHARE = '/mnt/kt-share';

/**
 * Where installNode() puts the host's Node binary in a guest: its tmpfs. Run from the 9p
 * share itself, every start pays ~8 s of page faults over 9p under TCG; from tmpfs, ~1.3 s.
 */
export const GUEST_NODE = '/tmp/kt-node';

export interface Bundles {
  /** The host directory shared with the guests (GUEST_SHARE there). */
  share: string;
  /** Guest path of the Node binary (after installNode). */
  node: string;
}

/** Copies the share's Node binary into the guest's tmpfs (once per boot). */
export async function installNode(vm: Vm): Promise<void> {
  await vm.run('/bin/cp', [`${GUEST_SHARE}/bin/node`, GUEST_NODE]);
}

/**
 * Bundles the guest entry points into `<share>/suites/<name>.cjs` (jest suites, *.guest.ts)
 * and `<share>/bin/<name>.cjs` (scripts), and puts the host's Node binary and a jest config
 * beside them.
 */
export async function prepareShare(share: string): Promise<Bundles> {
  await rm(share, { recursive: true, force: true });
  await mkdir(join(share, 'suites'), { recursive: true });
  await mkdir(join(share, 'bin'), { recursive: true });
  await mkdir(join(share, 'results'), { recursive: true });
  const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
  const entries: Array<{ src: string; out: string }> = [
    { src: 'zfs.guest.ts', out: 'suites/zfs.cjs' },
    { src: 'ocfs2.guest.ts', out: 'suites/ocfs2.cjs' },
    { src: 'cluster-node.ts', out: 'bin/cluster-node.cjs' },
    { src: 'ocfs2-fragmentation.ts', out: 'bin/ocfs2-fragmentation.cjs' },
  ];
  for (const e of entries) {
    await build({
      entryPoints: [join(GUEST_SRC, e.src)],
      outfile: join(share, e.out),
      bundle: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      keepNames: true,
      legalComments: 'none',
      define: { __FLATSNAP_VERSION__: JSON.stringify(pkg.version), 'import.meta.url': '__flatsnapModuleUrl' },
      banner: { js: "const __flatsnapModuleUrl=require('url').pathToFileURL(__filename).href;" },
      logLevel: 'error',
    });
  }
  const node = join(share, 'bin', 'node');
  await link(process.execPath, node).catch(() => copyFile(process.execPath, node));
  // hashOf (test/conformance) streams images in fs.createReadStream's default 64 KiB chunks:
  // under TCG each chunk costs a thread-pool round trip (~4 ms), so a 48 MiB image takes
  // ~3 s to hash instead of ~1.3 s in 4 MiB chunks, and the suites hash hundreds of times.
  // Bigger chunks by default, for the guest's jest only; same bytes, same hashes.
  await writeFile(
    join(share, 'setup.cjs'),
    [
      "'use strict';",
      "const fs = require('fs');",
      'const orig = fs.createReadStream;',
      'fs.createReadStream = function (path, options) {',
      "  if (options === undefined) options = {};",
      "  else if (typeof options === 'string') options = { encoding: options };",
      '  return orig.call(this, path, { highWaterMark: 4 * 1024 * 1024, ...options });',
      '};',
      '',
    ].join('\n'),
  );
  const config = {
    rootDir: GUEST_SHARE,
    setupFiles: [`${GUEST_SHARE}/setup.cjs`],
    roots: [`${GUEST_SHARE}/suites`],
    testMatch: ['**/suites/*.cjs'],
    transform: {},
    testEnvironment: 'node',
    maxWorkers: 1,
    testTimeout: 600_000,
    cacheDirectory: '/tmp/jest-cache',
    haste: { enableSymlinks: false },
    watchman: false,
  };
  await writeFile(join(share, 'jest.config.json'), JSON.stringify(config, null, 2));
  return { share, node: GUEST_NODE };
}

export interface AssertionResult {
  fullName: string;
  status: 'passed' | 'failed' | 'pending' | 'skipped' | 'todo' | 'disabled';
  failureMessages: string[];
  duration?: number | null;
}

export interface SuiteRun {
  /** jest's exit code in the guest. */
  code: number;
  ms: number;
  tests: AssertionResult[];
  /** A suite-level failure (e.g. the bundle threw while loading). */
  suiteFailure: string | undefined;
  output: string;
}

/** The environment every guest Node gets: the addon from the repo, logs to a file in the share. */
export function guestEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    FLATSNAP_NATIVE: join(REPO, 'native', 'build', 'flatsnap.node'),
    FLATSNAP_SMLOG: '/tmp/flatsnap-smlog',
    FLATSNAP_LOCK_DIR: '/run/flatsnap-locks',
    CI: 'true',
    ...extra,
  };
}

/** Runs one bundled suite (`suites/<name>.cjs`) with jest in the guest and reads its JSON report. */
export async function runGuestSuite(vm: Vm, b: Bundles, name: string, env: Record<string, string>, timeoutMs = 1_500_000): Promise<SuiteRun> {
  const out = `${GUEST_SHARE}/results/${name}.json`;
  const t0 = Date.now();
  // cwd = the share: jest 30 looks for a config file up from the cwd even when --config names one.
  const r = await vm.exec(
    '/usr/bin/env',
    [
      '-C', GUEST_SHARE,
      b.node,
      join(REPO, 'node_modules', 'jest', 'bin', 'jest.js'),
      '--config', `${GUEST_SHARE}/jest.config.json`,
      '--ci', '--runInBand', '--json', '--outputFile', out,
      // Debugging only (the host tests then see the others as skipped and fail): a name filter.
      ...(process.env.FLATSNAP_KT_GUEST_TESTS ? ['--testNamePattern', process.env.FLATSNAP_KT_GUEST_TESTS] : []),
      `${GUEST_SHARE}/suites/${name}.cjs`,
    ],
    { env: guestEnv(env), timeoutMs },
  );
  const ms = Date.now() - t0;
  const output = `${r.stdout}\n${r.stderr}`;
  let report: { testResults?: Array<{ assertionResults: AssertionResult[]; message?: string; status?: string }> } = {};
  try {
    report = JSON.parse(await readFile(join(b.share, 'results', `${name}.json`), 'utf8')) as typeof report;
  } catch {
    // no report: jest itself failed; the output says why
  }
  const tests = (report.testResults ?? []).flatMap((t) => t.assertionResults);
  const failed = (report.testResults ?? []).filter((t) => t.status === 'failed' && t.assertionResults.length === 0);
  const suiteFailure = failed.length > 0 ? failed.map((t) => t.message ?? '').join('\n') : tests.length === 0 ? 'no test ran' : undefined;
  await writeFile(join(b.share, 'results', `${name}.log`), output);
  return { code: r.code, ms, tests, suiteFailure, output };
}

/**
 * A readable summary of the failures of a run (empty when everything passed), for the tests
 * whose full name starts with one of `prefixes` (all tests when omitted). A run that failed
 * without any failing test (jest itself, a suite that did not load) fails every subset.
 */
export function failuresOf(run: SuiteRun, prefixes?: readonly string[]): string[] {
  const out: string[] = [];
  if (run.suiteFailure) out.push(`suite: ${run.suiteFailure.slice(0, 4000)}\n${run.output.slice(-3000)}`);
  const failed = run.tests.filter((t) => t.status === 'failed');
  for (const t of failed) {
    if (prefixes && !prefixes.some((p) => t.fullName.startsWith(p))) continue;
    out.push(`${t.fullName}\n${t.failureMessages.join('\n').split('\n').slice(0, 25).join('\n')}`);
  }
  if (failed.length === 0 && !run.suiteFailure && run.code !== 0) out.push(`jest exited ${run.code} in the guest:\n${run.output.slice(-3000)}`);
  return out;
}

/** One line per test: status, duration, name. */
export function summaryOf(run: SuiteRun): string {
  return run.tests.map((t) => `${t.status.padEnd(7)} ${String(t.duration ?? '?').padStart(6)} ms  ${t.fullName}`).join('\n');
}

export const shareName = (p: string): string => basename(p);
