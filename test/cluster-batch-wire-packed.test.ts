/**
 * The packed forms of a cluster batch (lib/cluster/batch-wire.ts: a batch request's digests and
 * items, a batch response's put results) and the walk that lets a peer's payload be stored
 * without decoding it (lib/model/payload-check.ts). Every packed form round-trips; every
 * cut-short or altered one from a peer is refused with a reason. The walk vouches only for
 * payloads that decode to bins checkBins accepts: random bins it must accept, hostile bytes it
 * must refuse, and a fuzz of mutated payloads never finds one it vouches for that does not
 * decode to valid bins.
 */
import { describe, expect, it } from 'vitest';
import { encodeBatchSteps, packBatchItems, parseBatchSteps, unpackBatchItems, type BatchStep } from '../lib/cluster/batch-wire';
import { PayloadPut, PutItemEncoder, decodePutItem } from '../lib/db-batch-wire';
import { checkBins, decodePayloadBins, encodePayload, isPlainObject } from '../lib/model/bins';
import { payloadWellFormed } from '../lib/model/payload-check';
import type { Bins } from '../lib/model/bins';

function payloadOf(bins: Bins): Buffer {
  const buffer = Buffer.alloc(1 << 16);
  const length = encodePayload(buffer, 0, buffer.length, bins, 0, undefined);
  return Buffer.from(buffer.subarray(0, length));
}

/** A payload of format 1 with these bins bytes (a msgpack map written by hand). */
function rawPayload(...bins: number[]): Buffer {
  return Buffer.from([1, 0, 0, 0, ...bins]);
}

/** Whether the payload decodes to bins checkBins accepts without nulls (what the walk promises). */
function decodesToBins(payload: Buffer): boolean {
  try {
    const bins = decodePayloadBins(payload, 0, payload.length);
    if (!isPlainObject(bins)) return false;
    checkBins(bins, false);
    return true;
  } catch {
    return false;
  }
}

function randomValue(random: () => number, depth: number): unknown {
  switch (Math.floor(random() * (depth > 2 ? 6 : 8))) {
    case 0:
      return Math.floor(random() * 2 ** 31) - 2 ** 30;
    case 1:
      return random() * 1e6 - 5e5;
    case 2:
      return 'x'.repeat(Math.floor(random() * 40)) + 'é';
    case 3:
      return random() < 0.5;
    case 4:
      return BigInt(Math.floor(random() * 2 ** 40)) * 4096n;
    case 5:
      return Buffer.from([1, 2, Math.floor(random() * 256)]);
    case 6:
      return Array.from({ length: Math.floor(random() * 4) }, () => (random() < 0.2 ? null : randomValue(random, depth + 1)));
    default:
      return Object.fromEntries(Array.from({ length: Math.floor(random() * 4) }, (_, i) => [`k${i}`, randomValue(random, depth + 1)]));
  }
}

function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) & 0x7fffffff;
    return state / 0x80000000;
  };
}

describe('payload walk', () => {
  it('vouches for what the encoder writes for valid bins', () => {
    const random = seeded(7);
    for (let n = 0; n < 2_000; n++) {
      const bins: Bins = {};
      const count = 1 + Math.floor(random() * 6);
      for (let i = 0; i < count; i++) bins[`bin${i}`] = randomValue(random, 0) as never;
      const payload = payloadOf(bins);
      expect(payloadWellFormed(payload, 0, payload.length), JSON.stringify(Object.keys(bins))).toBe(true);
      expect(decodesToBins(payload)).toBe(true);
    }
  });

  it('refuses hostile payloads (the caller decodes those, and refuses them there)', () => {
    const refused = [
      Buffer.from([1, 0, 0]), // shorter than a header
      Buffer.from([2, 0, 0, 0, 0x81, 0xa1, 0x76, 1]), // format 2 is left to the decoder
      Buffer.from([1, 0, 9, 0, 0x81, 0xa1, 0x76, 1]), // a key running past the end
      rawPayload(0x80), // no bins
      rawPayload(0x81, 0xa1, 0x76), // a bin without a value
      rawPayload(0x81, 0xa1, 0x76, 1, 0), // a byte past the map
      rawPayload(0x82, 0xa1, 0x76, 1), // a map shorter than its count
      rawPayload(0x81, 0xa1, 0x76, 0xc0), // a bin's own nil
      rawPayload(0x82, 0xa1, 0x76, 1, 0xa1, 0x76, 2), // a bin named twice
      rawPayload(0x81, 0xa0, 1), // an empty bin name
      rawPayload(0x81, 0xb0, ...Buffer.from('sixteen-bytes-xx'), 1), // a bin name over 15 bytes
      rawPayload(0x81, 0xa2, 0xc3, 0xa9, 1), // a bin name that is not ASCII
      rawPayload(0x81, 0xa9, ...Buffer.from('__proto__'), 1), // a prototype
      rawPayload(0x81, 0xa1, 0x76, 0x81, 0xa9, ...Buffer.from('__proto__'), 1), // ... in a nested map
      rawPayload(0x81, 0xa1, 0x76, 0x81, 0x01, 1), // a nested map keyed by an integer
      rawPayload(0x81, 0xa1, 0x76, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), // NaN
      rawPayload(0x81, 0xa1, 0x76, 0xca, 0xff, 0x80, 0, 0), // -Infinity as float32
      rawPayload(0x81, 0xa1, 0x76, 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0), // past int64
      rawPayload(0x81, 0xa1, 0x76, 0xd4, 0, 0), // an extension
      rawPayload(0x81, 0xa1, 0x76, 0xc1), // never used
      rawPayload(0x81, 0xa1, 0x76, 0xdb, 0xff, 0xff, 0xff, 0xff, 0x61), // a string longer than the payload
      rawPayload(0x81, 0xa1, 0x76, 0xdd, 0xff, 0xff, 0xff, 0xff, 1), // a list longer than the payload
      rawPayload(0x81, 0xa1, 0x76, ...Array<number>(65).fill(0x91), 1), // nested deeper than 64 levels
    ];
    refused.forEach((payload, i) => expect(payloadWellFormed(payload, 0, payload.length), `case ${i}`).toBe(false));
    // 64 levels are allowed, as checkBins allows them.
    const deep = rawPayload(0x81, 0xa1, 0x76, ...Array<number>(64).fill(0x91), 1);
    expect(payloadWellFormed(deep, 0, deep.length)).toBe(true);
    expect(decodesToBins(deep)).toBe(true);
  });

  it('never vouches for a mutated payload that does not decode to valid bins', () => {
    const random = seeded(11);
    let vouched = 0;
    for (let n = 0; n < 20_000; n++) {
      const bins: Bins = { a: randomValue(random, 0) as never, b: randomValue(random, 0) as never };
      const payload = payloadOf(bins);
      const mutated = Buffer.from(payload);
      const flips = 1 + Math.floor(random() * 3);
      for (let f = 0; f < flips; f++) mutated[4 + Math.floor(random() * (mutated.length - 4))] = Math.floor(random() * 256);
      const cut = random() < 0.3 ? mutated.subarray(0, 4 + Math.floor(random() * (mutated.length - 4))) : mutated;
      if (!payloadWellFormed(cut, 0, cut.length)) continue;
      vouched++;
      expect(decodesToBins(Buffer.from(cut)), cut.toString('hex')).toBe(true);
    }
    // The fuzz exercised the accepting side too.
    expect(vouched).toBeGreaterThan(1_000);
  });

  it('lets a put item carry its bins encoded, decoding them only when asked', () => {
    const encoder = new PutItemEncoder();
    const item = encoder.encode({ ns: 'n', set: 's', key: 'k' }, { v: 1, name: 'x' }, undefined)!;
    const call = decodePutItem(item, 'n');
    expect(call).toBeInstanceOf(PayloadPut);
    expect(call.bins).toEqual({ v: 1, name: 'x' });
    // A bin written as null is not carried encoded: the master's per-record path needs the bins.
    expect(decodePutItem(encoder.encode({ ns: 'n', key: 1 }, { v: null, w: 1 } as never, undefined)!, 'n')).not.toBeInstanceOf(PayloadPut);
  });
});

describe('packed batch requests', () => {
  const digests = [Buffer.alloc(20, 1), Buffer.alloc(20, 2), Buffer.alloc(20, 3)];
  const items = [Buffer.from([0xb1, 1, 2]), Buffer.from([0xb1]), Buffer.alloc(300, 0xb1)];

  it('round-trip digests and items', () => {
    const packed = packBatchItems(digests, items)!;
    expect(unpackBatchItems(packed.digests, packed.items, 10)).toEqual({ digests, operations: items });
    expect(packBatchItems(digests, [items[0], { method: 'put' }, items[2]])).toBeUndefined();
  });

  it('refuse every cut-short, padded or inconsistent request with a reason', () => {
    const packed = packBatchItems(digests, items)!;
    for (let length = 0; length < packed.items.length; length++) expect(typeof unpackBatchItems(packed.digests, packed.items.subarray(0, length), 10)).toBe('string');
    expect(unpackBatchItems(packed.digests, Buffer.concat([packed.items, Buffer.from([0])]), 10)).toMatch(/past its last item/);
    expect(unpackBatchItems(packed.digests.subarray(0, 59), packed.items, 10)).toMatch(/whole number of 20 bytes/);
    expect(unpackBatchItems(packed.digests, packed.items, 2)).toMatch(/more than 2/);
    expect(unpackBatchItems([1, 2], packed.items, 10)).toMatch(/two buffers/);
    const huge = Buffer.from(packed.items);
    huge.writeUInt32LE(0xffff_ffff, 0);
    expect(unpackBatchItems(packed.digests, huge, 10)).toMatch(/runs past the end/);
    const empty = Buffer.from(packed.items);
    empty.writeUInt32LE(0, 0);
    expect(typeof unpackBatchItems(packed.digests, empty, 10)).toBe('string');
  });
});

describe('packed batch responses', () => {
  const parseError = (value: unknown) => value as { code: string; message: string };

  it('carry put results packed, and other values as a list', () => {
    const steps: BatchStep[] = [{ value: [1, 100] }, { error: { code: 'RECORD_EXISTS', message: 'exists' } }, { retry: true }, { value: [2 ** 32 - 1, -1] }];
    const encoded = encodeBatchSteps(steps);
    expect(encoded.values).toBeUndefined();
    expect(encoded.writes!.length).toBe(4 * 16);
    // Read back as the { gen, ttl } a put resolves to.
    expect(parseBatchSteps({ type: 'batch-response', ...encoded }, 4, parseError)).toEqual([{ value: { gen: 1, ttl: 100 } }, steps[1], steps[2], { value: { gen: 2 ** 32 - 1, ttl: -1 } }]);
    const records: BatchStep[] = [{ value: { bins: { v: 1 } } }, { value: undefined }];
    const listed = encodeBatchSteps(records);
    expect(listed.writes).toBeUndefined();
    expect(parseBatchSteps({ type: 'batch-response', ...listed }, 2, parseError)).toEqual(records);
  });

  it('refuse packed results of the wrong size or shape', () => {
    const encoded = encodeBatchSteps([{ value: [1, 0] }, { value: [2, 0] }]);
    const reply = (fields: object) => parseBatchSteps({ type: 'batch-response', errors: [], retry: [], ...fields }, 2, parseError);
    expect(reply({ writes: encoded.writes!.subarray(0, 31) })).toBeUndefined();
    expect(reply({ writes: Buffer.concat([encoded.writes!, Buffer.alloc(16)]) })).toBeUndefined();
    expect(reply({ writes: 'bytes' })).toBeUndefined();
    expect(reply({ writes: encoded.writes, values: [1, 2] })).toBeUndefined();
    expect(reply({ writes: encoded.writes })).toEqual([{ value: { gen: 1, ttl: 0 } }, { value: { gen: 2, ttl: 0 } }]);
  });
});
