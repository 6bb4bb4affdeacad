/**
 * The restart benchmark's second process: opens the data, reports how it started, checks
 * a sample of records, and closes (leaving the index clean for the next start).
 */
import { open } from '../lib/index';
import { restartNamespaces } from './restart';

async function main(): Promise<void> {
  const [dataDir, recordsText] = process.argv.slice(2);
  const records = Number(recordsText);
  const started = performance.now();
  const db = await open({ dataDir: dataDir!, namespaces: restartNamespaces(records), log: () => undefined });
  const wallMs = performance.now() - started;
  const stats = db.stats().namespaces.bench!;
  for (let i = 0; i < records; i += Math.max(1, Math.floor(records / 1000))) {
    const record = await db.get({ ns: 'bench', set: 'users', key: i });
    if (record?.bins.name !== `user-${i}`) throw new Error(`record ${i} is missing or wrong after a ${stats.startMode} start`);
  }
  await db.close();
  process.stdout.write(`${JSON.stringify({ startMode: stats.startMode, startMs: stats.startMs, objects: stats.objects, wallMs })}\n`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
