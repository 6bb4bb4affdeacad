/**
 * The bounds of record UDFs (docs/protocol.md, "User-defined functions"), in one place, with
 * the relations between them checked below. Names end in their unit.
 */

/** A module's Lua source, decoded (Aerospike allows 1 MiB; its base64 must fit an info request). */
export const UDF_MODULE_BYTES_MAX = 512 << 10;
/** Modules registered at once. */
export const UDF_MODULES_MAX = 64;
/** A module file name (Aerospike's limit is 128 bytes with its extension). */
export const UDF_MODULE_NAME_BYTES_MAX = 127;
/** Memory one Lua state may allocate (its module, its globals, one call's values). */
export const UDF_STATE_MEMORY_BYTES_MAX = 16 << 20;
/** Lua states kept ready at once, one per module in use; the least recently used is closed. */
export const UDF_STATES_MAX = 8;
/**
 * A call is stopped with "UDF Execution Timeout" after this many Lua instructions (about 50 ms
 * of an idle core)...
 */
export const UDF_INSTRUCTIONS_MAX = 10_000_000;
/**
 * ... or after this much time, whichever comes first. Generous, because a loaded machine
 * stretches time, not instructions; the calls run in the UDF worker, not on the Db's thread.
 */
export const UDF_RUN_TIME_MAX_MS = 1000;
/** The instruction hook runs once per this many instructions (it reads the clock). */
export const UDF_HOOK_INSTRUCTIONS = 1000;
/**
 * A call the worker has not answered in this time (a library function that never returns to
 * Lua, such as a pathological pattern match) ends the worker; the next call starts a new one.
 */
export const UDF_WORKER_DEADLINE_MS = 5000;
/** Calls sent to the worker ahead of its answers (it runs them one at a time, in order). */
export const UDF_WORKER_PIPELINE = 32;
/** Calls waiting for the UDF worker; one more is refused (KEY_BUSY) rather than queued. */
export const UDF_QUEUE_MAX = 4096;
/** Arguments of one call. */
export const UDF_ARGUMENTS_MAX = 256;
/** Nesting of lists and maps passed between Lua and the record (as the Db's BIN_VALUE_DEPTH_MAX). */
export const UDF_VALUE_DEPTH_MAX = 64;
/** Heap of the UDF worker's JavaScript side (Lua's own memory is bounded per state above). */
export const UDF_WORKER_HEAP_MB = 256;

function check(condition: boolean, relation: string): void {
  if (!condition) throw new Error(`shoal udf constants: broken relation: ${relation}`);
}

check(UDF_MODULE_BYTES_MAX * 4 < UDF_STATE_MEMORY_BYTES_MAX, 'a state holds its module source and its compiled form');
check(UDF_HOOK_INSTRUCTIONS < UDF_INSTRUCTIONS_MAX, 'the hook runs before the instruction budget is spent');
check(UDF_RUN_TIME_MAX_MS * 4 <= UDF_WORKER_DEADLINE_MS, 'the worker deadline is well above a call budget');
check(UDF_WORKER_PIPELINE < UDF_QUEUE_MAX, 'the pipeline is a part of the queue');
check(UDF_MODULES_MAX * UDF_MODULE_BYTES_MAX <= 64 << 20, 'all module sources fit in 64 MiB');
