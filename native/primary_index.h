// The primary index: one 48-byte entry per record, keyed by the record's 20-byte digest, in
// memory segments (POSIX shared memory for warm restart, or private memory). The design is
// in docs/index.md; the JS-facing contract in docs/native-boundary.md.
//
// Threading: the index has no locks. Exactly one thread uses it at a time: the JS thread
// through PrimaryIndexWrap, or (while JS waits for it) the storage engine's cold-start worker
// through the C++ API below. Nothing here may be called concurrently.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "assert.h"
#include "record_arena.h"
#include "shared_memory.h"

namespace shoal {

constexpr size_t kDigestBytes = 20;

// The index entry as it lives in memory (docs/native-boundary.md, "The index entry").
struct IndexEntry {
  uint8_t digest[kDigestBytes];
  uint32_t generation;
  uint32_t void_time;          // Unix seconds; 0 = never expires
  uint32_t next;               // next entry id in the bucket chain, or in the free list
  uint8_t last_update_ms[6];   // 48-bit little-endian; all ones marks a free slot
  uint16_t set_id_and_flags;   // set id in the low 12 bits, flags in the high 4
  uint64_t location;           // the storage engine's encoding
};
static_assert(sizeof(IndexEntry) == 48, "index entries are 48 bytes");
static_assert(offsetof(IndexEntry, generation) == 20 && offsetof(IndexEntry, void_time) == 24 &&
                  offsetof(IndexEntry, next) == 28 && offsetof(IndexEntry, last_update_ms) == 32 &&
                  offsetof(IndexEntry, set_id_and_flags) == 38 && offsetof(IndexEntry, location) == 40,
              "entry layout is the documented one");

// Per-entry side table of an index with data: the payload and the LRU list links.
struct SideEntry {
  ArenaHandle handle;  // 0 = no payload
  uint32_t lru_previous;  // toward the head (more recently used); 0 = none
  uint32_t lru_next;      // toward the tail (less recently used); 0 = none
};
static_assert(sizeof(SideEntry) == 16, "side entries are 16 bytes");

constexpr uint32_t kMaxSetId = 4095;
constexpr uint32_t kMaxFlags = 15;
constexpr uint64_t kMaxLastUpdateMs = (uint64_t{1} << 48) - 2;  // all ones = free slot
constexpr uint32_t kMaxEntries = uint32_t{1} << 31;              // entry ids are below this
constexpr size_t kMetaCapacityBytes = 256 * 1024;

// An entry's fields, unpacked.
struct EntryFields {
  uint32_t generation = 0;
  uint32_t void_time = 0;
  uint32_t set_id = 0;
  uint32_t flags = 0;
  uint64_t last_update_ms = 0;
  uint64_t location = 0;
};

// What an entry was before an upsert or removal.
struct PreviousEntry {
  bool existed = false;
  uint32_t entry_id = 0;
  EntryFields fields;
  uint32_t data_bytes = 0;  // payload length
};

enum class DataAction { kNone, kStore, kKeep };  // upsert: drop, replace, or keep the payload

// Returns the record digest of SPEC section 1: RIPEMD-160 over the set name, the key-type
// byte, then the key bytes. The caller validates the lengths.
void ComputeRecordDigest(const uint8_t* set, size_t set_bytes, uint8_t key_type, const uint8_t* key,
                         size_t key_bytes, uint8_t digest[kDigestBytes]);

// Returns the partition id (0..4095) of a digest: its first two bytes little-endian, low 12 bits.
inline uint32_t PartitionOf(const uint8_t* digest) { return (digest[0] | (uint32_t{digest[1]} << 8)) & 0x0FFF; }

// An array of fixed-size elements in staged segments (`<base>.<letter><stage>`): 64 Ki
// elements in stage 0, doubling to 4 Mi, then 4 Mi per stage. Growing adds a stage; nothing
// ever moves, so pointers and ids stay valid.
class StagedArray {
 public:
  static constexpr uint32_t kFirstStageLog2 = 16;
  static constexpr uint32_t kMaxStageLog2 = 22;
  static constexpr uint32_t kGeometricStages = kMaxStageLog2 - kFirstStageLog2 + 1;
  static constexpr uint64_t kGeometricElements = (uint64_t{1} << kFirstStageLog2) * ((1u << kGeometricStages) - 1);
  static constexpr uint32_t kMaxStages =
      kGeometricStages + static_cast<uint32_t>((uint64_t{1} << 32) - kGeometricElements) / (1u << kMaxStageLog2) + 1;

  StagedArray(std::string base_name, char letter, size_t element_bytes, bool shared, uint32_t mode)
      : base_name_(std::move(base_name)), letter_(letter), element_bytes_(element_bytes), shared_(shared), mode_(mode) {}

  static void Locate(uint32_t index, uint32_t* stage, uint32_t* offset) {
    if (index < kGeometricElements) {
      uint32_t shifted = index + (1u << kFirstStageLog2);
      uint32_t high_bit = 31 - __builtin_clz(shifted);
      *stage = high_bit - kFirstStageLog2;
      *offset = shifted - (1u << high_bit);
    } else {
      uint32_t rest = static_cast<uint32_t>(index - kGeometricElements);
      *stage = kGeometricStages + (rest >> kMaxStageLog2);
      *offset = rest & ((1u << kMaxStageLog2) - 1);
    }
  }
  static uint64_t StageElements(uint32_t stage) {
    return uint64_t{1} << (stage < kGeometricStages ? kFirstStageLog2 + stage : kMaxStageLog2);
  }
  static uint64_t StageStart(uint32_t stage);

  uint8_t* At(uint32_t index) const {
    uint32_t stage, offset;
    Locate(index, &stage, &offset);
    return bases_[stage] + size_t{offset} * element_bytes_;
  }

  // Makes elements [0, count) usable, creating stages and committing pages. *stage_count (in
  // the header) is advanced as stages are added. Throws NativeError; what was added stays.
  void Reserve(uint64_t count, uint32_t* stage_count) {
    if (count > usable_) ReserveSlow(count, stage_count);
  }
  // Creates (and maps) the stages elements [0, count) need, without committing their pages:
  // the index image loader fills them with pread on several threads, which allocates the pages
  // as it goes, then calls Reserve. Throws NativeError.
  void CreateStages(uint64_t count, uint32_t* stage_count);
  // Maps `stage_count` existing stages; false if one is missing or has the wrong size.
  bool Attach(uint32_t stage_count);
  void Unmap();
  uint64_t usable() const { return usable_; }

 private:
  void ReserveSlow(uint64_t count, uint32_t* stage_count);
  std::string StageName(uint32_t stage) const;

  std::string base_name_;
  char letter_;
  size_t element_bytes_;
  bool shared_;
  uint32_t mode_;  // file mode of new shared stages
  std::vector<MemorySegment> stages_;
  std::vector<uint8_t*> bases_;
  uint64_t usable_ = 0;
};

struct IndexHeader;
class ImageCopy;  // index_image.cc: a checkpoint image being written while the index is used

// What LoadImageFile found besides a refusal.
struct ImageLoadReport {
  bool damaged = false;      // a checksum did not match (the refusal says where)
  uint32_t stale = 0;        // entries removed because their block was not kept
  uint64_t bytes_read = 0;
};

// The index proper (no N-API): usable by the storage engine from its cold-start worker.
class PrimaryIndex {
 public:
  // `base_name` is validated by the caller (ValidateSegmentBaseName).
  // `mode`: the file mode of the shared segments it creates (kDefaultSegmentMode: 0600).
  PrimaryIndex(std::string base_name, bool shared, bool with_data, uint32_t mode = kDefaultSegmentMode);
  ~PrimaryIndex();  // unmaps; never unlinks shared segments

  // 0 created, 1 attached, -1 segments exist but are incompatible (left untouched).
  // attach=false (or private memory) always creates afresh. Throws NativeError.
  int Open(bool attach);
  // Unmaps; with drop, unlinks every segment of the base name (their pages are freed on a
  // background thread). Idempotent.
  void Close(bool drop);
  bool is_open() const { return header_ != nullptr; }
  bool with_data() const { return with_data_; }

  // Returns the entry id for a digest, or 0.
  uint32_t Find(const uint8_t* digest) const;
  // Whether `id` names a live entry (false for 0, free slots, and ids past the end).
  bool IsLive(uint32_t id) const;
  const IndexEntry& Entry(uint32_t id) const { return *EntryAt(id); }
  EntryFields Fields(uint32_t id) const;
  // The entry's payload (nullptr and 0 without one).
  const uint8_t* Data(uint32_t id) const;
  uint32_t DataBytes(uint32_t id) const;
  // Moves a live entry to the head of the LRU list (no-op without data).
  void Touch(uint32_t id);

  // Inserts or updates the entry of `digest`. kStore copies data[0, data_bytes) (at most
  // kArenaMaxPayloadBytes) as the payload; needs with_data(). Returns the entry id. Throws
  // NativeError OUT_OF_SPACE with nothing changed. Fields are validated by the caller.
  uint32_t Upsert(const uint8_t* digest, const EntryFields& fields, DataAction action, const uint8_t* data,
                  uint32_t data_bytes, PreviousEntry* previous);
  // Upsert of a digest the caller knows has no entry (it found none, and insert_epoch() has not
  // changed since): skips the search. Same contract as Upsert otherwise (kKeep is not allowed).
  uint32_t InsertAbsent(const uint8_t* digest, const EntryFields& fields, DataAction action, const uint8_t* data,
                        uint32_t data_bytes);
  // Counts the changes that could make a digest found absent present: inserts, opens, closes.
  // While it stays the same, a digest Find() did not find is still absent.
  uint64_t insert_epoch() const { return insert_epoch_; }
  bool Remove(const uint8_t* digest, PreviousEntry* previous);
  // Cache hints for batch inserts (no effect on contents): the bucket of `digest`; the first
  // entry of its chain (after its bucket is in cache); the second entry of its chain (after the
  // first is in cache); the first entry of the bucket 2 * `distance` past the split pointer
  // and the second entry of the bucket `distance` past it (an insert splits about one bucket,
  // and a split reads every entry of its chain).
  void PrefetchBucket(const uint8_t* digest) const;
  void PrefetchChain(const uint8_t* digest) const;
  void PrefetchChainSecond(const uint8_t* digest) const;
  void PrefetchSplit(uint32_t distance) const;
  bool RemoveEntry(uint32_t id, PreviousEntry* previous);

  // Bulk removals. Each adds the payload bytes it freed to *freed_bytes and stops early
  // rather than let that figure pass 2^32 - 1. target_data_bytes < 0 means "ignore bytes".
  uint32_t EvictLru(int64_t target_data_bytes, uint32_t max_removals, uint64_t* freed_bytes);
  uint32_t EvictSoonestExpiring(int64_t target_data_bytes, uint32_t max_removals, uint32_t now_seconds,
                                uint64_t* freed_bytes);
  // Visit slots [cursor, cursor + max_slots); *next_cursor = where to go on, 0 when done.
  uint32_t SweepExpired(uint32_t now_seconds, uint32_t cursor, uint32_t max_slots, uint32_t* next_cursor,
                        uint64_t* freed_bytes);
  uint32_t Truncate(int64_t set_id, double before_ms, uint32_t cursor, uint32_t max_slots, uint32_t* next_cursor,
                    uint64_t* freed_bytes);
  // Adds one to counts[set id] for each live entry of slots [cursor, cursor + max_slots);
  // counts holds kMaxSetId + 1 elements. *next_cursor = where to go on, 0 when done.
  void CountBySet(double* counts, uint32_t cursor, uint32_t max_slots, uint32_t* next_cursor) const;
  // While set (by a bulk removal's caller, for one call), every entry a bulk removal removes
  // appends its storage location (low u32, high u32) here, up to `capacity` locations: the
  // storage engine then releases exactly those bytes instead of recounting every entry.
  void SetRemovedLocations(uint32_t* out, size_t capacity) {
    removed_locations_ = out;
    removed_capacity_ = capacity;
    removed_count_ = 0;
  }
  size_t removed_location_count() const { return removed_count_; }

  // One past the highest slot ever used: iterate live entries with
  // for (id = 1; id < end_entry_id(); ++id) if (IsLive(id)) ...
  uint32_t end_entry_id() const;
  uint64_t entry_count() const;
  uint64_t bucket_count() const;
  uint64_t data_bytes() const { return with_data_ ? arena_->data_bytes() : 0; }
  uint64_t arena_bytes() const { return with_data_ ? arena_->arena_bytes() : 0; }

  IndexHeader* header() const { return header_; }
  uint8_t* meta() const;

  // The index image's size now (index_image.cc): its head, every entry slot [0, end_entry_id)
  // and every bucket [0, bucket_count).
  size_t ImageBytes() const;

  // The sliced checkpoint image (index_image.cc; docs/storage.md, "Restart after a crash").
  // BeginImageCopy (JS thread, between two mutations) fixes the index's structure of this
  // moment and returns the copy; ImageCopy::Run (a worker thread) then writes the image to `fd`
  // at `file_offset` piece by piece while the JS thread goes on mutating the index: a
  // structural write (a slot allocated or freed, a chain link, a bucket) to a piece not yet
  // copied first writes that piece itself (CopyBefore*), and bucket splits wait until the copy
  // ends. In-place updates of a live entry's fields are not held back (recovery replays every
  // one of them from the checkpoint sequence), but never overlap the copy of their piece
  // (UpdateFields): each piece is copied whole as it was at one moment. EndImageCopy (JS
  // thread, once Run returned) ends it. Only one at a time; only without data.
  // `pause_at_bytes` (tests, with piece_delay_us): the worker copies that many bytes of each
  // piece, sleeps piece_delay_us, then copies the rest (so an unguarded write would tear).
  std::shared_ptr<ImageCopy> BeginImageCopy(int fd, uint64_t file_offset, uint32_t piece_delay_us, uint32_t pause_at_bytes = 0);
  void EndImageCopy(const ImageCopy* copy);
  const ImageCopy* image_copy() const { return copy_.get(); }
  // Loads the image written by an ImageCopy from `fd` at `offset` (`bytes` long) straight into
  // this freshly created, empty index, on up to `threads` threads: each piece is read into its
  // place in the segments, checked against crcs[piece] and its links against the image's end,
  // and every live entry whose (device, block) has kept[device * stride + block] == 0 is
  // removed afterwards, while the others' sizes are added to live[device * stride + block].
  // Returns "" when loaded, else why not (the index must then be reopened empty). Throws
  // NativeError when memory cannot be had. Not while anything else uses the index.
  std::string LoadImageFile(int fd, uint64_t offset, uint64_t bytes, const std::vector<uint32_t>& crcs, const uint8_t* kept,
                            uint32_t devices, uint32_t stride, double* live, uint32_t threads, ImageLoadReport* report);

  // Checks every invariant with a full walk (tests and debugging; O(entries)). Returns the
  // first violation found, or "" when the index is consistent.
  std::string Verify() const;

 private:
  IndexEntry* EntryAt(uint32_t id) const { return reinterpret_cast<IndexEntry*>(entries_.At(id)); }
  SideEntry* SideAt(uint32_t id) const { return reinterpret_cast<SideEntry*>(side_.At(id)); }
  uint32_t* BucketAt(uint64_t bucket) const { return reinterpret_cast<uint32_t*>(buckets_.At(static_cast<uint32_t>(bucket))); }
  uint64_t BucketOf(const uint8_t* digest) const;
  void Create();
  int Attach();
  void MapArrays();
  uint32_t AllocateSlot();
  void FreeSlot(uint32_t id);
  void SplitOneBucket();
  uint32_t LinkNew(const uint8_t* digest, const EntryFields& fields, ArenaHandle handle);
  void LruUnlink(uint32_t id);
  void LruPushHead(uint32_t id);
  void WriteFields(IndexEntry* entry, const EntryFields& fields);
  // An in-place update of live entry `id`'s fields: while an image copy runs, the write waits
  // for the worker's copy of that entry's piece, if under way, and keeps the worker off the
  // piece while it writes (index_image.cc), so no copy sees an entry half-updated.
  void UpdateFields(uint32_t id, const EntryFields& fields) {
    if (copy_ != nullptr) [[unlikely]] {
      UpdateFieldsDuringCopy(id, fields);
      return;
    }
    WriteFields(EntryAt(id), fields);
  }
  void UpdateFieldsDuringCopy(uint32_t id, const EntryFields& fields);
  void FillPrevious(uint32_t id, PreviousEntry* previous) const;
  void Unlink(uint32_t id);
  // Before a structural write to an entry slot or a bucket while an image copy runs.
  void BeforeEntryWrite(uint32_t id) {
    if (copy_ != nullptr) [[unlikely]] CopyBeforeEntryWrite(id);
  }
  void BeforeBucketWrite(uint64_t bucket) {
    if (copy_ != nullptr) [[unlikely]] CopyBeforeBucketWrite(bucket);
  }
  void CopyBeforeEntryWrite(uint32_t id);
  void AbandonImageCopy();
  void CopyBeforeBucketWrite(uint64_t bucket);
  uint32_t RemoveWithinBudget(uint32_t id, uint64_t* freed_bytes, bool* over_budget);

  std::string base_name_;
  bool shared_;
  uint32_t mode_;
  bool with_data_;
  uint32_t* removed_locations_ = nullptr;  // SetRemovedLocations
  size_t removed_capacity_ = 0;
  size_t removed_count_ = 0;
  MemorySegment header_segment_;
  IndexHeader* header_ = nullptr;
  StagedArray entries_;
  StagedArray buckets_;
  StagedArray side_;
  std::unique_ptr<RecordArena> arena_;
  uint64_t insert_epoch_ = 0;
  std::shared_ptr<ImageCopy> copy_;
};

// The JS class PrimaryIndex (lib/native/addon.ts, NativePrimaryIndex) over one exchange
// buffer, plus unlinkIndexSegments(name).
class PrimaryIndexWrap : public Napi::ObjectWrap<PrimaryIndexWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit PrimaryIndexWrap(const Napi::CallbackInfo& info);
  ~PrimaryIndexWrap() override;

 private:
  Napi::Value Open(const Napi::CallbackInfo& info);
  Napi::Value Header(const Napi::CallbackInfo& info);
  Napi::Value SetSignature(const Napi::CallbackInfo& info);
  Napi::Value MarkClean(const Napi::CallbackInfo& info);
  Napi::Value WriteMeta(const Napi::CallbackInfo& info);
  Napi::Value ReadMeta(const Napi::CallbackInfo& info);
  Napi::Value ComputeDigest(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value ReadEntry(const Napi::CallbackInfo& info);
  Napi::Value Upsert(const Napi::CallbackInfo& info);
  // Cold start: inserts a batch of scanner winners (lib/storage/cold-start.ts layout) in one
  // call, skipping tombstones and expired shadows. Not used while JS could touch the index.
  Napi::Value InsertWinners(const Napi::CallbackInfo& info);
  // batchPut's two crossings (native/batch_write.cc): look up a batch of keys, then write the
  // records JS decided to write (storage records into write blocks, index entries).
  Napi::Value LookupBatch(const Napi::CallbackInfo& info);
  Napi::Value WriteBatch(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value RemoveEntry(const Napi::CallbackInfo& info);
  Napi::Value Scan(const Napi::CallbackInfo& info);
  Napi::Value EvictLru(const Napi::CallbackInfo& info);
  Napi::Value EvictSoonestExpiring(const Napi::CallbackInfo& info);
  Napi::Value SweepExpired(const Napi::CallbackInfo& info);
  Napi::Value Truncate(const Napi::CallbackInfo& info);
  Napi::Value CountBySet(const Napi::CallbackInfo& info);
  Napi::Value Count(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value Verify(const Napi::CallbackInfo& info);
  // The sliced image (index_image.cc): writeImage(fd, offset, pieceDelayUs[, pauseAtBytes]) -> Promise of
  // { crcs: Buffer, bytes }; imageProgress() -> [pieces done, pieces] or null;
  // loadImageFile(fd, offset, bytes, crcs, kept, devices, stride, live) -> Promise of
  // { refusal, damaged, stale }.
  Napi::Value WriteImage(const Napi::CallbackInfo& info);
  Napi::Value ImageProgress(const Napi::CallbackInfo& info);
  Napi::Value LoadImageFile(const Napi::CallbackInfo& info);

  PrimaryIndex& OpenIndex(Napi::Env env);
  uint32_t DigestFromKey(Napi::Env env);
  void WriteEntryBlock(size_t block, uint32_t id, uint32_t data_bytes);
  void WritePrevious(const PreviousEntry& previous);
  uint32_t CopyData(Napi::Env env, uint32_t id);

  // What lookupBatch found absent, for writeBatch to insert without a second search
  // (native/batch_write.cc): the batch buffer and index insert epoch of that lookup, and per
  // slot whether it was the first slot of its digest and absent, with a copy of that digest
  // (the buffer is JS's, so writeBatch checks the digest is still the one looked up).
  const uint8_t* absent_batch_ = nullptr;
  uint32_t absent_count_ = 0;
  uint64_t absent_epoch_ = 0;
  std::vector<uint8_t> absent_;
  std::vector<uint8_t> absent_digests_;

  std::unique_ptr<PrimaryIndex> index_;
  Napi::Reference<Napi::Buffer<uint8_t>> exchange_reference_;
  uint8_t* exchange_ = nullptr;
  size_t data_capacity_ = 0;
  // The digest the last read() found absent, and the index's insert epoch then: an upsert of
  // that digest before anything else was inserted links it in without searching again.
  uint8_t read_absent_digest_[kDigestBytes] = {};
  uint64_t read_absent_epoch_ = 0;
};

}  // namespace shoal
