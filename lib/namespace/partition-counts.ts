/** Live records per partition, as cluster mode and stats ask for them. */
import { PARTITION_COUNT } from '../constants';
import { partitionIdAt } from '../model/key';
import type { NativePrimaryIndex } from '../native/addon';
import { EX_DATA, EX_DIGEST, Exchange, SCAN_PARTITION_ID, SCAN_RECORD_BYTES } from '../native/exchange';
import { IndexWalk } from './index-scan';

/**
 * Live records per partition (cluster mode asks, once per view change and in stats): kept as
 * records come and go, and recounted from the index (not the data) when stale: after a start,
 * and after a bulk removal (truncate, eviction, an expiry sweep) that does not say which
 * partitions it emptied.
 */
export class PartitionCounts {
  private readonly counts = new Uint32Array(PARTITION_COUNT);
  private stale = true;

  constructor(
    private readonly index: NativePrimaryIndex,
    private readonly exchange: Exchange,
  ) {}

  added(partitionId: number): void {
    this.counts[partitionId]!++;
  }

  removed(partitionId: number): void {
    this.counts[partitionId]!--;
  }

  /** A record of the digest in the exchange was removed. */
  removedInExchange(): void {
    const u8 = this.exchange.u8;
    this.counts[partitionIdAt(u8, EX_DIGEST)]!--;
  }

  /** Records went without saying from which partitions: recount at the next read. */
  invalidate(): void {
    this.stale = true;
  }

  /** The counts (length 4096), recounted first when stale. */
  read(): Uint32Array {
    if (this.stale) {
      this.counts.fill(0);
      for (const walk = new IndexWalk(this.index, this.exchange); !walk.done; ) {
        const count = walk.next();
        for (let i = 0; i < count; i++) this.counts[this.exchange.buffer.readUInt32LE(EX_DATA + i * SCAN_RECORD_BYTES + SCAN_PARTITION_ID)]!++;
      }
      this.stale = false;
    }
    return this.counts;
  }
}
