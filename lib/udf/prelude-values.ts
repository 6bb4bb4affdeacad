/**
 * The prelude's values (prelude.ts, which splices this in, so they share its locals DATA,
 * List, Map, Bytes, check_kind): Aerospike's `list`, `map` and `bytes` types and their
 * functions, as record UDFs use them. Lists and bytes are 1-based; a list may hold nil; a map's
 * keys are strings, numbers or bytes (compared by content), and a nil value removes a key.
 */
export const PRELUDE_VALUES = String.raw`
-- Lists: 1-based, may hold nil.
local function new_list(values, size)
  local l = setmetatable({}, List)
  DATA[l] = { kind = 'list', v = values, n = size }
  return l
end

local function list_index(position, name)
  local index = tointeger(position)
  if index == nil then error(name .. ': a list index must be an integer', 3) end
  return index
end

List.__index = function(l, position)
  local index = tointeger(position)
  if index == nil then return nil end
  return DATA[l].v[index]
end
List.__newindex = function(l, position, value)
  local data = DATA[l]
  local index = list_index(position, 'list')
  if index < 1 then error('list: index ' .. index .. ' is below 1', 2) end
  data.v[index] = value
  if index > data.n then data.n = index end
end
List.__len = function(l) return DATA[l].n end

local function list_from(values)
  local copy, size = {}, 0
  if values ~= nil then
    if type(values) ~= 'table' then error('list(): the argument must be a table', 3) end
    for i, v in ipairs(values) do copy[i] = v; size = i end
  end
  return new_list(copy, size)
end

list = setmetatable({}, { __call = function(_, values) return list_from(values) end })
function list.create(capacity) return new_list({}, 0) end
function list.size(l) return check_kind(l, 'list', 'list.size', 1).n end
function list.append(l, value)
  local data = check_kind(l, 'list', 'list.append', 1)
  data.n = data.n + 1
  data.v[data.n] = value
  return 0
end
function list.prepend(l, value) return list.insert(l, 1, value) end
function list.insert(l, position, value)
  local data = check_kind(l, 'list', 'list.insert', 1)
  local index = list_index(position, 'list.insert')
  if index < 1 then error('list.insert: index ' .. index .. ' is below 1', 2) end
  if index > data.n then
    data.v[index] = value
    data.n = index
    return 0
  end
  for i = data.n, index, -1 do data.v[i + 1] = data.v[i] end
  data.v[index] = value
  data.n = data.n + 1
  return 0
end
function list.remove(l, position)
  local data = check_kind(l, 'list', 'list.remove', 1)
  local index = list_index(position, 'list.remove')
  if index < 1 or index > data.n then return 0 end
  for i = index, data.n - 1 do data.v[i] = data.v[i + 1] end
  data.v[data.n] = nil
  data.n = data.n - 1
  return 0
end
function list.concat(l, other)
  local data = check_kind(l, 'list', 'list.concat', 1)
  local more = check_kind(other, 'list', 'list.concat', 2)
  local count = more.n
  for i = 1, count do data.v[data.n + i] = more.v[i] end
  data.n = data.n + count
  return 0
end
function list.trim(l, position)
  local data = check_kind(l, 'list', 'list.trim', 1)
  local index = list_index(position, 'list.trim')
  if index < 1 then index = 1 end
  for i = index, data.n do data.v[i] = nil end
  if index <= data.n then data.n = index - 1 end
  return 0
end
local function list_slice(data, first, last)
  local values, size = {}, 0
  for i = first, last do size = size + 1; values[size] = data.v[i] end
  return new_list(values, size)
end
function list.take(l, count)
  local data = check_kind(l, 'list', 'list.take', 1)
  local n = list_index(count, 'list.take')
  if n > data.n then n = data.n end
  return list_slice(data, 1, n)
end
function list.drop(l, count)
  local data = check_kind(l, 'list', 'list.drop', 1)
  local n = list_index(count, 'list.drop')
  if n < 0 then n = 0 end
  return list_slice(data, n + 1, data.n)
end
function list.iterator(l)
  local data = check_kind(l, 'list', 'list.iterator', 1)
  local i = 0
  return function()
    if i >= data.n then return nil end
    i = i + 1
    return data.v[i]
  end
end
function list.clone(l)
  local data = check_kind(l, 'list', 'list.clone', 1)
  return list_slice(data, 1, data.n)
end
function list.merge(l, other)
  local merged = list.clone(l)
  list.concat(merged, other)
  return merged
end

-- Maps: keys are strings, numbers or bytes (compared by content); a nil value removes the key.
local BYTES_KEYS = setmetatable({}, { __mode = 'v' })
local new_bytes

local function map_key(key, name)
  local t = type(key)
  if t == 'string' then return key end
  if t == 'number' then return tointeger(key) or key end
  local data = DATA[key]
  if data ~= nil and data.kind == 'bytes' then
    local canonical = BYTES_KEYS[data.s]
    if canonical == nil then
      canonical = new_bytes(data.s)
      BYTES_KEYS[data.s] = canonical
    end
    return canonical
  end
  error(name .. ': a map key must be a string, a number or bytes, not a ' .. kind(key), 3)
end

local function new_map()
  local m = setmetatable({}, Map)
  DATA[m] = { kind = 'map', v = {}, n = 0 }
  return m
end

local function map_put(data, key, value)
  local old = data.v[key]
  if old == nil and value ~= nil then data.n = data.n + 1 end
  if old ~= nil and value == nil then data.n = data.n - 1 end
  data.v[key] = value
end

Map.__index = function(m, key)
  if key == nil then return nil end
  return DATA[m].v[map_key(key, 'map')]
end
Map.__newindex = function(m, key, value)
  if key == nil then error('map: a key must not be nil', 2) end
  map_put(DATA[m], map_key(key, 'map'), value)
end
Map.__len = function(m) return DATA[m].n end

map = setmetatable({}, {
  __call = function(_, values)
    local m = new_map()
    if values ~= nil then
      if type(values) ~= 'table' then error('map(): the argument must be a table', 2) end
      local data = DATA[m]
      for k, v in next, values do map_put(data, map_key(k, 'map()'), v) end
    end
    return m
  end,
})
function map.create(capacity) return new_map() end
function map.size(m) return check_kind(m, 'map', 'map.size', 1).n end
function map.remove(m, key)
  local data = check_kind(m, 'map', 'map.remove', 1)
  map_put(data, map_key(key, 'map.remove'), nil)
  return 0
end
function map.pairs(m)
  local data = check_kind(m, 'map', 'map.pairs', 1)
  local key = nil
  return function()
    local value
    key, value = next(data.v, key)
    return key, value
  end
end
map.iterator = map.pairs
function map.keys(m)
  local step = map.pairs(m)
  return function() return (step()) end
end
function map.values(m)
  local step = map.pairs(m)
  return function()
    local _, value = step()
    return value
  end
end
function map.clone(m)
  local data = check_kind(m, 'map', 'map.clone', 1)
  local copy = new_map()
  local into = DATA[copy]
  for k, v in next, data.v do into.v[k] = v end
  into.n = data.n
  return copy
end
function map.merge(m, other, combine)
  local merged = map.clone(m)
  local into = DATA[merged]
  local from = check_kind(other, 'map', 'map.merge', 2)
  for k, v in next, from.v do
    local mine = into.v[k]
    if mine ~= nil and type(combine) == 'function' then v = combine(mine, v) end
    map_put(into, k, v)
  end
  return merged
end
function map.diff(m, other)
  local a = check_kind(m, 'map', 'map.diff', 1)
  local b = check_kind(other, 'map', 'map.diff', 2)
  local result = new_map()
  local into = DATA[result]
  for k, v in next, a.v do if b.v[k] == nil then map_put(into, k, v) end end
  for k, v in next, b.v do if a.v[k] == nil then map_put(into, k, v) end end
  return result
end

-- Bytes: a byte string with Aerospike's accessors, 1-based.
new_bytes = function(raw)
  local b = setmetatable({}, Bytes)
  DATA[b] = { kind = 'bytes', s = raw, t = 4 }
  return b
end
local function byte_position(b, position, name)
  local index = tointeger(position)
  if index == nil or index < 1 then error(name .. ': a position must be an integer from 1', 3) end
  return index
end
local function bytes_write(data, index, raw)
  local s = data.s
  if index - 1 > #s then s = s .. string_rep('\0', index - 1 - #s) end
  data.s = string_sub(s, 1, index - 1) .. raw .. string_sub(s, index + #raw)
end
Bytes.__index = function(b, position)
  local index = tointeger(position)
  if index == nil then return nil end
  return string_byte(DATA[b].s, index)
end
Bytes.__newindex = function(b, position, value) bytes.set_byte(b, position, value) end
Bytes.__len = function(b) return #DATA[b].s end

bytes = setmetatable({}, {
  __call = function(_, size)
    return new_bytes('')
  end,
})
function bytes.size(b) return #check_kind(b, 'bytes', 'bytes.size', 1).s end
function bytes.set_size(b, size)
  local data = check_kind(b, 'bytes', 'bytes.set_size', 1)
  local n = tointeger(size) or 0
  if n > #data.s then data.s = data.s .. string_rep('\0', n - #data.s) end
  return true
end
function bytes.get_type(b) return check_kind(b, 'bytes', 'bytes.get_type', 1).t end
function bytes.set_type(b, t)
  check_kind(b, 'bytes', 'bytes.set_type', 1).t = tointeger(t) or 4
  return true
end
function bytes.get_byte(b, position)
  local data = check_kind(b, 'bytes', 'bytes.get_byte', 1)
  return string_byte(data.s, byte_position(b, position, 'bytes.get_byte'))
end
function bytes.set_byte(b, position, value)
  local data = check_kind(b, 'bytes', 'bytes.set_byte', 1)
  bytes_write(data, byte_position(b, position, 'bytes.set_byte'), string_char((tointeger(value) or 0) & 0xff))
  return true
end
function bytes.append_byte(b, value) return bytes.set_byte(b, bytes.size(b) + 1, value) end
function bytes.get_string(b, position, length)
  local data = check_kind(b, 'bytes', 'bytes.get_string', 1)
  local index = byte_position(b, position, 'bytes.get_string')
  return string_sub(data.s, index, index + (tointeger(length) or 0) - 1)
end
function bytes.get_bytes(b, position, length) return new_bytes(bytes.get_string(b, position, length)) end
function bytes.set_string(b, position, s)
  local data = check_kind(b, 'bytes', 'bytes.set_string', 1)
  bytes_write(data, byte_position(b, position, 'bytes.set_string'), tostring(s))
  return true
end
function bytes.set_bytes(b, position, other, length)
  local raw = check_kind(other, 'bytes', 'bytes.set_bytes', 3).s
  if length ~= nil then raw = string_sub(raw, 1, tointeger(length) or 0) end
  return bytes.set_string(b, position, raw)
end
function bytes.append_string(b, s) return bytes.set_string(b, bytes.size(b) + 1, s) end
function bytes.append_bytes(b, other, length) return bytes.set_bytes(b, bytes.size(b) + 1, other, length) end
for _, width in ipairs({ 16, 32, 64 }) do
  for _, order in ipairs({ 'be', 'le' }) do
    local format = (order == 'be' and '>' or '<') .. 'i' .. (width // 8)
    local suffix = 'int' .. width .. '_' .. order
    bytes['get_' .. suffix] = function(b, position)
      local data = check_kind(b, 'bytes', 'bytes.get_' .. suffix, 1)
      local index = byte_position(b, position, 'bytes.get_' .. suffix)
      if index + width // 8 - 1 > #data.s then return nil end
      return (string_unpack(format, data.s, index))
    end
    bytes['set_' .. suffix] = function(b, position, value)
      return bytes.set_string(b, position, string_pack(format, tointeger(value) or 0))
    end
    bytes['append_' .. suffix] = function(b, value)
      return bytes.set_string(b, bytes.size(b) + 1, string_pack(format, tointeger(value) or 0))
    end
  end
  bytes['get_int' .. width] = bytes['get_int' .. width .. '_be']
  bytes['set_int' .. width] = bytes['set_int' .. width .. '_be']
  bytes['append_int' .. width] = bytes['append_int' .. width .. '_be']
end

`;
