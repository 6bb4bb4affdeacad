/**
 * A map keyed by record (namespace and digest) without a string per record: the shipper's
 * queue sees every write, and building a "ns\0digest" string for each cost a few per cent of
 * a node's CPU under load (docs/xdr.md, "Measured"). Records are bucketed by 30 bits of their
 * digest (a small integer, the cheapest Map key); records sharing a bucket (a few among
 * hundreds of thousands) are told apart by namespace and full digest.
 *
 * Iteration follows the order in which buckets were first filled (the queue's oldest first,
 * except that a record sharing a bucket comes out with the bucket's first record).
 */
export interface RecordKeyed {
  ns: string;
  digest: Buffer;
}

export class RecordMap<V extends RecordKeyed> {
  private readonly buckets = new Map<number, V | V[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(ns: string, digest: Buffer): V | undefined {
    const bucket = this.buckets.get(bucketOf(digest));
    if (bucket === undefined) return undefined;
    if (!Array.isArray(bucket)) return same(bucket, ns, digest) ? bucket : undefined;
    for (const value of bucket) if (same(value, ns, digest)) return value;
    return undefined;
  }

  has(ns: string, digest: Buffer): boolean {
    return this.get(ns, digest) !== undefined;
  }

  /** Adds or replaces the value of its record. */
  set(value: V): void {
    const key = bucketOf(value.digest);
    const bucket = this.buckets.get(key);
    if (bucket === undefined) {
      this.buckets.set(key, value);
      this.count++;
      return;
    }
    if (!Array.isArray(bucket)) {
      if (same(bucket, value.ns, value.digest)) this.buckets.set(key, value);
      else {
        this.buckets.set(key, [bucket, value]);
        this.count++;
      }
      return;
    }
    const at = bucket.findIndex((other) => same(other, value.ns, value.digest));
    if (at >= 0) bucket[at] = value;
    else {
      bucket.push(value);
      this.count++;
    }
  }

  /** Removes a record's value; returns it (undefined when there was none). */
  delete(ns: string, digest: Buffer): V | undefined {
    const key = bucketOf(digest);
    const bucket = this.buckets.get(key);
    if (bucket === undefined) return undefined;
    if (!Array.isArray(bucket)) {
      if (!same(bucket, ns, digest)) return undefined;
      this.buckets.delete(key);
      this.count--;
      return bucket;
    }
    const at = bucket.findIndex((other) => same(other, ns, digest));
    if (at < 0) return undefined;
    const [value] = bucket.splice(at, 1);
    if (bucket.length === 1) this.buckets.set(key, bucket[0]!);
    this.count--;
    return value;
  }

  /** The values; deleting (or adding) while iterating is allowed (a shared bucket is read as it was when reached). */
  *values(): IterableIterator<V> {
    for (const bucket of this.buckets.values()) {
      if (!Array.isArray(bucket)) yield bucket;
      else for (const value of bucket.slice()) yield value;
    }
  }

  /** The first value in iteration order, if any. */
  first(): V | undefined {
    for (const bucket of this.buckets.values()) return Array.isArray(bucket) ? bucket[0] : bucket;
    return undefined;
  }

  clear(): void {
    this.buckets.clear();
    this.count = 0;
  }
}

/** 30 bits of a digest (a small integer: no heap number per key). */
function bucketOf(digest: Buffer): number {
  return (digest[0]! | (digest[1]! << 8) | (digest[2]! << 16) | ((digest[3]! & 0x3f) << 24)) >>> 0;
}

/** Whether a value is of the record (a byte loop: cheaper than a native call for 20 bytes). */
function same(value: RecordKeyed, ns: string, digest: Buffer): boolean {
  const other = value.digest;
  if (value.ns !== ns || other.length !== digest.length) return false;
  for (let i = 0; i < digest.length; i++) if (other[i] !== digest[i]) return false;
  return true;
}
