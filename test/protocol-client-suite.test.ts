/**
 * The official Aerospike Node client's own mocha test files (node_modules/aerospike/test)
 * against one Shoal node: every file covering what Shoal supports must pass with 0 failing
 * (scripts/aerospike-client-suite.ts; the same run as `npm run aerospike-suite`), the list
 * and map, expression, UDF and secondary-index files included. Tests of features Shoal does
 * not offer skip themselves through the suite's gates on `build`, `edition` and `features`; a
 * test that is not gated must fail exactly as KNOWN_FAILURES says (the list is empty now), and nothing else
 * may fail.
 */
import { afterAll, expect, it } from 'vitest';
import { KNOWN_FAILURES, SUPPORTED_FILES, runClientSuite } from '../scripts/aerospike-client-suite';
import { cleanupTempDirs } from './helpers/temp';
import { serveNode, stopNode } from './helpers/service-server';

afterAll(() => cleanupTempDirs());

it('passes the official client suite files: nothing fails but the documented known failures', async () => {
  const node = await serveNode();
  try {
    const result = await runClientSuite(node.host, node.port, SUPPORTED_FILES, 240_000);
    const table = Object.entries(result.files).map(([file, counts]) => `${file}: ${counts.passing} passing, ${counts.failing} failing, ${counts.pending} pending`);
    console.log(`aerospike client suite (${(result.durationMs / 1000).toFixed(1)} s)\n${table.join('\n')}`);
    expect(result.unexpected).toEqual([]);
    expect(result.stale).toEqual([]);
    expect(result.failures.length).toBe(KNOWN_FAILURES.length);
    for (const file of SUPPORTED_FILES) expect(result.files[file]!.passing, file).toBeGreaterThan(0);
    const total = Object.values(result.files).reduce((sum, counts) => sum + counts.passing, 0);
    expect(total).toBeGreaterThanOrEqual(800);
  } finally {
    await stopNode(node);
  }
}, 300_000);
