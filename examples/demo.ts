/**
 * The demo: the main job on an embedded default. It opens a data folder with a memory
 * namespace (a cache) and, when the storage engine is available, a device namespace; writes
 * and reads; closes; re-opens warm from shared memory; and prints what happened.
 *
 *   npm run demo [-- --data-dir ./shoal-demo]
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { open, op, type NamespaceOptions } from '../lib/index';

const dataDir = path.resolve(process.argv.includes('--data-dir') ? process.argv[process.argv.indexOf('--data-dir') + 1]! : './shoal-demo');

const namespaces: NamespaceOptions[] = [
  { name: 'cache', storage: { type: 'memory', maxBytes: 64 << 20 }, defaultTtl: 3600, evict: { policy: 'lru' } },
  { name: 'users', storage: { type: 'device', paths: ['users.dat'], sizeBytes: 64 << 20, dataInMemory: false } },
];

function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function openDb() {
  try {
    return { db: await open({ dataDir, namespaces }), device: true };
  } catch (error) {
    print(`  (device namespace unavailable: ${(error as Error).message}; continuing with the cache only)`);
    return { db: await open({ dataDir, namespaces: namespaces.slice(0, 1) }), device: false };
  }
}

async function main(): Promise<void> {
  print(`Shoal demo — data folder ${dataDir}`);
  let started = performance.now();
  const { db, device } = await openDb();
  const stats = db.stats();
  print(`1. open: ${Math.round(performance.now() - started)} ms; cache start ${stats.namespaces.cache!.startMode}` +
    (device ? `, users start ${stats.namespaces.users!.startMode}` : ''));

  const count = 10_000;
  started = performance.now();
  for (let i = 0; i < count; i++) {
    await db.put({ ns: 'cache', set: 'sessions', key: `s${i}` }, { user: `u${i % 100}`, hits: 0 });
  }
  if (device) {
    for (let i = 0; i < 100; i++) {
      await db.put({ ns: 'users', set: 'profiles', key: `u${i}` }, { name: `User ${i}`, visits: 1 }, { durable: i === 99 });
    }
  }
  print(`2. wrote ${count} cache records${device ? ' and 100 durable user profiles' : ''} in ${Math.round(performance.now() - started)} ms`);

  const session = db.getSync({ ns: 'cache', set: 'sessions', key: 's42' });
  print(`3. getSync s42 -> ${JSON.stringify(session?.bins)} (gen ${session?.gen}, ttl ${session?.ttl} s)`);
  const bumped = await db.operate({ ns: 'cache', set: 'sessions', key: 's42' }, [op.incr('hits', 1), op.read('hits')]);
  print(`4. operate incr hits -> ${JSON.stringify(bumped.bins)} (gen ${bumped.gen})`);
  if (device) {
    const profile = await db.get({ ns: 'users', set: 'profiles', key: 'u7' });
    print(`5. get users/u7 from the device -> ${JSON.stringify(profile?.bins)}`);
  }

  await db.close();
  print('6. closed cleanly: the indexes stay in shared memory, marked clean');
  print('   restarting in a new process...');
  const child = spawnSync(process.execPath, [__filename, '--data-dir', dataDir, '--reopen'], { stdio: 'inherit' });
  if (child.status !== 0) throw new Error(`the re-open process failed with status ${child.status}`);
}

/** The second process: attaches to the shared-memory indexes the first one left. */
async function reopen(): Promise<void> {
  const started = performance.now();
  const { db, device } = await openDb();
  const stats = db.stats();
  print(`7. re-open in process ${process.pid}: ${Math.round(performance.now() - started)} ms; cache start ${stats.namespaces.cache!.startMode} ` +
    `with ${stats.namespaces.cache!.objects} records` +
    (device ? `; users start ${stats.namespaces.users!.startMode} with ${stats.namespaces.users!.objects} records` : ''));
  const again = db.getSync({ ns: 'cache', set: 'sessions', key: 's42' });
  print(`8. after restart, s42 -> ${JSON.stringify(again?.bins)} (gen ${again?.gen})`);
  if (device) {
    const profile = await db.get({ ns: 'users', set: 'profiles', key: 'u99' });
    print(`   users/u99 (written durable) -> ${JSON.stringify(profile?.bins)}`);
  }
  await db.close({ dropIndex: true });
  print('9. closed with dropIndex: shared memory freed. Done.');
}

(process.argv.includes('--reopen') ? reopen() : main()).catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
