/**
 * db.metrics() and the metrics listener: Prometheus text that a strict parser of format 0.0.4
 * accepts, operation counts, errors by code, latency histograms, hits and misses, namespace
 * and cluster figures; GET /metrics over real HTTP serves the same; the status page and its
 * JSON; without `metrics` the Db's methods are not wrapped.
 */
import * as http from 'node:http';
import { describe, expect, it } from 'vitest';
import { Db, ErrorCode, open } from '../lib/index';
import { METRICS_LATENCY_SAMPLE_EVERY } from '../lib/constants';
import { track, useDbCleanup } from './helpers/db';
import { tempDir } from './helpers/temp';

useDbCleanup(['cache', 'disk']);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses the text format strictly: every sample belongs to a family declared by # TYPE before
 * it (histogram samples by their _bucket/_sum/_count suffix), label values are quoted and
 * escaped, values are numbers; a family is declared once.
 */
function parseExposition(text: string): Sample[] {
  expect(text.endsWith('\n')).toBe(true);
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ')) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (type !== null) {
      expect(types.has(type[1]!), `family ${type[1]} declared twice`).toBe(false);
      types.set(type[1]!, type[2]!);
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/.exec(line);
    expect(match, `not a sample line: ${line}`).not.toBeNull();
    const [, name, , labelText, valueText] = match!;
    const family = types.has(name!) ? name! : name!.replace(/_(bucket|sum|count)$/, '');
    expect(types.has(family), `sample ${name} without a TYPE`).toBe(true);
    if (family !== name) expect(types.get(family)).toBe('histogram');
    const labels: Record<string, string> = {};
    if (labelText !== undefined) {
      const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
      let position = 0;
      while (position < labelText.length) {
        labelPattern.lastIndex = position;
        const label = labelPattern.exec(labelText);
        expect(label, `bad labels in ${line}`).not.toBeNull();
        labels[label![1]!] = label![2]!;
        position = labelPattern.lastIndex;
      }
    }
    const value = valueText === '+Inf' ? Infinity : Number(valueText);
    expect(Number.isNaN(value), `bad value in ${line}`).toBe(false);
    samples.push({ name: name!, labels, value });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path }, (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode!, type: String(response.headers['content-type']), body }));
      })
      .on('error', reject);
  });
}

async function openWithMetrics(extra: Record<string, unknown> = {}): Promise<Db> {
  return track(
    await open({
      dataDir: tempDir(),
      namespaces: [
        { name: 'cache', storage: { type: 'memory', maxBytes: 16 << 20 } },
        { name: 'disk', storage: { type: 'device', paths: ['disk.dat'], sizeBytes: 16 << 20, writeBlockBytes: 1 << 20 } },
      ],
      log: () => undefined,
      metrics: {},
      ...extra,
    }),
  );
}

describe('db.metrics()', () => {
  it('counts operations, errors by code, latency, hits and misses, and reports namespace figures', async () => {
    const db = await openWithMetrics();
    for (let i = 0; i < 10; i++) await db.put({ ns: 'cache', key: i }, { i });
    await db.put({ ns: 'disk', key: 1 }, { big: 'x'.repeat(1000) });
    for (let i = 0; i < 15; i++) await db.get({ ns: 'cache', key: i }); // 10 hits, 5 misses
    db.getSync({ ns: 'cache', key: 1 });
    db.getSync({ ns: 'cache', key: 99 });
    await db.batchGet([{ ns: 'cache', key: 1 }, { ns: 'cache', key: 500 }]);
    await expect(db.put({ ns: 'cache', key: 1 }, { i: 1 }, { exists: 'create' })).rejects.toMatchObject({ code: ErrorCode.RECORD_EXISTS });
    await expect(db.get(null as never)).rejects.toThrow(TypeError);
    await db.remove({ ns: 'cache', key: 3 });

    const samples = parseExposition(await db.metrics());
    expect(value(samples, 'shoal_operations_total', { op: 'put' })).toBe(12);
    expect(value(samples, 'shoal_operations_total', { op: 'get' })).toBe(16);
    expect(value(samples, 'shoal_operations_total', { op: 'getSync' })).toBe(2);
    expect(value(samples, 'shoal_operations_total', { op: 'remove' })).toBe(1);
    expect(value(samples, 'shoal_operation_errors_total', { op: 'put', code: 'RECORD_EXISTS' })).toBe(1);
    expect(value(samples, 'shoal_operation_errors_total', { op: 'get', code: 'TypeError' })).toBe(1);
    expect(value(samples, 'shoal_cache_hits_total', { op: 'get' })).toBe(10);
    expect(value(samples, 'shoal_cache_misses_total', { op: 'get' })).toBe(5);
    expect(value(samples, 'shoal_cache_hits_total', { op: 'getSync' })).toBe(1);
    expect(value(samples, 'shoal_cache_misses_total', { op: 'getSync' })).toBe(1);
    expect(value(samples, 'shoal_cache_hits_total', { op: 'batchGet' })).toBe(1);
    expect(value(samples, 'shoal_cache_misses_total', { op: 'batchGet' })).toBe(1);
    // Histogram: one call in METRICS_LATENCY_SAMPLE_EVERY is timed (the 1st, 17th, ...);
    // cumulative buckets end in +Inf = count; sum positive.
    const timed = (calls: number) => Math.ceil(calls / METRICS_LATENCY_SAMPLE_EVERY);
    const buckets = samples.filter((s) => s.name === 'shoal_operation_duration_seconds_bucket' && s.labels.op === 'get');
    expect(buckets.at(-1)!.labels.le).toBe('+Inf');
    expect(buckets.at(-1)!.value).toBe(timed(16));
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(value(samples, 'shoal_operation_duration_seconds_count', { op: 'put' })).toBe(timed(12));
    expect(value(samples, 'shoal_operation_duration_seconds_count', { op: 'get' })).toBe(timed(16));
    expect(value(samples, 'shoal_operation_duration_seconds_sum', { op: 'put' })).toBeGreaterThan(0);
    // Namespace figures.
    expect(value(samples, 'shoal_namespace_objects', { ns: 'cache' })).toBe(9);
    expect(value(samples, 'shoal_namespace_objects', { ns: 'disk' })).toBe(1);
    expect(value(samples, 'shoal_namespace_memory_used_bytes', { ns: 'cache' })).toBeGreaterThan(0);
    expect(value(samples, 'shoal_namespace_device_total_bytes', { ns: 'disk' })).toBeGreaterThanOrEqual(15 << 20);
    expect(value(samples, 'shoal_namespace_device_total_bytes', { ns: 'cache' })).toBeUndefined();
    expect(value(samples, 'shoal_namespace_device_used_bytes', { ns: 'disk' })).toBeGreaterThan(1000);
    expect(value(samples, 'shoal_namespace_start_mode', { ns: 'disk', mode: 'new' })).toBe(1);
    expect(value(samples, 'shoal_namespace_start_mode', { ns: 'disk', mode: 'warm' })).toBe(0);
    expect(value(samples, 'shoal_namespace_evicted_total', { ns: 'cache' })).toBe(0);
    expect(value(samples, 'shoal_metrics_operations_counted')).toBe(1);
    expect(value(samples, 'shoal_start_time_seconds')).toBeGreaterThan(Date.now() / 1000 - 600);
  });

  it('without the option, nothing is wrapped and only the figures are reported', async () => {
    const db = track(await open({ dataDir: tempDir(), namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 16 << 20 } }], log: () => undefined }));
    expect(Object.prototype.hasOwnProperty.call(db, 'put')).toBe(false);
    expect(db.put).toBe(Db.prototype.put);
    // The counted bodies of get and put are keyed by module-internal symbols, not public methods.
    expect(Object.getOwnPropertyNames(Db.prototype).filter((name) => /record/i.test(name))).toEqual([]);
    await db.put({ ns: 'cache', key: 1 }, { a: 1 });
    const samples = parseExposition(await db.metrics());
    expect(value(samples, 'shoal_operations_total', { op: 'put' })).toBeUndefined();
    expect(value(samples, 'shoal_metrics_operations_counted')).toBe(0);
    expect(value(samples, 'shoal_namespace_objects', { ns: 'cache' })).toBe(1);
    await db.close();
    await expect(db.metrics()).rejects.toMatchObject({ code: ErrorCode.NOT_OPEN });
  });

  it('serves /metrics, the status page and its JSON over HTTP, and stops with close()', async () => {
    const db = await openWithMetrics({ metrics: { listen: { host: '127.0.0.1', port: 0 } } });
    await db.put({ ns: 'cache', key: 'a' }, { v: 1 });
    const { port } = db.metricsAddress!;
    const metrics = await get(port, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toBe('text/plain; version=0.0.4; charset=utf-8');
    const samples = parseExposition(metrics.body);
    expect(value(samples, 'shoal_operations_total', { op: 'put' })).toBe(1);
    const page = await get(port, '/');
    expect(page.status).toBe(200);
    expect(page.type).toMatch(/text\/html/);
    expect(page.body).toContain('<canvas id="grid"');
    const status = JSON.parse((await get(port, '/status.json')).body) as { partitionMasters: string[]; namespaces: { name: string; objects: number }[] };
    expect(status.partitionMasters).toHaveLength(4096);
    expect(status.namespaces.find((ns) => ns.name === 'cache')!.objects).toBe(1);
    expect((await get(port, '/nope')).status).toBe(404);
    await db.close();
    await expect(get(port, '/metrics')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('a port in use fails open() with IO_ERROR and leaves nothing open', async () => {
    const blocker = http.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    const dataDir = tempDir();
    try {
      await expect(
        open({ dataDir, namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 16 << 20 } }], log: () => undefined, metrics: { listen: { host: '127.0.0.1', port } } }),
      ).rejects.toMatchObject({ code: ErrorCode.IO_ERROR, message: expect.stringMatching(/metrics listener could not start/) });
      // The namespace was closed: the same data opens again at once (no LOCKED).
      track(await open({ dataDir, namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 16 << 20 } }], log: () => undefined }));
    } finally {
      blocker.close();
    }
  });

  it('in cluster mode, reports size, view changes, partitions, migrations, peers and proxied requests', async () => {
    const a = await openWithMetrics({ cluster: { nodeId: 'm-a', listen: { host: '127.0.0.1', port: 0 }, heartbeatIntervalMs: 100 } });
    const b = await openWithMetrics({ cluster: { nodeId: 'm-b', listen: { host: '127.0.0.1', port: 0 }, seeds: [a.cluster!.address], heartbeatIntervalMs: 100 } });
    const deadline = Date.now() + 15_000;
    while (a.stats().clusterSize !== 2 || b.stats().clusterSize !== 2) {
      if (Date.now() > deadline) throw new Error('no cluster');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await a.cluster!.waitForMigrations({ timeoutMs: 15_000 });
    for (let i = 0; i < 50; i++) await a.put({ ns: 'cache', key: i }, { i });
    const samples = parseExposition(await a.metrics());
    expect(value(samples, 'shoal_cluster_size')).toBe(2);
    expect(value(samples, 'shoal_cluster_view_changes_total')).toBeGreaterThanOrEqual(1);
    const master = value(samples, 'shoal_cluster_partitions', { role: 'master' })!;
    expect(master + value(samples, 'shoal_cluster_partitions', { role: 'replica' })!).toBe(4096);
    expect(value(samples, 'shoal_cluster_migrations_remaining')).toBe(0);
    expect(value(samples, 'shoal_cluster_peer_heartbeat_age_seconds', { peer: 'm-b' })).toBeLessThan(5);
    // About half the keys have their master on b: a forwarded them.
    expect(value(samples, 'shoal_cluster_proxied_requests_total')).toBeGreaterThan(5);
    expect(value(samples, 'shoal_cluster_heartbeat_stalls_total')).toBeGreaterThanOrEqual(0);
    const status = a.status();
    expect(new Set(status.partitionMasters)).toEqual(new Set(['m-a', 'm-b']));
    expect(status.nodes.map((n) => n.id).sort()).toEqual(['m-a', 'm-b']);
  });
});
