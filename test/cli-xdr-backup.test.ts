/**
 * The operator CLI's XDR, backup and restore commands through the real bin (dist/bin/shoal.js)
 * against clusters of real processes (test/fixtures/xdr-child.js): a destination added to every
 * member at run time with rewind, state, wait-shipped, removal; a backup with progress, resumed
 * after it was cut short (byte-identical to the whole one), restored into another cluster
 * identically; each restore policy; a damaged or incomplete file refused before anything is
 * restored.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runNode } from './helpers/child';
import { dump, killAll, startXdrCluster } from './helpers/xdr-clusters';

const CLI = path.join(__dirname, '..', 'dist', 'bin', 'shoal.js');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'shoal-cli-backup-'));

afterEach(killAll);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

function cli(...args: string[]) {
  return runNode(CLI, args, 60_000);
}

async function loadRecords(node: { value<T>(op: string, fields?: Record<string, unknown>): Promise<T> }, count: number, prefix: string): Promise<void> {
  for (let i = 0; i < count; i++) await node.value('put', { key: `${prefix}-${i}`, bins: { i, text: `value ${i}`, list: [i, 'x'] } });
}

describe('npx shoal xdr', () => {
  it('adds a destination on every member with rewind, shows state, waits for shipping and removes it', async () => {
    const dc2 = await startXdrCluster('dc2', 1);
    const dc1 = await startXdrCluster('dc1', 2);
    await loadRecords(dc1[0]!, 300, 'before');
    const add = await cli('xdr', 'add-destination', dc1[0]!.address, '--name', 'dc2', '--seeds', dc2[0]!.address, '--namespaces', 'test', '--rewind', 'all', '--cluster-name', 'dc1');
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain(`add-destination ${dc1[0]!.address}: ok`);
    expect(add.stdout).toContain(`add-destination ${dc1[1]!.address}: ok`);
    await loadRecords(dc1[1]!, 100, 'after');
    const wait = await cli('xdr', 'wait-shipped', dc1[1]!.address, '--cluster-name', 'dc1', '--timeout-ms', '60000');
    expect(wait.code, wait.stderr).toBe(0);
    expect(wait.stdout).toMatch(/wait-shipped: everything acknowledged before the call has shipped/);
    const [source, destination] = [await dump(dc1), await dump(dc2)];
    expect(source.length).toBe(400);
    expect(destination).toEqual(source);
    const state = await cli('xdr', 'state', dc1[0]!.address, '--cluster-name', 'dc1');
    expect(state.code, state.stderr).toBe(0);
    expect(state.stdout).toMatch(/destination dc2: connected {2}lagMs \d+ {2}pending 0 {2}shipped \d+ {2}conflicts 0 {2}rewind 100%/);
    const json = JSON.parse((await cli('xdr', 'state', dc2[0]!.address, '--cluster-name', 'dc2', '--json')).stdout) as { received: { applied: number } };
    expect(json.received.applied).toBe(400);
    const remove = await cli('xdr', 'remove-destination', dc1[0]!.address, '--name', 'dc2', '--cluster-name', 'dc1');
    expect(remove.code, remove.stderr).toBe(0);
    expect((await cli('xdr', 'state', dc1[1]!.address, '--cluster-name', 'dc1')).stdout).toMatch(/destinations \(none\)/);
    // Errors: an unknown destination, and a usage error.
    const again = await cli('xdr', 'remove-destination', dc1[0]!.address, '--name', 'dc2', '--cluster-name', 'dc1', '--node-only');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no xdr destination "dc2"/);
    const bad = await cli('xdr', 'frobnicate', dc1[0]!.address);
    expect(bad.code).toBe(2);
  }, 180_000);
});

describe('npx shoal backup and restore', () => {
  it('backs up with progress, resumes a cut file to the same bytes, restores identically, and honours each policy', async () => {
    const source = await startXdrCluster('src', 2);
    await loadRecords(source[0]!, 500, 'r');
    const file = path.join(work, 'test.shoalbackup');
    const whole = await cli('backup', source[1]!.address, '--ns', 'test', '--out', file, '--cluster-name', 'src');
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stdout).toMatch(/backup: 500 records, \d+ bytes written/);
    expect(whole.stderr).toMatch(/backup: 50% \(2048\/4096 partitions/);
    expect(whole.stderr).toMatch(/backup: 100% \(4096\/4096 partitions, 500 records/);
    // An existing file is not overwritten without --resume.
    expect((await cli('backup', source[1]!.address, '--ns', 'test', '--out', file, '--cluster-name', 'src')).stderr).toMatch(/exists/);

    // Cut short mid-way (a crash): --resume continues after the last whole section.
    const bytes = fs.readFileSync(file);
    const cut = path.join(work, 'cut.shoalbackup');
    fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    const incomplete = await cli('restore', source[0]!.address, '--in', cut, '--cluster-name', 'src');
    expect(incomplete.code).toBe(1);
    expect(incomplete.stderr).toMatch(/damaged|incomplete/);
    const resumed = await cli('backup', source[0]!.address, '--ns', 'test', '--out', cut, '--cluster-name', 'src', '--resume');
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/backup: 500 records, \d+ bytes written to .*, resumed after \d+ partitions/);
    expect(fs.readFileSync(cut).equals(bytes)).toBe(true);

    // Restored into another cluster: identical record by record, generations included.
    const target = await startXdrCluster('dst', 2);
    const restored = await cli('restore', target[0]!.address, '--in', file, '--cluster-name', 'dst');
    expect(restored.code, restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/restore: 500 records read, 500 restored, 0 skipped, 0 expired \(policy newer\)/);
    expect(await dump(target)).toEqual(await dump(source));

    // Policies, against a record updated since the backup.
    await target[0]!.value('put', { key: 'r-7', bins: { i: 'changed' } });
    const newer = await cli('restore', target[1]!.address, '--in', file, '--cluster-name', 'dst');
    expect(newer.stdout).toMatch(/500 records read, 0 restored, 500 skipped/);
    expect(await target[0]!.value('get', { key: 'r-7' })).toMatchObject({ bins: { i: 'changed' } });
    const skip = await cli('restore', target[1]!.address, '--in', file, '--cluster-name', 'dst', '--policy', 'skipExisting');
    expect(skip.stdout).toMatch(/500 records read, 0 restored, 500 skipped/);
    const replace = await cli('restore', target[1]!.address, '--in', file, '--cluster-name', 'dst', '--policy', 'replace');
    expect(replace.stdout).toMatch(/500 records read, 500 restored, 0 skipped/);
    expect(await target[0]!.value('get', { key: 'r-7' })).toMatchObject({ bins: { i: 7, text: 'value 7' } });

    // One flipped byte: refused, nothing restored.
    const damaged = path.join(work, 'damaged.shoalbackup');
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(flipped.length / 2)] ^= 0x01;
    fs.writeFileSync(damaged, flipped);
    const empty = await startXdrCluster('empty', 1);
    const refused = await cli('restore', empty[0]!.address, '--in', damaged, '--cluster-name', 'empty');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/checksum does not match/);
    expect(await dump(empty)).toEqual([]);
  }, 240_000);
});
