// StorageScanner: the cold-start scan. On a worker thread it reads every device's block
// headers (in parallel), orders the valid blocks newest first (block sequence), and reads them
// with large aligned reads, checking every record's CRC. Newest first, the first copy of a
// digest that the scan meets is the copy written last, so it is final at once: live records are
// handed to JS in batches *while the scan goes on* (the JS thread fills the index as the worker
// reads). Tombstones and expired or truncated newest copies wait until the end, when finish()
// hands over those that still hide an older copy (shadows). Layouts: lib/storage/cold-start.ts.
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace shoal {

class StorageScanner : public Napi::ObjectWrap<StorageScanner> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit StorageScanner(const Napi::CallbackInfo& info);

  // A record handed to JS (96 bytes when written out).
  struct Candidate {
    uint8_t digest[20];
    uint32_t generation;
    uint32_t void_time;
    uint16_t flags;
    uint8_t set_length;
    uint8_t key_type;
    uint16_t key_length;
    uint32_t payload_length;
    uint64_t last_update_ms;
    uint64_t origin_sequence;  // tombstones: the sequence in their payload; else the block's
    uint32_t copies;
    uint32_t device;
    uint32_t block;
    uint32_t offset;
    uint32_t padded_length;
    uint32_t set_index;
    uint64_t variable_offset;
    uint8_t kind;  // 0 live, 1 tombstone, 2 expired, 3 truncated
  };

  // Live winners found since the last hand-over, and set names first seen since then.
  struct Batch {
    std::vector<uint8_t> winners;
    std::vector<uint8_t> variable;
    std::vector<std::string> new_set_names;
    uint32_t count = 0;
  };

  struct TruncateMarker {
    bool all_sets;
    std::string set;
    uint64_t before_ms;
  };

  // Worker-thread side (one scan at a time).
  void Reserve(size_t records);
  // Parses one block and takes every record the scan meets first (newest first).
  void ParseBlockNewestFirst(const uint8_t* block, size_t block_bytes, uint32_t device, uint32_t block_index, uint64_t sequence);
  Batch* TakeBatch();
  size_t batch_count() const { return batch_ == nullptr ? 0 : batch_->count; }

  uint64_t signature_ = 0;
  uint32_t now_seconds_ = 0;
  bool with_payload_ = false;
  // Replay after a checkpoint (docs/storage.md, "Restart after a crash"): only blocks of this
  // sequence or newer are read (every header still is), and finish() hands over every pending
  // newest copy, since older copies may lie in the blocks not read.
  uint64_t min_sequence_ = 0;
  size_t chunk_bytes_ = 8 << 20;
  int header_threads_ = 16;
  std::vector<TruncateMarker> truncates_;
  std::atomic<uint64_t> bytes_scanned_{0};
  std::atomic<bool> busy_{false};
  uint64_t records_seen_ = 0;
  uint64_t corrupt_ = 0;
  uint64_t blocks_valid_ = 0;

 private:
  struct Seen {
    uint8_t digest[20];
    uint32_t pending;  // index + 1 into pending_, 0 for a live record already handed over
  };

  Napi::Value Scan(const Napi::CallbackInfo& info);
  Napi::Value Progress(const Napi::CallbackInfo& info);
  Napi::Value Finish(const Napi::CallbackInfo& info);
  uint64_t* Slot(const uint8_t* digest);
  void Grow();
  uint32_t SetIndex(const uint8_t* set, uint8_t length);
  bool Truncated(const uint8_t* set, uint8_t set_length, uint64_t last_update) const;
  void Take(const uint8_t* at, uint32_t total, uint32_t device, uint32_t block_index, uint32_t position, uint64_t sequence);

  std::vector<Seen> seen_;
  // Open addressing: (hash tag << 32) | (seen index + 1); 0 = empty. The tag (high 32 bits of
  // the digest hash) avoids touching an entry on most mismatched probes.
  std::vector<uint64_t> table_;
  std::vector<Candidate> pending_;
  std::vector<uint8_t> pending_variable_;
  std::unordered_map<std::string, uint32_t> set_ids_;
  std::vector<std::string> set_names_;
  size_t set_names_sent_ = 0;
  Batch* batch_ = nullptr;
  std::vector<uint32_t> record_offsets_;
};

}  // namespace shoal
