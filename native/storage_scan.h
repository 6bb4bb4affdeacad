// StorageScanner: the cold-start scan. On a worker thread it reads a device's block headers
// (in parallel), then every valid block with large sequential aligned reads, checks every
// record's CRC and keeps the newest copy of each digest (the copy written last: block
// sequence, then position in the block) across all devices of a namespace. finish() hands JS the winners in one
// buffer (layout in lib/storage/cold-start.ts and docs/storage.md).
#pragma once

#include <napi.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace shoal {

class StorageScanner : public Napi::ObjectWrap<StorageScanner> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit StorageScanner(const Napi::CallbackInfo& info);

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
    uint64_t sequence;
    uint64_t origin_sequence;  // tombstones: the sequence in their payload
    uint32_t copies;
    uint32_t device;
    uint32_t block;
    uint32_t offset;
    uint32_t padded_length;
    uint64_t variable_offset;  // set, key (and payload with withPayload) in variable_
  };

  struct TruncateMarker {
    bool all_sets;
    std::string set;
    uint64_t before_ms;
  };

  // Worker-thread side (one scan at a time; JS must await each scanDevice before the next).
  // Sizes the candidate table for about `records` more records (no rehash while scanning).
  void Reserve(size_t records);
  void ParseBlock(const uint8_t* block, size_t block_bytes, uint32_t device, uint32_t block_index, uint64_t sequence);

  uint64_t signature_ = 0;
  uint32_t now_seconds_ = 0;
  bool with_payload_ = false;
  size_t chunk_bytes_ = 8 << 20;
  int header_threads_ = 16;
  std::vector<TruncateMarker> truncates_;
  std::atomic<uint64_t> bytes_scanned_{0};
  std::atomic<bool> busy_{false};
  uint64_t records_seen_ = 0;
  uint64_t corrupt_ = 0;
  uint64_t blocks_valid_ = 0;

 private:
  Napi::Value ScanDevice(const Napi::CallbackInfo& info);
  Napi::Value Progress(const Napi::CallbackInfo& info);
  Napi::Value Finish(const Napi::CallbackInfo& info);
  uint64_t* Slot(const uint8_t* digest);
  void Grow();

  std::vector<Candidate> candidates_;
  // Open addressing: (hash tag << 32) | (candidate index + 1); 0 = empty. The tag (high 32
  // bits of the digest hash) avoids touching a candidate on most mismatches.
  std::vector<uint64_t> table_;
  std::vector<uint8_t> variable_;
};

}  // namespace shoal
