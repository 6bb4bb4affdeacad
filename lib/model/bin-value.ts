/** The value types of bins, below both the codec (bin-encoder.ts) and the checks (bins.ts). */

/**
 * A bin value as stored. A bin's own value is never null (a write of null removes the bin);
 * inside lists and maps null is a value (Aerospike's nil). A Map holds a map whose keys are
 * not all strings (integers, bigints, Buffers); reads return such maps as Maps, string-keyed
 * maps as plain objects.
 */
export type BinValue =
  | string
  | number
  | bigint
  | boolean
  | Buffer
  | Uint8Array
  | BinValue[]
  | { [name: string]: BinValue }
  | Map<string | number | bigint | Buffer | Uint8Array, BinValue>
  | null;
export type Bins = Record<string, BinValue>;
