/**
 * What a device holds when the store opens it, and whether the store may use it
 * (docs/storage.md, "What a damaged device gets"). Shoal formats a device only when it is new:
 * created by this open, or zeros where a header would be (its first and last MiB). A device
 * with bytes but no valid header slot, a truncated device, one of the wrong size and one that
 * is not a Shoal device at all refuse the open with CORRUPTION, saying which file, what was
 * found and a way out, and nothing is written to them. `storage.repairDevices`
 * (device-repair.ts) is the way out for a damaged Shoal device.
 */
import * as fs from 'node:fs';
import { ErrorCode, ShoalError } from '../errors';
import { BLANK_CHECK_BYTES, DAMAGE_PROBE_BLOCKS, DATA_START_BYTES, HEADER_SLOT_BYTES } from './constants';
import { findWriteBlocks } from './block-scan';
import { DEVICE_MAGIC, type DeviceHeader, FORMAT_VERSION, type HeaderSlot, readHeaderSlot } from './format';
import type { NativeDevice } from './native-device';

/** One device as its first bytes describe it (readDevice). */
export interface DeviceReading {
  readonly device: NativeDevice;
  /** The path as storage.paths gives it, resolved (messages name it). */
  readonly path: string;
  /** The newest valid header slot's header, when there is one. */
  header: DeviceHeader | undefined;
  /** Which slot holds `header` (0 or 1); the next header write goes to the other. */
  slot: number;
  /** Created by this open, or zeros where a header would be: Shoal may format it. */
  blank: boolean;
  /** What was found on a device with bytes but no valid header; undefined when it has one or is blank. */
  damage: string | undefined;
  /** The damaged bytes are Shoal's own (a header that fails its checks, or Shoal write blocks): repairDevices may rebuild it. */
  ours: boolean;
  /** A valid header of a newer format version: never formatted, never repaired. */
  newerVersion: number | undefined;
}

/**
 * Reads what the device holds: its header slots, and for a device without a valid one, whether
 * it is blank, Shoal's own but damaged, or foreign. Writes nothing.
 * @throws ShoalError IO_ERROR when the device cannot be read.
 */
export async function readDevice(device: NativeDevice, path: string, writeBlockBytes: number, crc32c: (data: Uint8Array) => number): Promise<DeviceReading> {
  const reading: DeviceReading = { device, path, header: undefined, slot: 1, blank: false, damage: undefined, ours: false, newerVersion: undefined };
  if (device.created) {
    reading.blank = true;
    return reading;
  }
  const fileBytes = device.fileBytes;
  if (device.sizeBytes < DATA_START_BYTES) {
    const start = readStart(device, Math.min(fileBytes, 8));
    reading.ours = start.toString('latin1') === DEVICE_MAGIC.slice(0, start.length) && start.length > 0;
    reading.damage =
      fileBytes === 0
        ? 'is empty (0 bytes)'
        : `is ${fileBytes} bytes, shorter than a device header (${DATA_START_BYTES} bytes)${reading.ours ? ', and starts like a Shoal device header: it was truncated' : ''}`;
    return reading;
  }
  const region = readSync(device, 0, DATA_START_BYTES);
  const slots = [readHeaderSlot(region.subarray(0, HEADER_SLOT_BYTES), crc32c), readHeaderSlot(region.subarray(HEADER_SLOT_BYTES), crc32c)];
  const [a, b] = slots as [HeaderSlot, HeaderSlot];
  if (a.header !== undefined && (b.header === undefined || a.header.counter >= b.header.counter)) {
    reading.header = a.header;
    reading.slot = 0;
    return reading;
  }
  if (b.header !== undefined) {
    reading.header = b.header;
    return reading;
  }
  const newer = slots.find((slot) => slot.problem === 'version' && slot.version! > FORMAT_VERSION);
  if (newer !== undefined) {
    reading.newerVersion = newer.version;
    reading.damage = `holds a Shoal device header of format version ${newer.version}, newer than this version of Shoal reads (${FORMAT_VERSION})`;
    return reading;
  }
  if (isBlank(device)) {
    reading.blank = true;
    return reading;
  }
  const found = await findWriteBlocks(device, writeBlockBytes, DAMAGE_PROBE_BLOCKS, crc32c);
  reading.ours = found !== undefined || slots.some((slot) => slot.problem !== 'magic');
  reading.damage = describeDamage(slots, found !== undefined, region);
  return reading;
}

/**
 * Refuses the open unless every device can be used as it is: each has a valid header of this
 * format and the size that header records (files: also the configured sizeBytes), or all are
 * blank (a new namespace).
 * @throws ShoalError CORRUPTION naming the file, what was found and a way out;
 *   INVALID_ARGUMENT when sizeBytes differs from the size a device was created with.
 */
export function checkReadings(namespace: string, readings: DeviceReading[], configuredBytes: number): void {
  for (const reading of readings) {
    if (reading.damage !== undefined) throw damaged(namespace, reading);
    if (reading.header !== undefined) checkSize(namespace, reading, configuredBytes);
  }
  const blank = readings.filter((reading) => reading.blank);
  if (blank.length > 0 && blank.length < readings.length) {
    const member = readings.find((reading) => reading.header !== undefined)!;
    throw new ShoalError(
      ErrorCode.CORRUPTION,
      `namespace ${namespace}: device ${blank.map((reading) => reading.path).join(', ')} ${blank.length === 1 ? 'is' : 'are'} blank, ` +
        `while ${member.path} belongs to this namespace (a device was replaced or wiped, or storage.paths names a new file). ` +
        'Check storage.paths; to go on without the records a lost device held, open once with storage.repairDevices: true, ' +
        'which makes each blank device an empty member of the namespace',
    );
  }
}

/** The size of a device with a valid header must be the one it was created with. */
function checkSize(namespace: string, reading: DeviceReading, configuredBytes: number): void {
  const recorded = reading.header!.sizeBytes;
  const device = reading.device;
  const actual = device.blockDevice ? device.sizeBytes : device.fileBytes;
  if (actual < recorded) {
    throw new ShoalError(
      ErrorCode.CORRUPTION,
      `namespace ${namespace}: device ${reading.path} is ${actual} bytes, but its header says it was created with ${recorded}: ` +
        `${device.blockDevice ? 'a different or shrunk block device' : 'it was truncated (or replaced by a shorter copy)'}, and the records in the missing part are lost. ` +
        `Restore it from a backup, or open once with storage.repairDevices: true to ${device.blockDevice ? 'use what it still holds' : `extend it back to ${recorded} bytes`} and keep the records that remain`,
    );
  }
  if (!device.blockDevice && configuredBytes > 0 && configuredBytes !== recorded) {
    throw new ShoalError(
      ErrorCode.INVALID_ARGUMENT,
      `namespace ${namespace}: device ${reading.path} was created with sizeBytes ${recorded}, not ${configuredBytes}: a device keeps the size it was created with; set storage.sizeBytes to ${recorded}`,
    );
  }
}

function damaged(namespace: string, reading: DeviceReading): ShoalError {
  const where = `namespace ${namespace}: device ${reading.path}`;
  if (reading.newerVersion !== undefined) {
    return new ShoalError(ErrorCode.CORRUPTION, `${where} ${reading.damage}: open it with that version of Shoal; this one leaves it untouched`);
  }
  if (reading.ours) {
    return new ShoalError(
      ErrorCode.CORRUPTION,
      `${where} ${reading.damage}. Shoal does not format a device it cannot read. Restore it from a backup, or open once with storage.repairDevices: true: ` +
        'Shoal then rebuilds the header from the write blocks (their own signatures, sequences and checksums) and keeps every record they hold',
    );
  }
  return new ShoalError(
    ErrorCode.CORRUPTION,
    `${where} ${reading.damage}. Shoal never writes over a file it cannot read as its own: check storage.paths, or move the file away to let Shoal create a new device there`,
  );
}

/** What a device without a valid header slot holds, for its error message. */
function describeDamage(slots: HeaderSlot[], hasBlocks: boolean, region: Buffer): string {
  const slotText = slots.map((slot, index) => `slot ${index === 0 ? 'A' : 'B'}: ${slotProblem(slot)}`).join('; ');
  if (hasBlocks) return `has no valid Shoal header (${slotText}) but holds Shoal write blocks: its header was damaged`;
  if (slots.some((slot) => slot.problem !== 'magic')) return `has no valid Shoal header (${slotText}) and no readable write blocks`;
  const foreign = foreignSignature(region);
  return `is not a Shoal device: ${foreign ?? `no Shoal header and no Shoal write blocks; its first bytes are ${region.subarray(0, 16).toString('hex').replace(/(..)/g, '$1 ').trim()}`}`;
}

function slotProblem(slot: HeaderSlot): string {
  if (slot.problem === 'checksum') return 'a Shoal header that fails its checksum';
  if (slot.problem === 'version') return `a Shoal header of format version ${slot.version}`;
  return 'not a Shoal header';
}

/**
 * Signatures of what is most often found where a Shoal header would be (file systems,
 * partition tables, volume managers, other databases), at their documented offsets.
 */
const SIGNATURES: { at: number; bytes: Buffer; name: string }[] = [
  { at: 1024 + 56, bytes: Buffer.from([0x53, 0xef]), name: 'an ext2/ext3/ext4 file system' },
  { at: 0, bytes: Buffer.from('XFSB', 'latin1'), name: 'an XFS file system' },
  { at: 65536 + 64, bytes: Buffer.from('_BHRfS_M', 'latin1'), name: 'a btrfs file system' },
  { at: 0, bytes: Buffer.from('LUKS\xba\xbe', 'latin1'), name: 'a LUKS encrypted volume' },
  { at: 512, bytes: Buffer.from('EFI PART', 'latin1'), name: 'a GPT partition table' },
  { at: 512, bytes: Buffer.from('LABELONE', 'latin1'), name: 'an LVM physical volume' },
  { at: 4086, bytes: Buffer.from('SWAPSPACE2', 'latin1'), name: 'a swap area' },
  { at: 0, bytes: Buffer.from('SQLite format 3\0', 'latin1'), name: 'an SQLite database' },
  { at: 510, bytes: Buffer.from([0x55, 0xaa]), name: 'a boot sector or DOS partition table' },
];

/** The first known foreign signature in the first bytes of a device, as "holds ...", or undefined. */
export function foreignSignature(start: Buffer): string | undefined {
  for (const signature of SIGNATURES) {
    if (start.length >= signature.at + signature.bytes.length && start.subarray(signature.at, signature.at + signature.bytes.length).equals(signature.bytes)) {
      return `it holds ${signature.name}`;
    }
  }
  return undefined;
}

/** Whether the first and last BLANK_CHECK_BYTES of the device are zeros. */
function isBlank(device: NativeDevice): boolean {
  const size = device.sizeBytes;
  const span = Math.min(size, BLANK_CHECK_BYTES);
  return allZeros(readSync(device, 0, span)) && allZeros(readSync(device, size - span, span));
}

function allZeros(bytes: Buffer): boolean {
  const words = new BigUint64Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 3);
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  return true;
}

/** An aligned read at open (a few KiB to a MiB), wrapped as IO_ERROR. */
function readSync(device: NativeDevice, offset: number, length: number): Buffer {
  try {
    return device.native.readSync(offset, length);
  } catch (error) {
    throw new ShoalError(ErrorCode.IO_ERROR, `reading ${device.path}: ${(error as Error).message}`, { cause: error });
  }
}

/** The first `length` bytes of a file too short for an aligned read (a buffered read). */
function readStart(device: NativeDevice, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  if (length === 0) return bytes;
  const handle = fs.openSync(device.path, 'r');
  try {
    return bytes.subarray(0, fs.readSync(handle, bytes, 0, length, 0));
  } finally {
    fs.closeSync(handle);
  }
}
