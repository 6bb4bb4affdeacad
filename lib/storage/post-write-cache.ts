/**
 * The post-write cache (docs/storage.md, "Reads"): the buffers of the most recently sealed
 * write blocks, kept so that reads of fresh records skip the device, and the spare buffers of
 * blocks that left memory, reused by the next blocks to open (WRITE_BLOCK_SPARES) instead of
 * allocating 1 MiB each time.
 */
import { MAX_BLOCKS_PER_DEVICE, WRITE_BLOCK_SPARES } from './constants';
import type { DeviceState, StoreState } from './store-state';

export class PostWriteCache {
  private readonly blocks = new Map<number, Buffer>();
  private readonly spares: Buffer[] = [];

  /**
   * @param limit how many sealed blocks to keep (0: none)
   * @param reusable whether a buffer that left memory may be reused now (false while
   *   defragmentation holds blocks it read across awaits)
   */
  constructor(
    private readonly state: StoreState,
    readonly limit: number,
    private readonly reusable: () => boolean,
  ) {}

  /** Keeps a sealed block's buffer, evicting the oldest beyond the limit (its buffer spared unless still being written). */
  put(device: DeviceState, block: number, buffer: Buffer): void {
    if (this.limit <= 0) return;
    const key = this.state.blockKey(device, block);
    this.blocks.delete(key);
    this.blocks.set(key, buffer);
    if (this.blocks.size > this.limit) {
      const evicted = this.blocks.keys().next().value!;
      const evictedBuffer = this.blocks.get(evicted)!;
      this.blocks.delete(evicted);
      const owner = this.state.deviceOfKey(evicted);
      if (owner?.sealedInFlight.get(evicted % MAX_BLOCKS_PER_DEVICE)?.buffer !== evictedBuffer) this.spare(evictedBuffer);
    }
  }

  /** The buffer of a block when it is open, in flight or cached, else undefined. */
  blockInMemory(device: DeviceState, block: number): Buffer | undefined {
    const current = device.current;
    if (current !== undefined && current.block === block) return current.buffer;
    return device.sealedInFlight.get(block)?.buffer ?? this.blocks.get(this.state.blockKey(device, block));
  }

  /** Forgets a block (it was freed). */
  forget(device: DeviceState, block: number): void {
    this.blocks.delete(this.state.blockKey(device, block));
  }

  /** Forgets every cached block (tests: reads go to the device). */
  clear(): void {
    this.blocks.clear();
  }

  /** The cached buffers (for the count of blocks in memory). */
  buffers(): IterableIterator<Buffer> {
    return this.blocks.values();
  }

  /** A spare write-block buffer, or undefined. */
  takeSpare(): Buffer | undefined {
    return this.spares.pop();
  }

  /**
   * Keeps the buffer of a block that left memory for the next block to open. Only when nothing
   * can still read it: it is out of the cache and not being written (the callers' business),
   * and no defragmentation slice is running (a slice holds the blocks it read across awaits).
   * Never once the store has failed: writeUpTo then rejects at once, so a block can leave
   * sealedInFlight while a write of it is still in flight, and an I/O thread may still be
   * copying from its buffer (NativeDevice.write with sourceStable).
   */
  spare(buffer: Buffer): void {
    if (this.state.failed !== undefined || !this.reusable() || this.spares.length >= WRITE_BLOCK_SPARES || buffer.length !== this.state.writeBlockBytes) return;
    this.spares.push(buffer);
  }
}
