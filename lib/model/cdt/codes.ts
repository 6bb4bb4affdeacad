/**
 * The numbers of list and map operations: op codes, return types, orders, write flags and
 * context types. Every value is Aerospike's own (the C client's as_list_operations.h,
 * as_map_operations.h, as_cdt_ctx.h, as_cdt_order.h), so the wire protocol maps them 1:1.
 */

/** What a list or map read or remove returns. Combine with INVERTED to select the complement. */
export const ReturnType = {
  /** Nothing. */
  NONE: 0,
  /** Indexes (for maps: positions in key order). */
  INDEX: 1,
  /** Indexes counted from the end. */
  REVERSE_INDEX: 2,
  /** Ranks: positions in value order. */
  RANK: 3,
  /** Ranks counted from the largest value. */
  REVERSE_RANK: 4,
  /** How many elements were selected. */
  COUNT: 5,
  /** Map keys. */
  KEY: 6,
  /** Values. */
  VALUE: 7,
  /** Map entries, as a map. */
  KEY_VALUE: 8,
  /** Whether anything was selected. */
  EXISTS: 13,
  /** Map entries, as a map in the order selected. */
  UNORDERED_MAP: 16,
  /** Map entries, as a map in key order. */
  ORDERED_MAP: 17,
  /** Selects every element the operation does not name. */
  INVERTED: 0x10000,
} as const;

export const ListOrder = { UNORDERED: 0, ORDERED: 1 } as const;
export const MapOrder = { UNORDERED: 0, KEY_ORDERED: 1, KEY_VALUE_ORDERED: 3 } as const;

/** List write flags (combine with |). */
export const ListWriteFlags = {
  DEFAULT: 0,
  /** Refuse a value the list already holds (ELEMENT_EXISTS). */
  ADD_UNIQUE: 1,
  /** Refuse an insert past the end of the list instead of padding it with nils (OP_NOT_APPLICABLE). */
  INSERT_BOUNDED: 2,
  /** A refused write is not an error: the operation does nothing. */
  NO_FAIL: 4,
  /** With NO_FAIL, write the items that are allowed and skip the others. */
  PARTIAL: 8,
} as const;

/** Map write flags (combine with |). */
export const MapWriteFlags = {
  DEFAULT: 0,
  /** Only add keys the map does not hold (ELEMENT_EXISTS otherwise). */
  CREATE_ONLY: 1,
  /** Only replace keys the map holds (ELEMENT_NOT_FOUND otherwise). */
  UPDATE_ONLY: 2,
  NO_FAIL: 4,
  PARTIAL: 8,
} as const;

export const ListSortFlags = { DEFAULT: 0, DESCENDING: 1, DROP_DUPLICATES: 2 } as const;

/** List op codes (Aerospike's AS_CDT_OP_LIST_*). */
export const ListCode = {
  SET_TYPE: 0,
  APPEND: 1,
  APPEND_ITEMS: 2,
  INSERT: 3,
  INSERT_ITEMS: 4,
  POP: 5,
  POP_RANGE: 6,
  REMOVE: 7,
  REMOVE_RANGE: 8,
  SET: 9,
  TRIM: 10,
  CLEAR: 11,
  INCREMENT: 12,
  SORT: 13,
  SIZE: 16,
  GET: 17,
  GET_RANGE: 18,
  GET_BY_INDEX: 19,
  GET_BY_RANK: 21,
  GET_ALL_BY_VALUE: 22,
  GET_BY_VALUE_LIST: 23,
  GET_BY_INDEX_RANGE: 24,
  GET_BY_VALUE_INTERVAL: 25,
  GET_BY_RANK_RANGE: 26,
  GET_BY_VALUE_REL_RANK_RANGE: 27,
  REMOVE_BY_INDEX: 32,
  REMOVE_BY_RANK: 34,
  REMOVE_ALL_BY_VALUE: 35,
  REMOVE_BY_VALUE_LIST: 36,
  REMOVE_BY_INDEX_RANGE: 37,
  REMOVE_BY_VALUE_INTERVAL: 38,
  REMOVE_BY_RANK_RANGE: 39,
  REMOVE_BY_VALUE_REL_RANK_RANGE: 40,
} as const;

/** Map op codes (Aerospike's AS_CDT_OP_MAP_*). */
export const MapCode = {
  SET_TYPE: 64,
  ADD: 65,
  ADD_ITEMS: 66,
  PUT: 67,
  PUT_ITEMS: 68,
  REPLACE: 69,
  REPLACE_ITEMS: 70,
  INCREMENT: 73,
  DECREMENT: 74,
  CLEAR: 75,
  REMOVE_BY_KEY: 76,
  REMOVE_BY_INDEX: 77,
  REMOVE_BY_RANK: 79,
  REMOVE_BY_KEY_LIST: 81,
  REMOVE_ALL_BY_VALUE: 82,
  REMOVE_BY_VALUE_LIST: 83,
  REMOVE_BY_KEY_INTERVAL: 84,
  REMOVE_BY_INDEX_RANGE: 85,
  REMOVE_BY_VALUE_INTERVAL: 86,
  REMOVE_BY_RANK_RANGE: 87,
  REMOVE_BY_KEY_REL_INDEX_RANGE: 88,
  REMOVE_BY_VALUE_REL_RANK_RANGE: 89,
  SIZE: 96,
  GET_BY_KEY: 97,
  GET_BY_INDEX: 98,
  GET_BY_RANK: 100,
  GET_ALL_BY_VALUE: 102,
  GET_BY_KEY_INTERVAL: 103,
  GET_BY_INDEX_RANGE: 104,
  GET_BY_VALUE_INTERVAL: 105,
  GET_BY_RANK_RANGE: 106,
  GET_BY_KEY_LIST: 107,
  GET_BY_VALUE_LIST: 108,
  GET_BY_KEY_REL_INDEX_RANGE: 109,
  GET_BY_VALUE_REL_RANK_RANGE: 110,
} as const;

/** Context item types (Aerospike's AS_CDT_CTX_*). */
export const CtxType = {
  LIST_INDEX: 0x10,
  LIST_RANK: 0x11,
  LIST_VALUE: 0x13,
  MAP_INDEX: 0x20,
  MAP_RANK: 0x21,
  MAP_KEY: 0x22,
  MAP_VALUE: 0x23,
} as const;

/** Bits of a context type that ask for the container at that level to be created (with its order) when missing. */
export const CTX_CREATE_MASK = 0xc0;
/** Create flags: a list unordered (0x40), unordered padded with nils up to the index (0x80), ordered (0xc0). */
export const CTX_CREATE_LIST_UNORDERED = 0x40;
export const CTX_CREATE_LIST_UNORDERED_PADDED = 0x80;
export const CTX_CREATE_LIST_ORDERED = 0xc0;
/** Create flags: a map unordered (0x40), key ordered (0x80), key-value ordered (0xc0). */
export const CTX_CREATE_MAP_UNORDERED = 0x40;
export const CTX_CREATE_MAP_KEY_ORDERED = 0x80;
export const CTX_CREATE_MAP_KEY_VALUE_ORDERED = 0xc0;

/** The first element of an operation payload that has a context: [0xff, [ctx...], [code, ...]]. */
export const CTX_MARKER = 0xff;
