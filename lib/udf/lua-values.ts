/**
 * Shoal values into Lua and back, through Lua's C API (wasmoon's build of Lua 5.4): integers
 * stay Lua integers (a JS number with no fraction, or a bigint), doubles Lua floats, strings
 * Lua strings (UTF-8), blobs `bytes`, arrays `list`, objects and Maps `map`, as the prelude
 * (prelude.ts) builds them. Back: a Lua integer beyond ±2^53 becomes a bigint; a Lua string
 * that is not UTF-8 is decoded with replacement characters (Shoal strings are UTF-8); a plain
 * Lua table becomes a list when it is a sequence, else a map; a function, thread or userdata
 * becomes nil.
 *
 * Every function here runs inside a protected Lua call (engine.ts): a Lua error (out of
 * memory) unwinds to it. A value Shoal cannot take throws UdfValueError, which the engine
 * turns into a Lua error too.
 */
import type { LuaWasm } from 'wasmoon';
import type { BinValue } from '../model/bins';
import { UDF_VALUE_DEPTH_MAX } from './constants';

/** A value that cannot cross between Lua and Shoal (the message says why). */
export class UdfValueError extends Error {
  override readonly name = 'UdfValueError';
}

/** Lua's type tags (lua.h). */
export const LuaTag = { NIL: 0, BOOLEAN: 1, LIGHT_USERDATA: 2, NUMBER: 3, STRING: 4, TABLE: 5, FUNCTION: 6, USERDATA: 7, THREAD: 8 } as const;
export const LUA_REGISTRY_INDEX = -1000000 - 1000;

/** The exports of the Lua build that take or return lua_Integer (64-bit: bigint) or raw pointers. */
interface RawLua {
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  _lua_pushlstring(L: number, pointer: number, length: number): number;
  _lua_tolstring(L: number, index: number, lengthPointer: number): number;
  _lua_pushinteger(L: number, value: bigint): void;
  _lua_tointegerx(L: number, index: number, isNumber: number): bigint;
  _lua_rawseti(L: number, index: number, position: bigint): void;
  _lua_rawgeti(L: number, index: number, position: bigint): number;
  HEAPU8: Uint8Array;
  HEAPU32: Uint32Array;
}

/** The prelude's constructors and readers, as registry references. */
export interface PreludeRefs {
  newList: number;
  newMap: number;
  newBytes: number;
  describe: number;
}

const MIN_INT64 = -(1n << 63n);
const MAX_INT64 = (1n << 63n) - 1n;

/** Converts between Shoal and Lua values on one Lua build. */
export class LuaValues {
  private readonly raw: RawLua;
  /** A scratch word for lengths returned through pointers. */
  private readonly lengthPointer: number;

  constructor(private readonly lua: LuaWasm) {
    this.raw = lua.module as unknown as RawLua;
    this.lengthPointer = this.raw._malloc(8);
  }

  /** Pushes raw bytes as a Lua string. */
  pushBytes(L: number, bytes: Uint8Array): void {
    const pointer = this.raw._malloc(Math.max(1, bytes.length));
    try {
      this.raw.HEAPU8.set(bytes, pointer);
      this.raw._lua_pushlstring(L, pointer, bytes.length);
    } finally {
      this.raw._free(pointer);
    }
  }

  pushString(L: number, value: string): void {
    this.pushBytes(L, Buffer.from(value, 'utf8'));
  }

  /** The bytes of the Lua string (or number) at index. */
  readBytes(L: number, index: number): Buffer {
    const pointer = this.raw._lua_tolstring(L, index, this.lengthPointer);
    if (pointer === 0) return Buffer.alloc(0);
    const length = this.raw.HEAPU32[this.lengthPointer >> 2]!;
    return Buffer.from(this.raw.HEAPU8.subarray(pointer, pointer + length));
  }

  readString(L: number, index: number): string {
    return this.readBytes(L, index).toString('utf8');
  }

  pushInteger(L: number, value: number | bigint): void {
    this.raw._lua_pushinteger(L, BigInt(value));
  }

  setIndex(L: number, tableIndex: number, position: number): void {
    this.raw._lua_rawseti(L, tableIndex, BigInt(position));
  }

  getIndex(L: number, tableIndex: number, position: number): number {
    return this.raw._lua_rawgeti(L, tableIndex, BigInt(position));
  }

  pushRef(L: number, ref: number): void {
    this.raw._lua_rawgeti(L, LUA_REGISTRY_INDEX, BigInt(ref));
  }

  /**
   * Pushes a Shoal value.
   * @throws UdfValueError for an integer outside int64 or nesting past UDF_VALUE_DEPTH_MAX.
   */
  push(L: number, value: BinValue | undefined, refs: PreludeRefs, depth = 0): void {
    const lua = this.lua;
    if (depth > UDF_VALUE_DEPTH_MAX) throw new UdfValueError(`a value nests deeper than ${UDF_VALUE_DEPTH_MAX} levels`);
    lua.lua_checkstack(L, 8);
    if (value === null || value === undefined) return lua.lua_pushnil(L);
    switch (typeof value) {
      case 'boolean':
        return lua.lua_pushboolean(L, value ? 1 : 0);
      case 'number':
        return Number.isInteger(value) && Number.isSafeInteger(value) ? this.pushInteger(L, value) : lua.lua_pushnumber(L, value);
      case 'bigint':
        if (value < MIN_INT64 || value > MAX_INT64) throw new UdfValueError(`integer ${value} is outside the 64-bit range`);
        return this.pushInteger(L, value);
      case 'string':
        return this.pushString(L, value);
    }
    if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
      this.pushRef(L, refs.newBytes);
      this.pushBytes(L, value);
      this.pushInteger(L, 4);
      lua.lua_callk(L, 2, 1, 0, null);
      return;
    }
    if (Array.isArray(value)) {
      this.pushRef(L, refs.newList);
      lua.lua_createtable(L, value.length, 0);
      for (let i = 0; i < value.length; i++) {
        this.push(L, value[i], refs, depth + 1);
        this.setIndex(L, -2, i + 1);
      }
      this.pushInteger(L, value.length);
      lua.lua_callk(L, 2, 1, 0, null);
      return;
    }
    const entries: [unknown, BinValue][] = value instanceof Map ? [...value.entries()] : Object.entries(value as Record<string, BinValue>);
    this.pushRef(L, refs.newMap);
    lua.lua_createtable(L, entries.length, 0);
    entries.forEach(([key], i) => {
      this.push(L, key as BinValue, refs, depth + 1);
      this.setIndex(L, -2, i + 1);
    });
    lua.lua_createtable(L, entries.length, 0);
    entries.forEach(([, entry], i) => {
      this.push(L, entry, refs, depth + 1);
      this.setIndex(L, -2, i + 1);
    });
    this.pushInteger(L, entries.length);
    lua.lua_callk(L, 3, 1, 0, null);
  }

  /**
   * The Shoal value of the Lua value at index (left on the stack).
   * @throws UdfValueError for nesting past UDF_VALUE_DEPTH_MAX.
   */
  read(L: number, index: number, refs: PreludeRefs, depth = 0): BinValue {
    const lua = this.lua;
    if (depth > UDF_VALUE_DEPTH_MAX) throw new UdfValueError(`a value nests deeper than ${UDF_VALUE_DEPTH_MAX} levels`);
    const at = lua.lua_absindex(L, index);
    switch (lua.lua_type(L, at) as number) {
      case LuaTag.NIL:
        return null;
      case LuaTag.BOOLEAN:
        return lua.lua_toboolean(L, at) !== 0;
      case LuaTag.NUMBER:
        return this.readNumber(L, at);
      case LuaTag.STRING:
        return this.readString(L, at);
      case LuaTag.TABLE:
        return this.readTable(L, at, refs, depth);
      default:
        return null;
    }
  }

  private readNumber(L: number, at: number): number | bigint {
    if (this.lua.lua_isinteger(L, at) === 0) return this.lua.lua_tonumberx(L, at, null);
    const value = this.raw._lua_tointegerx(L, at, 0);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }

  /** A list, map or bytes of the prelude, or a plain table, through the prelude's describe. */
  private readTable(L: number, at: number, refs: PreludeRefs, depth: number): BinValue {
    const lua = this.lua;
    lua.lua_checkstack(L, 8);
    const top = lua.lua_gettop(L);
    this.pushRef(L, refs.describe);
    lua.lua_pushvalue(L, at);
    lua.lua_callk(L, 1, 4, 0, null);
    try {
      const kind = this.readString(L, top + 1);
      if (kind === 'bytes') return this.readBytes(L, top + 2);
      if (kind === 'list') return this.readList(L, top + 2, Number(this.readNumber(L, top + 3)), refs, depth);
      if (kind === 'map') return this.readMap(L, top + 2, top + 3, Number(this.readNumber(L, top + 4)), refs, depth);
      return null;
    } finally {
      lua.lua_settop(L, top);
    }
  }

  private readList(L: number, valuesAt: number, size: number, refs: PreludeRefs, depth: number): BinValue[] {
    const values: BinValue[] = new Array(size);
    for (let i = 0; i < size; i++) {
      this.getIndex(L, valuesAt, i + 1);
      values[i] = this.read(L, -1, refs, depth + 1);
      this.lua.lua_settop(L, -2);
    }
    return values;
  }

  /** A map: a plain object when every key is a string, else a Map (as Shoal reads maps). */
  private readMap(L: number, keysAt: number, valuesAt: number, size: number, refs: PreludeRefs, depth: number): BinValue {
    const keys: BinValue[] = [];
    const values: BinValue[] = [];
    for (let i = 0; i < size; i++) {
      this.getIndex(L, keysAt, i + 1);
      keys.push(this.read(L, -1, refs, depth + 1));
      this.getIndex(L, valuesAt, i + 1);
      values.push(this.read(L, -1, refs, depth + 1));
      this.lua.lua_settop(L, -3);
    }
    if (keys.every((key) => typeof key === 'string')) {
      const object: Record<string, BinValue> = Object.create(null);
      keys.forEach((key, i) => (object[key as string] = values[i]!));
      return object;
    }
    return new Map(
      keys.map((key, i) => {
        if (typeof key !== 'number' && typeof key !== 'bigint' && typeof key !== 'string' && !Buffer.isBuffer(key)) throw new UdfValueError('a map key must be a string, an integer or bytes');
        return [key, values[i]!];
      }),
    );
  }
}
