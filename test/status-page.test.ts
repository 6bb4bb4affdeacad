/**
 * The status page in a real headless Chromium (Debian's `chromium` package): the page loads
 * from the metrics listener of a two-node cluster, runs its script, fetches /status.json and
 * draws the nodes, the partition grid and the namespaces; a screenshot is taken. Skipped, with
 * a message, where no chromium is installed (`apt-get install chromium`).
 * SHOAL_STATUS_SCREENSHOT=docs/status-page.png keeps the screenshot there.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { open, type Db } from '../lib/index';
import { cleanupTempDirs, tempDir } from './helpers/temp';

function findChromium(): string | undefined {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    try {
      return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || undefined;
    } catch {
      // not this one
    }
  }
  return undefined;
}

const chromium = findChromium();
if (chromium === undefined) console.warn('status-page.test.ts: skipped, no chromium on PATH (apt-get install chromium)');
const dbs: Db[] = [];

afterAll(async () => {
  for (const db of dbs) await db.close({ dropIndex: true }).catch(() => undefined);
  cleanupTempDirs(['cache', 'disk']);
});

async function startNode(nodeId: string, seeds: string[], metrics: boolean): Promise<Db> {
  const db = await open({
    dataDir: tempDir(),
    namespaces: [
      { name: 'cache', storage: { type: 'memory', maxBytes: 64 << 20 } },
      { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 64 << 20 } },
    ],
    cluster: { nodeId, listen: { host: '127.0.0.1', port: 0 }, seeds, heartbeatIntervalMs: 100 },
    log: () => undefined,
    ...(metrics ? { metrics: { listen: { host: '127.0.0.1', port: 0 } } } : {}),
  });
  dbs.push(db);
  return db;
}

/** Runs headless chromium on a URL; resolves to its stdout (the DOM with --dump-dom). */
function runChromium(args: string[]): Promise<string> {
  const profile = tempDir('shoal-chromium-');
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', `--user-data-dir=${profile}`, '--virtual-time-budget=5000'];
  return new Promise((resolve, reject) => {
    execFile(chromium!, [...flags, ...args], { timeout: 60_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
  });
}

describe.skipIf(chromium === undefined)('status page in headless Chromium', () => {
  it('draws nodes, the 4,096 partitions and the namespaces from live figures, and screenshots', async () => {
    const a = await startNode('node-a', [], true);
    const b = await startNode('node-b', [a.cluster!.address], false);
    const deadline = Date.now() + 15_000;
    while (a.stats().clusterSize !== 2 || b.stats().clusterSize !== 2) {
      if (Date.now() > deadline) throw new Error('no cluster');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await a.cluster!.waitForMigrations({ timeoutMs: 15_000 });
    for (let i = 0; i < 2000; i++) await a.put({ ns: 'cache', key: i }, { name: `user-${i}`, visits: i });
    await a.batchPut(Array.from({ length: 3000 }, (_, i) => ({ key: { ns: 'disk', key: i }, bins: { payload: 'x'.repeat(400) } })));
    const { port } = a.metricsAddress!;
    const url = `http://127.0.0.1:${port}/`;

    const dom = await runChromium(['--dump-dom', url]);
    expect(dom).toMatch(/data-draws="[1-9]/);
    const nodeRows = [...dom.matchAll(/<tr><td><span><span class="swatch"[^>]*><\/span>(node-[ab])[^<]*<\/span><\/td><td class="num">(\d+)<\/td>/g)];
    expect(nodeRows.map((row) => row[1]).sort()).toEqual(['node-a', 'node-b']);
    // The masters column counts the grid's cells by colour: together all 4,096 partitions.
    expect(nodeRows.reduce((sum, row) => sum + Number(row[2]), 0)).toBe(4096);
    const masters = a.status().partitionMasters.filter((id) => id === 'node-a').length;
    expect(Number(nodeRows.find((row) => row[1] === 'node-a')![2])).toBe(masters);
    const objects = a.stats().namespaces.cache!.objects;
    expect(dom).toContain(`<td>cache</td><td class="num">${objects.toLocaleString('en-US')}</td>`);
    expect(dom).toMatch(/<td>disk<\/td><td class="num">[\d,]+<\/td>/);
    expect(dom).toMatch(/none in progress/);

    const shot = path.join(tempDir('shoal-shot-'), 'status.png');
    await runChromium([`--screenshot=${shot}`, '--window-size=1400,640', '--hide-scrollbars', url]);
    const png = fs.readFileSync(shot);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
    expect(png.readUInt32BE(16)).toBe(1400);
    expect(png.length).toBeGreaterThan(20_000);
    const keep = process.env.SHOAL_STATUS_SCREENSHOT;
    if (keep !== undefined && keep !== '') fs.copyFileSync(shot, keep);
  }, 120_000);
});
