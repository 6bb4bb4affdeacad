/**
 * Secondary indexes over Aerospike's info protocol (docs/protocol.md, "Secondary indexes"): the
 * index definitions of this node, per namespace, and the info commands `sindex-create`,
 * `sindex-delete`, `sindex-list`, `sindex[/<ns>[/<name>]]`, `sindex-stat` and `sindex-exists`,
 * with the parameters, answers and errors of Aerospike's server (sindex_manager.c, thr_info.c).
 *
 * No index structure is kept: a query walks the set and tests every record as the index would
 * (query.ts). So an index is complete (load_pct=100) as soon as it is defined, costs nothing on
 * writes, and its definition lives in this node's memory until it is deleted or the node stops.
 */
import { CONTEXT_LEVELS_MAX } from '../constants';
import type { ContextLevel } from '../model/cdt/builders';
import { CtxType } from '../model/cdt/codes';
import { decodeUser } from '../model/cdt/decode';
import { compileExpression } from '../model/exp/compile';
import { ExpType } from '../model/exp/codes';
import { expressionFromWire, valueFromWire } from './dialect';
import {
  SINDEX_BIN_NAME_BYTES_MAX,
  SINDEX_CONTEXT_BASE64_BYTES_MAX,
  SINDEX_EXPRESSION_BASE64_BYTES_MAX,
  SINDEX_NAME_BYTES_MAX,
  SINDEX_PER_NAMESPACE_MAX,
  SINDEX_SET_NAME_BYTES_MAX,
} from './constants';
import { ParticleType } from './particles';
import { ResultCode } from './result-codes';
import { RequestError } from './wire';

/** Index types, as the query's INDEX_TYPE field numbers them (the C client's as_index_type). */
export const IndexType = { DEFAULT: 0, LIST: 1, MAPKEYS: 2, MAPVALUES: 3 } as const;
const INDEX_TYPE_NAMES = ['DEFAULT', 'LIST', 'MAPKEYS', 'MAPVALUES'];

/** Data types by name (case-insensitive; INTEGER is server 8.1.3's name of NUMERIC): the particle type of the indexed values. */
const KEY_TYPES = new Map<string, number>([
  ['NUMERIC', ParticleType.INTEGER],
  ['INTEGER', ParticleType.INTEGER],
  ['STRING', ParticleType.STRING],
  ['BLOB', ParticleType.BLOB],
  ['GEO2DSPHERE', ParticleType.GEOJSON],
]);
const KEY_TYPE_NAMES = new Map<number, string>([
  [ParticleType.INTEGER, 'NUMERIC'],
  [ParticleType.STRING, 'STRING'],
  [ParticleType.BLOB, 'BLOB'],
  [ParticleType.GEOJSON, 'GEO2DSPHERE'],
]);

/** What an index on an expression must evaluate to, per index type and data type (the server's as_sindex_validate_exp_type). */
const EXPRESSION_TYPE_OF_KEY = new Map<number, number>([
  [ParticleType.INTEGER, ExpType.INT],
  [ParticleType.STRING, ExpType.STR],
  [ParticleType.BLOB, ExpType.BLOB],
  [ParticleType.GEOJSON, ExpType.GEOJSON],
]);

const CONTEXT_TYPES = new Set<number>(Object.values(CtxType));

/** One secondary index: what it is on, and how its values are typed. */
export interface IndexDefinition {
  readonly ns: string;
  readonly name: string;
  readonly set: string | undefined;
  /** The bin it is on, or undefined for an index on an expression. */
  readonly bin: string | undefined;
  /** The expression it is on: as the client encoded it, and in Shoal's form (dialect.ts). */
  readonly expression: { base64: string; wire: Buffer; shoal: Buffer } | undefined;
  /** The context path into the bin's list or map: as the client encoded it, and as levels. */
  readonly context: { base64: string; wire: Buffer; levels: ContextLevel[] } | undefined;
  /** IndexType. */
  readonly indexType: number;
  /** The particle type of the values it holds: INTEGER, STRING, BLOB or GEOJSON. */
  readonly keyType: number;
}

/** Everything but the name: two definitions with the same identity are the same index. */
function identityOf(definition: Omit<IndexDefinition, 'name'>): string {
  return JSON.stringify([definition.set ?? null, definition.bin ?? null, definition.expression?.base64 ?? null, definition.context?.base64 ?? null, definition.indexType, definition.keyType]);
}

function parameterError(message: string): RequestError {
  return new RequestError(ResultCode.PARAMETER_ERROR, message);
}

/** A required info parameter. @throws RequestError PARAMETER_ERROR when it is missing or empty. */
function required(values: ReadonlyMap<string, string>, name: string): string {
  const value = values.get(name);
  if (value === undefined || value.length === 0) throw parameterError(`missing '${name}'`);
  return value;
}

/** The namespace parameter (`namespace=` or the older `ns=`). */
function namespaceParameter(values: ReadonlyMap<string, string>): string {
  const value = values.get('namespace') ?? values.get('ns');
  if (value === undefined || value.length === 0) throw parameterError("missing 'namespace'");
  return value;
}

function checkLength(value: string, maxBytes: number, what: string): void {
  if (Buffer.byteLength(value, 'utf8') > maxBytes) throw parameterError(`${what} longer than ${maxBytes} bytes`);
}

/** An index name: at most SINDEX_NAME_BYTES_MAX bytes, none of the info protocol's separators. */
function checkIndexName(name: string): void {
  checkLength(name, SINDEX_NAME_BYTES_MAX, "'indexname'");
  if (/[\x00-\x1f\x7f:;,=/\t]/.test(name)) throw parameterError("'indexname' holds a separator or a control character");
}

/** Base64 text, strictly (Buffer.from(…, 'base64') would skip what is not base64). */
function decodeBase64(text: string, what: string): Buffer {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw parameterError(`'${what}' invalid base64`);
  const bytes = Buffer.from(text, 'base64');
  if (bytes.length === 0) throw parameterError(`'${what}' is empty`);
  return bytes;
}

/**
 * A context path as the client packs it (a MessagePack list of type, value pairs), as levels.
 * Create flags are refused: an index reads, it never creates (as the server refuses them).
 * @throws RequestError PARAMETER_ERROR.
 */
export function contextOf(wire: Buffer): ContextLevel[] {
  const shoal = valueFromWire(wire, 0, wire.length);
  const flat = decodeUser(shoal, 0, shoal.length);
  if (!Array.isArray(flat) || flat.length === 0 || flat.length % 2 !== 0) throw parameterError("'context' invalid cdt context");
  if (flat.length / 2 > CONTEXT_LEVELS_MAX) throw parameterError(`'context' has more than ${CONTEXT_LEVELS_MAX} levels`);
  const levels: ContextLevel[] = [];
  for (let at = 0; at < flat.length; at += 2) {
    const type = flat[at];
    if (typeof type !== 'number' || !CONTEXT_TYPES.has(type)) throw parameterError("'context' invalid cdt context");
    levels.push({ type, value: flat[at + 1] });
  }
  return levels;
}

function parseContext(values: ReadonlyMap<string, string>): IndexDefinition['context'] {
  const base64 = values.get('context');
  if (base64 === undefined) return undefined;
  if (base64.length > SINDEX_CONTEXT_BASE64_BYTES_MAX) throw parameterError(`'context' longer than ${SINDEX_CONTEXT_BASE64_BYTES_MAX} bytes`);
  const wire = decodeBase64(base64, 'context');
  return { base64, wire, levels: contextOf(wire) };
}

/**
 * An index expression: decoded, in Shoal's form, compiled once to check it, and of the type the
 * index holds (a list or map for collection indexes; any when only evaluation tells).
 * @throws RequestError PARAMETER_ERROR.
 */
function parseExpression(base64: string, indexType: number, keyType: number): IndexDefinition['expression'] {
  if (base64.length > SINDEX_EXPRESSION_BASE64_BYTES_MAX) throw parameterError(`'exp' longer than ${SINDEX_EXPRESSION_BASE64_BYTES_MAX} bytes`);
  const wire = decodeBase64(base64, 'exp');
  const shoal = expressionFromWire(wire, 0, wire.length);
  let type: number;
  try {
    type = compileExpression(shoal, false).type;
  } catch (error) {
    throw parameterError(`'exp' invalid expression: ${(error as Error).message}`);
  }
  const wanted = indexType === IndexType.DEFAULT ? EXPRESSION_TYPE_OF_KEY.get(keyType)! : indexType === IndexType.LIST ? ExpType.LIST : ExpType.MAP;
  if (type !== wanted && type !== -1) throw parameterError("'exp' type does not match the index's 'type' and 'indextype'");
  return { base64, wire, shoal };
}

function keyTypeOf(name: string, what: string): number {
  const keyType = KEY_TYPES.get(name.toUpperCase());
  if (keyType === undefined) throw parameterError(`bad ${what} - must be one of 'numeric', 'string', 'blob', 'geo2dsphere'`);
  return keyType;
}

function indexTypeOf(values: ReadonlyMap<string, string>): number {
  const name = values.get('indextype');
  if (name === undefined) return IndexType.DEFAULT;
  const indexType = INDEX_TYPE_NAMES.indexOf(name.toUpperCase());
  if (indexType < 0) throw parameterError("bad 'indextype' - must be one of 'default', 'list', 'mapkeys', 'mapvalues'");
  return indexType;
}

/** The bin or expression and data type: `indexdata=<bin>,<type>` (before 8.1), or `type=<type>` with `bin=` or `exp=`. */
function parseSource(values: ReadonlyMap<string, string>, indexType: number, context: IndexDefinition['context']): Pick<IndexDefinition, 'bin' | 'expression' | 'keyType'> {
  const indexdata = values.get('indexdata');
  const type = values.get('type');
  if (indexdata === undefined && type === undefined) throw parameterError("both 'indexdata' and 'type' are missing");
  if (indexdata !== undefined && type !== undefined) throw parameterError("both 'indexdata' and 'type' are specified");
  if (indexdata !== undefined) {
    const comma = indexdata.indexOf(',');
    if (comma < 0) throw parameterError("'indexdata' missing bin type");
    const bin = indexdata.slice(0, comma);
    if (bin.length === 0) throw parameterError("'indexdata' missing bin name");
    checkLength(bin, SINDEX_BIN_NAME_BYTES_MAX, "'indexdata' bin name");
    return { bin, expression: undefined, keyType: keyTypeOf(indexdata.slice(comma + 1), "'indexdata' bin type") };
  }
  const keyType = keyTypeOf(type!, "'type'");
  const bin = values.get('bin');
  const expression = values.get('exp');
  if (bin !== undefined && expression !== undefined) throw parameterError("both 'bin' and 'exp' are specified");
  if (bin === undefined && expression === undefined) throw parameterError("both 'bin' and 'exp' are missing");
  if (bin !== undefined) {
    if (bin.length === 0) throw parameterError("missing 'bin'");
    checkLength(bin, SINDEX_BIN_NAME_BYTES_MAX, "'bin'");
    return { bin, expression: undefined, keyType };
  }
  if (context !== undefined) throw parameterError("both 'context' and 'exp' are specified");
  return { bin: undefined, expression: parseExpression(expression!, indexType, keyType), keyType };
}

/** The parameter a node adds to a definition it sends its peers, so they do not send it on. */
const FROM_PEER = 'shoal-from-peer';

/** The secondary indexes of this node, by namespace and name. */
export class SecondaryIndexes {
  private readonly byNamespace = new Map<string, Map<string, IndexDefinition>>();

  /**
   * @param toPeers sends an info command to every peer (cluster mode) and resolves once each
   *   answered or was given up; undefined without peers.
   */
  constructor(
    private readonly namespaces: ReadonlySet<string>,
    private readonly toPeers?: (command: string) => Promise<void>,
  ) {}

  /**
   * Sends a definition change a client made to the peers, so every node of the cluster knows the
   * index (a client creates it through one node and queries every node). A change a peer sent
   * is not sent on.
   */
  async tellPeers(name: string, params: string, values: ReadonlyMap<string, string>): Promise<void> {
    if (this.toPeers === undefined || values.has(FROM_PEER)) return;
    await this.toPeers(`${name}:${params};${FROM_PEER}=true`);
  }

  /** The index of this name, or undefined. */
  named(ns: string, name: string): IndexDefinition | undefined {
    return this.byNamespace.get(ns)?.get(name);
  }

  /**
   * The index a query names by its definition, as the server looks it up: one of the query's set,
   * else one without a set.
   */
  find(ns: string, set: string | undefined, matches: (definition: IndexDefinition) => boolean): IndexDefinition | undefined {
    const indexes = [...(this.byNamespace.get(ns)?.values() ?? [])];
    return indexes.find((definition) => set !== undefined && definition.set === set && matches(definition)) ?? indexes.find((definition) => definition.set === undefined && matches(definition));
  }

  /** The indexes of a namespace (every namespace's when undefined), in creation order. */
  list(ns: string | undefined): IndexDefinition[] {
    if (ns !== undefined) return [...(this.byNamespace.get(ns)?.values() ?? [])];
    return [...this.byNamespace.values()].flatMap((indexes) => [...indexes.values()]);
  }

  /**
   * `sindex-create`: defines an index. The same name with the same definition is `ok` again; a
   * definition already indexed under another name is renamed, as the server's metadata (keyed
   * by definition) does.
   * @throws RequestError PARAMETER_ERROR for a malformed or unknown parameter, INDEX_FOUND for
   *   a name already used by another definition, INDEX_MAX_COUNT past SINDEX_PER_NAMESPACE_MAX.
   */
  create(values: ReadonlyMap<string, string>): string {
    const name = required(values, 'indexname');
    checkIndexName(name);
    const ns = namespaceParameter(values);
    if (!this.namespaces.has(ns)) throw parameterError('namespace not found');
    const set = values.get('set');
    if (set !== undefined) checkLength(set, SINDEX_SET_NAME_BYTES_MAX, "'set'");
    const indexType = indexTypeOf(values);
    const context = parseContext(values);
    const source = parseSource(values, indexType, context);
    if (indexType === IndexType.MAPKEYS && source.keyType === ParticleType.GEOJSON) {
      throw parameterError("bad 'indexdata' bin type for 'indextype' 'mapkeys' - must be one of 'numeric', 'string', 'blob'");
    }
    const definition: IndexDefinition = { ns, name, set: set === undefined || set.length === 0 ? undefined : set, context, indexType, ...source };
    const indexes = this.byNamespace.get(ns) ?? new Map<string, IndexDefinition>();
    const identity = identityOf(definition);
    const existing = indexes.get(name);
    if (existing !== undefined) {
      if (identityOf(existing) !== identity) throw new RequestError(ResultCode.INDEX_FOUND, "'indexname' already exists with different definition");
      return 'ok';
    }
    const renamed = [...indexes.values()].find((index) => identityOf(index) === identity);
    if (renamed !== undefined) indexes.delete(renamed.name);
    else if (indexes.size >= SINDEX_PER_NAMESPACE_MAX) throw new RequestError(ResultCode.INDEX_MAX_COUNT, 'already at sindex definition limit');
    indexes.set(name, definition);
    this.byNamespace.set(ns, indexes);
    return 'ok';
  }

  /** `sindex-delete`: `ok`, also for an index that does not exist (as the server answers). @throws RequestError PARAMETER_ERROR. */
  delete(values: ReadonlyMap<string, string>): string {
    const name = required(values, 'indexname');
    const ns = namespaceParameter(values);
    this.byNamespace.get(ns)?.delete(name);
    return 'ok';
  }

  /** `sindex-exists`: `true` or `false`. @throws RequestError PARAMETER_ERROR. */
  exists(values: ReadonlyMap<string, string>): string {
    const name = required(values, 'indexname');
    const ns = this.localNamespace(namespaceParameter(values));
    return this.named(ns, name) === undefined ? 'false' : 'true';
  }

  /** `sindex-list[:ns=N][;b64=true]`: `ns=…:indexname=…:set=…:bin=…:type=…:indextype=…:context=…:exp=…:state=RW;…`. */
  listCommand(values: ReadonlyMap<string, string>): string {
    const ns = values.get('namespace') ?? values.get('ns');
    if (ns !== undefined) this.localNamespace(ns);
    const b64 = values.get('b64');
    if (b64 !== undefined && b64 !== 'true' && b64 !== 'false') throw parameterError('bad b64');
    return this.list(ns).map((definition) => describeIndex(definition)).join(';');
  }

  /** `sindex[/<ns>[/<name>]]`: the list, or one index's statistics; `ns_type=unknown` for an unknown namespace. @throws RequestError INDEX_NOT_FOUND. */
  sindexCommand(params: string): string {
    if (params.length === 0) return this.list(undefined).map(describeIndex).join(';');
    const slash = params.indexOf('/');
    const ns = slash < 0 ? params : params.slice(0, slash);
    if (!this.namespaces.has(ns)) return 'ns_type=unknown';
    if (slash < 0) return this.list(ns).map(describeIndex).join(';');
    return this.statistics(ns, params.slice(slash + 1));
  }

  /** `sindex-stat:namespace=N;indexname=I`. @throws RequestError PARAMETER_ERROR, INDEX_NOT_FOUND. */
  statCommand(values: ReadonlyMap<string, string>): string {
    const name = required(values, 'indexname');
    return this.statistics(this.localNamespace(namespaceParameter(values)), name);
  }

  /**
   * One index's statistics. Nothing is loaded (load_pct is 100 from the start, load_time 0) and
   * no structure is kept (used_bytes 0); entry counts are not reported: they would cost a walk.
   */
  private statistics(ns: string, name: string): string {
    if (this.named(ns, name) === undefined) throw new RequestError(ResultCode.INDEX_NOT_FOUND, 'no index');
    return 'used_bytes=0;load_pct=100;load_time=0';
  }

  private localNamespace(ns: string): string {
    if (!this.namespaces.has(ns)) throw parameterError(`namespace ${ns} not found`);
    return ns;
  }
}

/** One index as `sindex-list` lists it (the context and expression as base64). */
function describeIndex(definition: IndexDefinition): string {
  return [
    `ns=${definition.ns}`,
    `indexname=${definition.name}`,
    `set=${definition.set ?? 'null'}`,
    `bin=${definition.bin ?? 'null'}`,
    `type=${KEY_TYPE_NAMES.get(definition.keyType)}`,
    `indextype=${INDEX_TYPE_NAMES[definition.indexType]}`,
    `context=${definition.context?.base64 ?? 'null'}`,
    `exp=${definition.expression?.base64 ?? 'null'}`,
    'state=RW',
  ].join(':');
}

/** The info commands of this module, each given the raw parameters and the parsed `key=value` ones. */
type InfoCommand = (indexes: SecondaryIndexes, params: string, values: ReadonlyMap<string, string>) => string | Promise<string>;

/** A definition change: made here, then sent to the peers; answered once they answered. */
function changing(name: string, change: (indexes: SecondaryIndexes, values: ReadonlyMap<string, string>) => string): InfoCommand {
  return async (indexes, params, values) => {
    const answer = change(indexes, values);
    await indexes.tellPeers(name, params, values);
    return answer;
  };
}

export const SINDEX_INFO_COMMANDS: ReadonlyMap<string, InfoCommand> = new Map<string, InfoCommand>([
  ['sindex-create', changing('sindex-create', (indexes, values) => indexes.create(values))],
  ['sindex-delete', changing('sindex-delete', (indexes, values) => indexes.delete(values))],
  ['sindex-exists', (indexes: SecondaryIndexes, _: string, values: ReadonlyMap<string, string>) => indexes.exists(values)],
  ['sindex-list', (indexes: SecondaryIndexes, _: string, values: ReadonlyMap<string, string>) => indexes.listCommand(values)],
  ['sindex-stat', (indexes: SecondaryIndexes, _: string, values: ReadonlyMap<string, string>) => indexes.statCommand(values)],
  ['sindex', (indexes: SecondaryIndexes, params: string) => indexes.sindexCommand(params)],
]);
