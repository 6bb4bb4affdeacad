#include "record_arena.h"

#include <cstring>

#include "assert.h"

namespace shoal {
namespace {

constexpr uint16_t kChunkMagic = 0x5A4C;
constexpr uint8_t kChunkUsed = 0xA1;
constexpr uint8_t kChunkFree = 0xF3;
constexpr uint32_t kSmallClasses = 64;  // 16..1024 bytes in 16-byte steps
constexpr uint64_t kOffsetMask = (uint64_t{1} << 40) - 1;

struct ChunkHeader {
  uint32_t payload_bytes;
  uint8_t size_class;
  uint8_t state;
  uint16_t magic;
};
static_assert(sizeof(ChunkHeader) == kArenaChunkHeaderBytes);

ArenaHandle MakeHandle(uint32_t stage, uint64_t offset) { return (uint64_t{stage} + 1) << 40 | offset; }

}  // namespace

uint32_t RecordArena::ClassOf(uint64_t chunk_bytes) {
  if (chunk_bytes <= 16 * kSmallClasses) return static_cast<uint32_t>(chunk_bytes <= 16 ? 0 : (chunk_bytes + 15) / 16 - 1);
  uint32_t doubling = 63 - __builtin_clzll(chunk_bytes - 1);  // chunk_bytes in (2^d, 2^(d+1)]
  uint64_t step = (uint64_t{1} << doubling) / 4;
  uint64_t quarter = (chunk_bytes - (uint64_t{1} << doubling) + step - 1) / step - 1;
  return kSmallClasses + (doubling - 10) * 4 + static_cast<uint32_t>(quarter);
}

uint64_t RecordArena::ClassBytes(uint32_t size_class) {
  if (size_class < kSmallClasses) return uint64_t{size_class + 1} * 16;
  uint32_t doubling = 10 + (size_class - kSmallClasses) / 4;
  uint64_t quarter = (size_class - kSmallClasses) % 4;
  return (uint64_t{1} << doubling) + (quarter + 1) * ((uint64_t{1} << doubling) / 4);
}

static_assert(kArenaClassCount == kSmallClasses + 14 * 4, "classes up to 16 MiB");

uint64_t RecordArena::StageBytes(uint32_t stage) {
  uint32_t log2 = std::min(kArenaFirstStageLog2 + stage, kArenaMaxStageLog2);
  return uint64_t{1} << log2;
}

RecordArena::RecordArena(ArenaState* state, std::string base_name, bool shared, uint32_t mode)
    : state_(state), base_name_(std::move(base_name)), shared_(shared), mode_(mode) {
  SHOAL_ASSERT(ClassBytes(kArenaClassCount - 1) == kArenaMaxChunkBytes, "largest class %llu",
               static_cast<unsigned long long>(ClassBytes(kArenaClassCount - 1)));
}

std::string RecordArena::StageName(uint32_t stage) const { return base_name_ + ".a" + std::to_string(stage); }

void RecordArena::Initialize() {
  std::memset(state_, 0, sizeof *state_);
  stages_.clear();
}

bool RecordArena::StateIsSane(const ArenaState& state) {
  if (state.stage_count > kArenaMaxStages) return false;
  if (state.stage_count == 0) return state.bump_offset == 0 && state.data_bytes == 0 && state.arena_bytes == 0;
  return state.bump_offset <= StageBytes(state.stage_count - 1) && state.data_bytes <= state.arena_bytes;
}

bool RecordArena::Attach() {
  stages_.clear();
  for (uint32_t stage = 0; stage < state_->stage_count; ++stage) {
    MemorySegment segment;
    if (!MemorySegment::OpenExisting(StageName(stage), StageBytes(stage), &segment)) {
      stages_.clear();
      return false;
    }
    stages_.push_back(std::move(segment));
  }
  return true;
}

void RecordArena::Unmap() { stages_.clear(); }

uint8_t* RecordArena::Chunk(ArenaHandle handle) const {
  uint64_t stage = (handle >> 40) - 1;
  uint64_t offset = handle & kOffsetMask;
  SHOAL_ASSERT(handle != 0 && stage < stages_.size() && offset % 16 == 0 &&
                   offset + kArenaChunkHeaderBytes <= stages_[stage].bytes(),
               "arena handle %llx (stages %zu)", static_cast<unsigned long long>(handle), stages_.size());
  uint8_t* chunk = stages_[stage].data() + offset;
  return chunk;
}

bool RecordArena::RewriteInPlace(ArenaHandle handle, const uint8_t* data, uint32_t payload_bytes) {
  uint8_t* chunk = Chunk(handle);
  ChunkHeader header;
  std::memcpy(&header, chunk, sizeof header);
  SHOAL_ASSERT(header.magic == kChunkMagic && header.state == kChunkUsed, "rewrite of chunk %llx magic %x state %x",
               static_cast<unsigned long long>(handle), header.magic, header.state);
  if (payload_bytes > kArenaMaxPayloadBytes ||
      ClassOf(kArenaChunkHeaderBytes + uint64_t{payload_bytes}) != header.size_class) {
    return false;
  }
  header.payload_bytes = payload_bytes;
  std::memcpy(chunk, &header, sizeof header);
  std::memcpy(chunk + kArenaChunkHeaderBytes, data, payload_bytes);
  return true;
}

uint32_t RecordArena::PayloadBytes(ArenaHandle handle) const {
  ChunkHeader header;
  std::memcpy(&header, Chunk(handle), sizeof header);
  SHOAL_ASSERT(header.magic == kChunkMagic && header.state == kChunkUsed &&
                   kArenaChunkHeaderBytes + header.payload_bytes <= ClassBytes(header.size_class),
               "chunk %llx magic %x state %x class %u payload %u", static_cast<unsigned long long>(handle),
               header.magic, header.state, header.size_class, header.payload_bytes);
  return header.payload_bytes;
}

uint64_t RecordArena::ChunkBytes(ArenaHandle handle) const {
  ChunkHeader header;
  std::memcpy(&header, Chunk(handle), sizeof header);
  SHOAL_ASSERT(header.size_class < kArenaClassCount, "chunk %llx class %u", static_cast<unsigned long long>(handle),
               header.size_class);
  return ClassBytes(header.size_class);
}

ArenaHandle RecordArena::Allocate(uint32_t payload_bytes) {
  SHOAL_ASSERT(payload_bytes <= kArenaMaxPayloadBytes, "payload %u", payload_bytes);
  uint32_t size_class = ClassOf(kArenaChunkHeaderBytes + uint64_t{payload_bytes});
  uint64_t chunk_bytes = ClassBytes(size_class);
  ArenaHandle handle = state_->free_heads[size_class];
  if (handle != 0) {
    uint8_t* chunk = Chunk(handle);
    ChunkHeader header;
    std::memcpy(&header, chunk, sizeof header);
    SHOAL_ASSERT(header.magic == kChunkMagic && header.state == kChunkFree && header.size_class == size_class,
                 "free chunk %llx magic %x state %x class %u want %u", static_cast<unsigned long long>(handle),
                 header.magic, header.state, header.size_class, size_class);
    std::memcpy(&state_->free_heads[size_class], chunk + kArenaChunkHeaderBytes, sizeof(ArenaHandle));
  } else {
    handle = BumpAllocate(chunk_bytes);
  }
  ChunkHeader header{payload_bytes, static_cast<uint8_t>(size_class), kChunkUsed, kChunkMagic};
  std::memcpy(Chunk(handle), &header, sizeof header);
  state_->data_bytes += chunk_bytes;
  return handle;
}

ArenaHandle RecordArena::BumpAllocate(uint64_t chunk_bytes) {
  if (state_->stage_count == 0 || state_->bump_offset + chunk_bytes > StageBytes(state_->stage_count - 1)) {
    AddStage();
  }
  uint32_t stage = state_->stage_count - 1;
  stages_[stage].Commit(state_->bump_offset + chunk_bytes);  // may throw; nothing changed yet
  ArenaHandle handle = MakeHandle(stage, state_->bump_offset);
  state_->bump_offset += chunk_bytes;
  state_->arena_bytes += chunk_bytes;
  return handle;
}

void RecordArena::AddStage() {
  if (state_->stage_count >= kArenaMaxStages) {
    throw NativeError(NativeError::Kind::kError, "OUT_OF_SPACE", "shoal: the record arena reached its stage limit");
  }
  uint32_t stage = state_->stage_count;
  MemorySegment segment = MemorySegment::Create(StageName(stage), StageBytes(stage), shared_, mode_);  // may throw
  if (stage > 0) CarveRemainder();
  stages_.push_back(std::move(segment));
  state_->stage_count = stage + 1;
  state_->bump_offset = 0;
}

// Turns the unused tail of the last stage into free chunks, largest classes first, so
// moving to a new stage wastes nothing. Only pages already committed are used.
void RecordArena::CarveRemainder() {
  uint32_t stage = state_->stage_count - 1;
  uint64_t limit = std::min<uint64_t>(StageBytes(stage), stages_[stage].committed_bytes());
  for (int size_class = kArenaClassCount - 1; size_class >= 0; --size_class) {
    uint64_t chunk_bytes = ClassBytes(size_class);
    while (state_->bump_offset + chunk_bytes <= limit) {
      ArenaHandle handle = MakeHandle(stage, state_->bump_offset);
      state_->bump_offset += chunk_bytes;
      state_->arena_bytes += chunk_bytes;
      PushFree(size_class, handle);
    }
  }
}

void RecordArena::PushFree(uint32_t size_class, ArenaHandle handle) {
  uint8_t* chunk = Chunk(handle);
  ChunkHeader header{0, static_cast<uint8_t>(size_class), kChunkFree, kChunkMagic};
  std::memcpy(chunk, &header, sizeof header);
  std::memcpy(chunk + kArenaChunkHeaderBytes, &state_->free_heads[size_class], sizeof(ArenaHandle));
  state_->free_heads[size_class] = handle;
}

void RecordArena::Free(ArenaHandle handle) {
  ChunkHeader header;
  std::memcpy(&header, Chunk(handle), sizeof header);
  SHOAL_ASSERT(header.magic == kChunkMagic && header.state == kChunkUsed && header.size_class < kArenaClassCount,
               "free of chunk %llx magic %x state %x class %u", static_cast<unsigned long long>(handle), header.magic,
               header.state, header.size_class);
  uint64_t chunk_bytes = ClassBytes(header.size_class);
  SHOAL_ASSERT(state_->data_bytes >= chunk_bytes, "data bytes %llu chunk %llu",
               static_cast<unsigned long long>(state_->data_bytes), static_cast<unsigned long long>(chunk_bytes));
  state_->data_bytes -= chunk_bytes;
  PushFree(header.size_class, handle);
}

}  // namespace shoal
