/**
 * Records too large for one ship message (docs/xdr.md, "Large records"): an admin frame holds
 * at most 64 KiB, so a version whose payload is larger than a batch (XDR_BATCH_MAX_BYTES)
 * travels in parts of XDR_PART_BYTES, one request each, in order on the shipper's connection;
 * the last part carries the version's metadata. The receiver keeps the parts of at most
 * XDR_PART_TRANSFERS_MAX transfers (each at most MAX_RECORD_PAYLOAD_BYTES, dropped after
 * XDR_PART_TRANSFER_IDLE_MS without a part), assembles the payload and applies the version
 * as a one-version ship message.
 *
 *   admin-xdr-part { source, ns, transfer, part, parts, bytes, payloadBytes?, version? }
 *     → { received: part } for the first parts; the ship reply { applied, stale, conflicts } for the last
 */
import { randomBytes } from 'node:crypto';
import type { AdminClient } from '../cluster/admin-client';
import { MAX_RECORD_PAYLOAD_BYTES } from '../cluster/constants';
import type { RecordVersion } from '../cluster/local-store';
import { parseWireVersions, versionsToWire } from '../cluster/peer-checks';
import { invalidArgument } from '../errors';
import { XDR_PART_BYTES, XDR_PART_TRANSFERS_MAX, XDR_PART_TRANSFER_IDLE_MS } from './constants';

/** What a ship message's reply counts. */
export interface ShipCounts {
  applied: number;
  stale: number;
  conflicts: number;
}

/** Ships one large version in parts; resolves to the destination's reply for it. @throws the failing request's error. */
export async function shipLargeVersion(client: AdminClient, source: string, ns: string, version: RecordVersion): Promise<ShipCounts> {
  const payload = version.payload!;
  const transfer = randomBytes(8).toString('hex');
  const parts = Math.ceil(payload.length / XDR_PART_BYTES);
  for (let part = 0; part < parts - 1; part++) {
    await client.request('admin-xdr-part', { source, ns, transfer, part, parts, bytes: payload.subarray(part * XDR_PART_BYTES, (part + 1) * XDR_PART_BYTES) });
  }
  const metadata = versionsToWire([{ ...version, payload: Buffer.alloc(1) }]);
  const last = payload.subarray((parts - 1) * XDR_PART_BYTES);
  return (await client.request('admin-xdr-part', { source, ns, transfer, part: parts - 1, parts, bytes: last, payloadBytes: payload.length, version: metadata })) as ShipCounts;
}

interface Transfer {
  parts: Buffer[];
  bytes: number;
  lastMs: number;
}

/** The receiving side: parts kept per transfer until the last arrives. */
export class LargeTransfers {
  private readonly transfers = new Map<string, Transfer>();

  /**
   * Takes one part. Returns the assembled version once the last part is in, else undefined.
   * @throws ShoalError INVALID_ARGUMENT for a malformed part, a part out of order, or past the bounds.
   */
  take(message: Record<string, unknown>): RecordVersion | undefined {
    const { source, transfer, part, parts, bytes } = message;
    if (typeof source !== 'string' || typeof transfer !== 'string' || transfer.length > 64) throw invalidArgument('malformed xdr-part: no source or transfer id');
    if (!Number.isInteger(parts) || (parts as number) < 2 || (parts as number) > Math.ceil(MAX_RECORD_PAYLOAD_BYTES / XDR_PART_BYTES)) throw invalidArgument('malformed xdr-part: parts out of range');
    if (!Number.isInteger(part) || (part as number) < 0 || (part as number) >= (parts as number)) throw invalidArgument('malformed xdr-part: part out of range');
    if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > XDR_PART_BYTES) throw invalidArgument('malformed xdr-part: no bytes');
    this.expire();
    const key = `${source}\0${transfer}`;
    let state = this.transfers.get(key);
    if (part === 0) {
      if (state !== undefined) throw invalidArgument('malformed xdr-part: a transfer started twice');
      if (this.transfers.size >= XDR_PART_TRANSFERS_MAX) throw invalidArgument(`more than ${XDR_PART_TRANSFERS_MAX} large records in transfer at once`);
      state = { parts: [], bytes: 0, lastMs: Date.now() };
      this.transfers.set(key, state);
    }
    if (state === undefined || state.parts.length !== part) {
      this.transfers.delete(key);
      throw invalidArgument(`xdr-part ${String(part)} of a transfer that is not at that part`);
    }
    state.parts.push(Buffer.from(bytes));
    state.bytes += bytes.length;
    state.lastMs = Date.now();
    if (state.bytes > MAX_RECORD_PAYLOAD_BYTES) {
      this.transfers.delete(key);
      throw invalidArgument(`a large record of more than ${MAX_RECORD_PAYLOAD_BYTES} bytes`);
    }
    if (part !== (parts as number) - 1) return undefined;
    this.transfers.delete(key);
    if (message.payloadBytes !== state.bytes) throw invalidArgument(`xdr-part: ${state.bytes} bytes received, ${String(message.payloadBytes)} announced`);
    const versions = parseWireVersions(message.version, 1);
    if (typeof versions === 'string' || versions.length !== 1 || versions[0]!.tombstone) throw invalidArgument(`malformed xdr-part: ${typeof versions === 'string' ? versions : 'no record version'}`);
    return { ...versions[0]!, payload: Buffer.concat(state.parts) };
  }

  private expire(): void {
    const nowMs = Date.now();
    for (const [key, state] of this.transfers) if (nowMs - state.lastMs > XDR_PART_TRANSFER_IDLE_MS) this.transfers.delete(key);
  }
}
