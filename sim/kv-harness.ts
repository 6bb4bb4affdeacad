/**
 * A minimal key-value front end over DeviceStore with an in-JS index: the engine-level tests,
 * the crash-test child process and the storage benchmark use it to drive the engine without
 * the namespace layer. Keys are strings; the digest is SHA-1 of the key (20 bytes, like a
 * RIPEMD-160 digest for the engine's purposes). Not part of the public API.
 */
import { createHash } from 'node:crypto';
import {
  ENTRY_GENERATION,
  ENTRY_LAST_UPDATE_MS,
  ENTRY_LOCATION_HIGH,
  ENTRY_LOCATION_LOW,
  ENTRY_VOID_TIME,
  EX_DATA,
  EX_DIGEST,
  EX_ENTRY,
  EX_SET,
  EX_SET_LENGTH,
  Exchange,
} from '../lib/native/exchange';
import { type ColdStartReport, DeviceStore, type DeviceStoreOptions, type StoreIndex } from '../lib/storage/device-store';

interface Entry {
  low: number;
  high: number;
  generation: number;
  lastUpdateMs: number;
  voidTime: number;
  payload: Buffer | undefined;
}

export class MapIndex implements StoreIndex {
  readonly entries = new Map<string, Entry>();

  locate(digest: Buffer, at: number, out: Uint32Array): boolean {
    const entry = this.entries.get(digest.toString('latin1', at, at + 20));
    if (entry === undefined) return false;
    out[0] = entry.low;
    out[1] = entry.high;
    return true;
  }

  relocate(digest: Buffer, at: number, low: number, high: number): void {
    const entry = this.entries.get(digest.toString('latin1', at, at + 20))!;
    entry.low = low;
    entry.high = high;
  }
}

export function digestOf(key: string): Buffer {
  return createHash('sha1').update(key).digest();
}

export interface HarnessRecord {
  payload: Buffer;
  generation: number;
  voidTime: number;
}

export class KvHarness {
  readonly index = new MapIndex();
  readonly exchange: Exchange;
  report: ColdStartReport | undefined;
  private readonly set: Buffer;

  private constructor(
    readonly store: DeviceStore,
    private readonly dataInMemory: boolean,
    setName: string,
    dataCapacity: number,
  ) {
    this.exchange = new Exchange(dataCapacity);
    this.set = Buffer.from(setName, 'utf8');
  }

  /** Opens the store and cold-starts it into the map index. */
  static async open(options: DeviceStoreOptions & { setName?: string }): Promise<KvHarness> {
    const store = await DeviceStore.open(options);
    const harness = new KvHarness(store, options.withPayload === true, options.setName ?? 'test', store.writeBlockBytes);
    try {
      harness.report = await store.coldStart(harness.index, (record) => {
        harness.index.entries.set(record.digest.toString('latin1'), {
          low: record.locationLow,
          high: record.locationHigh,
          generation: record.generation,
          lastUpdateMs: record.lastUpdateMs,
          voidTime: record.voidTime,
          payload: record.payload === undefined ? undefined : Buffer.from(record.payload),
        });
      });
    } catch (error) {
      await store.close().catch(() => undefined);
      throw error;
    }
    return harness;
  }

  /** Writes key = payload; resolves when acknowledged (durable: once on the device). */
  put(key: string, payload: Buffer, options: { durable?: boolean; voidTime?: number; lastUpdateMs?: number } = {}): Promise<void> | undefined {
    const digest = digestOf(key);
    const name = digest.toString('latin1');
    const previous = this.index.entries.get(name);
    const exchange = this.exchange;
    this.prepare(digest);
    const generation = ((previous?.generation ?? 0) + 1) >>> 0;
    const lastUpdateMs = options.lastUpdateMs ?? Math.max(Date.now(), previous?.lastUpdateMs ?? 0);
    const voidTime = options.voidTime ?? 0;
    exchange.u32[(EX_ENTRY + ENTRY_GENERATION) >>> 2] = generation;
    exchange.u32[(EX_ENTRY + ENTRY_VOID_TIME) >>> 2] = voidTime;
    exchange.f64[(EX_ENTRY + ENTRY_LAST_UPDATE_MS) >>> 3] = lastUpdateMs;
    payload.copy(exchange.buffer, EX_DATA);
    const done = this.store.write(exchange, payload.length, 0, options.durable === true);
    const low = exchange.u32[(EX_ENTRY + ENTRY_LOCATION_LOW) >>> 2]!;
    const high = exchange.u32[(EX_ENTRY + ENTRY_LOCATION_HIGH) >>> 2]!;
    this.index.entries.set(name, { low, high, generation, lastUpdateMs, voidTime, payload: this.dataInMemory ? Buffer.from(payload) : undefined });
    if (previous !== undefined) this.store.release(previous.low, previous.high);
    return done;
  }

  /** Removes key; returns whether it existed (and, with durable, a promise for the device). */
  remove(key: string, options: { durable?: boolean } = {}): { existed: boolean; done: Promise<void> | undefined } {
    const digest = digestOf(key);
    const name = digest.toString('latin1');
    const previous = this.index.entries.get(name);
    if (previous === undefined) return { existed: false, done: undefined };
    this.index.entries.delete(name);
    this.prepare(digest);
    const done = this.store.remove(this.exchange, previous.low, previous.high, previous.generation, previous.lastUpdateMs, options.durable === true);
    return { existed: true, done };
  }

  /** The record, or undefined; expired records are not returned. */
  async get(key: string): Promise<HarnessRecord | undefined> {
    const digest = digestOf(key);
    const entry = this.index.entries.get(digest.toString('latin1'));
    if (entry === undefined) return undefined;
    if (entry.voidTime !== 0 && entry.voidTime <= Date.now() / 1000) return undefined;
    const payload = entry.payload ?? (await this.store.read(entry.low, entry.high, digest));
    return { payload, generation: entry.generation, voidTime: entry.voidTime };
  }

  /** Synchronous get from memory (dataInMemory), undefined when absent. */
  getSync(key: string): Buffer | undefined {
    return this.index.entries.get(digestOf(key).toString('latin1'))?.payload;
  }

  /** Expires (drops from the index, as a sweep would) every entry whose void time has passed. */
  sweepExpired(nowSeconds: number): number {
    let removed = 0;
    for (const [name, entry] of this.index.entries) {
      if (entry.voidTime !== 0 && entry.voidTime <= nowSeconds) {
        this.index.entries.delete(name);
        this.store.release(entry.low, entry.high);
        removed++;
      }
    }
    return removed;
  }

  keys(): number {
    return this.index.entries.size;
  }

  close(): Promise<void> {
    return this.store.close();
  }

  private prepare(digest: Buffer): void {
    const buffer = this.exchange.buffer;
    digest.copy(buffer, EX_DIGEST);
    buffer.writeUInt16LE(this.set.length, EX_SET_LENGTH);
    this.set.copy(buffer, EX_SET);
  }
}
