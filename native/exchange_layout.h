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
inline void StoreF64(uint8_t* base, size_t offset, double value) {
  std::memcpy(base + offset, &value, sizeof value);
}

}  // namespace shoal::exchange
