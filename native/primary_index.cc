// The primary index engine: staged entry array, linear-hashing buckets, free list, side table with
// LRU list, and the record arena. See docs/index.md for the design and its reasons.
#include "primary_index.h"
#include "primary_index_layout.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "bound_method.h"
#include "exchange_layout.h"
#include "ripemd160.h"

namespace shoal {

// ---------------------------------------------------------------------------------------------
// Header segment layout
// ---------------------------------------------------------------------------------------------

namespace {

constexpr uint64_t kMagic = 0x5849504C414F4853;  // "SHOALPIX" little-endian
constexpr uint32_t kFormatVersion = 1;
constexpr uint32_t kInitialBucketsLog2 = 12;
constexpr uint32_t kMaxLoadPercent = 100;  // split one bucket per insert above one entry per bucket
// Splits one insert may do: one keeps the load, the second catches up after an image copy
// held splits back (PrimaryIndex::BeginImageCopy).
constexpr uint32_t kSplitsPerInsert = 2;
constexpr size_t kHeaderSegmentBytes = kHeaderAreaBytes + kMetaCapacityBytes;

}  // namespace


namespace {

IndexLayout ExpectedLayout(bool with_data) {
  return IndexLayout{sizeof(IndexEntry),
                     with_data ? static_cast<uint32_t>(sizeof(SideEntry)) : 0,
                     with_data ? 1u : 0u,
                     StagedArray::kFirstStageLog2,
                     StagedArray::kMaxStageLog2,
                     kInitialBucketsLog2,
                     kMaxLoadPercent,
                     kArenaClassCount,
                     kArenaFirstStageLog2,
                     kArenaMaxStageLog2,
                     kArenaChunkHeaderBytes,
                     static_cast<uint32_t>(kMetaCapacityBytes)};
}

uint64_t DigestHash(const uint8_t* digest) {
  uint64_t hash;
  std::memcpy(&hash, digest + 4, sizeof hash);  // not bytes 0..1: those pick the partition
  return hash;
}

double NowMs() {
  using namespace std::chrono;
  return static_cast<double>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace

void ComputeRecordDigest(const uint8_t* set, size_t set_bytes, uint8_t key_type, const uint8_t* key,
                         size_t key_bytes, uint8_t digest[kDigestBytes]) {
  Ripemd160 hash;
  hash.Update(set, set_bytes);
  hash.Update(&key_type, 1);
  hash.Update(key, key_bytes);
  hash.Final(digest);
}

// ---------------------------------------------------------------------------------------------
// StagedArray
// ---------------------------------------------------------------------------------------------

uint64_t StagedArray::StageStart(uint32_t stage) {
  if (stage <= kGeometricStages) return (uint64_t{1} << kFirstStageLog2) * ((uint64_t{1} << stage) - 1);
  return kGeometricElements + uint64_t{stage - kGeometricStages} * (uint64_t{1} << kMaxStageLog2);
}

std::string StagedArray::StageName(uint32_t stage) const {
  return base_name_ + "." + letter_ + std::to_string(stage);
}

void StagedArray::ReserveSlow(uint64_t count, uint32_t* stage_count) {
  SHOAL_ASSERT(count <= (uint64_t{1} << 32) && *stage_count == stages_.size(), "reserve %llu of '%c' stages %u/%zu",
               static_cast<unsigned long long>(count), letter_, *stage_count, stages_.size());
  uint32_t last_stage, last_offset;
  Locate(static_cast<uint32_t>(count - 1), &last_stage, &last_offset);
  while (stages_.size() <= last_stage) {
    uint32_t stage = static_cast<uint32_t>(stages_.size());
    if (stage > 0) stages_[stage - 1].Commit(stages_[stage - 1].bytes());
    stages_.push_back(MemorySegment::Create(StageName(stage), StageElements(stage) * element_bytes_, shared_, mode_));
    bases_.push_back(stages_.back().data());
    *stage_count = stage + 1;
  }
  MemorySegment& segment = stages_[last_stage];
  segment.Commit((size_t{last_offset} + 1) * element_bytes_);
  usable_ = StageStart(last_stage) + segment.committed_bytes() / element_bytes_;
}

void StagedArray::CreateStages(uint64_t count, uint32_t* stage_count) {
  SHOAL_ASSERT(count <= (uint64_t{1} << 32) && *stage_count == stages_.size(), "create stages for %llu of '%c' stages %u/%zu",
               static_cast<unsigned long long>(count), letter_, *stage_count, stages_.size());
  if (count == 0) return;
  uint32_t last_stage, last_offset;
  Locate(static_cast<uint32_t>(count - 1), &last_stage, &last_offset);
  while (stages_.size() <= last_stage) {
    uint32_t stage = static_cast<uint32_t>(stages_.size());
    stages_.push_back(MemorySegment::Create(StageName(stage), StageElements(stage) * element_bytes_, shared_, mode_));
    bases_.push_back(stages_.back().data());
    *stage_count = stage + 1;
  }
}

bool StagedArray::Attach(uint32_t stage_count) {
  Unmap();
  for (uint32_t stage = 0; stage < stage_count; ++stage) {
    MemorySegment segment;
    if (!MemorySegment::OpenExisting(StageName(stage), StageElements(stage) * element_bytes_, &segment)) {
      Unmap();
      return false;
    }
    stages_.push_back(std::move(segment));
    bases_.push_back(stages_.back().data());
  }
  if (stage_count > 0) usable_ = StageStart(stage_count - 1) + stages_.back().committed_bytes() / element_bytes_;
  return true;
}

void StagedArray::Unmap() {
  stages_.clear();
  bases_.clear();
  usable_ = 0;
}

// ---------------------------------------------------------------------------------------------
// PrimaryIndex: open, create, attach, close
// ---------------------------------------------------------------------------------------------

PrimaryIndex::PrimaryIndex(std::string base_name, bool shared, bool with_data, uint32_t mode)
    : base_name_(std::move(base_name)),
      shared_(shared),
      mode_(mode),
      with_data_(with_data),
      entries_(base_name_, 'e', sizeof(IndexEntry), shared, mode),
      buckets_(base_name_, 'b', sizeof(uint32_t), shared, mode),
      side_(base_name_, 's', sizeof(SideEntry), shared, mode) {}

PrimaryIndex::~PrimaryIndex() { Close(false); }

int PrimaryIndex::Open(bool attach) {
  SHOAL_ASSERT(!is_open(), "open of an open index %s", base_name_.c_str());
  insert_epoch_ += 1;
  if (shared_ && attach) {
    int result = Attach();
    if (result != 0) return result;
  }
  if (shared_) MemorySegment::UnlinkAll(base_name_);
  try {
    Create();
  } catch (...) {
    Close(true);
    throw;
  }
  return 0;
}

void PrimaryIndex::Create() {
  header_segment_ = MemorySegment::Create(base_name_ + ".h", kHeaderSegmentBytes, shared_, mode_);
  header_segment_.Commit(kHeaderSegmentBytes);
  header_ = reinterpret_cast<IndexHeader*>(header_segment_.data());
  IndexHeader* header = header_;
  header->format_version = kFormatVersion;
  header->header_bytes = sizeof(IndexHeader);
  header->layout = ExpectedLayout(with_data_);
  header->created_ms = NowMs();
  // Slot 0 is the null id: never live, never on the free list.
  entries_.Reserve(1, &header->entry_stage_count);
  SetLastUpdateMs(EntryAt(0), kFreeSlotMarker);
  header->end_entry_id = 1;
  if (with_data_) side_.Reserve(1, &header->side_stage_count);
  header->bucket_count = uint64_t{1} << kInitialBucketsLog2;
  buckets_.Reserve(header->bucket_count, &header->bucket_stage_count);
  arena_ = std::make_unique<RecordArena>(&header->arena, base_name_, shared_, mode_);
  arena_->Initialize();
  __atomic_store_n(&header->magic, kMagic, __ATOMIC_RELEASE);
}

// Returns 1 attached, -1 incompatible, 0 when there is no header (the caller creates).
int PrimaryIndex::Attach() {
  MemorySegment segment;
  if (!MemorySegment::OpenExisting(base_name_ + ".h", 0, &segment)) return 0;
  if (segment.bytes() != kHeaderSegmentBytes) return -1;
  const IndexHeader* header = reinterpret_cast<const IndexHeader*>(segment.data());
  IndexLayout expected = ExpectedLayout(with_data_);
  if (header->magic != kMagic || header->format_version != kFormatVersion ||
      header->header_bytes != sizeof(IndexHeader) || std::memcmp(&header->layout, &expected, sizeof expected) != 0) {
    return -1;
  }
  // The numbers must be within bounds before anything trusts them.
  uint64_t round = uint64_t{1} << std::min<uint32_t>(kInitialBucketsLog2 + header->hash_level, 40);
  bool sane = header->end_entry_id >= 1 && header->end_entry_id <= kMaxEntries &&
              header->entry_stage_count <= StagedArray::kMaxStages &&
              StagedArray::StageStart(header->entry_stage_count) >= header->end_entry_id &&
              header->entry_count < header->end_entry_id && header->free_head < header->end_entry_id &&
              kInitialBucketsLog2 + header->hash_level <= 32 && header->split_pointer < round &&
              header->bucket_count == round + header->split_pointer && header->bucket_count <= (uint64_t{1} << 32) &&
              header->bucket_stage_count <= StagedArray::kMaxStages &&
              StagedArray::StageStart(header->bucket_stage_count) >= header->bucket_count &&
              header->meta_bytes <= kMetaCapacityBytes && header->lru_head < header->end_entry_id &&
              header->lru_tail < header->end_entry_id &&
              (!with_data_ || header->side_stage_count == header->entry_stage_count) &&
              RecordArena::StateIsSane(header->arena);
  if (!sane) return -1;
  header_segment_ = std::move(segment);
  header_ = reinterpret_cast<IndexHeader*>(header_segment_.data());
  arena_ = std::make_unique<RecordArena>(&header_->arena, base_name_, shared_, mode_);
  bool mapped = entries_.Attach(header_->entry_stage_count) && buckets_.Attach(header_->bucket_stage_count) &&
                (!with_data_ || side_.Attach(header_->side_stage_count)) && (!with_data_ || arena_->Attach());
  if (!mapped) {
    Close(false);
    return -1;
  }
  return 1;
}

void PrimaryIndex::Close(bool drop) {
  insert_epoch_ += 1;
  AbandonImageCopy();  // its worker reads the segments: it stops before they are unmapped
  if (arena_) arena_->Unmap();
  arena_.reset();
  entries_.Unmap();
  buckets_.Unmap();
  side_.Unmap();
  header_segment_.Unmap();
  header_ = nullptr;
  if (drop && shared_) MemorySegment::UnlinkAllFreeingLater(base_name_);  // the pages are freed off this thread
}

uint8_t* PrimaryIndex::meta() const { return header_segment_.data() + kHeaderAreaBytes; }
uint32_t PrimaryIndex::end_entry_id() const { return header_->end_entry_id; }
uint64_t PrimaryIndex::entry_count() const { return header_->entry_count; }
uint64_t PrimaryIndex::bucket_count() const { return header_->bucket_count; }

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

uint64_t PrimaryIndex::BucketOf(const uint8_t* digest) const {
  uint64_t hash = DigestHash(digest);
  uint64_t round = uint64_t{1} << (kInitialBucketsLog2 + header_->hash_level);
  uint64_t bucket = hash & (round - 1);
  if (bucket < header_->split_pointer) bucket = hash & (2 * round - 1);
  return bucket;
}

uint32_t PrimaryIndex::Find(const uint8_t* digest) const {
  uint32_t end = header_->end_entry_id;
  uint32_t id = *BucketAt(BucketOf(digest));
  while (id != 0) {
    SHOAL_ASSERT(id < end, "chain entry %u beyond end %u", id, end);
    const IndexEntry* entry = EntryAt(id);
    if (std::memcmp(entry->digest, digest, kDigestBytes) == 0) return id;
    id = entry->next;
  }
  return 0;
}

void PrimaryIndex::PrefetchBucket(const uint8_t* digest) const {
  __builtin_prefetch(BucketAt(BucketOf(digest)));
}

namespace {

// An index entry is 48 bytes, so it may straddle two cache lines: fetch both.
void PrefetchEntry(const void* entry) {
  __builtin_prefetch(entry);
  __builtin_prefetch(static_cast<const uint8_t*>(entry) + sizeof(IndexEntry) - 1);
}

}  // namespace

void PrimaryIndex::PrefetchChain(const uint8_t* digest) const {
  uint32_t id = *BucketAt(BucketOf(digest));
  if (id != 0 && id < header_->end_entry_id) PrefetchEntry(EntryAt(id));
}

void PrimaryIndex::PrefetchChainSecond(const uint8_t* digest) const {
  uint32_t end = header_->end_entry_id;
  uint32_t id = *BucketAt(BucketOf(digest));
  if (id == 0 || id >= end) return;
  uint32_t next = EntryAt(id)->next;
  if (next != 0 && next < end) PrefetchEntry(EntryAt(next));
}

void PrimaryIndex::PrefetchSplit(uint32_t distance) const {
  uint64_t round = uint64_t{1} << (kInitialBucketsLog2 + header_->hash_level);
  uint32_t end = header_->end_entry_id;
  uint64_t far = header_->split_pointer + 2 * uint64_t{distance};
  if (far < round && far < header_->bucket_count) {
    uint32_t id = *BucketAt(far);
    if (id != 0 && id < end) PrefetchEntry(EntryAt(id));
  }
  uint64_t near = header_->split_pointer + distance;
  if (near < round && near < header_->bucket_count) {
    uint32_t id = *BucketAt(near);
    if (id == 0 || id >= end) return;
    uint32_t next = EntryAt(id)->next;
    if (next != 0 && next < end) PrefetchEntry(EntryAt(next));
  }
}

bool PrimaryIndex::IsLive(uint32_t id) const {
  return id != 0 && id < header_->end_entry_id && LastUpdateMs(EntryAt(id)) != kFreeSlotMarker;
}

EntryFields PrimaryIndex::Fields(uint32_t id) const {
  const IndexEntry* entry = EntryAt(id);
  EntryFields fields;
  fields.generation = entry->generation;
  fields.void_time = entry->void_time;
  fields.set_id = entry->set_id_and_flags & 0x0FFF;
  fields.flags = entry->set_id_and_flags >> 12;
  fields.last_update_ms = LastUpdateMs(entry);
  fields.location = entry->location;
  return fields;
}

const uint8_t* PrimaryIndex::Data(uint32_t id) const {
  if (!with_data_) return nullptr;
  ArenaHandle handle = SideAt(id)->handle;
  return handle == 0 ? nullptr : arena_->Payload(handle);
}

uint32_t PrimaryIndex::DataBytes(uint32_t id) const {
  if (!with_data_) return 0;
  ArenaHandle handle = SideAt(id)->handle;
  return handle == 0 ? 0 : arena_->PayloadBytes(handle);
}

// ---------------------------------------------------------------------------------------------
// LRU list (side table)
// ---------------------------------------------------------------------------------------------

void PrimaryIndex::LruUnlink(uint32_t id) {
  SideEntry* side = SideAt(id);
  if (side->lru_previous != 0) {
    SideAt(side->lru_previous)->lru_next = side->lru_next;
  } else {
    SHOAL_ASSERT(header_->lru_head == id, "lru unlink %u: head is %u", id, header_->lru_head);
    header_->lru_head = side->lru_next;
  }
  if (side->lru_next != 0) {
    SideAt(side->lru_next)->lru_previous = side->lru_previous;
  } else {
    SHOAL_ASSERT(header_->lru_tail == id, "lru unlink %u: tail is %u", id, header_->lru_tail);
    header_->lru_tail = side->lru_previous;
  }
  side->lru_previous = 0;
  side->lru_next = 0;
}

void PrimaryIndex::LruPushHead(uint32_t id) {
  SideEntry* side = SideAt(id);
  side->lru_previous = 0;
  side->lru_next = header_->lru_head;
  if (header_->lru_head != 0) {
    SideAt(header_->lru_head)->lru_previous = id;
  } else {
    header_->lru_tail = id;
  }
  header_->lru_head = id;
}

void PrimaryIndex::Touch(uint32_t id) {
  if (!with_data_ || header_->lru_head == id) return;
  LruUnlink(id);
  LruPushHead(id);
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

uint32_t PrimaryIndex::AllocateSlot() {
  uint32_t id = header_->free_head;
  if (id != 0) {
    SHOAL_ASSERT(id < header_->end_entry_id && LastUpdateMs(EntryAt(id)) == kFreeSlotMarker,
                 "free list head %u (end %u) is not a free slot", id, header_->end_entry_id);
    BeforeEntryWrite(id);
    header_->free_head = EntryAt(id)->next;
    return id;
  }
  id = header_->end_entry_id;
  if (id >= kMaxEntries) {
    throw NativeError(NativeError::Kind::kError, "OUT_OF_SPACE", "shoal: the primary index is full (2^31 entries)");
  }
  entries_.Reserve(uint64_t{id} + 1, &header_->entry_stage_count);
  if (with_data_) side_.Reserve(uint64_t{id} + 1, &header_->side_stage_count);
  header_->end_entry_id = id + 1;
  return id;
}

void PrimaryIndex::FreeSlot(uint32_t id) {
  BeforeEntryWrite(id);
  IndexEntry* entry = EntryAt(id);
  std::memset(entry, 0, sizeof *entry);
  SetLastUpdateMs(entry, kFreeSlotMarker);
  entry->next = header_->free_head;
  header_->free_head = id;
  if (with_data_) std::memset(SideAt(id), 0, sizeof(SideEntry));
}

void PrimaryIndex::WriteFields(IndexEntry* entry, const EntryFields& fields) {
  SHOAL_ASSERT(fields.set_id <= kMaxSetId && fields.flags <= kMaxFlags && fields.last_update_ms <= kMaxLastUpdateMs,
               "unvalidated fields: set %u flags %u last update %llu", fields.set_id, fields.flags,
               static_cast<unsigned long long>(fields.last_update_ms));
  entry->generation = fields.generation;
  entry->void_time = fields.void_time;
  SetLastUpdateMs(entry, fields.last_update_ms);
  entry->set_id_and_flags = static_cast<uint16_t>(fields.set_id | (fields.flags << 12));
  entry->location = fields.location;
}

void PrimaryIndex::FillPrevious(uint32_t id, PreviousEntry* previous) const {
  if (previous == nullptr) return;
  previous->existed = true;
  previous->entry_id = id;
  previous->fields = Fields(id);
  previous->data_bytes = DataBytes(id);
}

uint32_t PrimaryIndex::Upsert(const uint8_t* digest, const EntryFields& fields, DataAction action,
                              const uint8_t* data, uint32_t data_bytes, PreviousEntry* previous) {
  SHOAL_ASSERT(action != DataAction::kStore || (with_data_ && data_bytes <= kArenaMaxPayloadBytes),
               "store of %u bytes (with data %d)", data_bytes, with_data_);
  if (previous != nullptr) *previous = PreviousEntry{};
  ArenaHandle handle = 0;
  uint32_t id = Find(digest);
  if (id != 0 && action == DataAction::kStore) {
    // An overwrite with a payload of the same size class reuses the chunk: no allocation,
    // and no cold cache line for the new copy.
    SideEntry* side = SideAt(id);
    if (side->handle != 0) {
      FillPrevious(id, previous);
      if (arena_->RewriteInPlace(side->handle, data, data_bytes)) {
        UpdateFields(id, fields);
        Touch(id);
        return id;
      }
      if (previous != nullptr) *previous = PreviousEntry{};
    }
  }
  if (action == DataAction::kStore) {  // may throw; nothing has changed yet
    handle = arena_->Allocate(data_bytes);
    std::memcpy(arena_->Payload(handle), data, data_bytes);
  }
  if (id != 0) {
    FillPrevious(id, previous);
    if (with_data_ && action != DataAction::kKeep) {
      SideEntry* side = SideAt(id);
      if (side->handle != 0) arena_->Free(side->handle);
      side->handle = handle;
    }
    UpdateFields(id, fields);
    Touch(id);
    return id;
  }
  return LinkNew(digest, fields, handle);
}

uint32_t PrimaryIndex::InsertAbsent(const uint8_t* digest, const EntryFields& fields, DataAction action, const uint8_t* data,
                                    uint32_t data_bytes) {
  SHOAL_ASSERT(action != DataAction::kKeep && (action != DataAction::kStore || (with_data_ && data_bytes <= kArenaMaxPayloadBytes)),
               "insert with action %d of %u bytes (with data %d)", static_cast<int>(action), data_bytes, with_data_);
  ArenaHandle handle = 0;
  if (action == DataAction::kStore) {  // may throw; nothing has changed yet
    handle = arena_->Allocate(data_bytes);
    std::memcpy(arena_->Payload(handle), data, data_bytes);
  }
  return LinkNew(digest, fields, handle);
}

// The insert half of Upsert: a new entry for `digest` (which has none) holding `handle`'s
// payload; frees the handle if it cannot.
uint32_t PrimaryIndex::LinkNew(const uint8_t* digest, const EntryFields& fields, ArenaHandle handle) {
  uint32_t id = 0;
  try {
    id = AllocateSlot();
    buckets_.Reserve(header_->bucket_count + kSplitsPerInsert, &header_->bucket_stage_count);
  } catch (...) {
    if (handle != 0) arena_->Free(handle);
    if (id != 0) FreeSlot(id);
    throw;
  }
  IndexEntry* entry = EntryAt(id);
  std::memcpy(entry->digest, digest, kDigestBytes);
  WriteFields(entry, fields);
  uint64_t bucket_number = BucketOf(digest);
  BeforeBucketWrite(bucket_number);
  uint32_t* bucket = BucketAt(bucket_number);
  entry->next = *bucket;
  *bucket = id;
  if (with_data_) {
    SideAt(id)->handle = handle;
    LruPushHead(id);
  }
  header_->entry_count += 1;
  insert_epoch_ += 1;
  // No split while an image copy runs (a split relinks a whole chain, scattered over the
  // entry pieces); afterwards up to kSplitsPerInsert per insert catch up with the load.
  for (uint32_t split = 0; copy_ == nullptr && split < kSplitsPerInsert && header_->entry_count * 100 > header_->bucket_count * kMaxLoadPercent; ++split) {
    SplitOneBucket();
    // The next split relinks the chain at the split pointer: start loading its first entry
    // now, so the next insert (a few microseconds away) finds it in cache, not in DRAM.
    uint32_t next = *BucketAt(header_->split_pointer);
    if (next != 0 && next < header_->end_entry_id) PrefetchEntry(EntryAt(next));
  }
  return id;
}

// Linear hashing (Litwin 1980): split the bucket at the split pointer into itself and its
// image one round higher; entries never move, only their chain links change.
void PrimaryIndex::SplitOneBucket() {
  uint64_t round = uint64_t{1} << (kInitialBucketsLog2 + header_->hash_level);
  uint64_t old_bucket = header_->split_pointer;
  uint64_t new_bucket = old_bucket + round;
  SHOAL_ASSERT(new_bucket == header_->bucket_count && new_bucket < buckets_.usable(),
               "split %llu -> %llu with %llu buckets", static_cast<unsigned long long>(old_bucket),
               static_cast<unsigned long long>(new_bucket), static_cast<unsigned long long>(header_->bucket_count));
  uint32_t* old_head = BucketAt(old_bucket);
  uint32_t* new_head = BucketAt(new_bucket);
  uint32_t id = *old_head;
  *old_head = 0;
  *new_head = 0;
  uint32_t end = header_->end_entry_id;
  while (id != 0) {
    SHOAL_ASSERT(id < end, "chain entry %u beyond end %u in bucket %llu", id, end,
                 static_cast<unsigned long long>(old_bucket));
    IndexEntry* entry = EntryAt(id);
    uint32_t next = entry->next;
    uint32_t* head = (DigestHash(entry->digest) & round) ? new_head : old_head;
    entry->next = *head;
    *head = id;
    id = next;
  }
  header_->bucket_count += 1;
  header_->split_pointer += 1;
  if (header_->split_pointer == round) {
    header_->split_pointer = 0;
    header_->hash_level += 1;
  }
}

void PrimaryIndex::Unlink(uint32_t id) {
  IndexEntry* entry = EntryAt(id);
  uint64_t bucket = BucketOf(entry->digest);
  uint32_t* link = BucketAt(bucket);
  uint32_t owner = 0;  // the entry whose next is `link`, 0 for the bucket
  uint32_t end = header_->end_entry_id;
  while (*link != id) {
    SHOAL_ASSERT(*link != 0 && *link < end, "entry %u missing from its bucket chain (link %u, end %u)", id, *link, end);
    owner = *link;
    link = &EntryAt(owner)->next;
  }
  if (owner == 0) BeforeBucketWrite(bucket);
  else BeforeEntryWrite(owner);
  *link = entry->next;
}

bool PrimaryIndex::RemoveEntry(uint32_t id, PreviousEntry* previous) {
  if (previous != nullptr) *previous = PreviousEntry{};
  if (!IsLive(id)) return false;
  FillPrevious(id, previous);
  Unlink(id);
  if (with_data_) {
    SideEntry* side = SideAt(id);
    if (side->handle != 0) arena_->Free(side->handle);
    side->handle = 0;
    LruUnlink(id);
  }
  FreeSlot(id);
  SHOAL_ASSERT(header_->entry_count > 0, "entry count underflow removing %u", id);
  header_->entry_count -= 1;
  return true;
}

bool PrimaryIndex::Remove(const uint8_t* digest, PreviousEntry* previous) {
  uint32_t id = Find(digest);
  if (id == 0) {
    if (previous != nullptr) *previous = PreviousEntry{};
    return false;
  }
  return RemoveEntry(id, previous);
}

// Removes a live entry unless its payload would push *freed_bytes past 2^32 - 1.
uint32_t PrimaryIndex::RemoveWithinBudget(uint32_t id, uint64_t* freed_bytes, bool* over_budget) {
  uint32_t payload = DataBytes(id);
  if (*freed_bytes + payload > kMaxFreedBytes || (removed_locations_ != nullptr && removed_count_ >= removed_capacity_)) {
    *over_budget = true;
    return 0;
  }
  if (removed_locations_ != nullptr) {
    uint64_t location = EntryAt(id)->location;
    removed_locations_[2 * removed_count_] = static_cast<uint32_t>(location);
    removed_locations_[2 * removed_count_ + 1] = static_cast<uint32_t>(location >> 32);
    ++removed_count_;
  }
  RemoveEntry(id, nullptr);
  *freed_bytes += payload;
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Bulk removals
// ---------------------------------------------------------------------------------------------

uint32_t PrimaryIndex::EvictLru(int64_t target_data_bytes, uint32_t max_removals, uint64_t* freed_bytes) {
  uint32_t removed = 0;
  bool over_budget = false;
  while (removed < max_removals && !over_budget &&
         (target_data_bytes < 0 || data_bytes() > static_cast<uint64_t>(target_data_bytes))) {
    uint32_t id = header_->lru_tail;
    if (id == 0) break;
    removed += RemoveWithinBudget(id, freed_bytes, &over_budget);
  }
  return removed;
}

namespace {
constexpr uint32_t kExpiryBins = 4096;
}

// Three passes: the range of void times, a histogram (bytes and counts per bin) that picks
// the threshold bin, and the removal of every entry below it plus as many of the threshold
// bin as the bounds allow. Entries with void time 0 never expire and are never touched.
uint32_t PrimaryIndex::EvictSoonestExpiring(int64_t target_data_bytes, uint32_t max_removals, uint32_t now_seconds,
                                            uint64_t* freed_bytes) {
  auto want_more = [&](uint32_t removed) {
    return removed < max_removals && (target_data_bytes < 0 || data_bytes() > static_cast<uint64_t>(target_data_bytes));
  };
  if (!want_more(0)) return 0;
  uint32_t end = end_entry_id();
  uint32_t lowest = std::numeric_limits<uint32_t>::max(), highest = 0;
  for (uint32_t id = 1; id < end; ++id) {
    if (!IsLive(id) || EntryAt(id)->void_time == 0) continue;
    lowest = std::min(lowest, EntryAt(id)->void_time);
    highest = std::max(highest, EntryAt(id)->void_time);
  }
  if (highest == 0) return 0;
  lowest = std::max(lowest, std::min(now_seconds, highest));  // everything already expired shares bin 0
  uint64_t width = std::max<uint64_t>(1, (uint64_t{highest} - lowest + kExpiryBins) / kExpiryBins);
  auto bin_of = [&](uint32_t void_time) {
    return static_cast<uint32_t>((uint64_t{std::max(void_time, lowest)} - lowest) / width);
  };
  std::vector<uint64_t> bin_bytes(kExpiryBins, 0), bin_counts(kExpiryBins, 0);
  for (uint32_t id = 1; id < end; ++id) {
    if (!IsLive(id) || EntryAt(id)->void_time == 0) continue;
    uint32_t bin = bin_of(EntryAt(id)->void_time);
    bin_counts[bin] += 1;
    if (with_data_ && SideAt(id)->handle != 0) bin_bytes[bin] += arena_->ChunkBytes(SideAt(id)->handle);
  }
  uint64_t needed_bytes = target_data_bytes < 0 ? std::numeric_limits<uint64_t>::max()
                                                 : data_bytes() - static_cast<uint64_t>(target_data_bytes);
  uint32_t threshold = kExpiryBins - 1;
  uint64_t counted = 0, bytes = 0;
  for (uint32_t bin = 0; bin < kExpiryBins; ++bin) {
    counted += bin_counts[bin];
    bytes += bin_bytes[bin];
    if (counted >= max_removals || bytes >= needed_bytes) {
      threshold = bin;
      break;
    }
  }
  uint32_t removed = 0;
  bool over_budget = false;
  std::vector<uint32_t> threshold_ids;
  for (uint32_t id = 1; id < end && want_more(removed) && !over_budget; ++id) {
    if (!IsLive(id) || EntryAt(id)->void_time == 0) continue;
    uint32_t bin = bin_of(EntryAt(id)->void_time);
    if (bin < threshold) {
      removed += RemoveWithinBudget(id, freed_bytes, &over_budget);
    } else if (bin == threshold && threshold_ids.size() < max_removals) {
      threshold_ids.push_back(id);
    }
  }
  std::sort(threshold_ids.begin(), threshold_ids.end(),
            [&](uint32_t a, uint32_t b) { return EntryAt(a)->void_time < EntryAt(b)->void_time; });
  for (uint32_t id : threshold_ids) {
    if (!want_more(removed) || over_budget) break;
    if (IsLive(id)) removed += RemoveWithinBudget(id, freed_bytes, &over_budget);
  }
  return removed;
}

uint32_t PrimaryIndex::SweepExpired(uint32_t now_seconds, uint32_t cursor, uint32_t max_slots, uint32_t* next_cursor,
                                    uint64_t* freed_bytes) {
  uint32_t end = end_entry_id();
  uint32_t id = std::max<uint32_t>(cursor, 1);
  uint64_t stop = std::min<uint64_t>(end, uint64_t{id} + max_slots);
  uint32_t removed = 0;
  bool over_budget = false;
  for (; id < stop; ++id) {
    if (!IsLive(id)) continue;
    uint32_t void_time = EntryAt(id)->void_time;
    if (void_time == 0 || void_time > now_seconds) continue;
    removed += RemoveWithinBudget(id, freed_bytes, &over_budget);
    if (over_budget) break;
  }
  *next_cursor = id >= end ? 0 : id;
  return removed;
}

uint32_t PrimaryIndex::Truncate(int64_t set_id, double before_ms, uint32_t cursor, uint32_t max_slots,
                                uint32_t* next_cursor, uint64_t* freed_bytes) {
  uint32_t end = end_entry_id();
  uint32_t id = std::max<uint32_t>(cursor, 1);
  uint64_t stop = std::min<uint64_t>(end, uint64_t{id} + max_slots);
  uint32_t removed = 0;
  bool over_budget = false;
  for (; id < stop; ++id) {
    if (!IsLive(id)) continue;
    const IndexEntry* entry = EntryAt(id);
    if (set_id >= 0 && (entry->set_id_and_flags & 0x0FFF) != set_id) continue;
    if (static_cast<double>(LastUpdateMs(entry)) >= before_ms) continue;
    removed += RemoveWithinBudget(id, freed_bytes, &over_budget);
    if (over_budget) break;
  }
  *next_cursor = id >= end ? 0 : id;
  return removed;
}

void PrimaryIndex::CountBySet(double* counts, uint32_t cursor, uint32_t max_slots, uint32_t* next_cursor) const {
  uint32_t end = end_entry_id();
  uint32_t id = std::max<uint32_t>(cursor, 1);
  uint64_t stop = std::min<uint64_t>(end, uint64_t{id} + max_slots);
  for (; id < stop; ++id) {
    if (IsLive(id)) counts[EntryAt(id)->set_id_and_flags & 0x0FFF] += 1;
  }
  *next_cursor = id >= end ? 0 : id;
}

// ---------------------------------------------------------------------------------------------
// Verification (tests)
// ---------------------------------------------------------------------------------------------

std::string PrimaryIndex::Verify() const {
  uint32_t end = end_entry_id();
  uint64_t live = 0, expected_data_bytes = 0;
  for (uint32_t id = 1; id < end; ++id) {
    if (!IsLive(id)) continue;
    ++live;
    if (with_data_ && SideAt(id)->handle != 0) expected_data_bytes += arena_->ChunkBytes(SideAt(id)->handle);
  }
  if (live != entry_count()) return "live slots " + std::to_string(live) + " != entry count " + std::to_string(entry_count());
  if (expected_data_bytes != data_bytes()) return "payload chunks " + std::to_string(expected_data_bytes) + " != dataBytes";
  uint64_t free_slots = 0;
  for (uint32_t id = header_->free_head; id != 0; id = EntryAt(id)->next) {
    if (id >= end || IsLive(id) || ++free_slots > end) return "free list is broken at " + std::to_string(id);
  }
  if (free_slots + live + 1 != end) return "free list holds " + std::to_string(free_slots) + " slots, expected " +
                                           std::to_string(end - 1 - live);
  uint64_t chained = 0;
  for (uint64_t bucket = 0; bucket < bucket_count(); ++bucket) {
    for (uint32_t id = *BucketAt(bucket); id != 0; id = EntryAt(id)->next) {
      if (id >= end || !IsLive(id) || BucketOf(EntryAt(id)->digest) != bucket || ++chained > live) {
        return "bucket " + std::to_string(bucket) + " chain is broken at " + std::to_string(id);
      }
    }
  }
  if (chained != live) return "buckets chain " + std::to_string(chained) + " entries, expected " + std::to_string(live);
  if (!with_data_) return "";
  uint64_t listed = 0;
  uint32_t previous = 0;
  for (uint32_t id = header_->lru_head; id != 0; previous = id, id = SideAt(id)->lru_next) {
    if (id >= end || !IsLive(id) || SideAt(id)->lru_previous != previous || ++listed > live) {
      return "lru list is broken at " + std::to_string(id);
    }
  }
  if (listed != live || header_->lru_tail != previous) return "lru list holds " + std::to_string(listed) + " entries";
  return "";
}

}  // namespace shoal
