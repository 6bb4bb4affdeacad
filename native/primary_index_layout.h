// The primary index's shared-memory header and entry fields, as the engine (primary_index.cc)
// and its JS face (primary_index_wrap.cc) both read them. Internal to those two files; the
// layout is written down in docs/index.md.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

#include "primary_index.h"

namespace shoal {

constexpr size_t kHeaderAreaBytes = 64 * 1024;
// A free slot's last-update field (no live record has it).
constexpr uint64_t kFreeSlotMarker = (uint64_t{1} << 48) - 1;
// Bulk removals stop before the bytes they report freed pass a u32.
constexpr uint64_t kMaxFreedBytes = std::numeric_limits<uint32_t>::max();

// Everything the code assumes about the segments' shapes; attach requires an exact match.
struct IndexLayout {
  uint32_t entry_bytes;
  uint32_t side_entry_bytes;
  uint32_t with_data;
  uint32_t first_stage_log2;
  uint32_t max_stage_log2;
  uint32_t initial_buckets_log2;
  uint32_t max_load_percent;
  uint32_t arena_class_count;
  uint32_t arena_first_stage_log2;
  uint32_t arena_max_stage_log2;
  uint32_t arena_chunk_header_bytes;
  uint32_t meta_capacity_bytes;
};

// The header segment's first bytes (shared memory; plain old data; written down in
// docs/index.md). The meta blob follows at kHeaderAreaBytes.
struct IndexHeader {
  uint64_t magic;  // written last on create, so a half-created index never matches
  uint32_t format_version;
  uint32_t header_bytes;
  IndexLayout layout;
  uint32_t clean;
  uint32_t signature_high;
  uint32_t signature_low;
  uint32_t meta_bytes;
  double created_ms;
  uint64_t entry_count;
  uint32_t free_head;
  uint32_t end_entry_id;
  uint32_t entry_stage_count;
  uint32_t side_stage_count;
  uint32_t bucket_stage_count;
  uint32_t hash_level;  // buckets in this round = 2^(initial log2 + level)
  uint64_t split_pointer;
  uint64_t bucket_count;
  uint32_t lru_head;
  uint32_t lru_tail;
  ArenaState arena;
};
static_assert(sizeof(IndexHeader) <= kHeaderAreaBytes, "header fits before the meta blob");

inline uint64_t LastUpdateMs(const IndexEntry* entry) {
  uint64_t value = 0;
  std::memcpy(&value, entry->last_update_ms, 6);
  return value;
}

inline void SetLastUpdateMs(IndexEntry* entry, uint64_t value) { std::memcpy(entry->last_update_ms, &value, 6); }

}  // namespace shoal

