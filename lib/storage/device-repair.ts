/**
 * storage.repairDevices (docs/storage.md, "What a damaged device gets"): the way out for a
 * Shoal device the store refuses to open. Every write block carries its own header (magic,
 * format version, block sequence, namespace signature, device index, block index, CRC-32C),
 * and every record its sequence and checksum, which the cold start that follows checks as
 * always; so a device header can be rebuilt from the blocks alone. Repair
 *   - rebuilds the header of a device whose two header slots are invalid from its write blocks
 *     (one namespace signature among them, their device index its position in storage.paths);
 *   - extends a truncated device file back to the size its header records (the missing part
 *     reads as free blocks; its records are lost);
 *   - makes a blank device among the namespace's devices an empty member (a replaced disk).
 * It never writes over bytes that are not Shoal's (a foreign file is refused as without it),
 * and never touches a header of a newer format version. What it cannot bring back is said in
 * the log: truncate markers kept only in a lost header, and the records of a lost part.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, ShoalError } from '../errors';
import {
  DATA_START_BYTES,
  HEADER_SLOT_BYTES,
} from './constants';
import { type FoundBlocks, findWriteBlocks } from './block-scan';
import type { DeviceReading } from './device-identity';
import { type DeviceHeader, encodeHeader } from './format';

export interface RepairOptions {
  namespace: string;
  /** storage.sizeBytes: the size of a file device (0 for raw block devices). */
  sizeBytes: number;
  writeBlockBytes: number;
  crc32c: (data: Uint8Array) => number;
  now: () => number;
  log: (message: string) => void;
}

/**
 * Repairs what can be repaired of the devices as read (readDevice), in place: afterwards each
 * repaired reading has a valid header, and checkReadings passes for it. Devices that cannot be
 * repaired are left as they were, for checkReadings to refuse.
 * @throws ShoalError CORRUPTION when write blocks of several namespaces (or of another
 *   device position) make the rebuilt header ambiguous, IO_ERROR.
 */
export async function repairDevices(readings: DeviceReading[], options: RepairOptions): Promise<void> {
  const sound = readings.find((reading) => reading.header !== undefined)?.header;
  for (const [position, reading] of readings.entries()) {
    if (reading.newerVersion !== undefined) continue;
    if (reading.header !== undefined) {
      restoreSize(reading, reading.header.sizeBytes, options);
      continue;
    }
    if (reading.blank) {
      if (sound === undefined) continue;  // a new namespace: formatted as usual
      writeRebuilt(reading, rebuiltHeader(reading, position, sound, sound.writeBlockBytes, readings.length, options), options);
      options.log(`namespace ${options.namespace}: made the blank device ${reading.path} an empty member (device ${position}) of the namespace; the records a lost device held are gone`);
      continue;
    }
    if (!reading.ours) continue;  // not Shoal's: refused, never written
    const found = await findWriteBlocks(reading.device, sound?.writeBlockBytes ?? options.writeBlockBytes, undefined, options.crc32c);
    const identity = blockIdentity(reading, position, found, sound, options.namespace);
    const writeBlockBytes = found?.writeBlockBytes ?? sound?.writeBlockBytes ?? options.writeBlockBytes;
    const header = rebuiltHeader(reading, position, identity, writeBlockBytes, readings.length, options);
    checkBlocksFit(reading, found, header, options.namespace);
    writeRebuilt(reading, header, options);
    options.log(
      found === undefined
        ? `namespace ${options.namespace}: started ${reading.path} over empty: it held no readable write blocks`
        : `namespace ${options.namespace}: rebuilt the header of ${reading.path} from ${found.blocks.length} write blocks of ${writeBlockBytes} bytes` +
            (sound === undefined ? '; truncate markers kept only in the lost header are gone, so records truncated before may come back' : ''),
    );
  }
}

/** The namespace identity the write blocks of a headerless device carry (checked against a sound device's). */
function blockIdentity(reading: DeviceReading, position: number, found: FoundBlocks | undefined, sound: DeviceHeader | undefined, namespace: string): { signatureHigh: number; signatureLow: number } {
  if (found === undefined) return sound ?? randomIdentity();
  const signatures = new Map<string, number>();
  for (const block of found.blocks) {
    const key = `${block.signatureHigh.toString(16)}:${block.signatureLow.toString(16)}`;
    signatures.set(key, (signatures.get(key) ?? 0) + 1);
  }
  const refuse = (what: string) =>
    new ShoalError(ErrorCode.CORRUPTION, `namespace ${namespace}: device ${reading.path} cannot be repaired: ${what}; restore it from a backup, or move it away to start this device over`);
  if (signatures.size > 1) {
    throw refuse(`its write blocks belong to ${signatures.size} different namespaces (${[...signatures].map(([key, count]) => `${count} of signature ${key}`).join(', ')})`);
  }
  const block = found.blocks[0]!;
  if (sound !== undefined && (block.signatureHigh !== sound.signatureHigh || block.signatureLow !== sound.signatureLow)) {
    throw refuse('its write blocks belong to another namespace than the other devices');
  }
  const elsewhere = found.blocks.find((candidate) => candidate.deviceIndex !== position);
  if (elsewhere !== undefined) throw refuse(`its write blocks say they are device ${elsewhere.deviceIndex}, not ${position}: check the order of storage.paths`);
  return block;
}

function randomIdentity(): { signatureHigh: number; signatureLow: number } {
  const random = randomBytes(8);
  return { signatureHigh: random.readUInt32LE(0) || 1, signatureLow: random.readUInt32LE(4) };
}

function rebuiltHeader(reading: DeviceReading, position: number, identity: { signatureHigh: number; signatureLow: number }, writeBlockBytes: number, deviceCount: number, options: RepairOptions): DeviceHeader {
  const device = reading.device;
  return {
    counter: 1,
    signatureHigh: identity.signatureHigh,
    signatureLow: identity.signatureLow,
    deviceIndex: position,
    deviceCount,
    writeBlockBytes,
    dataStart: DATA_START_BYTES,
    sizeBytes: device.blockDevice ? device.sizeBytes : options.sizeBytes,
    clean: false,
    createdMs: options.now(),
    maxSequence: 0,
    namespace: options.namespace,
    truncates: [],
    openStampHigh: 0,
    openStampLow: 0,
  };
}

/** A file holding blocks past the configured size must be opened with its real size. */
function checkBlocksFit(reading: DeviceReading, found: FoundBlocks | undefined, header: DeviceHeader, namespace: string): void {
  if (found === undefined || reading.device.blockDevice) return;
  const blocks = Math.floor((header.sizeBytes - DATA_START_BYTES) / found.writeBlockBytes);
  const beyond = found.blocks.find((block) => block.blockIndex >= blocks);
  if (beyond !== undefined) {
    throw new ShoalError(
      ErrorCode.INVALID_ARGUMENT,
      `namespace ${namespace}: device ${reading.path} holds write blocks past storage.sizeBytes (${header.sizeBytes}); set sizeBytes to its size, ${reading.device.fileBytes}, to repair it`,
    );
  }
}

/** Writes a rebuilt header into both slots (synced), restoring the file's size first. */
function writeRebuilt(reading: DeviceReading, header: DeviceHeader, options: RepairOptions): void {
  restoreSize(reading, header.sizeBytes, options);
  const slot = encodeHeader(header, options.crc32c);
  try {
    reading.device.native.writeSync(0, slot, false);
    reading.device.native.writeSync(HEADER_SLOT_BYTES, slot, true);
  } catch (error) {
    throw new ShoalError(ErrorCode.IO_ERROR, `namespace ${options.namespace}: writing the rebuilt header of ${reading.path}: ${(error as Error).message}`, { cause: error });
  }
  reading.header = header;
  reading.slot = 0;
  reading.blank = false;
  reading.damage = undefined;
}

/** Extends a file shorter than `sizeBytes` back to it (the missing part reads as free blocks). */
function restoreSize(reading: DeviceReading, sizeBytes: number, options: RepairOptions): void {
  const device = reading.device;
  if (device.blockDevice || device.fileBytes >= sizeBytes) return;
  const before = device.fileBytes;
  device.grow(sizeBytes);
  options.log(`namespace ${options.namespace}: restored ${reading.path} to ${sizeBytes} bytes; it was ${before} bytes, and the records in the missing part are lost`);
}
