/**
 * The Lua side of Shoal's record UDFs (docs/protocol.md, "User-defined functions"): run once in
 * every fresh Lua state before a module loads. It
 *
 * - closes the sandbox: no io, os, package, debug, load, dofile, loadfile, string.dump; a
 *   `require` that loads registered modules only; collectgarbage limited to reading the count;
 * - defines the API Aerospike's record UDFs are written against: `list`, `map` and `bytes`
 *   values, the record (`rec[bin]`, `record.*`) and `aerospike:create/update/exists/remove`;
 * - returns the functions the engine (engine.ts) calls through the registry, out of the
 *   modules' reach: value constructors and readers, the record's constructor and outcome, run.
 *
 * The semantics follow the Aerospike server's udf_record.c and udf_aerospike.c: a bin written
 * is cached in the record; aerospike:update (or create) commits the cached writes; the record
 * is written once, after the function returned, only if something was committed.
 */
import { PRELUDE_VALUES } from './prelude-values';

export const PRELUDE = String.raw`
local source_of = ...
local rawget, rawset, rawequal, setmetatable, type, next, select, error, tostring, pcall =
  rawget, rawset, rawequal, setmetatable, type, next, select, error, tostring, pcall
local math_type, tointeger, string_sub, string_byte, string_char, string_rep, string_pack, string_unpack, table_concat =
  math.type, math.tointeger, string.sub, string.byte, string.char, string.rep, string.pack, string.unpack, table.concat
local load_text = load
local collect = collectgarbage

-- The sandbox.
dofile, loadfile, load, loadstring, print = nil, nil, nil, nil, nil
string.dump = nil
collectgarbage = function(option)
  if option == 'count' then return collect('count') end
  error('collectgarbage: only "count" is allowed in a UDF', 2)
end
for _, name in ipairs({ 'info', 'warn', 'debug', 'trace' }) do
  _G[name] = function() end
end

local DATA = setmetatable({}, { __mode = 'k' })
local List = { __metatable = 'list' }
local Map = { __metatable = 'map' }
local Bytes = { __metatable = 'bytes' }
local Record = { __metatable = 'record' }
local REMOVED = {}

local function kind(value)
  local data = DATA[value]
  if data == nil then return type(value) end
  return data.kind
end

local function check_kind(value, expected, name, position)
  if kind(value) ~= expected then
    error(name .. ': argument ' .. position .. ' must be a ' .. expected .. ', not a ' .. kind(value), 3)
  end
  return DATA[value]
end

${PRELUDE_VALUES}
-- tostring of the values, for logging and errors.
local function render(value, depth)
  local k = kind(value)
  if depth > 8 then return '...' end
  if k == 'list' then
    local data, parts = DATA[value], {}
    for i = 1, data.n do parts[i] = render(data.v[i], depth + 1) end
    return 'List(' .. table_concat(parts, ', ') .. ')'
  elseif k == 'map' then
    local parts = {}
    for key, v in next, DATA[value].v do parts[#parts + 1] = render(key, depth + 1) .. '=' .. render(v, depth + 1) end
    return 'Map(' .. table_concat(parts, ', ') .. ')'
  elseif k == 'bytes' then
    return 'Bytes(' .. #DATA[value].s .. ')'
  elseif k == 'record' then
    return 'Record()'
  end
  return tostring(value)
end
List.__tostring = function(v) return render(v, 0) end
Map.__tostring = List.__tostring
Bytes.__tostring = List.__tostring
list.tostring, map.tostring, bytes.tostring = List.__tostring, List.__tostring, List.__tostring

-- A deep copy of a value committed to the record, so later changes in Lua do not reach it.
local function snapshot(value, depth)
  local k = kind(value)
  if depth > 64 then error('a value nests deeper than 64 levels', 0) end
  if k == 'list' then
    local data, values = DATA[value], {}
    for i = 1, data.n do values[i] = snapshot(data.v[i], depth + 1) end
    return new_list(values, data.n)
  elseif k == 'map' then
    local copy = new_map()
    local into = DATA[copy]
    for key, v in next, DATA[value].v do into.v[key] = snapshot(v, depth + 1) end
    into.n = DATA[value].n
    return copy
  elseif k == 'bytes' then
    local copy = new_bytes(DATA[value].s)
    DATA[copy].t = DATA[value].t
    return copy
  elseif k == 'table' then
    local copy = {}
    for key, v in next, value do copy[key] = snapshot(v, depth + 1) end
    return copy
  elseif k == 'record' or k == 'function' or k == 'thread' or k == 'userdata' then
    error('a ' .. k .. ' cannot be stored in a bin', 0)
  end
  return value
end

-- The record: bins read and written through rec[name]; writes are cached until committed.
local function bin_name(name)
  if type(name) ~= 'string' then error('a bin name must be a string, not a ' .. kind(name), 3) end
  return name
end
Record.__index = function(r, name) return DATA[r].bins[bin_name(name)] end
Record.__newindex = function(r, name, value)
  local data = DATA[r]
  local bin = bin_name(name)
  local k = kind(value)
  if k == 'record' or k == 'function' or k == 'thread' or k == 'userdata' then
    error('a ' .. k .. ' cannot be stored in bin ' .. bin, 2)
  end
  data.bins[bin] = value
  data.dirty[bin] = true
end
Record.__tostring = List.__tostring

local function new_record(bins, exists, meta)
  local r = setmetatable({}, Record)
  DATA[r] = { kind = 'record', bins = bins, dirty = {}, committed = {}, updated = false, exists = exists, meta = meta }
  return r
end

local function commit(data)
  for name in next, data.dirty do
    local value = data.bins[name]
    if value == nil then data.committed[name] = REMOVED else data.committed[name] = snapshot(value, 0) end
  end
  data.dirty = {}
  data.updated = true
end

local function record_data(r, name)
  local data = DATA[r]
  if data == nil or data.kind ~= 'record' then error(name .. ': the argument must be the record', 3) end
  return data
end

aerospike = {}
function aerospike:create(r)
  local data = record_data(r, 'aerospike:create')
  if data.exists then return 1 end
  data.exists = true
  commit(data)
  return 0
end
function aerospike:update(r)
  local data = record_data(r, 'aerospike:update')
  if not data.exists then return -2 end
  commit(data)
  return 0
end
function aerospike:exists(r)
  return record_data(r, 'aerospike:exists').exists
end
function aerospike:remove(r)
  local data = record_data(r, 'aerospike:remove')
  if not data.exists then return 1 end
  for name in next, data.bins do data.bins[name] = nil; data.dirty[name] = true end
  commit(data)
  return 0
end
function aerospike:log() return 0 end

record = {}
function record.gen(r) return record_data(r, 'record.gen').meta.gen end
function record.ttl(r) return record_data(r, 'record.ttl').meta.ttl end
function record.last_update_time(r) return record_data(r, 'record.last_update_time').meta.lut end
function record.setname(r) return record_data(r, 'record.setname').meta.set end
function record.key(r) return record_data(r, 'record.key').meta.key end
function record.digest(r)
  local data = record_data(r, 'record.digest')
  return new_bytes(data.meta.digest)
end
function record.set_ttl(r, ttl)
  local data = record_data(r, 'record.set_ttl')
  local seconds = tointeger(ttl)
  if seconds == nil then error('record.set_ttl: the TTL must be an integer', 2) end
  data.ttl = seconds
  return 0
end
function record.numbins(r)
  local count = 0
  for _ in next, record_data(r, 'record.numbins').bins do count = count + 1 end
  return count
end
function record.bin_names(r)
  local names, size = {}, 0
  for name in next, record_data(r, 'record.bin_names').bins do size = size + 1; names[size] = name end
  return new_list(names, size)
end

-- Modules: require loads registered modules only, each once per state.
local LOADED = { aerospike = aerospike, list = list, map = map, bytes = bytes, record = record }
local function load_module(name, source)
  local chunk, message = load_text(source, '@' .. name, 't', _G)
  if chunk == nil then error(message, 0) end
  return chunk()
end
require = function(name)
  if type(name) ~= 'string' then error('require: a module name must be a string', 2) end
  local loaded = LOADED[name]
  if loaded ~= nil then return loaded end
  local source = source_of(name .. '.lua')
  if type(source) ~= 'string' then error("module '" .. name .. "' not found: it is not a registered UDF module", 2) end
  local result = load_module(name .. '.lua', source)
  if result == nil then result = true end
  LOADED[name] = result
  return result
end

-- What the engine reads of a value: its kind and, for lists, maps and bytes, its contents.
local function describe(value)
  local data = DATA[value]
  if data == nil then
    if type(value) == 'table' then
      local size = #value
      local count = 0
      for _ in next, value do count = count + 1 end
      if count == size then return 'list', value, size end
      local keys, values, n = {}, {}, 0
      for k, v in next, value do n = n + 1; keys[n] = k; values[n] = v end
      return 'map', keys, values, n
    end
    return type(value)
  end
  if data.kind == 'list' then return 'list', data.v, data.n end
  if data.kind == 'map' then
    local keys, values, n = {}, {}, 0
    for k, v in next, data.v do n = n + 1; keys[n] = k; values[n] = v end
    return 'map', keys, values, n
  end
  if data.kind == 'bytes' then return 'bytes', data.s, data.t end
  return data.kind
end

-- What the engine writes after a call: whether anything was committed, and the changes.
local function outcome(r)
  local data = DATA[r]
  local names, values, n = {}, {}, 0
  for name, value in next, data.committed do
    n = n + 1
    names[n] = name
    if value == REMOVED then values[n] = nil else values[n] = value end
  end
  return data.updated, names, values, n, data.ttl
end

local function run(name, r, ...)
  local f = rawget(_G, name)
  if type(f) ~= 'function' then error('function not found', 0) end
  return f(r, ...)
end

return {
  new_list = new_list,
  new_map = function(keys, values, size)
    local m = new_map()
    local data = DATA[m]
    for i = 1, size do map_put(data, map_key(keys[i], 'map'), values[i]) end
    return m
  end,
  new_bytes = function(raw, t)
    local b = new_bytes(raw)
    DATA[b].t = t
    return b
  end,
  new_record = new_record,
  describe = describe,
  outcome = outcome,
  load_module = load_module,
  run = run,
}
`;
