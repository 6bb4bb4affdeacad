/**
 * The partition filter of a scan, as the native index reads it: a 4096-bit bitmap, bit p at
 * byte p >> 3, bit p & 7 (docs/native-boundary.md).
 */

/** A bitmap of the given partition ids, or undefined for "all partitions". */
export function partitionFilter(partitions: readonly number[] | undefined): Uint8Array | undefined {
  if (partitions === undefined) return undefined;
  const bitmap = new Uint8Array(512);
  for (const id of partitions) bitmap[id >>> 3]! |= 1 << (id & 7);
  return bitmap;
}

