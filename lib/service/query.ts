/**
 * Secondary-index queries (docs/protocol.md, "Secondary indexes"): a scan-shaped AS_MSG with an
 * index range (field 22), naming its index by bin, index type (26) and context (23), by name
 * (21) or by expression (24), as the server's query.c reads them. The index is looked up
 * (INDEX_NOT_FOUND when there is none) and the query runs as a scan (scan.ts, its streaming,
 * partitions, resumption and limits) whose filter is what the index would select: the records
 * holding, in the index's bin or expression value, a value of the index's type within the range
 * (for list and map indexes, any element, key or value), and the request's own filter
 * expression (field 43) after it.
 *
 * The match is an expression, compiled once per query and evaluated where the records are, in
 * every namespace kind and on every cluster node, exactly as a filter is. No index structure is
 * kept, so a query costs a walk of the set.
 */
import type { ContextLevel } from '../model/cdt/builders';
import { CtxType, ReturnType } from '../model/cdt/codes';
import { exp } from '../model/exp/builders';
import { ExpCode, ExpType } from '../model/exp/codes';
import { decodeUser } from '../model/cdt/decode';
import { EncodedNode, Expression } from '../model/exp/expression';
import { GeoJsonError, geoMatches, parseGeoJson } from '../model/exp/geo';
import type { ShoalRecord } from '../namespace/namespace';
import { SINDEX_BIN_NAME_BYTES_MAX, SINDEX_GEOJSON_BYTES_MAX, SINDEX_KEY_BYTES_MAX, SINDEX_NAME_BYTES_MAX } from './constants';
import { ParticleType } from './particles';
import { ResultCode } from './result-codes';
import { IndexType, contextOf, type IndexDefinition, type SecondaryIndexes } from './sindex';
import { FieldType, Message, RequestError } from './wire';

/** A query's range: integers from start to end (inclusive), or one string, blob or GeoJSON value. */
type Range =
  | { keyType: typeof ParticleType.INTEGER; start: bigint; end: bigint }
  | { keyType: typeof ParticleType.STRING; value: string }
  | { keyType: typeof ParticleType.BLOB; value: Buffer }
  | { keyType: typeof ParticleType.GEOJSON; value: string };

/** The fields a query may carry beyond a scan's. */
export const QUERY_FIELDS: ReadonlySet<number> = new Set([FieldType.INDEX_NAME, FieldType.INDEX_RANGE, FieldType.INDEX_CONTEXT, FieldType.INDEX_EXPRESSION, FieldType.INDEX_TYPE]);

const INT64_MAX = 2n ** 63n - 1n;

function parameterError(message: string): RequestError {
  return new RequestError(ResultCode.PARAMETER_ERROR, message);
}

/** A length-prefixed value of the range at `at`: [u32 length, bytes]. */
function lengthPrefixed(data: Buffer, at: number, maxBytes: number, what: string): Buffer {
  if (data.length - at < 4) throw parameterError(`cannot parse ${what} range`);
  const length = data.readUInt32BE(at);
  if (length >= maxBytes) throw parameterError(`query ${what} too long - ${length}`);
  if (data.length - at - 4 < length) throw parameterError(`cannot parse ${what} range`);
  return data.subarray(at + 4, at + 4 + length);
}

function integerRange(data: Buffer, at: number): Range {
  if (data.length - at < 24) throw parameterError('cannot parse integer range');
  if (data.readUInt32BE(at) !== 8 || data.readUInt32BE(at + 12) !== 8) throw parameterError('can only handle 8 byte integers');
  const start = data.readBigInt64BE(at + 4);
  const end = data.readBigInt64BE(at + 16);
  if (start > end) throw parameterError(`invalid range - ${start} ... ${end}`);
  return { keyType: ParticleType.INTEGER, start, end };
}

function utf8(bytes: Buffer, what: string): string {
  const text = bytes.toString('utf8');
  if (!Buffer.from(text, 'utf8').equals(bytes)) throw parameterError(`a query ${what} is not UTF-8`);
  return text;
}

/**
 * The index range field: one range, the bin name (empty when the index is named or on an
 * expression), the particle type and the values.
 * @throws RequestError PARAMETER_ERROR for anything the server refuses.
 */
function parseRange(data: Buffer, named: boolean): { bin: string | undefined; range: Range } {
  if (data.length < 2) throw parameterError('cannot parse index range');
  if (data[0] !== 1) throw parameterError(`${data[0]} ranges - only 1 supported`);
  const binBytes = data[1]!;
  let at = 2;
  let bin: string | undefined;
  if (binBytes === 0) {
    if (!named) throw parameterError('missing expression and index name and bin name');
  } else {
    if (named) throw parameterError('specified expression or index name with bin name');
    if (binBytes > SINDEX_BIN_NAME_BYTES_MAX) throw parameterError(`invalid bin name length ${binBytes}`);
    if (data.length - at < binBytes) throw parameterError('cannot parse bin name');
    bin = utf8(data.subarray(at, at + binBytes), 'bin name');
    at += binBytes;
  }
  if (data.length - at < 1) throw parameterError('cannot parse particle type');
  const particleType = data[at++]!;
  switch (particleType) {
    case ParticleType.INTEGER:
      return { bin, range: integerRange(data, at) };
    case ParticleType.STRING:
      return { bin, range: { keyType: ParticleType.STRING, value: utf8(lengthPrefixed(data, at, SINDEX_KEY_BYTES_MAX, 'string'), 'string') } };
    case ParticleType.BLOB:
      return { bin, range: { keyType: ParticleType.BLOB, value: Buffer.from(lengthPrefixed(data, at, SINDEX_KEY_BYTES_MAX, 'blob')) } };
    case ParticleType.GEOJSON: {
      const text = utf8(lengthPrefixed(data, at, SINDEX_GEOJSON_BYTES_MAX, 'geojson'), 'GeoJSON value');
      try {
        parseGeoJson(text);
      } catch (error) {
        if (error instanceof GeoJsonError) throw parameterError(`invalid GeoJSON: ${error.message}`);
        throw error;
      }
      return { bin, range: { keyType: ParticleType.GEOJSON, value: text } };
    }
    default:
      throw parameterError(`invalid particle type ${particleType}`);
  }
}

function notFound(): RequestError {
  return new RequestError(ResultCode.INDEX_NOT_FOUND, 'no index');
}

/**
 * The index a query uses: by name (field 21), else by its definition (bin or expression, data
 * type, index type, context) in the query's set or without a set, as the server's find_sindex.
 * @throws RequestError PARAMETER_ERROR for contradicting fields, INDEX_NOT_FOUND.
 */
function indexOf(indexes: SecondaryIndexes, ns: string, set: string | undefined, fields: Map<number, Buffer>, bin: string | undefined, keyType: number): IndexDefinition {
  const name = fields.get(FieldType.INDEX_NAME);
  const expression = fields.get(FieldType.INDEX_EXPRESSION);
  const context = fields.get(FieldType.INDEX_CONTEXT);
  const typeField = fields.get(FieldType.INDEX_TYPE);
  if (typeField !== undefined && typeField.length === 0) throw parameterError('cannot parse itype');
  if (name !== undefined && expression !== undefined) throw parameterError('specified both expression and index name');
  if (context !== undefined && (name !== undefined || expression !== undefined)) throw parameterError('specified both cdt context and index name or expression');
  if (name !== undefined) {
    if (name.length === 0 || name.length > SINDEX_NAME_BYTES_MAX) throw parameterError(`bad index name size ${name.length}`);
    return indexes.named(ns, name.toString('utf8')) ?? throwing(notFound());
  }
  if (expression !== undefined && expression.length === 0) throw parameterError('cannot parse index expression');
  if (context !== undefined) {
    if (context.length === 0) throw parameterError('cannot parse index context');
    contextOf(context);
  }
  const indexType = typeField === undefined ? IndexType.DEFAULT : typeField[0]!;
  const found = indexes.find(
    ns,
    set,
    (definition) =>
      definition.keyType === keyType &&
      definition.indexType === indexType &&
      definition.bin === bin &&
      sameBytes(definition.expression?.wire, expression) &&
      sameBytes(definition.context?.wire, context),
  );
  return found ?? throwing(notFound());
}

function sameBytes(left: Buffer | undefined, right: Buffer | undefined): boolean {
  return left === undefined || right === undefined ? left === right : left.equals(right);
}

function throwing(error: Error): never {
  throw error;
}

/** The expression type of an index's values, for typed reads. */
function valueTypeOf(keyType: number): number {
  if (keyType === ParticleType.INTEGER) return ExpType.INT;
  if (keyType === ParticleType.BLOB) return ExpType.BLOB;
  if (keyType === ParticleType.GEOJSON) return ExpType.GEOJSON;
  return ExpType.STR;
}

/** Whether one value (an index's value, as an expression) lies in the range. */
function valueInRange(value: Expression, range: Range): Expression {
  switch (range.keyType) {
    case ParticleType.INTEGER:
      return range.start === range.end ? exp.eq(value, range.start) : exp.and(exp.ge(value, range.start), exp.le(value, range.end));
    case ParticleType.GEOJSON:
      return exp.cmpGeo(value, exp.geo(range.value));
    default:
      return exp.eq(value, range.value);
  }
}

/** Whether a plain value (a context level's LIST_VALUE or MAP_VALUE) lies in the range. */
function plainInRange(value: unknown, range: Range): boolean {
  switch (range.keyType) {
    case ParticleType.INTEGER: {
      if (typeof value !== 'bigint' && !(typeof value === 'number' && Number.isSafeInteger(value))) return false;
      const integer = BigInt(value);
      return range.start <= integer && integer <= range.end;
    }
    case ParticleType.BLOB:
      return Buffer.isBuffer(value) && value.equals(range.value);
    case ParticleType.STRING:
      return value === range.value;
    default:
      return false;
  }
}

/** Whether a count expression is above 0. */
function any(count: Expression): Expression {
  return exp.gt(count, 0);
}

/** Whether a list (or a map's keys or values) holds an element in the range (not for GeoJSON: geoElementTest). */
function collectionHolds(container: Expression, indexType: number, range: Range, ctx: ContextLevel[] | undefined): Expression {
  const count = ReturnType.COUNT;
  if (indexType === IndexType.LIST) {
    if (range.keyType !== ParticleType.INTEGER) return any(exp.lists.getByValue(container, range.value, count, ctx));
    return integerCount(range, (begin, end) => exp.lists.getByValueRange(container, begin, end, count, ctx), (value) => exp.lists.getByValue(container, value, count, ctx));
  }
  if (indexType === IndexType.MAPKEYS) {
    if (range.keyType !== ParticleType.INTEGER) return any(exp.maps.getByKey(container, range.value, ExpType.INT, count, ctx));
    return integerCount(range, (begin, end) => exp.maps.getByKeyRange(container, begin, end, count, ctx), (value) => exp.maps.getByKey(container, value, ExpType.INT, count, ctx));
  }
  if (range.keyType !== ParticleType.INTEGER) return any(exp.maps.getByValue(container, range.value, count, ctx));
  return integerCount(range, (begin, end) => exp.maps.getByValueRange(container, begin, end, count, ctx), (value) => exp.maps.getByValue(container, value, count, ctx));
}

/** Integers from start to end inclusive, as half-open value intervals ([start, end + 1), or up to INT64_MAX and it). */
function integerCount(range: Range & { keyType: 1 }, interval: (begin: bigint, end: bigint) => Expression, single: (value: bigint) => Expression): Expression {
  if (range.start === range.end) return any(single(range.start));
  if (range.end < INT64_MAX) return any(interval(range.start, range.end + 1n));
  return exp.or(any(interval(range.start, range.end)), any(single(range.end)));
}

/** The value a DEFAULT index with a context path reads: the element its last level selects. */
function contextValue(container: Expression, levels: ContextLevel[], range: Range): Expression {
  const last = levels[levels.length - 1]!;
  const parent = levels.length > 1 ? levels.slice(0, -1) : undefined;
  const valueType = valueTypeOf(range.keyType);
  switch (last.type) {
    case CtxType.LIST_INDEX:
      return valueInRange(exp.lists.getByIndex(container, last.value, valueType, ReturnType.VALUE, parent), range);
    case CtxType.LIST_RANK:
      return valueInRange(exp.lists.getByRank(container, last.value, valueType, ReturnType.VALUE, parent), range);
    case CtxType.MAP_INDEX:
      return valueInRange(exp.maps.getByIndex(container, last.value, valueType, ReturnType.VALUE, parent), range);
    case CtxType.MAP_RANK:
      return valueInRange(exp.maps.getByRank(container, last.value, valueType, ReturnType.VALUE, parent), range);
    case CtxType.MAP_KEY:
      return valueInRange(exp.maps.getByKey(container, last.value, valueType, ReturnType.VALUE, parent), range);
    case CtxType.LIST_VALUE:
      return plainInRange(last.value, range) ? any(exp.lists.getByValue(container, last.value, ReturnType.COUNT, parent)) : exp.bool(false);
    default:
      return plainInRange(last.value, range) ? any(exp.maps.getByValue(container, last.value, ReturnType.COUNT, parent)) : exp.bool(false);
  }
}

/** A bin read as the index's value type. */
function typedBin(bin: string, keyType: number): Expression {
  if (keyType === ParticleType.INTEGER) return exp.binInt(bin);
  if (keyType === ParticleType.BLOB) return exp.binBlob(bin);
  if (keyType === ParticleType.GEOJSON) return exp.binGeo(bin);
  return exp.binStr(bin);
}

/** Particle types of bins (binType), as Shoal stores them: GeoJSON is its text, a string. */
function storedParticleType(keyType: number): number {
  return keyType === ParticleType.GEOJSON ? ParticleType.STRING : keyType;
}

const LIST_CONTEXT_TYPES: ReadonlySet<number> = new Set([CtxType.LIST_INDEX, CtxType.LIST_RANK, CtxType.LIST_VALUE]);

/** What a query keeps: records its filter is true for (evaluated where they are stored) and, when set, `accept` is true for. */
export interface QuerySelection {
  filter: Expression | undefined;
  /** A test of the record as read, for what expressions cannot say (GeoJSON in lists and maps). */
  accept: ((record: ShoalRecord) => boolean) | undefined;
}

/** The expression selecting what the index would select for the range (GeoJSON in collections: its guard, and geoElementTest). */
function indexMatch(index: IndexDefinition, range: Range): Expression {
  if (index.keyType !== range.keyType) return exp.bool(false);
  const levels = index.context?.levels;
  const collection = index.indexType !== IndexType.DEFAULT;
  if (index.expression !== undefined) {
    const value = new Expression(new EncodedNode(index.expression.shoal), -1);
    if (collection && range.keyType === ParticleType.GEOJSON) return exp.bool(true);
    return collection ? collectionHolds(value, index.indexType, range, undefined) : valueInRange(value, range);
  }
  const bin = index.bin!;
  if (levels === undefined) {
    if (collection) {
      const container = index.indexType === IndexType.LIST ? exp.binList(bin) : exp.binMap(bin);
      const guard = exp.eq(exp.binType(bin), index.indexType === IndexType.LIST ? ParticleType.LIST : ParticleType.MAP);
      return range.keyType === ParticleType.GEOJSON ? guard : exp.and(guard, collectionHolds(container, index.indexType, range, undefined));
    }
    const value = typedBin(bin, range.keyType);
    return exp.and(exp.eq(exp.binType(bin), storedParticleType(range.keyType)), valueInRange(value, range));
  }
  const isList = LIST_CONTEXT_TYPES.has(levels[0]!.type);
  const container = isList ? exp.binList(bin) : exp.binMap(bin);
  const guard = exp.eq(exp.binType(bin), isList ? ParticleType.LIST : ParticleType.MAP);
  if (collection && range.keyType === ParticleType.GEOJSON) return guard;
  return exp.and(guard, collection ? collectionHolds(container, index.indexType, range, levels) : contextValue(container, levels, range));
}

function unsupportedGeo(what: string): RequestError {
  return new RequestError(ResultCode.UNSUPPORTED_FEATURE, `Shoal does not support GeoJSON queries of list and map indexes ${what}`);
}

/** The value a context path selects in a bin's user value (list indexes and map keys), or undefined. */
function dig(value: unknown, levels: ContextLevel[]): unknown {
  for (const level of levels) {
    if (level.type === CtxType.LIST_INDEX && Array.isArray(value) && typeof level.value === 'number') {
      value = value[level.value < 0 ? value.length + level.value : level.value];
    } else if (level.type === CtxType.MAP_KEY && value instanceof Map) {
      value = value.get(level.value);
    } else if (level.type === CtxType.MAP_KEY && typeof level.value === 'string' && value !== null && typeof value === 'object' && !Array.isArray(value) && !Buffer.isBuffer(value)) {
      value = Object.hasOwn(value, level.value) ? (value as Record<string, unknown>)[level.value] : undefined;
    } else {
      return undefined;
    }
  }
  return value;
}

/** The bin an expression reads, when the expression is a bin read and nothing more (exp.binList('b')), else undefined. */
function binReadOf(expression: Buffer): string | undefined {
  const node = decodeUser(expression, 0, expression.length);
  return Array.isArray(node) && node.length === 3 && node[0] === ExpCode.BIN && typeof node[2] === 'string' ? node[2] : undefined;
}

/**
 * GeoJSON in a list or a map's values: whether an element is a point in the query's region or a
 * region holding its point (cmpGeo's rule). Shoal keeps GeoJSON inside lists and maps as its
 * text, so an element counts when its text parses as GeoJSON. Contexts: list indexes and map keys.
 * @throws RequestError UNSUPPORTED_FEATURE for other context levels.
 */
function geoElementTest(index: IndexDefinition, text: string): (record: ShoalRecord) => boolean {
  const levels = index.context?.levels ?? [];
  if (levels.some((level) => level.type !== CtxType.LIST_INDEX && level.type !== CtxType.MAP_KEY)) throw unsupportedGeo('with context levels other than list indexes and map keys');
  const query = parseGeoJson(text);
  const bin = index.bin ?? binReadOf(index.expression!.shoal);
  if (bin === undefined) throw unsupportedGeo('on an expression other than a bin read');
  return (record) => {
    const container = dig(record.bins[bin], levels);
    let elements: unknown[];
    if (index.indexType === IndexType.LIST) elements = Array.isArray(container) ? container : [];
    else if (container instanceof Map) elements = [...container.values()];
    else elements = container !== null && typeof container === 'object' && !Array.isArray(container) && !Buffer.isBuffer(container) ? Object.values(container) : [];
    return elements.some((element) => {
      if (typeof element !== 'string') return false;
      try {
        return geoMatches(parseGeoJson(element), query);
      } catch (error) {
        if (error instanceof GeoJsonError) return false;
        throw error;
      }
    });
  };
}

/**
 * What a scan-shaped message selects: for a query (an index range field), what its index
 * selects and then the request's own filter; otherwise the request's filter alone.
 * @throws RequestError PARAMETER_ERROR, INDEX_NOT_FOUND or UNSUPPORTED_FEATURE.
 */
export function querySelection(indexes: SecondaryIndexes, ns: string, set: string | undefined, message: Message, filter: Expression | undefined): QuerySelection {
  const rangeField = message.fields.get(FieldType.INDEX_RANGE);
  if (rangeField === undefined) {
    for (const type of QUERY_FIELDS) if (message.fields.has(type)) throw parameterError('an index field without an index range');
    return { filter, accept: undefined };
  }
  const named = message.fields.has(FieldType.INDEX_NAME) || message.fields.has(FieldType.INDEX_EXPRESSION);
  const { bin, range } = parseRange(rangeField, named);
  const index = indexOf(indexes, ns, set, message.fields, bin, range.keyType);
  const match = indexMatch(index, range);
  const inSet = index.set === undefined || index.set === set ? match : exp.and(exp.eq(exp.setName(), index.set), match);
  const geoInCollection = index.keyType === range.keyType && range.keyType === ParticleType.GEOJSON && index.indexType !== IndexType.DEFAULT;
  return {
    filter: filter === undefined ? inSet : exp.and(inSet, new Expression(new EncodedNode(filter.toBytes()), ExpType.BOOL)),
    accept: geoInCollection ? geoElementTest(index, range.value as string) : undefined,
  };
}
