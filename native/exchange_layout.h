// The exchange buffer's byte layout: the contract in docs/native-boundary.md, mirrored in
// lib/native/exchange.ts. Change the three together.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shoal::exchange {

constexpr size_t kDigest = 0;
constexpr size_t kDigestFieldBytes = 20;
constexpr size_t kKeyType = 20;
constexpr size_t kSetLength = 22;
constexpr size_t kKeyLength = 24;
constexpr size_t kSet = 32;
constexpr size_t kSetMaxBytes = 63;
constexpr size_t kKey = 96;
constexpr size_t kKeyMaxBytes = 4096;
constexpr size_t kEntry = 4224;
constexpr size_t kPrevious = 4288;
constexpr size_t kPartitionFilter = 4352;
constexpr size_t kPartitionFilterBytes = 512;
constexpr size_t kData = 4864;
constexpr size_t kHeaderBytes = kData;

static_assert(kSet + 64 == kKey, "set name field is 64 bytes");
static_assert(kKey + kKeyMaxBytes + 32 == kEntry, "ENTRY follows the key field and its pad");
static_assert(kEntry + 64 == kPrevious && kPrevious + 64 == kPartitionFilter, "64-byte blocks");
static_assert(kPartitionFilter + kPartitionFilterBytes == kData, "DATA follows the filter");

// Field offsets inside ENTRY and PREVIOUS.
constexpr size_t kEntryGeneration = 0;
constexpr size_t kEntryVoidTime = 4;
constexpr size_t kEntrySetId = 8;
constexpr size_t kEntryFlags = 12;
constexpr size_t kEntryLastUpdateMs = 16;
constexpr size_t kEntryLocationLow = 24;
constexpr size_t kEntryLocationHigh = 28;
constexpr size_t kEntryDataLength = 32;
constexpr size_t kEntryId = 36;
constexpr size_t kEntryPartitionId = 40;
constexpr size_t kEntryExisted = 44;

// Scan output records in DATA.
constexpr size_t kScanRecordBytes = 64;
constexpr size_t kScanDigest = 0;
constexpr size_t kScanGeneration = 20;
constexpr size_t kScanVoidTime = 24;
constexpr size_t kScanSetId = 28;
constexpr size_t kScanFlags = 32;
constexpr size_t kScanEntryId = 36;
constexpr size_t kScanLastUpdateMs = 40;
constexpr size_t kScanLocationLow = 48;
constexpr size_t kScanLocationHigh = 52;
constexpr size_t kScanDataLength = 56;
constexpr size_t kScanPartitionId = 60;

// Key types, as Aerospike's clients hash them.
constexpr uint8_t kKeyTypeInteger = 1;
constexpr uint8_t kKeyTypeString = 3;
constexpr uint8_t kKeyTypeBytes = 4;

// read() / readEntry() option bits.
constexpr uint32_t kReadFromKey = 1;
constexpr uint32_t kReadCopyData = 2;
constexpr uint32_t kReadTouchLru = 4;
constexpr uint32_t kReadOptionMask = 7;

// upsert() option bits.
constexpr uint32_t kUpsertStoreData = 1;
constexpr uint32_t kUpsertKeepData = 2;

// The batch buffer of lookupBatch()/writeBatch() (docs/native-boundary.md, "The batch
// buffer"): `count` slots of kBatchSlotBytes, then variable bytes that slots point into.
constexpr size_t kBatchSlotBytes = 128;
constexpr size_t kBatchDigest = 0;            // 20 bytes: in when key type 0, else out
constexpr size_t kBatchKeyType = 20;          // u8: 0 digest given, 1 integer, 3 string, 4 bytes
constexpr size_t kBatchSetLength = 21;        // u8, at most 63
constexpr size_t kBatchKeyLength = 22;        // u16, at most 4096
constexpr size_t kBatchVariableOffset = 24;   // u32: set bytes, key bytes, payload, from buffer start
constexpr size_t kBatchPayloadLength = 28;    // u32
constexpr size_t kBatchStatus = 32;           // u32 out of lookup (kBatchAbsent...)
constexpr size_t kBatchDataLength = 36;       // u32 out of lookup: the current in-memory payload length
constexpr size_t kBatchGeneration = 40;       // u32: lookup out (current), write in (new)
constexpr size_t kBatchVoidTime = 44;         // u32: same
constexpr size_t kBatchSetId = 48;            // u32: same
constexpr size_t kBatchFlags = 52;            // u32: same (index entry flags)
constexpr size_t kBatchLastUpdateMs = 56;     // f64: same
constexpr size_t kBatchLocationLow = 64;      // u32: same
constexpr size_t kBatchLocationHigh = 68;     // u32: same
constexpr size_t kBatchAction = 72;           // u32 in of write (kBatchSkip...)
constexpr size_t kBatchBlock = 76;            // u32 in: index into the blocks array
constexpr size_t kBatchBlockOffset = 80;      // u32 in: byte offset of the record in that block
constexpr size_t kBatchRecordFlags = 84;      // u32 in: storage record flags (0 or payload-key)
constexpr size_t kBatchPartitionId = 88;      // u32 out of lookup
constexpr size_t kBatchPreviousExisted = 92;  // u32 out of write
constexpr size_t kBatchPreviousLow = 96;      // u32 out of write
constexpr size_t kBatchPreviousHigh = 100;    // u32 out of write
constexpr size_t kBatchPreviousDataLength = 104;  // u32 out of write
constexpr size_t kBatchEntryId = 108;         // u32 out of write
constexpr size_t kBatchDone = 112;            // u32 out of write: 1 once the slot is in the index
constexpr size_t kBatchSlotsMax = 1 << 16;    // slots per call

constexpr uint32_t kBatchAbsent = 0;
constexpr uint32_t kBatchExists = 1;
constexpr uint32_t kBatchDuplicate = 2;  // an earlier slot of this call has the same digest

constexpr uint32_t kBatchSkip = 0;
constexpr uint32_t kBatchWriteIndex = 1;   // index entry only (and payload with storeData)
constexpr uint32_t kBatchWriteRecord = 2;  // storage record into a write block, then the index entry

// Unaligned-safe little-endian accessors (x86-64 and arm64 are little-endian).
inline uint32_t LoadU32(const uint8_t* base, size_t offset) {
  uint32_t value;
  std::memcpy(&value, base + offset, sizeof value);
  return value;
}
inline uint16_t LoadU16(const uint8_t* base, size_t offset) {
  uint16_t value;
  std::memcpy(&value, base + offset, sizeof value);
  return value;
}
inline double LoadF64(const uint8_t* base, size_t offset) {
  double value;
  std::memcpy(&value, base + offset, sizeof value);
  return value;
}
inline void StoreU32(uint8_t* base, size_t offset, uint32_t value) {
  std::memcpy(base + offset, &value, sizeof value);
}
inline void StoreU16(uint8_t* base, size_t offset, uint16_t value) {
  std::memcpy(base + offset, &value, sizeof value);
}
inline void StoreF64(uint8_t* base, size_t offset, double value) {
  std::memcpy(base + offset, &value, sizeof value);
}

}  // namespace shoal::exchange
