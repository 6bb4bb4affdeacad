/**
 * The package as a user gets it: `npm pack`'s tarball, installed into a scratch project with
 * no compiler on PATH (PATH holds only node, npm and sh), loads its prebuilt addon; ESM, CJS
 * and strict TypeScript consumers each open, write, read and close. The install instructions
 * of README.md ("Install") are run as written: `--ignore-scripts`, and npm 11's allowScripts
 * approval of a tarball under --strict-allow-scripts.
 *
 * The tarball ships prebuilds/<platform>-<arch>/, made by `npm run prebuildify` (.ci/run runs
 * it before the tests). When it is missing or older than native/, this file makes it in a
 * scratch copy of the sources (about a minute), never in build/, which other tests load.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.join(__dirname, '..');
const VERSION = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** npm's own script, run with this node (the scratch PATH has no shell tools to find it). */
const NPM_CLI = fs.realpathSync(execFileSync('/bin/sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim());
const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const PLATFORM = `${process.platform}-${process.arch}`;
/** Compilers and build tools a source build of the addon would need: none may be on the scratch PATH. */
const BUILD_TOOLS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'python3', 'python'];

let scratch: string;
let tools: string;
let tarball: string;
let packedFiles: string[];

/** Runs a command with PATH = the tool dir only and no npm_* variables of the running npm. */
function run(file: string, args: string[], cwd: string, timeoutMs = 120_000): { status: number | null; output: string } {
  const env: NodeJS.ProcessEnv = { PATH: tools, HOME: process.env.HOME ?? os.homedir() };
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(npm_|PATH$|HOME$|INIT_CWD$|NODE_OPTIONS$|VITEST)/i.test(name)) env[name] = value;
  }
  const result = spawnSync(file, args, { cwd, env, encoding: 'utf8', timeout: timeoutMs });
  return { status: result.status, output: `${result.stdout}${result.stderr}${result.error ? String(result.error) : ''}` };
}

function npm(args: string[], cwd: string): { status: number | null; output: string } {
  return run(process.execPath, [NPM_CLI, ...args, '--no-audit', '--no-fund', '--prefer-offline'], cwd);
}

function newestMtimeMs(entries: string[]): number {
  let newest = 0;
  for (const entry of entries) {
    const stat = fs.statSync(entry);
    newest = Math.max(newest, stat.isDirectory() ? newestMtimeMs(fs.readdirSync(entry).map((name) => path.join(entry, name))) : stat.mtimeMs);
  }
  return newest;
}

/** The prebuilt addon for this platform, made in a scratch copy of the sources when missing or stale. */
function ensurePrebuild(): void {
  const dir = path.join(ROOT, 'prebuilds', PLATFORM);
  const built = fs.existsSync(dir) ? fs.readdirSync(dir).filter((name) => name.endsWith('.node')) : [];
  const sourcesMs = newestMtimeMs([path.join(ROOT, 'native'), path.join(ROOT, 'binding.gyp')]);
  if (built.length > 0 && built.every((name) => fs.statSync(path.join(dir, name)).mtimeMs >= sourcesMs)) return;
  const copy = path.join(scratch, 'prebuild-sources');
  fs.mkdirSync(copy);
  for (const entry of ['package.json', 'binding.gyp', 'native']) fs.cpSync(path.join(ROOT, entry), path.join(copy, entry), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));
  // `npm run` so that the build sees npm's configuration (nodedir: Node's own headers).
  execFileSync(process.execPath, [NPM_CLI, 'run', 'prebuildify'], { cwd: copy, stdio: 'pipe', timeout: 600_000 });
  fs.rmSync(path.join(ROOT, 'prebuilds', PLATFORM), { recursive: true, force: true });
  fs.cpSync(path.join(copy, 'prebuilds', PLATFORM), dir, { recursive: true });
}

/** A scratch project depending on nothing yet. */
function project(name: string, extra: Record<string, unknown> = {}): string {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, ...extra }, null, 2));
  return dir;
}

/** What every consumer prints: the bins it read back and the addon file its process mapped. */
interface ConsumerReport {
  memory: unknown;
  disk: unknown;
  addon: string;
}

function runConsumer(cwd: string, file: string): ConsumerReport {
  const dataDir = fs.mkdtempSync(path.join(scratch, 'data-'));
  const { status, output } = run(process.execPath, [file, dataDir], cwd, 30_000);
  expect(status, output).toBe(0);
  return JSON.parse(output.trim().split('\n').pop()!) as ConsumerReport;
}

/**
 * The body every consumer runs: a memory and a device namespace, a write and a read in each,
 * close; then the path of the shoal addon in /proc/self/maps.
 */
const CONSUMER_BODY = `
const dataDir = process.argv[2];
const db = await open({
  dataDir,
  sharedMemoryIndex: false,
  handleSignals: false,
  namespaces: [
    { name: 'cache', storage: { type: 'memory', maxBytes: 1 << 20 } },
    { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 8 << 20 } },
  ],
  log: () => undefined,
});
await db.put({ ns: 'cache', key: 'k' }, { from: FROM, n: 1 });
await db.put({ ns: 'disk', key: 'k' }, { from: FROM, list: [1, 'two'] });
const memory = db.getSync({ ns: 'cache', key: 'k' });
const disk = await db.get({ ns: 'disk', key: 'k' });
await db.close();
const addon = readFileSync('/proc/self/maps', 'utf8').split('\\n').map((line) => line.split(/\\s+/)[5]).find((file) => file !== undefined && /shoal[^/]*\\.node$/.test(file));
console.log(JSON.stringify({ memory: memory?.bins, disk: disk?.bins, addon }));
`;

const ESM_CONSUMER = `import { readFileSync } from 'node:fs';\nimport { open } from 'shoal';\nconst FROM = 'esm';\n${CONSUMER_BODY}`;

const CJS_CONSUMER = `'use strict';\nconst { readFileSync } = require('node:fs');\nconst { open } = require('shoal');\nconst FROM = 'cjs';\n(async () => {\n${CONSUMER_BODY}\n})().catch((error) => { console.error(error); process.exit(1); });\n`;

/** Strict TypeScript: typed bins, the API contract line, `await using`. */
const TS_CONSUMER = `import { readFileSync } from 'node:fs';
import { open, type Key, type ShoalRecord } from 'shoal';

interface Cached { from: string; n: number }
interface Stored { from: string; list: (number | string)[] }
const FROM = 'ts';
const dataDir = process.argv[2]!;
const cacheKey: Key = { ns: 'cache', key: 'k' };
let memory: ShoalRecord<Cached> | undefined;
let disk: ShoalRecord<Stored> | undefined;
{
  await using db = await open({
    dataDir,
    sharedMemoryIndex: false,
    handleSignals: false,
    namespaces: [
      { name: 'cache', storage: { type: 'memory', maxBytes: 1 << 20 } },
      { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 8 << 20 } },
    ],
    log: () => undefined,
  });
  const cached: Cached = { from: FROM, n: 1 };
  await db.put(cacheKey, cached);
  await db.put<Stored>({ ns: 'disk', key: 'k' }, { from: FROM, list: [1, 'two'] });
  memory = db.getSync<Cached>(cacheKey);
  const n: number | undefined = memory?.bins.n;
  disk = await db.get<Stored>({ ns: 'disk', key: 'k' });
  // The API contract of issue 17.
  const r = await db.get<{ name: string }>(cacheKey);
  const name: string | undefined = r?.bins.name;
  void [n, name];
}
const addon = readFileSync('/proc/self/maps', 'utf8').split('\\n').map((line) => line.split(/\\s+/)[5]).find((file) => file !== undefined && /shoal[^/]*\\.node$/.test(file));
console.log(JSON.stringify({ memory: memory?.bins, disk: disk?.bins, addon }));
`;

const TS_CONFIG = {
  compilerOptions: {
    strict: true,
    target: 'ES2022',
    module: 'Node16',
    moduleResolution: 'Node16',
    lib: ['ES2022'],
    types: ['node'],
    typeRoots: [path.join(ROOT, 'node_modules', '@types')],
    skipLibCheck: false,
    noEmitOnError: true,
    outDir: 'out',
  },
  files: ['consumer.mts', 'types.mts'],
};

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-package-'));
  tools = path.join(scratch, 'tools');
  fs.mkdirSync(tools);
  fs.symlinkSync(process.execPath, path.join(tools, 'node'));
  fs.symlinkSync(NPM_CLI, path.join(tools, 'npm'));
  fs.symlinkSync('/bin/sh', path.join(tools, 'sh'));
  ensurePrebuild();
  // dist/ is current: the global setup compiles it when a source is newer.
  const packed = execFileSync(process.execPath, [NPM_CLI, 'pack', '--ignore-scripts', '--json', '--pack-destination', scratch], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  const [result] = JSON.parse(packed) as { filename: string; files: { path: string }[] }[];
  tarball = path.join(scratch, result!.filename);
  packedFiles = result!.files.map((file) => file.path);
}, 660_000);

afterAll(() => {
  if (scratch !== undefined) fs.rmSync(scratch, { recursive: true, force: true });
});

describe('the tarball', () => {
  it('holds the library, its prebuilt addon, sources for a fallback build, LICENSE and CHANGELOG, and nothing for development', () => {
    for (const file of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'binding.gyp', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/bin/shoal.js', 'native/addon.cc']) {
      expect(packedFiles).toContain(file);
    }
    expect(packedFiles.filter((file) => file.startsWith(`prebuilds/${PLATFORM}/`) && file.endsWith('.node'))).toHaveLength(1);
    const development = packedFiles.filter((file) =>
      /^(dist\/)?(bench|scripts|examples|test|sim)\/|(^|\/)(simulation|kv-harness)\.|\/cluster\/sim\/|^build\//.test(file),
    );
    expect(development).toEqual([]);
  });
});

describe('package.json platforms', () => {
  it('Linux only (O_DIRECT, io_uring, POSIX shared memory), any little-endian CPU: npm refuses the rest', () => {
    // npm's own check, as `npm install` runs it for a dependency.
    const checks = require(path.join(path.dirname(NPM_CLI), '..', 'node_modules', 'npm-install-checks')) as {
      checkPlatform(pkg: unknown, force: boolean, environment: { os: string; cpu: string; libc?: string }): void;
    };
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; os: string[]; cpu: string[] };
    const accepts = (os: string, cpu: string) => {
      try {
        checks.checkPlatform({ ...pkg, _id: pkg.name }, false, { os, cpu, libc: 'glibc' });
        return true;
      } catch {
        return false;
      }
    };
    // native/ripemd160.cc asserts a little-endian host; the RIPEMD-160 lanes have SSE and NEON code.
    for (const cpu of ['x64', 'arm64', 'riscv64', 'loong64', 'ppc64']) expect(accepts('linux', cpu), cpu).toBe(true);
    for (const cpu of ['s390', 's390x', 'mips', 'ppc']) expect(accepts('linux', cpu), cpu).toBe(false);
    for (const os of ['darwin', 'win32', 'freebsd']) expect(accepts(os, 'x64'), os).toBe(false);
  });
});

describe('installed with --ignore-scripts and no compiler on PATH', () => {
  let app: string;

  beforeAll(() => {
    for (const tool of BUILD_TOOLS) expect(run('/bin/sh', ['-c', `command -v ${tool}`], scratch).status, tool).not.toBe(0);
    app = project('app');
    const installed = npm(['install', '--ignore-scripts', tarball], app);
    expect(installed.status, installed.output).toBe(0);
    expect(fs.existsSync(path.join(app, 'node_modules', 'shoal', 'build'))).toBe(false);
  }, 180_000);

  const prebuilt = () => path.join(fs.realpathSync(app), 'node_modules', 'shoal', 'prebuilds', PLATFORM);

  it('ESM: open, write, read, close', () => {
    fs.writeFileSync(path.join(app, 'consumer.mjs'), ESM_CONSUMER);
    const report = runConsumer(app, 'consumer.mjs');
    expect(report.memory).toEqual({ from: 'esm', n: 1 });
    expect(report.disk).toEqual({ from: 'esm', list: [1, 'two'] });
    expect(path.dirname(report.addon)).toBe(prebuilt());
    // The prebuilt, stripped addon finds the OpenSSL of the Node that loads it (cluster frame tags, native/frame_mac.h).
    const addon = require(report.addon) as { frameMacAvailable?: boolean; FrameMac?: unknown };
    expect(addon.frameMacAvailable).toBe(true);
    expect(typeof addon.FrameMac).toBe('function');
  });

  it('CJS: open, write, read, close', () => {
    fs.writeFileSync(path.join(app, 'consumer.cjs'), CJS_CONSUMER);
    const report = runConsumer(app, 'consumer.cjs');
    expect(report.memory).toEqual({ from: 'cjs', n: 1 });
    expect(report.disk).toEqual({ from: 'cjs', list: [1, 'two'] });
    expect(path.dirname(report.addon)).toBe(prebuilt());
  });

  it('TypeScript, strict, libraries checked: compiles (with the type tests of test/types/api.ts), then runs', () => {
    fs.writeFileSync(path.join(app, 'consumer.mts'), TS_CONSUMER);
    const typeTests = fs.readFileSync(path.join(__dirname, 'types', 'api.ts'), 'utf8');
    expect(typeTests).toContain("from '../../lib/index';");
    fs.writeFileSync(path.join(app, 'types.mts'), typeTests.replace("from '../../lib/index';", "from 'shoal';"));
    fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify(TS_CONFIG, null, 2));
    const compiled = run(process.execPath, [TSC, '-p', '.'], app);
    expect(compiled.status, compiled.output).toBe(0);
    const report = runConsumer(app, path.join('out', 'consumer.mjs'));
    expect(report.memory).toEqual({ from: 'ts', n: 1 });
    expect(report.disk).toEqual({ from: 'ts', list: [1, 'two'] });
    expect(path.dirname(report.addon)).toBe(prebuilt());
  });
});

describe('installed under --strict-allow-scripts (npm 11)', () => {
  it('the allowScripts key of a tarball is its absolute file: spec; the install script then finds the prebuilt addon and compiles nothing', () => {
    const app = project('approved', { allowScripts: { [`file:${tarball}`]: true, 'msgpackr-extract': false } });
    const installed = npm(['install', '--strict-allow-scripts', '--foreground-scripts', tarball], app);
    expect(installed.status, installed.output).toBe(0);
    expect(installed.output).toContain('node-gyp-build');
    expect(fs.existsSync(path.join(app, 'node_modules', 'shoal', 'build'))).toBe(false);
    fs.writeFileSync(path.join(app, 'consumer.cjs'), CJS_CONSUMER);
    expect(runConsumer(app, 'consumer.cjs').memory).toEqual({ from: 'cjs', n: 1 });
  });

  it('a name-only key ("shoal": true) covers registry installs only: npm refuses the tarball', () => {
    const app = project('name-only', { allowScripts: { shoal: true, 'msgpackr-extract': false } });
    const installed = npm(['install', '--strict-allow-scripts', tarball], app);
    expect(installed.status).not.toBe(0);
    expect(installed.output).toContain('ESTRICTALLOWSCRIPTS');
    expect(installed.output).toContain(`shoal@${VERSION} (install: node-gyp-build`);
  });
});
