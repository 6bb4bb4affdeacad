/**
 * The device headers of a store (docs/storage-format.md, "Device header"; docs/storage.md,
 * "Warm restart"): the header a new device is formatted with, the checks that the devices of a
 * namespace belong together, the two alternating header slots each write goes to (in use or
 * clean, with the open stamp and the truncate markers), and what the headers say about a warm
 * start.
 */
import { ErrorCode, ShoalError } from '../errors';
import { DATA_START_BYTES, HEADER_SLOT_BYTES } from './constants';
import { type DeviceHeader, encodeHeader, type TruncateMarker } from './format';
import type { NativeDevice } from './native-device';
import type { DeviceState, StoreState } from './store-state';
import type { DeviceStoreOptions } from './store-options';

/**
 * Writes the device's next header slot (durably): clean or in use, with this open's stamp,
 * the truncate markers in force and, when clean, the highest block sequence.
 * @throws ShoalError IO_ERROR (the store latches into its failed state).
 */
export async function writeHeader(state: StoreState, device: DeviceState, clean: boolean): Promise<void> {
  device.header = {
    ...device.header,
    counter: device.header.counter + 1,
    clean,
    maxSequence: clean ? state.nextSequence - 1 : 0,
    truncates: state.truncates.map((marker) => ({ ...marker })),
    openStampHigh: state.openStamp.high,
    openStampLow: state.openStamp.low,
  };
  const slot = encodeHeader(device.header, state.native.crc32c);
  const at = device.nextHeaderSlot * HEADER_SLOT_BYTES;
  device.nextHeaderSlot ^= 1;
  try {
    await device.device.write(at, slot, 0, slot.length, true);
  } catch (error) {
    throw state.fail(error as ShoalError);
  }
}

/**
 * Why the headers rule out a warm start (undefined when they allow one: all clean, all with one
 * non-zero open stamp), for the namespace's log line.
 */
export function warmStartObstacle(headers: readonly DeviceHeader[], stateFile: string | undefined): string | undefined {
  const stamp = headers[0]!;
  if (stateFile === undefined) return 'it keeps no storage state file';
  if (!headers.every((header) => header.clean)) return 'its devices were not closed cleanly (a crash, a kill or a power loss)';
  if (stamp.openStampHigh === 0 && stamp.openStampLow === 0) return 'its devices were last closed by a version of Shoal without open stamps';
  if (!headers.every((header) => header.openStampHigh === stamp.openStampHigh && header.openStampLow === stamp.openStampLow)) {
    return 'its devices were last opened in different runs (their open stamps differ)';
  }
  return undefined;
}

/** The header of a device formatted now: files get the configured size (a larger blank file's tail stays unused). */
export function newHeader(options: DeviceStoreOptions, device: NativeDevice, index: number, count: number, writeBlockBytes: number, signatureHigh: number, signatureLow: number): DeviceHeader {
  return {
    counter: 0,
    signatureHigh,
    signatureLow,
    deviceIndex: index,
    deviceCount: count,
    writeBlockBytes,
    dataStart: DATA_START_BYTES,
    sizeBytes: device.blockDevice || options.sizeBytes === 0 ? device.sizeBytes : options.sizeBytes,
    clean: false,
    createdMs: Date.now(),
    maxSequence: 0,
    namespace: options.namespace,
    truncates: [],
    openStampHigh: 0,
    openStampLow: 0,
  };
}

/**
 * Checks that a device's header belongs with the first device's (same namespace, signature
 * and geometry, in its place).
 * @throws ShoalError CORRUPTION naming the device and what differs.
 */
export function checkHeader(options: DeviceStoreOptions, header: DeviceHeader, base: DeviceHeader, index: number, count: number): void {
  const problem = (what: string) => new ShoalError(ErrorCode.CORRUPTION, `namespace ${options.namespace}: device ${options.paths[index]} ${what}; check storage.paths (order and files) against the ones this namespace was created with`);
  if (header.namespace !== options.namespace) throw problem(`belongs to namespace "${header.namespace}"`);
  if (header.signatureHigh !== base.signatureHigh || header.signatureLow !== base.signatureLow) throw problem('belongs to another instance of this namespace (signature differs)');
  if (header.deviceIndex !== index || header.deviceCount !== count) throw problem(`is device ${header.deviceIndex} of ${header.deviceCount}, not ${index} of ${count}`);
  if (header.writeBlockBytes !== base.writeBlockBytes) throw problem('has a different write-block size');
  if (options.writeBlockBytes !== undefined && options.writeBlockBytes !== header.writeBlockBytes) {
    throw problem(`was created with writeBlockBytes ${header.writeBlockBytes}, not ${options.writeBlockBytes}`);
  }
}

/** The truncate markers of all devices merged: per set, the latest. */
export function mergeTruncates(lists: TruncateMarker[][]): TruncateMarker[] {
  const merged = new Map<string | undefined, number>();
  for (const list of lists) for (const marker of list) merged.set(marker.set, Math.max(merged.get(marker.set) ?? 0, marker.beforeMs));
  return [...merged].map(([set, beforeMs]) => ({ set, beforeMs }));
}
