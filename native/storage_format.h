// The on-device record and block format (docs/storage-format.md is the byte-by-byte
// description; this header and lib/storage/format.ts mirror it and change only together).
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shoal {

// Defined in crc32c.cc: CRC-32C (Castagnoli), seed = the CRC of the preceding bytes (0 at start).
uint32_t Crc32c(const uint8_t* data, size_t length, uint32_t seed);

namespace storage {

constexpr uint32_t kIoAlignBytes = 4096;
constexpr uint32_t kRecordAlignBytes = 16;

constexpr uint32_t kBlockMagic = 0x4B424853;   // bytes "SHBK"
constexpr uint32_t kRecordMagic = 0x43524853;  // bytes "SHRC"
constexpr uint32_t kFormatVersion = 1;

// Block header (64 bytes at the start of every write block).
constexpr uint32_t kBlockHeaderBytes = 64;
constexpr uint32_t kBlockMagicAt = 0;        // u32
constexpr uint32_t kBlockVersionAt = 4;      // u16
constexpr uint32_t kBlockFlagsAt = 6;        // u16
constexpr uint32_t kBlockSequenceAt = 8;     // u64
constexpr uint32_t kBlockSignatureAt = 16;   // u64
constexpr uint32_t kBlockDeviceAt = 24;      // u16
constexpr uint32_t kBlockIndexAt = 28;       // u32
constexpr uint32_t kBlockCrcAt = 60;         // u32: CRC-32C of bytes [0, 60)

// Record header (64 bytes), then set name, key, payload, a CRC-32C of everything before it,
// then zero padding to a multiple of 16 bytes.
constexpr uint32_t kRecordHeaderBytes = 64;
constexpr uint32_t kRecordMagicAt = 0;       // u32
constexpr uint32_t kRecordLengthAt = 4;      // u32: header + set + key + payload + 4 (CRC)
constexpr uint32_t kRecordSequenceAt = 8;    // u64: the sequence of the block it was written in
constexpr uint32_t kRecordDigestAt = 16;     // 20 bytes
constexpr uint32_t kRecordGenerationAt = 36; // u32
constexpr uint32_t kRecordVoidTimeAt = 40;   // u32
constexpr uint32_t kRecordFlagsAt = 44;      // u16
constexpr uint32_t kRecordSetLengthAt = 46;  // u8
constexpr uint32_t kRecordKeyTypeAt = 47;    // u8
constexpr uint32_t kRecordLastUpdateAt = 48; // u64, Unix ms
constexpr uint32_t kRecordKeyLengthAt = 56;  // u16
constexpr uint32_t kRecordPayloadLengthAt = 60;  // u32
constexpr uint32_t kRecordTrailerBytes = 4;
constexpr uint32_t kRecordMinBytes = kRecordHeaderBytes + kRecordTrailerBytes;

constexpr uint16_t kRecordFlagTombstone = 1;
constexpr uint16_t kRecordFlagHasKey = 2;       // the key is stored in the record after the set name
constexpr uint16_t kRecordFlagPayloadKey = 4;   // the payload holds the user key (index flag FLAG_HAS_KEY)

constexpr uint32_t kMaxSetNameBytes = 63;
constexpr uint32_t kMaxKeyBytes = 4096;

inline uint32_t AlignUp(uint32_t value, uint32_t alignment) { return (value + alignment - 1) & ~(alignment - 1); }
inline uint64_t AlignUp64(uint64_t value, uint64_t alignment) { return (value + alignment - 1) & ~(alignment - 1); }

template <typename T>
inline T Load(const uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(T));
  return value;
}
template <typename T>
inline void Store(uint8_t* at, T value) {
  std::memcpy(at, &value, sizeof(T));
}

enum class RecordCheck { kValid, kNoRecord, kCorrupt };

// Checks the record at `at` (at most `available` bytes readable). With `expected_sequence` != 0,
// a record written under another block sequence is kNoRecord (stale data from an earlier use
// of the block). kCorrupt: the header looks like a record of this block but the CRC fails.
RecordCheck CheckRecord(const uint8_t* at, size_t available, uint64_t expected_sequence, uint32_t* length);

// Checks a block header; returns its sequence, or 0 when it is not a valid block of `signature`.
uint64_t CheckBlockHeader(const uint8_t* at, uint64_t signature);

// The pieces of one record, wherever they come from (the exchange for a single put, a batch
// buffer for batchPut).
struct RecordParts {
  const uint8_t* digest = nullptr;  // 20 bytes
  uint32_t generation = 0;
  uint32_t void_time = 0;
  double last_update_ms = 0;
  uint16_t flags = 0;
  const uint8_t* set = nullptr;
  uint32_t set_length = 0;
  uint8_t key_type = 0;
  const uint8_t* key = nullptr;
  uint32_t key_length = 0;  // 0 unless flags has kRecordFlagHasKey
  const uint8_t* payload = nullptr;
  uint32_t payload_length = 0;
};

// Formats one record at block[offset] (16-byte aligned) under block `sequence`, with its CRC
// and zero padding. Returns the padded size, -1 when it does not fit before block_length, -2
// when the set or key is too long.
int64_t EncodeRecordParts(const RecordParts& parts, uint8_t* block, size_t block_length, uint32_t offset, uint64_t sequence);

void InitStorageFormat(Napi::Env env, Napi::Object exports);

}  // namespace storage
}  // namespace shoal
