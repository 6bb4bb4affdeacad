/**
 * The Lua engine of record UDFs (docs/protocol.md, "User-defined functions"): Lua 5.4 compiled
 * to WebAssembly (the wasmoon package), one Lua state per module in use, each opened with the
 * safe libraries only (base, table, string, math, utf8, coroutine) and the prelude
 * (prelude.ts), which closes the rest of the sandbox and defines the record API.
 *
 * Bounds (constants.ts): each state's allocator refuses memory past
 * UDF_STATE_MEMORY_BYTES_MAX (Lua raises "not enough memory"); an instruction hook stops a
 * call after UDF_RUN_TIME_MAX_MS or UDF_INSTRUCTIONS_MAX with "UDF Execution Timeout", and from
 * then on fires at every instruction, so a module's own pcall cannot swallow it. A state that
 * ran out of time or memory is closed; the next call opens a fresh one.
 *
 * Runs in the UDF worker thread (worker.ts), never on the Db's event loop: a library call that
 * never returns to Lua is ended by the worker's deadline instead.
 */
import { LuaFactory, LuaGlobal, type LuaWasm } from 'wasmoon';
import type { BinValue, Bins } from '../model/bins';
import { UDF_HOOK_INSTRUCTIONS, UDF_INSTRUCTIONS_MAX, UDF_RUN_TIME_MAX_MS, UDF_STATE_MEMORY_BYTES_MAX, UDF_STATES_MAX } from './constants';
import { LUA_REGISTRY_INDEX, LuaTag, LuaValues, PreludeRefs, UdfValueError } from './lua-values';
import { PRELUDE } from './prelude';

/** The record a call runs against, as the service read it. */
export interface UdfRecordInput {
  exists: boolean;
  bins: Bins;
  gen: number;
  /** Seconds left (0: never expires), as Aerospike's record.ttl answers. */
  ttl: number;
  /** Milliseconds since 2010-01-01 UTC (Aerospike's clock), 0 when unknown. */
  lastUpdate: number;
  digest: Buffer;
  set: string | undefined;
  key: string | number | bigint | Buffer | undefined;
}

export interface UdfCall {
  module: string;
  function: string;
  args: BinValue[];
  record: UdfRecordInput;
}

/**
 * A call's result: the function's return value and what it committed (aerospike:update or
 * create), or the Lua error's message.
 */
export type UdfOutcome =
  | { ok: true; value: BinValue; updated: boolean; changes: [string, BinValue][]; ttl: number | undefined }
  | { ok: false; message: string };

/** The result of compiling and loading a module: ok, or the error with its line (0 if unknown). */
export type UdfCheck = { ok: true } | { ok: false; line: number; message: string };

const LUA_OK = 0;
const LUA_ERRMEM = 4;
const HOOK_COUNT_MASK = 1 << 3;
const TIMEOUT_MESSAGE = 'UDF Execution Timeout';

interface Budget {
  deadlineMs: number;
  instructions: number;
  exceeded: boolean;
}

interface ModuleState {
  global: LuaGlobal;
  refs: PreludeRefs & { newRecord: number; outcome: number; run: number; loadModule: number };
  /** Whether the state must be closed after the call (ran out of time or memory). */
  spoiled: boolean;
}

/** The engine: the Lua build, the module sources, and the open states. */
export class UdfEngine {
  private readonly values: LuaValues;
  private readonly states = new Map<string, ModuleState>();
  private readonly sources = new Map<string, string>();
  private readonly budget: Budget = { deadlineMs: 0, instructions: 0, exceeded: false };
  private readonly hookPointer: number;
  private readonly sourcePointer: number;
  /** The protected body of the current call (see protectedCall). */
  private body: ((L: number) => void) | undefined;
  private readonly bodyPointer: number;

  private constructor(private readonly lua: LuaWasm) {
    this.values = new LuaValues(lua);
    this.hookPointer = lua.module.addFunction((L: number) => this.hook(L), 'vii');
    this.sourcePointer = lua.module.addFunction((L: number) => this.sourceOf(L), 'ii');
    this.bodyPointer = lua.module.addFunction((L: number) => this.runBody(L), 'ii');
  }

  /** Loads the Lua build (about 70 ms, once per worker). */
  static async create(): Promise<UdfEngine> {
    return new UdfEngine(await new LuaFactory().getLuaModule());
  }

  /** Sets the registered modules' sources (by file name); closes every state (they may have required old ones). */
  setSources(sources: Iterable<[string, string]>): void {
    this.sources.clear();
    for (const [name, source] of sources) this.sources.set(name, source);
    for (const name of [...this.states.keys()]) this.closeState(name);
  }

  /** Compiles and runs a module's top level in a state of its own, then closes it. */
  check(name: string, source: string): UdfCheck {
    let state: ModuleState | undefined;
    try {
      state = this.openState();
      const failure = this.loadInto(state, name, source);
      if (failure === undefined) return { ok: true };
      return { ok: false, ...lineOf(failure, name) };
    } finally {
      if (state !== undefined) state.global.close();
    }
  }

  /** Runs one record UDF call. Never throws for what the module does. */
  apply(call: UdfCall): UdfOutcome {
    const source = this.sources.get(call.module);
    if (source === undefined) return { ok: false, message: `UDF module ${call.module} is not registered` };
    let state = this.states.get(call.module);
    if (state === undefined) {
      state = this.openState();
      const failure = this.loadInto(state, call.module, source);
      if (failure !== undefined) {
        state.global.close();
        return { ok: false, message: failure };
      }
      this.remember(call.module, state);
    } else {
      // Most recently used last.
      this.states.delete(call.module);
      this.states.set(call.module, state);
    }
    try {
      return this.callFunction(state, call);
    } finally {
      if (state.spoiled) this.closeState(call.module);
    }
  }

  private remember(name: string, state: ModuleState): void {
    this.states.set(name, state);
    while (this.states.size > UDF_STATES_MAX) this.closeState(this.states.keys().next().value!);
  }

  private closeState(name: string): void {
    this.states.get(name)?.global.close();
    this.states.delete(name);
  }

  /** A fresh state: the safe libraries, the memory bound, the hook and the prelude. */
  private openState(): ModuleState {
    const lua = this.lua;
    const global = new LuaGlobal(lua, true);
    global.setMemoryMax(UDF_STATE_MEMORY_BYTES_MAX);
    const L = global.address;
    const module = lua.module as unknown as Record<string, (L: number) => void>;
    for (const [open, name] of [['_luaopen_base', '_G'], ['_luaopen_table', 'table'], ['_luaopen_string', 'string'], ['_luaopen_math', 'math'], ['_luaopen_utf8', 'utf8'], ['_luaopen_coroutine', 'coroutine']] as const) {
      module[open]!(L);
      lua.lua_setglobal(L, name);
    }
    lua.lua_sethook(L, this.hookPointer, HOOK_COUNT_MASK, UDF_HOOK_INSTRUCTIONS);
    const state: ModuleState = { global, refs: { newList: 0, newMap: 0, newBytes: 0, describe: 0, newRecord: 0, outcome: 0, run: 0, loadModule: 0 }, spoiled: false };
    const failure = this.protectedCall(state, (L1) => {
      if (lua.luaL_loadbufferx(L1, PRELUDE, Buffer.byteLength(PRELUDE), '=prelude', 't') !== LUA_OK) throw new UdfValueError(this.values.readString(L1, -1));
      lua.lua_pushcclosure(L1, this.sourcePointer, 0);
      lua.lua_callk(L1, 1, 1, 0, null);
      const refs = state.refs as unknown as Record<string, number>;
      for (const [field, key] of [['newList', 'new_list'], ['newMap', 'new_map'], ['newBytes', 'new_bytes'], ['describe', 'describe'], ['newRecord', 'new_record'], ['outcome', 'outcome'], ['run', 'run'], ['loadModule', 'load_module']] as const) {
        lua.lua_getfield(L1, -1, key);
        refs[field] = lua.luaL_ref(L1, LUA_REGISTRY_INDEX);
      }
    });
    if (failure !== undefined) {
      global.close();
      throw new Error(`the UDF prelude failed to load: ${failure}`);
    }
    return state;
  }

  /** Loads a module into a state; the error message when it does not compile or its top level fails. */
  private loadInto(state: ModuleState, name: string, source: string): string | undefined {
    return this.protectedCall(state, (L) => {
      this.values.pushRef(L, state.refs.loadModule);
      this.values.pushString(L, name);
      this.values.pushString(L, source);
      this.lua.lua_callk(L, 2, 0, 0, null);
    });
  }

  private callFunction(state: ModuleState, call: UdfCall): UdfOutcome {
    let outcome: UdfOutcome | undefined;
    const failure = this.protectedCall(state, (L) => {
      const lua = this.lua;
      lua.lua_checkstack(L, call.args.length + 8);
      // The record stays below the call, for its outcome afterwards.
      this.pushRecord(L, state, call.record);
      const recordAt = lua.lua_gettop(L);
      this.values.pushRef(L, state.refs.run);
      this.values.pushString(L, call.function);
      lua.lua_pushvalue(L, recordAt);
      for (const arg of call.args) this.values.push(L, arg, state.refs);
      lua.lua_callk(L, call.args.length + 2, 1, 0, null);
      const value = this.values.read(L, -1, state.refs);
      outcome = this.readOutcome(L, state, recordAt, value);
    });
    if (failure !== undefined) return { ok: false, message: failure };
    return outcome!;
  }

  private pushRecord(L: number, state: ModuleState, record: UdfRecordInput): void {
    const lua = this.lua;
    const values = this.values;
    values.pushRef(L, state.refs.newRecord);
    lua.lua_createtable(L, 0, 8);
    for (const name in record.bins) {
      values.pushString(L, name);
      values.push(L, record.bins[name], state.refs);
      lua.lua_rawset(L, -3);
    }
    lua.lua_pushboolean(L, record.exists ? 1 : 0);
    lua.lua_createtable(L, 0, 6);
    values.pushInteger(L, record.gen);
    lua.lua_setfield(L, -2, 'gen');
    values.pushInteger(L, record.ttl);
    lua.lua_setfield(L, -2, 'ttl');
    values.pushInteger(L, record.lastUpdate);
    lua.lua_setfield(L, -2, 'lut');
    values.pushBytes(L, record.digest);
    lua.lua_setfield(L, -2, 'digest');
    if (record.set !== undefined) {
      values.pushString(L, record.set);
      lua.lua_setfield(L, -2, 'set');
    }
    if (record.key !== undefined) {
      values.push(L, record.key, state.refs);
      lua.lua_setfield(L, -2, 'key');
    }
    lua.lua_callk(L, 3, 1, 0, null);
  }

  /** outcome(record): updated, names, values, count, ttl. */
  private readOutcome(L: number, state: ModuleState, recordAt: number, value: BinValue): UdfOutcome {
    const lua = this.lua;
    const values = this.values;
    values.pushRef(L, state.refs.outcome);
    lua.lua_pushvalue(L, recordAt);
    lua.lua_callk(L, 1, 5, 0, null);
    const top = lua.lua_gettop(L);
    const updated = lua.lua_toboolean(L, top - 4) !== 0;
    const count = Number(values.read(L, top - 1, state.refs));
    const changes: [string, BinValue][] = [];
    for (let i = 1; i <= count; i++) {
      values.getIndex(L, top - 3, i);
      const name = values.readString(L, -1);
      values.getIndex(L, top - 2, i);
      changes.push([name, values.read(L, -1, state.refs)]);
      lua.lua_settop(L, -3);
    }
    const ttl = lua.lua_type(L, top) === LuaTag.NIL ? undefined : Number(values.read(L, top, state.refs));
    return { ok: true, value, updated, changes, ttl };
  }

  /**
   * Runs body inside lua_pcall under a fresh budget, so Lua errors (and UdfValueErrors, turned
   * into Lua errors) unwind to here. Returns the error message, or undefined.
   */
  private protectedCall(state: ModuleState, body: (L: number) => void): string | undefined {
    const lua = this.lua;
    const L = state.global.address;
    const top = lua.lua_gettop(L);
    this.budget.deadlineMs = Date.now() + UDF_RUN_TIME_MAX_MS;
    this.budget.instructions = 0;
    this.budget.exceeded = false;
    this.body = body;
    lua.lua_pushcclosure(L, this.bodyPointer, 0);
    const status = lua.lua_pcallk(L, 0, 0, 0, 0, null);
    this.body = undefined;
    let message: string | undefined;
    if (status !== LUA_OK) {
      message = this.errorMessage(L, status);
      if (status === LUA_ERRMEM || this.budget.exceeded) state.spoiled = true;
      if (this.budget.exceeded) message = TIMEOUT_MESSAGE;
    }
    lua.lua_settop(L, top);
    if (this.budget.exceeded) lua.lua_sethook(L, this.hookPointer, HOOK_COUNT_MASK, UDF_HOOK_INSTRUCTIONS);
    return message;
  }

  /** The lua_CFunction around the current body: a UdfValueError becomes a Lua error. */
  private runBody(L: number): number {
    let failure: string | undefined;
    try {
      this.body!(L);
    } catch (error) {
      // Only our own errors: Lua's unwinding passes through untouched.
      if (!(error instanceof UdfValueError)) throw error;
      failure = error.message;
    }
    if (failure === undefined) return 0;
    this.values.pushString(L, failure);
    return this.lua.lua_error(L);
  }

  private errorMessage(L: number, status: number): string {
    const type = this.lua.lua_type(L, -1) as number;
    if (type === LuaTag.STRING || type === LuaTag.NUMBER) return this.values.readString(L, -1);
    if (status === LUA_ERRMEM) return 'not enough memory';
    return `(error object is a ${this.lua.lua_typename(L, type)} value)`;
  }

  /** The count hook: stops the call once its time or instruction budget is spent. */
  private hook(L: number): void {
    const budget = this.budget;
    budget.instructions += UDF_HOOK_INSTRUCTIONS;
    if (!budget.exceeded && budget.instructions <= UDF_INSTRUCTIONS_MAX && Date.now() <= budget.deadlineMs) return;
    if (!budget.exceeded) {
      budget.exceeded = true;
      // From now on at every instruction, in whatever function (or pcall) the module is.
      this.lua.lua_sethook(L, this.hookPointer, HOOK_COUNT_MASK, 1);
    }
    this.values.pushString(L, TIMEOUT_MESSAGE);
    this.lua.lua_error(L);
  }

  /** The prelude's source_of(name): a registered module's source, for require. */
  private sourceOf(L: number): number {
    if (this.lua.lua_type(L, 1) !== LuaTag.STRING) return 0;
    const source = this.sources.get(this.values.readString(L, 1));
    if (source === undefined) return 0;
    this.values.pushString(L, source);
    return 1;
  }
}

/** A Lua error message's line, from its `name:line: message` form. */
function lineOf(message: string, name: string): { line: number; message: string } {
  const prefix = `${name}:`;
  if (message.startsWith(prefix)) {
    const match = /^(\d+): ?([\s\S]*)$/.exec(message.slice(prefix.length));
    if (match !== null) return { line: Number(match[1]), message: match[2]! };
  }
  return { line: 0, message };
}
