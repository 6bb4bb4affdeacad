/** ShoalRecords as reads return them, from the exchange or from decoded bins. */
import { Bins, decodePayloadBins, selectBins } from '../model/bins';
import type { Key } from '../model/key';
import { ENTRY_GENERATION, EX_DATA, Exchange } from '../native/exchange';
import type { ReadOptions, ShoalRecord } from './namespace';
import { ttlOf } from './semantics';

/** The record a lookup with READ_COPY_DATA just left in the exchange (payload of `length` bytes). */
export function recordFromExchange(exchange: Exchange, key: Key, length: number, voidTime: number, nowSeconds: number, options: ReadOptions | undefined): ShoalRecord {
  return recordOf(key, decodePayloadBins(exchange.buffer, EX_DATA, length), exchange.entryU32(ENTRY_GENERATION), voidTime, nowSeconds, options);
}

/** A ShoalRecord from decoded bins, narrowed to `options.bins` when asked. */
export function recordOf(key: Key, bins: Bins, gen: number, voidTime: number, nowSeconds: number, options: ReadOptions | undefined): ShoalRecord {
  return { key, bins: options?.bins === undefined ? bins : selectBins(bins, options.bins), gen, ttl: ttlOf(voidTime, nowSeconds) };
}
