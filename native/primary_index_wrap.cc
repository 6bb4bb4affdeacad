// PrimaryIndexWrap: the JS face of the primary index (primary_index.cc is the engine). Methods
// take and return numbers; records cross through the exchange buffer (docs/native-boundary.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "bound_method.h"
#include "exchange_layout.h"
#include "primary_index.h"
#include "primary_index_layout.h"
#include "ripemd160.h"

namespace shoal {

// ---------------------------------------------------------------------------------------------
// PrimaryIndexWrap: the JS class. Methods take and return numbers; records cross through the
// exchange buffer (docs/native-boundary.md).
// ---------------------------------------------------------------------------------------------

namespace {

using namespace exchange;

constexpr uint32_t kScanMaxSlotsPerCall = 1 << 16;  // bounds one scan() call's work

Napi::Error ToJsError(Napi::Env env, const NativeError& error) {
  Napi::Error js_error = error.kind() == NativeError::Kind::kTypeError    ? Napi::TypeError::New(env, error.what())
                         : error.kind() == NativeError::Kind::kRangeError ? Napi::RangeError::New(env, error.what())
                                                                            : Napi::Error::New(env, error.what());
  if (!error.code().empty()) js_error.Set("code", Napi::String::New(env, error.code()));
  return js_error;
}

[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message) {
  throw Napi::RangeError::New(env, "shoal: PrimaryIndex." + message);
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, "shoal: PrimaryIndex." + message);
}

// A number argument (one N-API call on the hot path). NaN is refused.
double ArgNumber(const Napi::CallbackInfo& info, size_t index, const char* what) {
  double value;
  if (index >= info.Length() || napi_get_value_double(info.Env(), info[index], &value) != napi_ok) {
    ThrowType(info.Env(), std::string(what) + " must be a number");
  }
  if (std::isnan(value)) ThrowRange(info.Env(), std::string(what) + " must not be NaN");
  return value;
}

uint32_t ArgUint32(const Napi::CallbackInfo& info, size_t index, const char* what) {
  double value = ArgNumber(info, index, what);
  if (!(value >= 0 && value <= 4294967295.0) || std::floor(value) != value) {
    ThrowRange(info.Env(), std::string(what) + " must be an integer in [0, 2^32)");
  }
  return static_cast<uint32_t>(value);
}

// A set id filter: -1 for every set, else 0..4095.
int64_t ArgSetFilter(const Napi::CallbackInfo& info, size_t index, const char* what) {
  double value = ArgNumber(info, index, what);
  if (!(value >= -1 && value <= kMaxSetId) || std::floor(value) != value) {
    ThrowRange(info.Env(), std::string(what) + " must be -1 (all sets) or a set id in [0, 4095]");
  }
  return static_cast<int64_t>(value);
}

// A data-bytes target: negative means "ignore bytes, remove by count".
int64_t ArgTargetBytes(const Napi::CallbackInfo& info, size_t index, const char* what) {
  double value = ArgNumber(info, index, what);
  if (value < 0) return -1;
  if (value >= 9.0e18) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(value);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t index, const char* what, bool missing_value) {
  if (index >= info.Length() || info[index].IsUndefined()) return missing_value;
  if (!info[index].IsBoolean()) ThrowType(info.Env(), std::string(what) + " must be a boolean");
  return info[index].As<Napi::Boolean>().Value();
}

// Runs `body`, turning a NativeError into the matching JS error.
template <typename Body>
Napi::Value Guard(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const NativeError& error) {
    throw ToJsError(env, error);
  }
}

}  // namespace

void PrimaryIndexWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor = DefineClass(
      env, "PrimaryIndex",
      {
          InstanceMethod<&PrimaryIndexWrap::Open>("open"),
          InstanceMethod<&PrimaryIndexWrap::Header>("header"),
          InstanceMethod<&PrimaryIndexWrap::SetSignature>("setSignature"),
          InstanceMethod<&PrimaryIndexWrap::MarkClean>("markClean"),
          InstanceMethod<&PrimaryIndexWrap::WriteMeta>("writeMeta"),
          InstanceMethod<&PrimaryIndexWrap::ReadMeta>("readMeta"),
          InstanceMethod<&PrimaryIndexWrap::ComputeDigest>("computeDigest"),
          InstanceMethod<&PrimaryIndexWrap::Read>("read"),
          InstanceMethod<&PrimaryIndexWrap::ReadEntry>("readEntry"),
          InstanceMethod<&PrimaryIndexWrap::Upsert>("upsert"),
          InstanceMethod<&PrimaryIndexWrap::InsertWinners>("insertWinners"),
          InstanceMethod<&PrimaryIndexWrap::LookupBatch>("lookupBatch"),
          InstanceMethod<&PrimaryIndexWrap::WriteBatch>("writeBatch"),
          InstanceMethod<&PrimaryIndexWrap::Remove>("remove"),
          InstanceMethod<&PrimaryIndexWrap::RemoveEntry>("removeEntry"),
          InstanceMethod<&PrimaryIndexWrap::Scan>("scan"),
          InstanceMethod<&PrimaryIndexWrap::EvictLru>("evictLru"),
          InstanceMethod<&PrimaryIndexWrap::EvictSoonestExpiring>("evictSoonestExpiring"),
          InstanceMethod<&PrimaryIndexWrap::SweepExpired>("sweepExpired"),
          InstanceMethod<&PrimaryIndexWrap::Truncate>("truncate"),
          InstanceMethod<&PrimaryIndexWrap::CountBySet>("countBySet"),
          InstanceMethod<&PrimaryIndexWrap::Count>("count"),
          InstanceMethod<&PrimaryIndexWrap::Stats>("stats"),
          InstanceMethod<&PrimaryIndexWrap::Close>("close"),
          InstanceMethod<&PrimaryIndexWrap::Verify>("verify"),
          InstanceMethod<&PrimaryIndexWrap::WriteImage>("writeImage"),
          InstanceMethod<&PrimaryIndexWrap::ImageProgress>("imageProgress"),
          InstanceMethod<&PrimaryIndexWrap::LoadImageFile>("loadImageFile"),
      });
  exports.Set("PrimaryIndex", constructor);
  exports.Set("unlinkIndexSegments", Napi::Function::New(
                                         env,
                                         [](const Napi::CallbackInfo& info) -> Napi::Value {
                                           Napi::Env env = info.Env();
                                           if (info.Length() < 1 || !info[0].IsString()) {
                                             throw Napi::TypeError::New(env, "unlinkIndexSegments(name): name must be a string");
                                           }
                                           std::string name = info[0].As<Napi::String>().Utf8Value();
                                           std::string problem = ValidateSegmentBaseName(name);
                                           if (!problem.empty()) throw Napi::TypeError::New(env, "unlinkIndexSegments(name): " + problem);
                                           return Guard(env, [&] {
                                             return Napi::Number::New(env, static_cast<double>(MemorySegment::UnlinkAll(name)));
                                           });
                                         },
                                         "unlinkIndexSegments"));
}

PrimaryIndexWrap::PrimaryIndexWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PrimaryIndexWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) ThrowType(env, "constructor(options): options must be an object");
  Napi::Object options = info[0].As<Napi::Object>();
  Napi::Value name = options.Get("name");
  if (!name.IsString()) ThrowType(env, "constructor: options.name must be a string");
  std::string base_name = name.As<Napi::String>().Utf8Value();
  std::string problem = ValidateSegmentBaseName(base_name);
  if (!problem.empty()) ThrowType(env, "constructor: options.name: " + problem);
  Napi::Value shared = options.Get("shared");
  Napi::Value with_data = options.Get("withData");
  if (!shared.IsBoolean()) ThrowType(env, "constructor: options.shared must be a boolean");
  if (!with_data.IsBoolean()) ThrowType(env, "constructor: options.withData must be a boolean");
  Napi::Value exchange = options.Get("exchange");
  if (!exchange.IsBuffer()) ThrowType(env, "constructor: options.exchange must be a Buffer");
  Napi::Buffer<uint8_t> buffer = exchange.As<Napi::Buffer<uint8_t>>();
  if (buffer.Length() < kHeaderBytes + kScanRecordBytes) {
    ThrowRange(env, "constructor: options.exchange must be at least " + std::to_string(kHeaderBytes + kScanRecordBytes) +
                        " bytes (EXCHANGE_HEADER_BYTES + 64)");
  }
  if (reinterpret_cast<uintptr_t>(buffer.Data()) % 8 != 0) {
    ThrowRange(env, "constructor: options.exchange must be 8-byte aligned (use Buffer.alloc, not a pooled slice)");
  }
  exchange_ = buffer.Data();
  data_capacity_ = buffer.Length() - kHeaderBytes;
  exchange_reference_ = Napi::Persistent(buffer);
  // fileMode: the exact mode of the shared segments it creates (owner read/write at least).
  uint32_t mode = kDefaultSegmentMode;
  Napi::Value file_mode = options.Get("fileMode");
  if (!file_mode.IsUndefined()) {
    if (!file_mode.IsNumber()) ThrowType(env, "constructor: options.fileMode must be a number");
    double value = file_mode.As<Napi::Number>().DoubleValue();
    if (!(value >= 0 && value <= 0777) || std::floor(value) != value || (static_cast<uint32_t>(value) & 0600) != 0600) {
      ThrowRange(env, "constructor: options.fileMode must be a file mode from 0600 to 0777 with owner read and write");
    }
    mode = static_cast<uint32_t>(value);
  }
  index_ = std::make_unique<PrimaryIndex>(base_name, shared.As<Napi::Boolean>().Value(), with_data.As<Napi::Boolean>().Value(), mode);
  // Every single-record operation calls these: bound, they skip napi_unwrap (bound_method.h).
  Napi::Object self = info.This().As<Napi::Object>();
  BindMethod<PrimaryIndexWrap, &PrimaryIndexWrap::Read>(env, self, this, "read");
  BindMethod<PrimaryIndexWrap, &PrimaryIndexWrap::Upsert>(env, self, this, "upsert");
}

// The finalizer: unmaps (the index destructor), never unlinks shared segments.
PrimaryIndexWrap::~PrimaryIndexWrap() = default;

PrimaryIndex& PrimaryIndexWrap::OpenIndex(Napi::Env env) {
  if (!index_->is_open()) {
    Napi::Error error = Napi::Error::New(env, "shoal: the primary index is not open");
    error.Set("code", Napi::String::New(env, "NOT_OPEN"));
    throw error;
  }
  return *index_;
}

Napi::Value PrimaryIndexWrap::Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool attach = ArgBool(info, 0, "open(attach): attach", false);
  if (index_->is_open()) throw Napi::Error::New(env, "shoal: PrimaryIndex.open(): the index is already open");
  return Guard(env, [&] { return Napi::Number::New(env, index_->Open(attach)); });
}

Napi::Value PrimaryIndexWrap::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool drop = ArgBool(info, 0, "close(drop): drop", false);
  return Guard(env, [&] {
    index_->Close(drop);
    return env.Undefined();
  });
}

Napi::Value PrimaryIndexWrap::Header(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const IndexHeader* header = OpenIndex(env).header();
  Napi::Object result = Napi::Object::New(env);
  result.Set("formatVersion", Napi::Number::New(env, header->format_version));
  result.Set("clean", Napi::Boolean::New(env, header->clean != 0));
  result.Set("signatureHigh", Napi::Number::New(env, header->signature_high));
  result.Set("signatureLow", Napi::Number::New(env, header->signature_low));
  result.Set("entries", Napi::Number::New(env, static_cast<double>(header->entry_count)));
  result.Set("createdMs", Napi::Number::New(env, header->created_ms));
  return result;
}

Napi::Value PrimaryIndexWrap::SetSignature(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t high = ArgUint32(info, 0, "setSignature(high, low): high");
  uint32_t low = ArgUint32(info, 1, "setSignature(high, low): low");
  IndexHeader* header = OpenIndex(env).header();
  header->signature_high = high;
  header->signature_low = low;
  return env.Undefined();
}

Napi::Value PrimaryIndexWrap::MarkClean(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) ThrowType(env, "markClean(clean): clean must be a boolean");
  OpenIndex(env).header()->clean = info[0].As<Napi::Boolean>().Value() ? 1 : 0;
  return env.Undefined();
}

Napi::Value PrimaryIndexWrap::WriteMeta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowType(env, "writeMeta(meta): meta must be a Buffer or Uint8Array");
  }
  Napi::Uint8Array meta = info[0].As<Napi::Uint8Array>();
  if (meta.ByteLength() > kMetaCapacityBytes) {
    ThrowRange(env, "writeMeta(meta): meta is " + std::to_string(meta.ByteLength()) + " bytes; at most " +
                        std::to_string(kMetaCapacityBytes) + " fit");
  }
  PrimaryIndex& index = OpenIndex(env);
  std::memcpy(index.meta(), meta.Data(), meta.ByteLength());
  index.header()->meta_bytes = static_cast<uint32_t>(meta.ByteLength());
  return env.Undefined();
}

Napi::Value PrimaryIndexWrap::ReadMeta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PrimaryIndex& index = OpenIndex(env);
  return Napi::Buffer<uint8_t>::Copy(env, index.meta(), index.header()->meta_bytes);
}

// Validates the key fields of the exchange and writes their digest; returns the partition id.
uint32_t PrimaryIndexWrap::DigestFromKey(Napi::Env env) {
  uint8_t key_type = exchange_[kKeyType];
  uint32_t set_bytes = LoadU16(exchange_, kSetLength);
  uint32_t key_bytes = LoadU32(exchange_, kKeyLength);
  if (key_type != kKeyTypeInteger && key_type != kKeyTypeString && key_type != kKeyTypeBytes) {
    ThrowRange(env, "computeDigest(): key type must be 1 (integer), 3 (string) or 4 (bytes), not " + std::to_string(key_type));
  }
  if (set_bytes > kSetMaxBytes) ThrowRange(env, "computeDigest(): set name length must be at most 63 bytes");
  if (key_bytes > kKeyMaxBytes) ThrowRange(env, "computeDigest(): key length must be at most 4096 bytes");
  if (key_type == kKeyTypeInteger && key_bytes != 8) ThrowRange(env, "computeDigest(): an integer key is 8 bytes");
  ComputeRecordDigest(exchange_ + kSet, set_bytes, key_type, exchange_ + kKey, key_bytes, exchange_ + kDigest);
  return PartitionOf(exchange_ + kDigest);
}

Napi::Value PrimaryIndexWrap::ComputeDigest(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), DigestFromKey(info.Env()));
}

void PrimaryIndexWrap::WriteEntryBlock(size_t block, uint32_t id, uint32_t data_bytes) {
  const IndexEntry& entry = index_->Entry(id);
  uint8_t* out = exchange_ + block;
  StoreU32(out, kEntryGeneration, entry.generation);
  StoreU32(out, kEntryVoidTime, entry.void_time);
  StoreU32(out, kEntrySetId, entry.set_id_and_flags & 0x0FFF);
  StoreU32(out, kEntryFlags, entry.set_id_and_flags >> 12);
  StoreF64(out, kEntryLastUpdateMs, static_cast<double>(LastUpdateMs(&entry)));
  StoreU32(out, kEntryLocationLow, static_cast<uint32_t>(entry.location));
  StoreU32(out, kEntryLocationHigh, static_cast<uint32_t>(entry.location >> 32));
  StoreU32(out, kEntryDataLength, data_bytes);
  StoreU32(out, kEntryId, id);
  StoreU32(out, kEntryPartitionId, PartitionOf(entry.digest));
}

void PrimaryIndexWrap::WritePrevious(const PreviousEntry& previous) {
  uint8_t* out = exchange_ + kPrevious;
  const EntryFields& fields = previous.fields;
  StoreU32(out, kEntryGeneration, fields.generation);
  StoreU32(out, kEntryVoidTime, fields.void_time);
  StoreU32(out, kEntrySetId, fields.set_id);
  StoreU32(out, kEntryFlags, fields.flags);
  StoreF64(out, kEntryLastUpdateMs, static_cast<double>(fields.last_update_ms));
  StoreU32(out, kEntryLocationLow, static_cast<uint32_t>(fields.location));
  StoreU32(out, kEntryLocationHigh, static_cast<uint32_t>(fields.location >> 32));
  StoreU32(out, kEntryDataLength, previous.data_bytes);
  StoreU32(out, kEntryId, previous.entry_id);
  StoreU32(out, kEntryPartitionId, PartitionOf(exchange_ + kDigest));
  StoreU32(out, kEntryExisted, previous.existed ? 1 : 0);
}

// Copies the payload of `id` into DATA; returns its length.
uint32_t PrimaryIndexWrap::CopyData(Napi::Env env, uint32_t id) {
  uint32_t data_bytes = index_->DataBytes(id);
  if (data_bytes > data_capacity_) {
    ThrowRange(env, "read(): the payload (" + std::to_string(data_bytes) + " bytes) does not fit the exchange's DATA (" +
                        std::to_string(data_capacity_) + " bytes)");
  }
  if (data_bytes > 0) std::memcpy(exchange_ + kData, index_->Data(id), data_bytes);
  return data_bytes;
}

Napi::Value PrimaryIndexWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t options = ArgUint32(info, 0, "read(options): options");
  if (options & ~kReadOptionMask) ThrowRange(env, "read(options): unknown option bits");
  PrimaryIndex& index = OpenIndex(env);
  if (options & kReadFromKey) DigestFromKey(env);
  uint32_t id = index.Find(exchange_ + kDigest);
  if (id == 0) {
    StoreU32(exchange_ + kEntry, kEntryPartitionId, PartitionOf(exchange_ + kDigest));
    std::memcpy(read_absent_digest_, exchange_ + kDigest, kDigestBytes);
    read_absent_epoch_ = index.insert_epoch();
    return Napi::Number::New(env, -1);
  }
  uint32_t data_bytes = (options & kReadCopyData) ? CopyData(env, id) : index.DataBytes(id);
  if (options & kReadTouchLru) index.Touch(id);
  WriteEntryBlock(kEntry, id, data_bytes);
  return Napi::Number::New(env, data_bytes);
}

uint32_t ArgEntryId(const Napi::CallbackInfo& info, const PrimaryIndex& index, const char* what) {
  uint32_t id = ArgUint32(info, 0, what);
  if (id == 0 || id >= index.end_entry_id()) {
    ThrowRange(info.Env(), std::string(what) + " " + std::to_string(id) + " is out of range [1, " +
                               std::to_string(index.end_entry_id()) + ")");
  }
  return id;
}

Napi::Value PrimaryIndexWrap::ReadEntry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PrimaryIndex& index = OpenIndex(env);
  uint32_t id = ArgEntryId(info, index, "readEntry(entryId, options): entryId");
  uint32_t options = ArgUint32(info, 1, "readEntry(entryId, options): options");
  if (options & ~(kReadCopyData | kReadTouchLru)) ThrowRange(env, "readEntry(entryId, options): unknown option bits");
  if (!index.IsLive(id)) return Napi::Number::New(env, -1);
  uint32_t data_bytes = (options & kReadCopyData) ? CopyData(env, id) : index.DataBytes(id);
  if (options & kReadTouchLru) index.Touch(id);
  std::memcpy(exchange_ + kDigest, index.Entry(id).digest, kDigestBytes);
  WriteEntryBlock(kEntry, id, data_bytes);
  return Napi::Number::New(env, data_bytes);
}

Napi::Value PrimaryIndexWrap::Upsert(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t options = ArgUint32(info, 0, "upsert(options): options");
  if (options > (kUpsertStoreData | kUpsertKeepData) || options == (kUpsertStoreData | kUpsertKeepData)) {
    ThrowRange(env, "upsert(options): options must be 0, UPSERT_STORE_DATA or UPSERT_KEEP_DATA");
  }
  PrimaryIndex& index = OpenIndex(env);
  const uint8_t* in = exchange_ + kEntry;
  EntryFields fields;
  fields.generation = LoadU32(in, kEntryGeneration);
  fields.void_time = LoadU32(in, kEntryVoidTime);
  fields.set_id = LoadU32(in, kEntrySetId);
  fields.flags = LoadU32(in, kEntryFlags);
  double last_update_ms = LoadF64(in, kEntryLastUpdateMs);
  fields.location = LoadU32(in, kEntryLocationLow) | (uint64_t{LoadU32(in, kEntryLocationHigh)} << 32);
  if (fields.set_id > kMaxSetId) ThrowRange(env, "upsert(): ENTRY set id must be at most 4095");
  if (fields.flags > kMaxFlags) ThrowRange(env, "upsert(): ENTRY flags must be at most 15");
  if (!(last_update_ms >= 0 && last_update_ms <= static_cast<double>(kMaxLastUpdateMs))) {
    ThrowRange(env, "upsert(): ENTRY last-update ms must be in [0, 2^48 - 2]");
  }
  fields.last_update_ms = static_cast<uint64_t>(last_update_ms);
  DataAction action = DataAction::kNone;
  uint32_t data_bytes = 0;
  if (options & kUpsertStoreData) {
    if (!index.with_data()) ThrowType(env, "upsert(UPSERT_STORE_DATA): this index was opened without withData");
    data_bytes = LoadU32(in, kEntryDataLength);
    if (data_bytes > data_capacity_ || data_bytes > kArenaMaxPayloadBytes) {
      ThrowRange(env, "upsert(): ENTRY data length " + std::to_string(data_bytes) + " exceeds the DATA capacity (" +
                          std::to_string(std::min<size_t>(data_capacity_, kArenaMaxPayloadBytes)) + " bytes)");
    }
    action = DataAction::kStore;
  } else if (options & kUpsertKeepData) {
    action = DataAction::kKeep;
  }
  return Guard(env, [&] {
    PreviousEntry previous;
    // A put of a new record: read() just found this digest absent and nothing was inserted
    // since (the insert epoch), so the chain need not be searched again.
    bool absent = action != DataAction::kKeep && index.insert_epoch() == read_absent_epoch_ &&
                  std::memcmp(read_absent_digest_, exchange_ + kDigest, kDigestBytes) == 0;
    uint32_t id = absent ? index.InsertAbsent(exchange_ + kDigest, fields, action, exchange_ + kData, data_bytes)
                         : index.Upsert(exchange_ + kDigest, fields, action, exchange_ + kData, data_bytes, &previous);
    WritePrevious(previous);
    uint8_t* out = exchange_ + kEntry;
    StoreU32(out, kEntryId, id);
    StoreU32(out, kEntryPartitionId, PartitionOf(exchange_ + kDigest));
    StoreU32(out, kEntryDataLength, index.DataBytes(id));
    return Napi::Number::New(env, id);
  });
}

// insertWinners(winners, variable, count, setIds, storeData): the cold-start batch insert.
// winners holds `count` 96-byte scanner winners (lib/storage/cold-start.ts): digest(20) |
// 20 u32 generation | 24 u32 void time | 28 u32 flags (1 tombstone, 4 expired shadow, 8 the
// payload holds the key) | 32 f64 last-update ms | 56 u32 offset in variable | 60 u8 set
// length | 62 u16 key length | 64 u32 payload length | 80 u32 set index | 84 u32 location low |
// 88 u32 location high. setIds maps a set index to the namespace's set id. With storeData
// the payload (in variable after the set name and key) is stored too. Tombstones and expired
// shadows are skipped. Returns how many records were inserted.
Napi::Value PrimaryIndexWrap::InsertWinners(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  constexpr size_t kWinnerBytes = 96;
  if (info.Length() < 5 || !info[0].IsBuffer() || !info[1].IsBuffer() || !info[3].IsTypedArray() || !info[4].IsBoolean()) {
    ThrowType(env, "insertWinners(winners, variable, count, setIds, storeData): bad arguments");
  }
  Napi::Buffer<uint8_t> winners = info[0].As<Napi::Buffer<uint8_t>>();
  Napi::Buffer<uint8_t> variable = info[1].As<Napi::Buffer<uint8_t>>();
  uint32_t count = ArgUint32(info, 2, "insertWinners(): count");
  Napi::TypedArray typed = info[3].As<Napi::TypedArray>();
  if (typed.TypedArrayType() != napi_uint32_array) ThrowType(env, "insertWinners(): setIds must be a Uint32Array");
  Napi::Uint32Array set_ids = typed.As<Napi::Uint32Array>();
  bool store_data = info[4].As<Napi::Boolean>().Value();
  if (static_cast<size_t>(count) * kWinnerBytes > winners.Length()) ThrowRange(env, "insertWinners(): count exceeds the winners buffer");
  PrimaryIndex& index = OpenIndex(env);
  if (store_data && !index.with_data()) ThrowType(env, "insertWinners(storeData): this index was opened without withData");
  const uint8_t* base = winners.Data();
  const uint8_t* var = variable.Data();
  size_t var_length = variable.Length();
  return Guard(env, [&] {
    uint32_t inserted = 0;
    PreviousEntry previous;
    // Each insert is a few dependent DRAM misses (bucket, chain, the split bucket's chain):
    // prefetch them some records ahead so the misses of several inserts overlap.
    constexpr uint32_t kBucketAhead = 16, kChainAhead = 8;
    for (uint32_t i = 0; i < count && i < kBucketAhead; ++i) index.PrefetchBucket(base + static_cast<size_t>(i) * kWinnerBytes);
    for (uint32_t i = 0; i < count; ++i) {
      const uint8_t* w = base + static_cast<size_t>(i) * kWinnerBytes;
      if (i + kBucketAhead < count) index.PrefetchBucket(w + kBucketAhead * kWinnerBytes);
      if (i + kChainAhead < count) index.PrefetchChain(w + kChainAhead * kWinnerBytes);
      index.PrefetchSplit(kChainAhead);
      uint32_t flags = LoadU32(w, 28);
      if (flags & (1 | 4)) continue;
      EntryFields fields;
      fields.generation = LoadU32(w, 20);
      fields.void_time = LoadU32(w, 24);
      uint32_t set_index = LoadU32(w, 80);
      if (set_index >= set_ids.ElementLength() || set_ids[set_index] > kMaxSetId) {
        throw NativeError(NativeError::Kind::kRangeError, "", "insertWinners(): a winner's set index has no set id");
      }
      fields.set_id = set_ids[set_index];
      fields.flags = (flags & 8) ? 2 : 0;  // FLAG_HAS_KEY
      double last_update_ms = LoadF64(w, 32);
      if (!(last_update_ms >= 0 && last_update_ms <= static_cast<double>(kMaxLastUpdateMs))) {
        throw NativeError(NativeError::Kind::kRangeError, "", "insertWinners(): a winner's last-update ms is out of range");
      }
      fields.last_update_ms = static_cast<uint64_t>(last_update_ms);
      fields.location = LoadU32(w, 84) | (uint64_t{LoadU32(w, 88)} << 32);
      DataAction action = DataAction::kNone;
      const uint8_t* data = nullptr;
      uint32_t data_bytes = 0;
      if (store_data) {
        size_t start = static_cast<size_t>(LoadU32(w, 56)) + w[60] + (w[62] | (uint32_t{w[63]} << 8));
        data_bytes = LoadU32(w, 64);
        if (start + data_bytes > var_length || data_bytes > kArenaMaxPayloadBytes) {
          throw NativeError(NativeError::Kind::kRangeError, "", "insertWinners(): a winner's payload is out of range");
        }
        data = var + start;
        action = DataAction::kStore;
      }
      index.Upsert(w, fields, action, data, data_bytes, &previous);
      ++inserted;
    }
    return Napi::Number::New(env, inserted);
  });
}

Napi::Value PrimaryIndexWrap::Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PreviousEntry previous;
  bool removed = OpenIndex(env).Remove(exchange_ + kDigest, &previous);
  WritePrevious(previous);
  return Napi::Number::New(env, removed ? 1 : 0);
}

Napi::Value PrimaryIndexWrap::RemoveEntry(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PrimaryIndex& index = OpenIndex(env);
  uint32_t id = ArgEntryId(info, index, "removeEntry(entryId): entryId");
  uint32_t partition = index.IsLive(id) ? PartitionOf(index.Entry(id).digest) : 0;
  PreviousEntry previous;
  bool removed = index.RemoveEntry(id, &previous);
  WritePrevious(previous);
  StoreU32(exchange_ + kPrevious, kEntryPartitionId, partition);  // the removed entry's, not the exchange digest's
  return Napi::Number::New(env, removed ? 1 : 0);
}

Napi::Value PrimaryIndexWrap::Scan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t cursor = ArgUint32(info, 0, "scan(cursor, maxRecords, setId, usePartitionFilter): cursor");
  uint32_t max_records = ArgUint32(info, 1, "scan(cursor, maxRecords, setId, usePartitionFilter): maxRecords");
  int64_t set_id = ArgSetFilter(info, 2, "scan(cursor, maxRecords, setId, usePartitionFilter): setId");
  bool use_filter = ArgBool(info, 3, "scan(cursor, maxRecords, setId, usePartitionFilter): usePartitionFilter", false);
  if (max_records == 0) ThrowRange(env, "scan(): maxRecords must be at least 1");
  PrimaryIndex& index = OpenIndex(env);
  max_records = static_cast<uint32_t>(std::min<uint64_t>(max_records, data_capacity_ / kScanRecordBytes));
  const uint8_t* filter = exchange_ + kPartitionFilter;
  uint32_t end = index.end_entry_id();
  uint32_t id = std::max<uint32_t>(cursor, 1);
  uint64_t stop = std::min<uint64_t>(end, uint64_t{id} + kScanMaxSlotsPerCall);
  uint32_t written = 0;
  for (; id < stop && written < max_records; ++id) {
    if (!index.IsLive(id)) continue;
    const IndexEntry& entry = index.Entry(id);
    if (set_id >= 0 && (entry.set_id_and_flags & 0x0FFF) != set_id) continue;
    uint32_t partition = PartitionOf(entry.digest);
    if (use_filter && !(filter[partition >> 3] & (1u << (partition & 7)))) continue;
    uint8_t* out = exchange_ + kData + size_t{written} * kScanRecordBytes;
    std::memcpy(out + kScanDigest, entry.digest, kDigestBytes);
    StoreU32(out, kScanGeneration, entry.generation);
    StoreU32(out, kScanVoidTime, entry.void_time);
    StoreU32(out, kScanSetId, entry.set_id_and_flags & 0x0FFF);
    StoreU32(out, kScanFlags, entry.set_id_and_flags >> 12);
    StoreU32(out, kScanEntryId, id);
    StoreF64(out, kScanLastUpdateMs, static_cast<double>(LastUpdateMs(&entry)));
    StoreU32(out, kScanLocationLow, static_cast<uint32_t>(entry.location));
    StoreU32(out, kScanLocationHigh, static_cast<uint32_t>(entry.location >> 32));
    StoreU32(out, kScanDataLength, index.DataBytes(id));
    StoreU32(out, kScanPartitionId, partition);
    ++written;
  }
  StoreU32(exchange_ + kEntry, kEntryId, id >= end ? 0 : id);
  return Napi::Number::New(env, written);
}

// A bulk removal's optional last argument: a Uint32Array that receives the (low, high)
// location of every entry it removes, two elements each; a call stops early (as when its freed
// bytes would pass 2^32 - 1) rather than remove more entries than the array can report.
// Sets the index's sink for the life of this object.
class RemovedLocationsArgument {
 public:
  RemovedLocationsArgument(const Napi::CallbackInfo& info, size_t at, PrimaryIndex& index, const char* what) : index_(index) {
    if (info.Length() <= at || info[at].IsUndefined()) return;
    if (!info[at].IsTypedArray() || info[at].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array) {
      ThrowType(info.Env(), std::string(what) + ": locations must be a Uint32Array");
    }
    Napi::Uint32Array array = info[at].As<Napi::Uint32Array>();
    index_.SetRemovedLocations(array.Data(), array.ElementLength() / 2);
  }
  ~RemovedLocationsArgument() { index_.SetRemovedLocations(nullptr, 0); }

 private:
  PrimaryIndex& index_;
};

// Bulk removals report their freed payload bytes in ENTRY.dataLength (the accounting rule).
static Napi::Value BulkResult(Napi::Env env, uint8_t* exchange, uint32_t removed, uint64_t freed_bytes) {
  SHOAL_ASSERT(freed_bytes <= kMaxFreedBytes, "freed %llu", static_cast<unsigned long long>(freed_bytes));
  StoreU32(exchange + kEntry, kEntryDataLength, static_cast<uint32_t>(freed_bytes));
  return Napi::Number::New(env, removed);
}

Napi::Value PrimaryIndexWrap::EvictLru(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t target = ArgTargetBytes(info, 0, "evictLru(targetDataBytes, maxRemovals): targetDataBytes");
  uint32_t max_removals = ArgUint32(info, 1, "evictLru(targetDataBytes, maxRemovals): maxRemovals");
  PrimaryIndex& index = OpenIndex(env);
  if (!index.with_data()) ThrowType(env, "evictLru(): this index was opened without withData, so it keeps no LRU list");
  uint64_t freed = 0;
  uint32_t removed = index.EvictLru(target, max_removals, &freed);
  return BulkResult(env, exchange_, removed, freed);
}

Napi::Value PrimaryIndexWrap::EvictSoonestExpiring(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* what = "evictSoonestExpiring(targetDataBytes, maxRemovals, nowSeconds)";
  int64_t target = ArgTargetBytes(info, 0, (std::string(what) + ": targetDataBytes").c_str());
  uint32_t max_removals = ArgUint32(info, 1, (std::string(what) + ": maxRemovals").c_str());
  uint32_t now = ArgUint32(info, 2, (std::string(what) + ": nowSeconds").c_str());
  PrimaryIndex& index = OpenIndex(env);
  RemovedLocationsArgument locations(info, 3, index, what);
  uint64_t freed = 0;
  uint32_t removed = index.EvictSoonestExpiring(target, max_removals, now, &freed);
  return BulkResult(env, exchange_, removed, freed);
}

Napi::Value PrimaryIndexWrap::SweepExpired(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t now = ArgUint32(info, 0, "sweepExpired(nowSeconds, cursor, maxSlots): nowSeconds");
  uint32_t cursor = ArgUint32(info, 1, "sweepExpired(nowSeconds, cursor, maxSlots): cursor");
  uint32_t max_slots = ArgUint32(info, 2, "sweepExpired(nowSeconds, cursor, maxSlots): maxSlots");
  if (max_slots == 0) ThrowRange(env, "sweepExpired(): maxSlots must be at least 1");
  PrimaryIndex& index = OpenIndex(env);
  RemovedLocationsArgument locations(info, 3, index, "sweepExpired(nowSeconds, cursor, maxSlots, locations)");
  uint64_t freed = 0;
  uint32_t next = 0;
  uint32_t removed = index.SweepExpired(now, cursor, max_slots, &next, &freed);
  StoreU32(exchange_ + kEntry, kEntryId, next);
  return BulkResult(env, exchange_, removed, freed);
}

Napi::Value PrimaryIndexWrap::Truncate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t set_id = ArgSetFilter(info, 0, "truncate(setId, beforeMs, cursor, maxSlots): setId");
  double before_ms = ArgNumber(info, 1, "truncate(setId, beforeMs, cursor, maxSlots): beforeMs");
  uint32_t cursor = ArgUint32(info, 2, "truncate(setId, beforeMs, cursor, maxSlots): cursor");
  uint32_t max_slots = ArgUint32(info, 3, "truncate(setId, beforeMs, cursor, maxSlots): maxSlots");
  if (max_slots == 0) ThrowRange(env, "truncate(): maxSlots must be at least 1");
  PrimaryIndex& index = OpenIndex(env);
  RemovedLocationsArgument locations(info, 4, index, "truncate(setId, beforeMs, cursor, maxSlots, locations)");
  uint64_t freed = 0;
  uint32_t next = 0;
  uint32_t removed = index.Truncate(set_id, before_ms, cursor, max_slots, &next, &freed);
  StoreU32(exchange_ + kEntry, kEntryId, next);
  return BulkResult(env, exchange_, removed, freed);
}

Napi::Value PrimaryIndexWrap::CountBySet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* usage = "countBySet(counts, cursor, maxSlots)";
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
      info[0].As<Napi::Float64Array>().ElementLength() < kMaxSetId + 1) {
    ThrowType(env, std::string(usage) + ": counts must be a Float64Array of " + std::to_string(kMaxSetId + 1) + " elements");
  }
  uint32_t cursor = ArgUint32(info, 1, "countBySet(counts, cursor, maxSlots): cursor");
  uint32_t max_slots = ArgUint32(info, 2, "countBySet(counts, cursor, maxSlots): maxSlots");
  if (max_slots == 0) ThrowRange(env, "countBySet(): maxSlots must be at least 1");
  uint32_t next = 0;
  OpenIndex(env).CountBySet(info[0].As<Napi::Float64Array>().Data(), cursor, max_slots, &next);
  return Napi::Number::New(env, next);
}

Napi::Value PrimaryIndexWrap::Count(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::Number::New(env, static_cast<double>(OpenIndex(env).entry_count()));
}

Napi::Value PrimaryIndexWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  PrimaryIndex& index = OpenIndex(env);
  double slots = index.end_entry_id();
  Napi::Object result = Napi::Object::New(env);
  result.Set("entries", Napi::Number::New(env, static_cast<double>(index.entry_count())));
  result.Set("entryBytes", Napi::Number::New(env, slots * sizeof(IndexEntry)));
  result.Set("bucketCount", Napi::Number::New(env, static_cast<double>(index.bucket_count())));
  result.Set("bucketBytes", Napi::Number::New(env, static_cast<double>(index.bucket_count()) * sizeof(uint32_t)));
  result.Set("sideTableBytes", Napi::Number::New(env, index.with_data() ? slots * sizeof(SideEntry) : 0));
  result.Set("dataBytes", Napi::Number::New(env, static_cast<double>(index.data_bytes())));
  result.Set("arenaBytes", Napi::Number::New(env, static_cast<double>(index.arena_bytes())));
  return result;
}

Napi::Value PrimaryIndexWrap::Verify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, OpenIndex(env).Verify());
}

}  // namespace shoal
