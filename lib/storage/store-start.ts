/**
 * Opening and starting a device store (docs/storage.md, "Devices, I/O and locking", "Start"):
 * the devices opened, locked, read and checked (formatted when blank), and the block tables
 * rebuilt either by the cold-start scan or from the tables a clean close left.
 */
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { ErrorCode, ShoalError } from '../errors';
import { DATA_START_BYTES, DEFAULT_FILE_MODE, MAX_BLOCKS_PER_DEVICE } from './constants';
import { coldStartScan, type ColdStartRecord, type ColdStartReport } from './cold-start';
import { checkHeader, mergeTruncates, newHeader } from './device-headers';
import { checkReadings, readDevice } from './device-identity';
import { repairDevices } from './device-repair';
import { makeDirectory } from './file-mode';
import type { TruncateMarker } from './format';
import { NativeDevice, storageNative } from './native-device';
import { DeviceState, SEALED, type StoreState } from './store-state';
import { type DeviceStoreOptions, validateOptions } from './store-options';

/** Devices open, locked and checked to belong together. */
export interface OpenedDevices {
  devices: DeviceState[];
  /** 'new': every device was blank and is formatted now (its header is not written yet). */
  startMode: 'new' | 'existing';
  writeBlockBytes: number;
  /** The truncate markers of every device header, merged. */
  truncates: TruncateMarker[];
}

/**
 * Opens (creating where new) and locks every device, reads what each holds, repairs when asked,
 * and checks that their headers belong together; a blank set is given new headers (in memory).
 * @throws ShoalError LOCKED, IO_ERROR, CORRUPTION, INVALID_ARGUMENT; every device opened is closed again then.
 */
export async function openDevices(options: DeviceStoreOptions): Promise<OpenedDevices> {
  const requestedBlockBytes = validateOptions(options);
  const fileMode = options.fileMode ?? DEFAULT_FILE_MODE;
  const opened: NativeDevice[] = [];
  try {
    for (const devicePath of options.paths) {
      const resolved = path.resolve(options.dataDir ?? '.', devicePath);
      makeDirectory(path.dirname(resolved), fileMode);
      opened.push(
        new NativeDevice({
          path: resolved,
          sizeBytes: options.sizeBytes,
          create: true,
          fileMode,
          directIo: options.directIo ?? 'auto',
          ioEngine: options.ioEngine,
          threads: options.ioThreads,
          faults: options.faults,
          refuseDirectIo: options.refuseDirectIo,
          resultsBytes: 2 * requestedBlockBytes,
        }),
      );
    }
    const crc32c = storageNative().crc32c;
    const readings = await Promise.all(opened.map((device) => readDevice(device, device.path, requestedBlockBytes, crc32c)));
    if (options.repairDevices === true) {
      await repairDevices(readings, { namespace: options.namespace, sizeBytes: options.sizeBytes, writeBlockBytes: requestedBlockBytes, crc32c, now: options.now ?? Date.now, log: options.log ?? (() => undefined) });
    }
    checkReadings(options.namespace, readings, options.sizeBytes);
    const base = readings[0]!.header;
    const writeBlockBytes = base?.writeBlockBytes ?? requestedBlockBytes;
    if (base !== undefined) for (const [index, reading] of readings.entries()) checkHeader(options, reading.header!, base, index, readings.length);
    const identity = randomBytes(8);
    const signatureHigh = identity.readUInt32LE(0) || 1;
    const signatureLow = identity.readUInt32LE(4);
    const devices = readings.map((reading, index) => {
      const header = reading.header ?? newHeader(options, reading.device, index, readings.length, writeBlockBytes, signatureHigh, signatureLow);
      const blockCount = Math.min(MAX_BLOCKS_PER_DEVICE, Math.floor((header.sizeBytes - DATA_START_BYTES) / writeBlockBytes));
      if (blockCount < 4) throw new ShoalError(ErrorCode.INVALID_ARGUMENT, `device ${reading.path} is too small: it must hold at least 4 write blocks of ${writeBlockBytes} bytes after the 64 KiB header`);
      if (reading.header === undefined && !reading.device.blockDevice) reading.device.grow(header.sizeBytes);
      const state = new DeviceState(index, reading.device, blockCount, header);
      state.nextHeaderSlot = reading.slot === 0 ? 1 : 0;
      return state;
    });
    const truncates = base === undefined ? [] : mergeTruncates(readings.map((reading) => reading.header!.truncates));
    return { devices, startMode: base === undefined ? 'new' : 'existing', writeBlockBytes, truncates };
  } catch (error) {
    for (const device of opened) device.close();
    throw error;
  }
}

/** What every scan of the devices starts from: their block tables, signature, truncates and the time. */
export function scanOf(state: StoreState) {
  return {
    devices: state.devices.map((device) => ({ native: device.device.native, sequences: device.sequences, blockCount: device.blockCount })),
    signatureHigh: state.signatureHigh,
    signatureLow: state.signatureLow,
    writeBlockBytes: state.writeBlockBytes,
    nowSeconds: Math.floor(state.now() / 1000),
    truncates: state.truncates,
  };
}

/**
 * Cold start: scans every device (cold-start.ts), counting live bytes per block and handing the
 * live records to onRecord or onLiveBatch and the tombstones and shadows to the store's table;
 * then sets the block states and the next sequence. Returns the report and the blocks left
 * with nothing live (for the caller to free).
 * @throws ShoalError IO_ERROR when a device cannot be read.
 */
export async function scanDevices(
  state: StoreState,
  withPayload: boolean,
  onRecord: (record: ColdStartRecord) => void,
  onLiveBatch: ((winners: Buffer, variable: Buffer, count: number, setNames: string[]) => void) | undefined,
  onProgress: (scanned: number, total: number) => void,
): Promise<{ report: ColdStartReport; emptied: [DeviceState, number][] }> {
  const report = await coldStartScan({
    ...scanOf(state),
    withPayload,
    onProgress: (scanned, total) => {
      onProgress(scanned, total);
      if (scanned < total) state.log(`namespace ${state.namespace}: cold start scanned ${(scanned / 1e6).toFixed(0)} of at most ${(total / 1e6).toFixed(0)} MB`);
    },
    onLiveBatch,
    onLive: (low, high) => state.account(low, high),
    onRecord: (record) => {
      state.account(record.locationLow, record.locationHigh);
      if (record.tombstone || record.expiredShadow) {
        state.tombstones.set(record.digest.toString('latin1'), { low: record.locationLow, high: record.locationHigh, origin: record.originSequence });
      } else {
        onRecord(record);
      }
    },
  });
  let maxSequence = Math.max(...state.devices.map((device) => device.header.maxSequence));
  for (const device of state.devices) for (const sequence of device.sequences) maxSequence = Math.max(maxSequence, sequence);
  state.nextSequence = maxSequence + 1;
  return { report, emptied: classifyBlocks(state) };
}

/**
 * Warm start: the block tables (sequence and live bytes per block) a clean close recorded.
 * Returns the blocks with nothing live (for the caller to free).
 */
export function restoreBlockTables(state: StoreState, sequences: Float64Array[], live: Float64Array[]): [DeviceState, number][] {
  for (const [deviceIndex, device] of state.devices.entries()) {
    device.sequences.set(sequences[deviceIndex]!);
    device.live.set(live[deviceIndex]!);
    for (let block = 0; block < device.blockCount; block++) state.liveTotal += device.live[block]!;
  }
  return classifyBlocks(state);
}

/**
 * Block states from the tables: no sequence is free, a sequence with live bytes is sealed, a
 * sequence without is returned (emptied: its header must be zeroed before it is reused). Free
 * lists are filled highest block first, so blocks are taken lowest first.
 */
export function classifyBlocks(state: StoreState): [DeviceState, number][] {
  const emptied: [DeviceState, number][] = [];
  for (const device of state.devices) {
    for (let block = device.blockCount - 1; block >= 0; block--) {
      if (device.sequences[block] === 0) device.freeBlocks.push(block);
      else if (device.live[block] === 0) emptied.push([device, block]);
      else device.states[block] = SEALED;
    }
  }
  return emptied;
}
