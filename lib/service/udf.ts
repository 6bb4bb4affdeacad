/**
 * Record UDFs over Aerospike's protocol (docs/protocol.md, "User-defined functions"): the info
 * commands that register modules (`udf-put`, `udf-get`, `udf-list`, `udf-remove`, in the
 * formats of the Aerospike server's udf_cask.c) and the apply of a function to one record
 * (fields 30-32 of a single-record or batch-row AS_MSG, as the server's udf.c answers it).
 *
 * An apply reads the record through the Db (the filter expression decides there: a record
 * filtered out is FILTERED_OUT and the function does not run), runs the function in the UDF
 * worker (lib/udf), and writes what the function committed with a generation check against
 * the version it read (put/remove with `generation`; 0 for a record that did not exist). When
 * another write came between, the apply starts again from the read, so the record changes
 * atomically: one version in, one version out. The reply carries the function's return value
 * in a bin named SUCCESS, or the Lua error in FAILURE with UDF_ERROR (100).
 */
import type { ServedDb } from './served-db';
import type { BinValue, Bins } from '../model/bins';
import type { Key } from '../model/key';
import { digestOf } from '../model/digest';
import type { ShoalRecord } from '../namespace/namespace';
import type { Expression } from '../model/exp/expression';
import { op as operation } from '../namespace/semantics';
import { exp } from '../model/exp/builders';
import { ErrorCode, ShoalError } from '../errors';
import { UdfRegistry } from '../udf/registry';
import { UdfRunner } from '../udf/runner';
import type { UdfCall } from '../udf/engine';
import { UDF_ARGUMENTS_MAX, UDF_MODULE_BYTES_MAX } from '../udf/constants';
import { ParticleType, decodeParticle } from './particles';
import { ResultCode } from './result-codes';
import type { RecordReply } from './records';
import { FieldType, Info2, Message, RequestError } from './wire';

/** The UDF language Aerospike knows (and Shoal runs). */
const LUA = 'LUA';
/** Aerospike's clock starts at 2010-01-01 UTC (record.last_update_time counts from it). */
const AEROSPIKE_EPOCH_MS = 1_262_304_000_000;
/** Applies that found the record changed under them, before KEY_BUSY. */
const APPLY_ATTEMPTS = 16;

/** A node's UDF modules and the worker that runs them. */
export class UdfService {
  readonly runner: UdfRunner;
  /** The last apply queued per record (namespace and digest): applies to one record run one at a time. */
  private readonly tails = new Map<string, Promise<unknown>>();

  private constructor(
    readonly registry: UdfRegistry,
    private readonly toPeers: (command: string) => Promise<void>,
    log: (message: string) => void,
  ) {
    this.runner = new UdfRunner(log);
    if (registry.list().length > 0) this.runner.setSources(registry.sources());
  }

  /**
   * Opens the registry persisted in `directory` (undefined: memory only). `toPeers` sends a
   * registration to every peer's listener and resolves once each answered or failed (the
   * service's peer-info.ts path; nothing without cluster mode).
   */
  static open(directory: string | undefined, fileMode: number, toPeers: (command: string) => Promise<void>, log: (message: string) => void): UdfService {
    return new UdfService(UdfRegistry.open(directory, fileMode, log), toPeers, log);
  }

  /**
   * An info command that registers (`udf-put`) or removes (`udf-remove`) a module: applied here,
   * then, when it came from a client (`forward`), sent to every peer (toPeers) before the
   * answer. Peers take it as `shoal-udf-put` / `shoal-udf-remove`, which they do not send on.
   */
  async register(command: 'udf-put' | 'udf-remove', params: string, forward: boolean): Promise<string> {
    const values = parameters(params);
    const answer = command === 'udf-put' ? await this.put(values) : await this.remove(values);
    if (answer === 'ok' && forward) await this.toPeers(`shoal-${command}:${params}`);
    return answer;
  }

  close(): Promise<void> {
    return this.runner.close();
  }

  /** `udf-put:filename=F;content=<b64>;content-len=N[;udf-type=LUA]`: `ok` or `error=…`. */
  private async put(params: Map<string, string>): Promise<string> {
    const name = params.get('filename');
    if (name === undefined || name.length === 0) return 'error=invalid_filename';
    const dot = name.indexOf('.');
    if (dot <= 0 || dot === name.length - 1) return 'error=invalid_filename';
    const contentLength = params.get('content-len');
    if (contentLength === undefined || !/^[0-9]{1,10}$/.test(contentLength) || Number(contentLength) % 4 !== 0) return 'error=invalid_content_len';
    const type = params.get('udf-type') ?? LUA;
    if (type !== LUA) return 'error=invalid_udf_type';
    const content = params.get('content');
    if (content === undefined || content.length !== Number(contentLength)) return 'error=invalid_content';
    if ((content.length / 4) * 3 > UDF_MODULE_BYTES_MAX + 2) return `error=invalid_udf_content_len,>${UDF_MODULE_BYTES_MAX >> 10}K`;
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(content)) return 'error=invalid_base64_content';
    const source = Buffer.from(content, 'base64').toString('utf8');
    const checked = await this.runner.check(name, source);
    if (!checked.ok) return `error=compile_error;file=${name};line=${checked.line};message=${Buffer.from(checked.message).toString('base64')}`;
    try {
      await this.registry.put(name, source);
    } catch (error) {
      return `error=${(error as Error).message.replace(/[;\t\n]/g, ' ')}`;
    }
    this.runner.setSources(this.registry.sources());
    return 'ok';
  }

  /** `udf-get:filename=F`: `type=LUA;content=<b64>;` or `error=not_found`. */
  get(params: string): string {
    const name = parameters(params).get('filename');
    if (name === undefined || name.length === 0) return 'error=invalid_filename';
    const module = this.registry.get(name);
    if (module === undefined) return 'error=not_found';
    return `type=${LUA};content=${Buffer.from(module.source).toString('base64')};`;
  }

  /** `udf-list`: `filename=F,hash=H,type=LUA;` per module. */
  list(): string {
    return this.registry
      .list()
      .map((module) => `filename=${module.name},hash=${module.hash},type=${LUA};`)
      .join('');
  }

  /** `udf-remove:filename=F`: `ok` (a module that is not registered too, as servers from 4.5.1). */
  private async remove(params: Map<string, string>): Promise<string> {
    const name = params.get('filename');
    if (name === undefined || name.length === 0) return 'error=invalid_filename';
    try {
      if (await this.registry.remove(name)) this.runner.setSources(this.registry.sources());
    } catch (error) {
      return `error=${(error as Error).message.replace(/[;\t\n]/g, ' ')}`;
    }
    return 'ok';
  }

  /**
   * Applies the UDF a message names to its record.
   * @throws RequestError PARAMETER_ERROR for a malformed call; the Db's errors (FILTERED_OUT,
   *   GENERATION_MISMATCH, a value Shoal cannot store) for the caller to map to result codes.
   */
  async apply(db: ServedDb, message: Message, key: Key, filter: Expression | undefined): Promise<RecordReply> {
    const call = callOf(message);
    const digest = key.digest !== undefined ? Buffer.from(key.digest) : digestOf(key.set, key.key!);
    return this.serialized(`${key.ns}:${digest.toString('hex')}`, () => this.applyOnce(db, message, key, filter, call));
  }

  /**
   * Runs applies to one record one after another on this node, so they do not keep failing each
   * other's generation checks; writes from elsewhere are still caught by the check.
   */
  private async serialized<T>(id: string, run: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(id) ?? Promise.resolve();
    const current = previous.then(run, run);
    const tail = current.catch(() => undefined);
    this.tails.set(id, tail);
    try {
      return await current;
    } finally {
      if (this.tails.get(id) === tail) this.tails.delete(id);
    }
  }

  private async applyOnce(db: ServedDb, message: Message, key: Key, filter: Expression | undefined, { module, function: name, args }: { module: string; function: string; args: BinValue[] }): Promise<RecordReply> {
    const source = this.registry.get(module);
    if (source === undefined) return failure(`UDF module ${module} is not registered`);
    for (let attempt = 0; attempt < APPLY_ATTEMPTS; attempt++) {
      const record = await db.get(key, filter === undefined ? undefined : { filter });
      if ((message.info2 & Info2.GENERATION) !== 0 && (record?.gen ?? 0) !== message.generation) {
        throw new ShoalError(ErrorCode.GENERATION_MISMATCH, `generation is ${record?.gen ?? 0}, not the expected ${message.generation}`);
      }
      const lastUpdate = record !== undefined && source.source.includes('last_update_time') ? await lastUpdateOf(db, key) : 0;
      const call: UdfCall = { module, function: name, args, record: recordInput(key, record, lastUpdate) };
      const outcome = await this.runner.apply(call);
      if (!outcome.ok) return failure(outcome.message);
      if (!outcome.updated) return success(record, outcome.value);
      try {
        const written = await writeChanges(db, key, record, outcome.changes, outcome.ttl ?? ttlOf(message.recordTtl));
        return { resultCode: ResultCode.OK, generation: written.gen, ttl: written.ttl, bins: [['SUCCESS', outcome.value]] };
      } catch (error) {
        // Another write came between the read and this one: run the function again on the new version.
        if (!(error instanceof ShoalError && error.code === ErrorCode.GENERATION_MISMATCH)) throw error;
      }
    }
    throw new ShoalError(ErrorCode.KEY_BUSY, 'the record kept changing under a UDF apply; retry');
  }
}

/** `key=value;key=value` parameters of an info command. */
function parameters(params: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const part of params.split(';')) {
    if (part.length === 0) continue;
    const at = part.indexOf('=');
    map.set(at < 0 ? part : part.slice(0, at), at < 0 ? '' : part.slice(at + 1));
  }
  return map;
}

/** The module file, function and arguments of a call (package `udf` is file `udf.lua`). */
function callOf(message: Message): { module: string; function: string; args: BinValue[] } {
  const packageField = message.fields.get(FieldType.UDF_PACKAGE);
  const functionField = message.fields.get(FieldType.UDF_FUNCTION);
  if (packageField === undefined || packageField.length === 0) throw new RequestError(ResultCode.PARAMETER_ERROR, 'a UDF call without a module name');
  if (functionField === undefined || functionField.length === 0) throw new RequestError(ResultCode.PARAMETER_ERROR, 'a UDF call without a function name');
  const argsField = message.fields.get(FieldType.UDF_ARGUMENTS);
  const args = argsField === undefined || argsField.length === 0 ? [] : decodeParticle(ParticleType.LIST, argsField, 0, argsField.length);
  if (!Array.isArray(args)) throw new RequestError(ResultCode.PARAMETER_ERROR, 'UDF arguments must be a list');
  if (args.length > UDF_ARGUMENTS_MAX) throw new RequestError(ResultCode.PARAMETER_ERROR, `a UDF call has at most ${UDF_ARGUMENTS_MAX} arguments`);
  return { module: `${packageField.toString('utf8')}.lua`, function: functionField.toString('utf8'), args };
}

function recordInput(key: Key, record: ShoalRecord | undefined, lastUpdate: number): UdfCall['record'] {
  const digest = key.digest !== undefined ? Buffer.from(key.digest) : digestOf(key.set, key.key!);
  return {
    exists: record !== undefined,
    bins: record?.bins ?? {},
    gen: record?.gen ?? 0,
    ttl: record === undefined || record.ttl < 0 ? 0 : record.ttl,
    lastUpdate,
    digest,
    set: key.set,
    key: key.key === undefined ? undefined : Buffer.isBuffer(key.key) || typeof key.key !== 'object' ? key.key : Buffer.from(key.key),
  };
}

/** The record's last-update time in Aerospike's clock (ms since 2010), for record.last_update_time. */
async function lastUpdateOf(db: ServedDb, key: Key): Promise<number> {
  const read = await db.operate(key, [operation.exp.read('lut', exp.lastUpdate())]);
  const nanoseconds = read.bins.lut;
  const ms = typeof nanoseconds === 'bigint' ? Number(nanoseconds / 1_000_000n) : Math.floor(Number(nanoseconds) / 1e6);
  return Math.max(0, ms - AEROSPIKE_EPOCH_MS);
}

/** A header TTL (u32; 0xFFFFFFFF never, 0xFFFFFFFE keep) as Shoal's ttl option. */
function ttlOf(recordTtl: number): number {
  return recordTtl > 0x7fffffff ? recordTtl - 4294967296 : recordTtl;
}

/**
 * Writes what the function committed, expecting the version it read (generation 0: the record
 * did not exist). A record left without bins is removed; one that never existed is KEY_NOT_FOUND,
 * as the server's udf_master_write answers.
 * @throws ShoalError GENERATION_MISMATCH when another write came between; the Db's errors.
 */
async function writeChanges(db: ServedDb, key: Key, record: ShoalRecord | undefined, changes: [string, BinValue][], ttl: number): Promise<{ gen: number; ttl: number }> {
  const generation = record?.gen ?? 0;
  const remaining = new Set(Object.keys(record?.bins ?? {}));
  // No prototype: a bin named __proto__ is a bin like any other.
  const bins: Bins = Object.create(null);
  for (const [name, value] of changes) {
    bins[name] = value;
    if (value === null) remaining.delete(name);
    else remaining.add(name);
  }
  if (remaining.size === 0) {
    if (record === undefined) throw new ShoalError(ErrorCode.RECORD_NOT_FOUND, 'the UDF removed every bin of a record that did not exist');
    await db.remove(key, { generation });
    return { gen: 0, ttl: -1 };
  }
  const options = { generation, ttl, ...(key.key !== undefined ? { storeKey: true } : {}) };
  return db.put(key, bins, options);
}

function success(record: ShoalRecord | undefined, value: BinValue): RecordReply {
  return { resultCode: ResultCode.OK, generation: record?.gen ?? 0, ttl: record?.ttl ?? -1, bins: [['SUCCESS', value]] };
}

function failure(message: string): RecordReply {
  return { resultCode: ResultCode.UDF_ERROR, generation: 0, ttl: -1, bins: [['FAILURE', message]] };
}
