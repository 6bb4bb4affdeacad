// The record arena: record payloads of memory namespaces (and dataInMemory), kept in staged
// memory segments next to the primary index so a cache survives a process restart.
//
// A size-class allocator: a chunk is an 8-byte header plus the payload, rounded up to its
// class (16-byte steps up to 1 KiB, then four classes per doubling up to 16 MiB). Each class
// has a free list threaded through its free chunks; new chunks are bump-allocated from the
// current stage. Chunks are never split or merged, so memory freed in one class is reused
// only by that class: arenaBytes can exceed dataBytes when payload sizes shift.
//
// All state lives in ArenaState inside the index header, so attach is O(1). One thread at a
// time, like the index that owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "shared_memory.h"

namespace shoal {

constexpr uint32_t kArenaClassCount = 120;
constexpr uint32_t kArenaChunkHeaderBytes = 8;
constexpr uint64_t kArenaMaxChunkBytes = uint64_t{1} << 24;                    // 16 MiB
constexpr uint32_t kArenaMaxPayloadBytes = kArenaMaxChunkBytes - kArenaChunkHeaderBytes;
constexpr uint32_t kArenaFirstStageLog2 = 25;                                  // 32 MiB
constexpr uint32_t kArenaMaxStageLog2 = 30;                                    // 1 GiB
constexpr uint32_t kArenaMaxStages = 256;
static_assert((uint64_t{1} << kArenaFirstStageLog2) >= kArenaMaxChunkBytes, "a stage holds the largest chunk");

// The arena's persistent state (in the index header segment; plain old data).
struct ArenaState {
  uint64_t data_bytes;   // sum of the sizes of allocated chunks
  uint64_t arena_bytes;  // bytes taken from stages by bump allocation (allocated + free chunks)
  uint32_t stage_count;
  uint32_t reserved;
  uint64_t bump_offset;  // in the last stage
  uint64_t free_heads[kArenaClassCount];
};

// A payload handle: 0 = none; else (stage + 1) << 40 | chunk offset within the stage.
using ArenaHandle = uint64_t;

class RecordArena {
 public:
  // `state` points into the header segment and outlives this object.
  RecordArena(ArenaState* state, std::string base_name, bool shared, uint32_t mode);

  // Fresh state for a new index.
  void Initialize();
  // Maps the stages the state names; returns false if one is missing or has the wrong size.
  bool Attach();
  void Unmap();

  // Allocates a chunk for `payload_bytes` (at most kArenaMaxPayloadBytes, checked by the
  // caller) and records the length. Throws NativeError OUT_OF_SPACE; on a throw nothing
  // changed.
  ArenaHandle Allocate(uint32_t payload_bytes);
  void Free(ArenaHandle handle);
  // Replaces a used chunk's payload in place when the new payload needs the same size class
  // (an overwrite of a record with one of about the same size). Returns false, changing
  // nothing, when it does not fit that class.
  bool RewriteInPlace(ArenaHandle handle, const uint8_t* data, uint32_t payload_bytes);

  uint8_t* Payload(ArenaHandle handle) const { return Chunk(handle) + kArenaChunkHeaderBytes; }
  uint32_t PayloadBytes(ArenaHandle handle) const;
  uint64_t ChunkBytes(ArenaHandle handle) const;

  uint64_t data_bytes() const { return state_->data_bytes; }
  uint64_t arena_bytes() const { return state_->arena_bytes; }

  // Whether the state's numbers are within bounds (checked on attach before trusting them).
  static bool StateIsSane(const ArenaState& state);
  static uint32_t ClassOf(uint64_t chunk_bytes);
  static uint64_t ClassBytes(uint32_t size_class);
  static uint64_t StageBytes(uint32_t stage);

 private:
  uint8_t* Chunk(ArenaHandle handle) const;
  ArenaHandle BumpAllocate(uint64_t chunk_bytes);
  void AddStage();
  void CarveRemainder();
  void PushFree(uint32_t size_class, ArenaHandle handle);
  std::string StageName(uint32_t stage) const;

  ArenaState* state_;
  std::string base_name_;
  bool shared_;
  uint32_t mode_;  // file mode of new shared stages
  std::vector<MemorySegment> stages_;
};

}  // namespace shoal
