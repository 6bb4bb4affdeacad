/**
 * Type tests of the public API, never run: test/package-install.test.ts compiles this file in
 * a strict TypeScript project against the installed tarball's declarations (the import below
 * becomes 'shoal'), and `npm run typecheck` against the sources. Every line marked
 * ts-expect-error must fail to compile: tsc reports a directive that suppresses no error as an
 * error of its own, so a check that stops failing fails the test.
 */
import { BinValue, Db, DigestKey, Key, op, open, Record as DeprecatedRecord, ShoalRecord, StartMode, UserKey } from '../../lib/index';

interface Profile {
  name: string;
  langs: string[];
}

interface Session {
  user: string;
  hits: number;
  tags?: string[];
  profile?: Profile;
  avatar?: Buffer;
  visits?: bigint;
}

interface WithDate {
  when: Date;
}

declare const db: Db;
declare const key: Key;

/** The API contract of issue 17, verbatim. */
export async function contract(): Promise<void> {
  const r = await db.get<{ name: string }>(key);
  const n: string | undefined = r?.bins.name;
  void n;
}

export async function typedBins(): Promise<void> {
  const session: Session = { user: 'ada', hits: 0, profile: { name: 'Ada', langs: ['en'] } };
  // An interface, nested interfaces included, is a bins argument.
  await db.put(key, session);
  await db.put<Session>(key, { user: 'ada', hits: 1 });
  await db.batchPut<Session>([{ key, bins: session }]);
  await db.batchPut([{ key, bins: { user: 'ada', hits: 2 } }, { key, bins: { other: 1 } }]);

  const read = await db.get<Session>(key);
  if (read !== undefined) {
    const hits: number = read.bins.hits;
    const name: string | undefined = read.bins.profile?.name;
    void [hits, name];
  }
  const sync: ShoalRecord<Session> | undefined = db.getSync<Session>(key);
  const many = await db.batchGet<Session>([key, key]);
  const user: string | undefined = many[0]?.bins.user;
  for await (const record of db.scan<Session>('cache', 'sessions')) {
    const tags: string[] | undefined = record.bins.tags;
    void tags;
  }
  const counted = await db.operate<{ hits: number }>(key, [op.incr('hits', 1), op.read('hits')]);
  const hits: number = counted.bins.hits;
  void [sync, user, hits];
}

export async function untypedBins(): Promise<void> {
  await db.put(key, { user: 'ada', hits: 0, removed: null, nested: { list: [1, 'two', { three: 3n }] } });
  const record = await db.get(key);
  const value: BinValue | undefined = record?.bins.anything;
  // @ts-expect-error bins read without a type are BinValue, not string
  const text: string | undefined = record?.bins.anything;
  void [value, text];
}

export async function refusedBins(withDate: WithDate): Promise<void> {
  // @ts-expect-error hits is a number in Session
  await db.put<Session>(key, { user: 'ada', hits: '1' });
  // @ts-expect-error a Date is not a bin value
  await db.put(key, { when: new Date() });
  // @ts-expect-error nor in an interface
  await db.put(key, withDate);
  // A Map is a bin value (a map whose keys need not be strings), a Set is not.
  await db.put(key, { lookup: new Map<number, string>([[1, 'one']]) });
  // @ts-expect-error nor a Set
  await db.put(key, { lookup: new Set<number>() });
  // @ts-expect-error nor a function
  await db.put(key, { callback: () => 1 });
  // @ts-expect-error nor a symbol, nested
  await db.put(key, { deep: { list: [Symbol('x')] } });
  // @ts-expect-error get<B> takes only storable shapes too
  await db.get<WithDate>(key);
}

export function keys(): void {
  const byKey: Key = { ns: 'cache', set: 'sessions', key: 's1' };
  const byInteger: UserKey = { ns: 'cache', key: 42n };
  const byDigest: DigestKey = { ns: 'cache', set: 'sessions', digest: Buffer.alloc(20) };
  const both: Key = { ns: 'cache', key: 's1', digest: Buffer.alloc(20) };
  // @ts-expect-error a key needs a key or a digest
  const neither: Key = { ns: 'c' };
  // @ts-expect-error a boolean is not a key value
  const wrongType: Key = { ns: 'c', key: true };
  // @ts-expect-error ns is required
  const noNamespace: Key = { key: 's1' };
  void [byKey, byInteger, byDigest, both, neither, wrongType, noNamespace];
}

export function recordTypes(): void {
  const plain: ShoalRecord = { key: { ns: 'c', key: 1 }, bins: { a: 1 }, gen: 1, ttl: -1 };
  // The deprecated name still works, generic too.
  const legacy: DeprecatedRecord = plain;
  const legacyTyped: DeprecatedRecord<{ a: number }> = { ...plain, bins: { a: 1 } };
  // Record is Shoal's only where imported: TypeScript's global Record<K, V> is untouched elsewhere.
  const global: globalThis.Record<string, number> = { a: 1 };
  void [legacy, legacyTyped, global];
}

export async function lifecycle(): Promise<void> {
  await using scoped = await open({
    namespaces: [{ name: 'cache', storage: { type: 'memory', maxBytes: 1 << 20 } }],
    handleSignals: false,
  });
  await scoped.put({ ns: 'cache', key: 1 }, { a: 1 });
  // @ts-expect-error handleSignals is a boolean
  await open({ namespaces: [], handleSignals: 'no' });
}

// A start recovered from the index checkpoint is one of the start modes; nothing else is.
const startModes: StartMode[] = ['warm', 'recovered', 'cold', 'new'];
// @ts-expect-error not a start mode
const notAStartMode: StartMode = 'replayed';
void startModes;
void notAStartMode;
