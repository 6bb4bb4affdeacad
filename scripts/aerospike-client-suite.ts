/**
 * `npm run aerospike-suite`: runs the official Aerospike Node client's own mocha test files
 * (node_modules/aerospike/test, the `aerospike` devDependency) against a Shoal node, and prints
 * passing, failing and pending counts per file (docs/protocol.md, "The client's test suite").
 *
 *   --host H --port P   test a node already running (default: start `shoal serve` with a
 *                       memory namespace "test" in a temporary folder, and stop it afterwards)
 *   --json              print the per-file counts as one JSON object
 *   FILE...             test files (default: the files covering what Shoal supports, below)
 *
 * Tests that need what Shoal does not offer (enterprise editions, server 7.1+) skip
 * themselves through the suite's own gates, from what the node answers to `build`, `edition`
 * and `features`; no test is edited. The few that are not gated are listed in KNOWN_FAILURES
 * with their reason and counted as failing. Exits 1 when a test fails that is not listed (or a
 * listed one no longer fails), 2 on bad arguments.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root: the nearest folder up from here with the project's package.json (dist/scripts or scripts). */
function findRepo(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest) && (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === 'shoal') return dir;
    if (path.dirname(dir) === dir) throw new Error(`no shoal package.json above ${from}`);
  }
}

const repo = findRepo(__dirname);
const clientRoot = path.join(repo, 'node_modules', 'aerospike');

/**
 * The client's `query` file, run on demand (`npm run aerospike-suite -- query`): 10 of its
 * tests need what Shoal does not run and the suite does not gate (background UDF queries,
 * stream UDFs, UDF aggregations), docs/protocol.md "The client's test suite".
 */
export const ON_DEMAND_FILES = ['query'];
// query_blob_filter and query_blob_filter_exp are not run: every one of their tests is pending
// against Shoal (their gate, "Blob indexes require server version 7.0.0 or greater", skips them
// although Shoal answers build 7.0.0.0; why was not looked into).

/** The client's test files that exercise what Shoal supports (issues 14 and 15; udf, apply and batch_apply: record UDFs; index, index_job, index_on_exp and the query_* filter files: secondary indexes). */
export const SUPPORTED_FILES = [
  'get', 'put', 'exists', 'remove', 'remove_bin', 'select', 'operate',
  'batch_get', 'batch_exists', 'batch_select', 'batch_read', 'batch_remove', 'batch_write',
  'truncate', 'info', 'key', 'bigint', 'double', 'client', 'stats',
  'lists', 'maps', 'cdt_context', 'exp', 'exp_list', 'exp_map',
  'udf', 'apply', 'batch_apply',
  'index', 'index_job', 'index_on_exp', 'geojson',
  'query_numeric_filter', 'query_numeric_filter_exp', 'query_string_filter', 'query_string_filter_exp',
  'query_geojson_filter', 'query_geojson_filter_exp',
];

/**
 * Tests of the files above that fail against Shoal for a documented reason and that the suite
 * does not gate (docs/protocol.md, "The client's test suite"): each names the file, the test's
 * full title, and the error it must fail with. A failure not listed here fails the run; a
 * listed test that no longer fails this way also fails it, so the list cannot go stale.
 */
export const KNOWN_FAILURES: readonly { file: string; title: string; message: RegExp; reason: string }[] = [];

export interface FileCounts {
  passing: number;
  failing: number;
  pending: number;
}

export interface Failure {
  file: string;
  title: string;
  message: string;
}

export interface SuiteResult {
  files: Record<string, FileCounts>;
  failures: Failure[];
  /** Failures not in KNOWN_FAILURES. */
  unexpected: Failure[];
  /** KNOWN_FAILURES entries of the files run that did not fail as listed (the list is stale). */
  stale: string[];
  durationMs: number;
}

function isKnown(failure: Failure): boolean {
  return KNOWN_FAILURES.some((known) => known.file === failure.file && known.title === failure.title && known.message.test(failure.message));
}

function testPath(name: string): string {
  for (const extension of ['.ts', '.js']) {
    const file = path.join('test', `${name}${extension}`);
    if (fs.existsSync(path.join(clientRoot, file))) return file;
  }
  throw new Error(`the client has no test file ${name} (looked in ${path.join(clientRoot, 'test')})`);
}

/**
 * Runs the mocha files against host:port. Resolves to the per-file counts; rejects when mocha
 * could not run (not when tests fail) or takes longer than timeoutMs.
 */
export async function runClientSuite(host: string, port: number, names: string[], timeoutMs = 600_000): Promise<SuiteResult> {
  const files = names.map(testPath);
  const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-aerospike-suite-')), 'report.json');
  const mocha = path.join(repo, 'node_modules', 'mocha', 'bin', 'mocha.js');
  const started = Date.now();
  // --timeout (mocha's per-test bound) and the suite's own -t (the client's total timeout, 1 s by
  // default) are raised: a shared, loaded machine can be slow, and a test may not fail for that.
  const args = [mocha, '--timeout', '30000', '--node-option', 'import=tsx', '--require', 'choma', '--require', 'mocha-clean', '--reporter', 'json', '--reporter-option', `output=${report}`, ...files];
  const stderr = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: clientRoot,
      // npm_package_version: test/metrics.ts reads it while loading; CHOMA_SEED fixes choma's shuffled order.
      env: { ...process.env, npm_package_version: '6.7.1', OPTIONS: `--host ${host} --port ${port} -t 10000`, CHOMA_SEED: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let errors = '';
    child.stderr.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-20_000)));
    child.stdout.on('data', (chunk: Buffer) => (errors = (errors + chunk.toString()).slice(-20_000)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the client suite did not finish in ${timeoutMs} ms: ${errors}`));
    }, timeoutMs);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(errors);
    });
  });
  if (!fs.existsSync(report)) throw new Error(`mocha wrote no report: ${stderr}`);
  const json = JSON.parse(fs.readFileSync(report, 'utf8')) as {
    passes: { file: string }[];
    failures: { file: string; fullTitle: string; err: { message?: string } }[];
    pending: { file: string }[];
  };
  fs.rmSync(path.dirname(report), { recursive: true, force: true });
  const counts: Record<string, FileCounts> = {};
  for (const file of files) counts[path.basename(file).replace(/\.(ts|js)$/, '')] = { passing: 0, failing: 0, pending: 0 };
  const countOf = (file: string | undefined) => counts[path.basename(file ?? 'unknown').replace(/\.(ts|js)$/, '')] ??= { passing: 0, failing: 0, pending: 0 };
  for (const test of json.passes) countOf(test.file).passing++;
  for (const test of json.failures) countOf(test.file).failing++;
  for (const test of json.pending) countOf(test.file).pending++;
  const failures = json.failures.map((test) => ({ file: path.basename(test.file ?? 'hook'), title: test.fullTitle, message: test.err.message ?? '' }));
  const ran = new Set(files.map((file) => path.basename(file)));
  const stale = KNOWN_FAILURES.filter((known) => ran.has(known.file) && !failures.some((failure) => isKnown(failure) && failure.title === known.title)).map((known) => `${known.file}: ${known.title}`);
  return { files: counts, failures, unexpected: failures.filter((failure) => !isKnown(failure)), stale, durationMs: Date.now() - started };
}

/** Starts `shoal serve` on a free loopback port; resolves to its port and a stop function. */
async function serveTemporaryNode(): Promise<{ port: number; stop: () => Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-aerospike-suite-node-'));
  const config = path.join(dir, 'serve.json');
  fs.writeFileSync(config, JSON.stringify({ dataDir: dir, sharedMemoryIndex: false, namespaces: [{ name: 'test', storage: { type: 'memory', maxBytes: 256 << 20 } }], service: { listen: { host: '127.0.0.1', port: 0 } } }));
  const child = spawn(process.execPath, [path.join(repo, 'dist', 'bin', 'shoal.js'), 'serve', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((text) => text.startsWith('{"event":"ready"'));
      if (line !== undefined) resolve((JSON.parse(line) as { service: { port: number } }).service.port);
    });
    child.once('exit', (code) => reject(new Error(`shoal serve exited (${code}) before it was ready`)));
  });
  const stop = async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { port, stop };
}

function printTable(result: SuiteResult): void {
  const rows = Object.entries(result.files);
  const width = Math.max(...rows.map(([name]) => name.length), 4);
  process.stdout.write(`${'file'.padEnd(width)}  passing  failing  pending\n`);
  const total = { passing: 0, failing: 0, pending: 0 };
  for (const [name, counts] of rows) {
    process.stdout.write(`${name.padEnd(width)}  ${String(counts.passing).padStart(7)}  ${String(counts.failing).padStart(7)}  ${String(counts.pending).padStart(7)}\n`);
    total.passing += counts.passing;
    total.failing += counts.failing;
    total.pending += counts.pending;
  }
  process.stdout.write(`${'total'.padEnd(width)}  ${String(total.passing).padStart(7)}  ${String(total.failing).padStart(7)}  ${String(total.pending).padStart(7)}   (${(result.durationMs / 1000).toFixed(1)} s)\n`);
  for (const failure of result.failures) process.stdout.write(`${isKnown(failure) ? 'KNOWN' : 'FAILED'} ${failure.file}: ${failure.title}: ${failure.message}\n`);
  for (const entry of result.stale) process.stdout.write(`STALE known failure (it did not fail as listed): ${entry}\n`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let host = '127.0.0.1';
  let port: number | undefined;
  let json = false;
  const names: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--host') host = argv[++i] ?? '';
    else if (arg === '--port') port = Number(argv[++i]);
    else if (arg === '--json') json = true;
    else if (arg.startsWith('-')) {
      process.stderr.write(`unknown option ${arg}\n`);
      process.exit(2);
    } else names.push(arg.replace(/^test\//, '').replace(/\.(ts|js)$/, ''));
  }
  if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) {
    process.stderr.write('--port needs a port number\n');
    process.exit(2);
  }
  const node = port === undefined ? await serveTemporaryNode() : undefined;
  try {
    const result = await runClientSuite(host, port ?? node!.port, names.length > 0 ? names : SUPPORTED_FILES);
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else printTable(result);
    process.exitCode = result.unexpected.length === 0 && result.stale.length === 0 ? 0 : 1;
  } finally {
    await node?.stop();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    process.stderr.write(`aerospike-suite: ${(error as Error).message}\n`);
    process.exit(1);
  });
}
