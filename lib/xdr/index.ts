/** Cross-cluster shipping (XDR, docs/xdr.md): what the Db needs. */
export { Xdr, checkNotSelf } from './xdr';
export type { XdrState, WaitForShippedOptions } from './xdr';
export type { XdrDestinationState } from './shipper';
export { XdrStore } from './store';
export { resolveXdrOptions } from './options';
export type { XdrOptions, XdrDestinationOptions } from './options';
