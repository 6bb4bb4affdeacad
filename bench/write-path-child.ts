/**
 * The write-path benchmark's loop (bench/write-path.ts), in a process of its own so that its
 * peak RSS is its own: `inFlight` workers each await db.put after db.put on a device namespace,
 * never yielding to the event loop unless a put must wait, until `records` records of about
 * `valueBytes` are written. Prints one JSON line: records, bytes written, ms, peak RSS
 * (VmHWM), peak RSS seen while writing, shared-memory RSS, index bytes.
 * argv: dataDir records valueBytes inFlight
 */
import * as fs from 'node:fs';
import { open } from '../lib/index';

function status(field: string): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return match === null ? 0 : Number(match[1]) * 1024;
}

async function main(): Promise<void> {
  const [dataDir, recordsText, valueBytesText, inFlightText] = process.argv.slice(2);
  const records = Number(recordsText);
  const valueBytes = Number(valueBytesText);
  const inFlight = Number(inFlightText);
  const recordBytes = valueBytes + 90;
  const sizeBytes = Math.ceil((records * recordBytes * 1.25) / (1 << 20)) * (1 << 20) + (256 << 20);
  const db = await open({ dataDir: dataDir!, namespaces: [{ name: 'bench', storage: { type: 'device', paths: ['bench.dat'], sizeBytes } }], log: () => undefined });
  const pad = 'x'.repeat(valueBytes);
  let next = 0;
  let peakRss = 0;
  const started = performance.now();
  const worker = async (): Promise<void> => {
    while (next < records) {
      const i = next++;
      await db.put({ ns: 'bench', set: 's', key: i }, { i, pad });
      if (i % 65_536 === 0) peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  await db.put({ ns: 'bench', set: 's', key: 0 }, { i: 0, pad }, { durable: true });
  const ms = performance.now() - started;
  const stats = db.stats().namespaces.bench!;
  for (let i = 0; i < records; i += Math.max(1, Math.floor(records / 1000))) {
    const record = await db.get({ ns: 'bench', set: 's', key: i });
    if (record?.bins.i !== i) throw new Error(`record ${i} is missing or wrong`);
  }
  const result = { records, bytesWritten: records * recordBytes, ms, hwmRssBytes: status('VmHWM'), peakRssBytes: peakRss, shmemRssBytes: status('RssShmem'), indexBytes: stats.indexUsedBytes };
  await db.close({ dropIndex: true });
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
