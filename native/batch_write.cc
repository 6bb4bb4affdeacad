// The batched write path of PrimaryIndex (lookupBatch, writeBatch): many puts cross into
// native code twice per batch instead of twice per record. The batch buffer's layout is in
// exchange_layout.h and docs/native-boundary.md; the design (which entries JS sends through
// it, how write blocks are placed) in docs/storage.md, "Batched writes".
//
// JS builds the buffer, but nothing in it is trusted: every slot is checked against the
// buffer's length, the layout's limits and the blocks it names before anything is changed.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "exchange_layout.h"
#include "primary_index.h"
#include "ripemd160.h"
#include "storage_format.h"

namespace shoal {

namespace {

using namespace exchange;

[[noreturn]] void BatchRangeError(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, "shoal: PrimaryIndex." + message);
}

uint8_t* BatchBufferArg(const Napi::CallbackInfo& info, const char* method, size_t* length) {
  if (info.Length() < 2 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(info.Env(), std::string("shoal: PrimaryIndex.") + method + "(batch, count, ...): batch must be a Buffer");
  }
  Napi::Uint8Array array = info[0].As<Napi::Uint8Array>();
  *length = array.ByteLength();
  return array.Data();
}

uint32_t BatchCountArg(const Napi::CallbackInfo& info, const char* method, size_t length) {
  if (!info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("shoal: PrimaryIndex.") + method + "(): count must be a number");
  double value = info[1].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= kBatchSlotsMax) || std::floor(value) != value) {
    BatchRangeError(info.Env(), std::string(method) + "(): count must be an integer in [0, " + std::to_string(kBatchSlotsMax) + "]");
  }
  uint32_t count = static_cast<uint32_t>(value);
  if (uint64_t{count} * kBatchSlotBytes > length) {
    BatchRangeError(info.Env(), std::string(method) + "(): " + std::to_string(count) + " slots do not fit the batch buffer");
  }
  return count;
}

// The variable bytes of a slot: set name, key, payload. Checks the lengths and bounds; returns
// nullptr when the slot is well formed, else what is wrong with it (no string is built per
// slot: this runs for every slot of every call).
const char* CheckSlotBytes(const uint8_t* slot, size_t length) {
  uint8_t key_type = slot[kBatchKeyType];
  uint32_t set_length = slot[kBatchSetLength];
  uint32_t key_length = LoadU16(slot, kBatchKeyLength);
  uint64_t end = uint64_t{LoadU32(slot, kBatchVariableOffset)} + set_length + key_length + LoadU32(slot, kBatchPayloadLength);
  if (key_type != 0 && key_type != kKeyTypeInteger && key_type != kKeyTypeString && key_type != kKeyTypeBytes) {
    return "key type must be 0 (digest given), 1, 3 or 4";
  }
  if (set_length > kSetMaxBytes) return "set name length must be at most 63";
  if (key_length > kKeyMaxBytes) return "key length must be at most 4096";
  if (key_type == kKeyTypeInteger && key_length != 8) return "an integer key is 8 bytes";
  if (key_type == 0 && key_length != 0) return "a digest-addressed slot has no key bytes";
  if (end > length) return "its set, key and payload run past the end of the batch buffer";
  return nullptr;
}

const uint8_t* SlotVariable(const uint8_t* batch, const uint8_t* slot) { return batch + LoadU32(slot, kBatchVariableOffset); }

// How many slots ahead the lookups and upserts prefetch: a slot's bucket, then (once that is in
// cache) the first entry of its chain, then the second; each stage a DRAM miss apart.
constexpr uint32_t kBucketAhead = 16, kChainAhead = 8, kChainSecondAhead = 4;

// The record digest (ComputeRecordDigest) of every slot that has a key. A record's message (set
// name, key type byte, key) of up to one block, as most are, is digested with seven others
// in the lanes of one vector compression; a longer one alone.
void ComputeBatchDigests(uint8_t* batch, uint32_t count) {
  uint8_t blocks[kRipemd160Lanes][64] = {};
  uint8_t digests[kRipemd160Lanes][kRipemd160Bytes];
  uint8_t* lane_digest[kRipemd160Lanes];
  size_t lanes = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t* slot = batch + size_t{i} * kBatchSlotBytes;
    uint8_t key_type = slot[kBatchKeyType];
    if (key_type == 0) continue;
    const uint8_t* variable = SlotVariable(batch, slot);
    size_t set_length = slot[kBatchSetLength];
    size_t key_length = LoadU16(slot, kBatchKeyLength);
    size_t length = set_length + 1 + key_length;
    if (length > kRipemd160OneBlockMaxBytes) {
      ComputeRecordDigest(variable, set_length, key_type, variable + set_length, key_length, slot + kBatchDigest);
      continue;
    }
    uint8_t* block = blocks[lanes];
    std::memcpy(block, variable, set_length);
    block[set_length] = key_type;
    std::memcpy(block + set_length + 1, variable + set_length, key_length);
    Ripemd160PadOneBlock(block, length);
    lane_digest[lanes++] = slot + kBatchDigest;
    if (lanes < kRipemd160Lanes && i + 1 < count) continue;
    Ripemd160OneBlockLanes(blocks, digests);  // lanes past `lanes` hold stale blocks: ignored
    for (size_t lane = 0; lane < lanes; ++lane) std::memcpy(lane_digest[lane], digests[lane], kRipemd160Bytes);
    lanes = 0;
  }
  if (lanes > 0) {
    Ripemd160OneBlockLanes(blocks, digests);
    for (size_t lane = 0; lane < lanes; ++lane) std::memcpy(lane_digest[lane], digests[lane], kRipemd160Bytes);
  }
}

}  // namespace

// lookupBatch(batch, count): computes the digest of every slot (unless given), marks later
// slots whose digest an earlier slot has (kBatchDuplicate), and looks each digest up: status,
// the current entry's fields, its payload length, its partition id. Changes nothing.
Napi::Value PrimaryIndexWrap::LookupBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t length;
  uint8_t* batch = BatchBufferArg(info, "lookupBatch", &length);
  uint32_t count = BatchCountArg(info, "lookupBatch", length);
  PrimaryIndex& index = OpenIndex(env);
  for (uint32_t i = 0; i < count; ++i) {
    const char* problem = CheckSlotBytes(batch + size_t{i} * kBatchSlotBytes, length);
    if (problem != nullptr) BatchRangeError(env, "lookupBatch(): slot " + std::to_string(i) + ": " + problem);
  }
  // Digests, and a small open-addressing table of the slots seen, to find repeated digests.
  ComputeBatchDigests(batch, count);
  uint32_t table_size = 16;
  while (table_size < 2 * count) table_size <<= 1;
  std::vector<uint32_t> table(table_size, 0);
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t* slot = batch + size_t{i} * kBatchSlotBytes;
    StoreU32(slot, kBatchStatus, kBatchAbsent);
    for (uint32_t probe = LoadU32(slot, 4) & (table_size - 1);; probe = (probe + 1) & (table_size - 1)) {
      uint32_t seen = table[probe];
      if (seen == 0) {
        table[probe] = i + 1;
        break;
      }
      if (std::memcmp(batch + size_t{seen - 1} * kBatchSlotBytes, slot, kDigestBytes) == 0) {
        StoreU32(slot, kBatchStatus, kBatchDuplicate);
        break;
      }
    }
  }
  // Lookups, with the bucket and chain of later slots prefetched so their DRAM misses overlap.
  // The first slot of each digest found absent is remembered (with its digest) so that
  // writeBatch can insert it without searching again.
  absent_batch_ = batch;
  absent_count_ = count;
  absent_epoch_ = index.insert_epoch();
  absent_.resize(count);
  absent_digests_.resize(size_t{count} * kDigestBytes);
  for (uint32_t i = 0; i < count && i < kBucketAhead; ++i) index.PrefetchBucket(batch + size_t{i} * kBatchSlotBytes);
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t* slot = batch + size_t{i} * kBatchSlotBytes;
    if (i + kBucketAhead < count) index.PrefetchBucket(slot + kBucketAhead * kBatchSlotBytes);
    if (i + kChainAhead < count) index.PrefetchChain(slot + kChainAhead * kBatchSlotBytes);
    if (i + kChainSecondAhead < count) index.PrefetchChainSecond(slot + kChainSecondAhead * kBatchSlotBytes);
    StoreU32(slot, kBatchPartitionId, PartitionOf(slot + kBatchDigest));
    uint32_t id = index.Find(slot + kBatchDigest);
    absent_[i] = id == 0 && LoadU32(slot, kBatchStatus) == kBatchAbsent;
    if (absent_[i]) std::memcpy(&absent_digests_[size_t{i} * kDigestBytes], slot + kBatchDigest, kDigestBytes);
    if (id == 0) continue;
    if (LoadU32(slot, kBatchStatus) == kBatchAbsent) StoreU32(slot, kBatchStatus, kBatchExists);
    EntryFields fields = index.Fields(id);
    StoreU32(slot, kBatchGeneration, fields.generation);
    StoreU32(slot, kBatchVoidTime, fields.void_time);
    StoreU32(slot, kBatchSetId, fields.set_id);
    StoreU32(slot, kBatchFlags, fields.flags);
    StoreF64(slot, kBatchLastUpdateMs, static_cast<double>(fields.last_update_ms));
    StoreU32(slot, kBatchLocationLow, static_cast<uint32_t>(fields.location));
    StoreU32(slot, kBatchLocationHigh, static_cast<uint32_t>(fields.location >> 32));
    StoreU32(slot, kBatchDataLength, index.DataBytes(id));
  }
  return Napi::Number::New(env, count);
}

namespace {

struct BlockView {
  uint8_t* data = nullptr;
  size_t length = 0;
  uint64_t sequence = 0;
};

constexpr const char* kRecordDoesNotFit = "the record does not fit its block at offset ";

// Checks one slot that writeBatch is asked to write; nullptr when it is fine (kRecordDoesNotFit
// wants the offset after it).
const char* CheckWriteSlot(const uint8_t* slot, size_t length, const std::vector<BlockView>& blocks, bool store_data) {
  const char* problem = CheckSlotBytes(slot, length);
  if (problem != nullptr) return problem;
  uint32_t action = LoadU32(slot, kBatchAction);
  if (action != kBatchWriteIndex && action != kBatchWriteRecord) return "action must be 0, 1 or 2";
  if (LoadU32(slot, kBatchSetId) > kMaxSetId) return "set id must be at most 4095";
  if (LoadU32(slot, kBatchFlags) > kMaxFlags) return "flags must be at most 15";
  double last_update_ms = LoadF64(slot, kBatchLastUpdateMs);
  if (!(last_update_ms >= 0 && last_update_ms <= static_cast<double>(kMaxLastUpdateMs))) return "last-update ms must be in [0, 2^48 - 2]";
  if (store_data && LoadU32(slot, kBatchPayloadLength) > kArenaMaxPayloadBytes) return "the payload is too large for the index arena";
  if (action != kBatchWriteRecord) return nullptr;
  uint32_t block = LoadU32(slot, kBatchBlock);
  uint32_t offset = LoadU32(slot, kBatchBlockOffset);
  uint32_t record_flags = LoadU32(slot, kBatchRecordFlags);
  if (block >= blocks.size()) return "block number is not in the blocks array";
  if (record_flags != 0 && record_flags != storage::kRecordFlagPayloadKey) return "record flags must be 0 or 4 (payload holds the key)";
  uint64_t total = storage::kRecordHeaderBytes + slot[kBatchSetLength] + uint64_t{LoadU32(slot, kBatchPayloadLength)} + storage::kRecordTrailerBytes;
  uint64_t padded = (total + storage::kRecordAlignBytes - 1) & ~uint64_t{storage::kRecordAlignBytes - 1};
  if (offset % storage::kRecordAlignBytes != 0 || offset < storage::kBlockHeaderBytes || offset + padded > blocks[block].length) {
    return kRecordDoesNotFit;
  }
  return nullptr;
}

}  // namespace

// writeBatch(batch, count, blocks, storeData): for every slot whose action is not kBatchSkip,
// formats its storage record into blocks[block] at its offset (kBatchWriteRecord, the block's
// sequence read from its header), then upserts its index entry (fields and location from the
// slot; the payload too with storeData) and reports the previous entry. Every slot is checked
// before anything is written, and all records are formatted before the first index change, so
// a bad slot changes nothing and a failing upsert (OUT_OF_SPACE) leaves no hole in a block;
// kBatchDone marks the slots that reached the index. Returns how many did.
Napi::Value PrimaryIndexWrap::WriteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t length;
  uint8_t* batch = BatchBufferArg(info, "writeBatch", &length);
  uint32_t count = BatchCountArg(info, "writeBatch", length);
  if (info.Length() < 4 || !info[2].IsArray() || !info[3].IsBoolean()) {
    throw Napi::TypeError::New(env, "shoal: PrimaryIndex.writeBatch(batch, count, blocks, storeData): blocks must be an array of Buffers, storeData a boolean");
  }
  Napi::Array block_array = info[2].As<Napi::Array>();
  bool store_data = info[3].As<Napi::Boolean>().Value();
  PrimaryIndex& index = OpenIndex(env);
  if (store_data && !index.with_data()) throw Napi::TypeError::New(env, "shoal: PrimaryIndex.writeBatch(storeData): this index was opened without withData");
  std::vector<BlockView> blocks(block_array.Length());
  for (uint32_t b = 0; b < blocks.size(); ++b) {
    Napi::Value value = block_array.Get(b);
    if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      throw Napi::TypeError::New(env, "shoal: PrimaryIndex.writeBatch(): blocks[" + std::to_string(b) + "] must be a Buffer");
    }
    Napi::Uint8Array array = value.As<Napi::Uint8Array>();
    blocks[b].data = array.Data();
    blocks[b].length = array.ByteLength();
    if (blocks[b].length < storage::kBlockHeaderBytes || storage::Load<uint32_t>(blocks[b].data + storage::kBlockMagicAt) != storage::kBlockMagic) {
      BatchRangeError(env, "writeBatch(): blocks[" + std::to_string(b) + "] is not a write block (no block header)");
    }
    blocks[b].sequence = storage::Load<uint64_t>(blocks[b].data + storage::kBlockSequenceAt);
  }
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* slot = batch + size_t{i} * kBatchSlotBytes;
    StoreU32(batch + size_t{i} * kBatchSlotBytes, kBatchDone, 0);
    if (LoadU32(slot, kBatchAction) == kBatchSkip) continue;
    const char* problem = CheckWriteSlot(slot, length, blocks, store_data);
    if (problem != nullptr) {
      std::string detail = problem == kRecordDoesNotFit ? std::to_string(LoadU32(slot, kBatchBlockOffset)) : "";
      BatchRangeError(env, "writeBatch(): slot " + std::to_string(i) + ": " + problem + detail);
    }
  }
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* slot = batch + size_t{i} * kBatchSlotBytes;
    if (LoadU32(slot, kBatchAction) != kBatchWriteRecord) continue;
    storage::RecordParts parts;
    const uint8_t* variable = SlotVariable(batch, slot);
    parts.digest = slot + kBatchDigest;
    parts.generation = LoadU32(slot, kBatchGeneration);
    parts.void_time = LoadU32(slot, kBatchVoidTime);
    parts.last_update_ms = LoadF64(slot, kBatchLastUpdateMs);
    parts.flags = static_cast<uint16_t>(LoadU32(slot, kBatchRecordFlags));
    parts.set = variable;
    parts.set_length = slot[kBatchSetLength];
    parts.payload = variable + slot[kBatchSetLength] + LoadU16(slot, kBatchKeyLength);
    parts.payload_length = LoadU32(slot, kBatchPayloadLength);
    const BlockView& block = blocks[LoadU32(slot, kBatchBlock)];
    int64_t padded = storage::EncodeRecordParts(parts, block.data, block.length, LoadU32(slot, kBatchBlockOffset), block.sequence);
    SHOAL_ASSERT(padded > 0, "batch record of slot %u did not fit after its check (%lld)", i, static_cast<long long>(padded));
  }
  // Slots the last lookupBatch of this buffer found absent are inserted without a search, as
  // long as nothing but those inserts has been added to the index since (so an upsert here
  // that inserts, or any insert between the calls, ends the shortcut) and the slot still holds
  // the digest looked up. Slots at or past `hinted` have no hint.
  uint64_t expected_epoch = absent_epoch_;
  uint32_t hinted = absent_batch_ == batch && index.insert_epoch() == expected_epoch ? std::min(count, absent_count_) : 0;
  absent_batch_ = nullptr;
  auto probably_absent = [&](uint32_t i) { return i < hinted && absent_[i]; };  // enough for a prefetch
  auto absent = [&](uint32_t i) {
    return i < hinted && absent_[i] && std::memcmp(batch + size_t{i} * kBatchSlotBytes + kBatchDigest, &absent_digests_[size_t{i} * kDigestBytes], kDigestBytes) == 0;
  };
  uint32_t written = 0;
  try {
    for (uint32_t i = 0; i < count && i < kBucketAhead; ++i) index.PrefetchBucket(batch + size_t{i} * kBatchSlotBytes);
    PreviousEntry previous;
    for (uint32_t i = 0; i < count; ++i) {
      uint8_t* slot = batch + size_t{i} * kBatchSlotBytes;
      if (i + kBucketAhead < count) index.PrefetchBucket(slot + kBucketAhead * kBatchSlotBytes);
      // An absent slot's insert reads only its bucket head, not its chain.
      if (i + kChainAhead < count && !probably_absent(i + kChainAhead)) index.PrefetchChain(slot + kChainAhead * kBatchSlotBytes);
      if (i + kChainSecondAhead < count && !probably_absent(i + kChainSecondAhead)) {
        index.PrefetchChainSecond(slot + kChainSecondAhead * kBatchSlotBytes);
      }
      index.PrefetchSplit(kChainAhead);
      if (LoadU32(slot, kBatchAction) == kBatchSkip) continue;
      EntryFields fields;
      fields.generation = LoadU32(slot, kBatchGeneration);
      fields.void_time = LoadU32(slot, kBatchVoidTime);
      fields.set_id = LoadU32(slot, kBatchSetId);
      fields.flags = LoadU32(slot, kBatchFlags);
      fields.last_update_ms = static_cast<uint64_t>(LoadF64(slot, kBatchLastUpdateMs));
      fields.location = LoadU32(slot, kBatchLocationLow) | (uint64_t{LoadU32(slot, kBatchLocationHigh)} << 32);
      const uint8_t* payload = SlotVariable(batch, slot) + slot[kBatchSetLength] + LoadU16(slot, kBatchKeyLength);
      uint32_t payload_length = store_data ? LoadU32(slot, kBatchPayloadLength) : 0;
      DataAction action = store_data ? DataAction::kStore : DataAction::kNone;
      uint32_t id;
      if (absent(i) && index.insert_epoch() == expected_epoch) {
        id = index.InsertAbsent(slot + kBatchDigest, fields, action, payload, payload_length);
        expected_epoch = index.insert_epoch();
        previous = PreviousEntry{};
      } else {
        id = index.Upsert(slot + kBatchDigest, fields, action, payload, payload_length, &previous);
      }
      StoreU32(slot, kBatchPreviousExisted, previous.existed ? 1 : 0);
      StoreU32(slot, kBatchPreviousLow, static_cast<uint32_t>(previous.fields.location));
      StoreU32(slot, kBatchPreviousHigh, static_cast<uint32_t>(previous.fields.location >> 32));
      StoreU32(slot, kBatchPreviousDataLength, previous.data_bytes);
      StoreU32(slot, kBatchEntryId, id);
      StoreU32(slot, kBatchDone, 1);
      ++written;
    }
  } catch (const NativeError& error) {
    Napi::Error js_error = Napi::Error::New(env, std::string("shoal: PrimaryIndex.writeBatch(): ") + error.what());
    if (!error.code().empty()) js_error.Set("code", Napi::String::New(env, error.code()));
    throw js_error;
  }
  return Napi::Number::New(env, written);
}

}  // namespace shoal
