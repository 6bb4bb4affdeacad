/**
 * Finding write blocks by their own headers (docs/storage-format.md): what identifies a
 * damaged device as Shoal's (device-identity.ts) and what repair rebuilds a header from
 * (device-repair.ts). Reads only.
 */
import { ErrorCode, ShoalError } from '../errors';
import { WRITE_BLOCK_BYTES_MAX, WRITE_BLOCK_BYTES_MIN } from '../constants';
import { DATA_START_BYTES, IO_ALIGN_BYTES, MAX_BLOCKS_PER_DEVICE, REPAIR_READS_IN_FLIGHT } from './constants';
import { type BlockHeader, decodeBlockHeader } from './format';
import type { NativeDevice } from './native-device';

/** Write blocks found on a device: their size, and the valid block headers at their places. */
export interface FoundBlocks {
  writeBlockBytes: number;
  blocks: BlockHeader[];
}

/**
 * Looks for Shoal write blocks on a device: valid block headers whose block index is their
 * position, for the block size given first and then every other allowed size, reading at most
 * `limit` block headers per size (all with undefined). Returns the first size with any, or
 * undefined when there are none.
 * @throws ShoalError IO_ERROR when the device cannot be read.
 */
export async function findWriteBlocks(device: NativeDevice, writeBlockBytes: number, limit: number | undefined, crc32c: (data: Uint8Array) => number): Promise<FoundBlocks | undefined> {
  const sizes = [writeBlockBytes];
  for (let size = WRITE_BLOCK_BYTES_MIN; size <= WRITE_BLOCK_BYTES_MAX; size *= 2) if (size !== writeBlockBytes) sizes.push(size);
  for (const size of sizes) {
    const count = Math.min(limit ?? Infinity, MAX_BLOCKS_PER_DEVICE, Math.floor((device.sizeBytes - DATA_START_BYTES) / size));
    const blocks = await readBlockHeaders(device, size, count, crc32c);
    if (blocks.length > 0) return { writeBlockBytes: size, blocks };
  }
  return undefined;
}

/** The valid block headers of blocks [0, count) of `size` bytes, REPAIR_READS_IN_FLIGHT reads at a time. */
async function readBlockHeaders(device: NativeDevice, size: number, count: number, crc32c: (data: Uint8Array) => number): Promise<BlockHeader[]> {
  const found: BlockHeader[] = [];
  let next = 0;
  const reader = async (): Promise<void> => {
    while (next < count) {
      const block = next++;
      let page: Buffer;
      try {
        page = await device.read(DATA_START_BYTES + block * size, IO_ALIGN_BYTES);
      } catch (error) {
        throw new ShoalError(ErrorCode.IO_ERROR, `reading the write blocks of ${device.path}: ${(error as Error).message}`, { cause: error });
      }
      const header = decodeBlockHeader(page, 0, crc32c);
      if (header !== undefined && header.blockIndex === block) found.push(header);
    }
  };
  await Promise.all(Array.from({ length: Math.min(REPAIR_READS_IN_FLIGHT, count) }, reader));
  return found;
}
