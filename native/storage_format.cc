// Record encoding for the write path and record/block checks shared by reads, defrag and
// cold start. JS-visible functions take the namespace's exchange buffer (docs/native-boundary.md)
// so that a put crosses into native code once to format its record.
#include "storage_format.h"

#include "bound_method.h"

#include <cmath>

namespace shoal {
namespace storage {

// Exchange buffer offsets (docs/native-boundary.md; lib/native/exchange.ts).
constexpr size_t kExDigest = 0, kExKeyType = 20, kExSetLength = 22, kExKeyLength = 24, kExSet = 32, kExKey = 96;
constexpr size_t kExEntry = 4224, kExData = 4864;
constexpr size_t kEntryGeneration = 0, kEntryVoidTime = 4, kEntryLastUpdate = 16;

RecordCheck CheckRecord(const uint8_t* at, size_t available, uint64_t expected_sequence, uint32_t* length) {
  if (available < kRecordMinBytes) return RecordCheck::kNoRecord;
  if (Load<uint32_t>(at + kRecordMagicAt) != kRecordMagic) return RecordCheck::kNoRecord;
  if (expected_sequence != 0 && Load<uint64_t>(at + kRecordSequenceAt) != expected_sequence) return RecordCheck::kNoRecord;
  uint32_t total = Load<uint32_t>(at + kRecordLengthAt);
  if (total < kRecordMinBytes || total > available) return RecordCheck::kCorrupt;
  uint32_t parts = kRecordHeaderBytes + at[kRecordSetLengthAt] + Load<uint16_t>(at + kRecordKeyLengthAt) +
                   Load<uint32_t>(at + kRecordPayloadLengthAt) + kRecordTrailerBytes;
  if (parts != total) return RecordCheck::kCorrupt;
  uint32_t stored = Load<uint32_t>(at + total - kRecordTrailerBytes);
  if (Crc32c(at, total - kRecordTrailerBytes, 0) != stored) return RecordCheck::kCorrupt;
  *length = total;
  return RecordCheck::kValid;
}

uint64_t CheckBlockHeader(const uint8_t* at, uint64_t signature) {
  if (Load<uint32_t>(at + kBlockMagicAt) != kBlockMagic) return 0;
  if (Load<uint32_t>(at + kBlockCrcAt) != Crc32c(at, kBlockCrcAt, 0)) return 0;
  if (Load<uint16_t>(at + kBlockVersionAt) != kFormatVersion) return 0;
  if (Load<uint64_t>(at + kBlockSignatureAt) != signature) return 0;
  return Load<uint64_t>(at + kBlockSequenceAt);
}

int64_t EncodeRecordParts(const RecordParts& parts, uint8_t* block, size_t block_length, uint32_t offset, uint64_t sequence) {
  if (parts.set_length > kMaxSetNameBytes || parts.key_length > kMaxKeyBytes) return -2;
  uint32_t total = kRecordHeaderBytes + parts.set_length + parts.key_length + parts.payload_length + kRecordTrailerBytes;
  uint32_t padded = AlignUp(total, kRecordAlignBytes);
  if (static_cast<uint64_t>(offset) + padded > block_length) return -1;

  uint8_t* at = block + offset;
  Store<uint32_t>(at + kRecordMagicAt, kRecordMagic);
  Store<uint32_t>(at + kRecordLengthAt, total);
  Store<uint64_t>(at + kRecordSequenceAt, sequence);
  std::memcpy(at + kRecordDigestAt, parts.digest, 20);
  Store<uint32_t>(at + kRecordGenerationAt, parts.generation);
  Store<uint32_t>(at + kRecordVoidTimeAt, parts.void_time);
  Store<uint16_t>(at + kRecordFlagsAt, parts.flags);
  at[kRecordSetLengthAt] = static_cast<uint8_t>(parts.set_length);
  at[kRecordKeyTypeAt] = parts.key_length > 0 ? parts.key_type : 0;
  Store<uint64_t>(at + kRecordLastUpdateAt, parts.last_update_ms > 0 ? static_cast<uint64_t>(parts.last_update_ms) : 0);
  Store<uint16_t>(at + kRecordKeyLengthAt, static_cast<uint16_t>(parts.key_length));
  Store<uint32_t>(at + kRecordPayloadLengthAt, parts.payload_length);
  uint8_t* cursor = at + kRecordHeaderBytes;
  std::memcpy(cursor, parts.set, parts.set_length);
  cursor += parts.set_length;
  std::memcpy(cursor, parts.key, parts.key_length);
  cursor += parts.key_length;
  std::memcpy(cursor, parts.payload, parts.payload_length);
  cursor += parts.payload_length;
  Store<uint32_t>(cursor, Crc32c(at, total - kRecordTrailerBytes, 0));
  std::memset(at + total, 0, padded - total);
  return padded;
}

namespace {

uint8_t* BufferBytes(const Napi::Value& value, size_t* length, const char* what) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(value.Env(), std::string(what) + " must be a Buffer");
  }
  Napi::Uint8Array array = value.As<Napi::Uint8Array>();
  *length = array.ByteLength();
  return array.Data();
}

double NumberArg(const Napi::CallbackInfo& info, size_t index, double min, double max, const char* what) {
  if (index >= info.Length() || !info[index].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= min && value <= max) || std::floor(value) != value) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " is out of range");
  }
  return value;
}

// Formats one record from the exchange at block[offset]; returns its padded size, -1 when it
// does not fit, -2 when the set or key in the exchange is too long.
int64_t EncodeRecord(const uint8_t* exchange, uint8_t* block, size_t block_length, uint32_t offset, uint64_t sequence,
                     uint16_t flags, uint32_t payload_length) {
  RecordParts parts;
  parts.digest = exchange + kExDigest;
  parts.generation = Load<uint32_t>(exchange + kExEntry + kEntryGeneration);
  parts.void_time = Load<uint32_t>(exchange + kExEntry + kEntryVoidTime);
  parts.last_update_ms = Load<double>(exchange + kExEntry + kEntryLastUpdate);
  parts.flags = flags;
  parts.set = exchange + kExSet;
  parts.set_length = Load<uint16_t>(exchange + kExSetLength);
  parts.key_type = exchange[kExKeyType];
  parts.key = exchange + kExKey;
  parts.key_length = (flags & kRecordFlagHasKey) ? Load<uint32_t>(exchange + kExKeyLength) : 0;
  parts.payload = exchange + kExData;
  parts.payload_length = payload_length;
  return EncodeRecordParts(parts, block, block_length, offset, sequence);
}

// storageEncodeRecord(exchange, block, offset, sequence, flags, payloadLength) -> padded bytes
// written at block[offset], or -1 when the record does not fit before the block's end.
// Reads digest, set, key (with flags & HAS_KEY), generation, void time and last-update time
// from the exchange, and the payload from its DATA area.
Napi::Value EncodeRecordJs(const Napi::CallbackInfo& info) {
  size_t exchange_length, block_length;
  const uint8_t* exchange = BufferBytes(info[0], &exchange_length, "exchange");
  uint8_t* block = BufferBytes(info[1], &block_length, "block");
  uint32_t offset = static_cast<uint32_t>(NumberArg(info, 2, 0, block_length, "offset"));
  uint64_t sequence = static_cast<uint64_t>(NumberArg(info, 3, 1, 9007199254740991.0, "sequence"));
  uint16_t flags = static_cast<uint16_t>(NumberArg(info, 4, 0, 7, "flags"));
  uint32_t payload_length = static_cast<uint32_t>(NumberArg(info, 5, 0, 1 << 30, "payloadLength"));
  if (offset % kRecordAlignBytes != 0) throw Napi::RangeError::New(info.Env(), "offset must be 16-byte aligned");
  if (exchange_length < kExData + payload_length) throw Napi::RangeError::New(info.Env(), "payloadLength exceeds the exchange DATA area");

  int64_t padded = EncodeRecord(exchange, block, block_length, offset, sequence, flags, payload_length);
  if (padded == -2) throw Napi::RangeError::New(info.Env(), "set or key too long");
  return Napi::Number::New(info.Env(), static_cast<double>(padded));
}

// RecordEncoder: the write path's per-record native call without per-call buffer arguments.
// new RecordEncoder(exchange) keeps the exchange; setBlock(block, sequence) names the write
// block records go to; encode(offset, flags, payloadLength) formats one record there from the
// exchange, exactly like storageEncodeRecord, and returns its padded size (-1: does not fit).
class RecordEncoder : public Napi::ObjectWrap<RecordEncoder> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    exports.Set("RecordEncoder", DefineClass(env, "RecordEncoder", {
        InstanceMethod<&RecordEncoder::SetBlock>("setBlock"),
        InstanceMethod<&RecordEncoder::Encode>("encode"),
    }));
  }

  explicit RecordEncoder(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RecordEncoder>(info) {
    exchange_ = BufferBytes(info[0], &exchange_length_, "exchange");
    if (exchange_length_ < kExData) throw Napi::RangeError::New(info.Env(), "RecordEncoder: the exchange is too small");
    exchange_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    // Called once per single write: bound, it skips napi_unwrap (bound_method.h).
    BindMethod<RecordEncoder, &RecordEncoder::Encode>(info.Env(), info.This().As<Napi::Object>(), this, "encode");
  }

 private:
  Napi::Value SetBlock(const Napi::CallbackInfo& info) {
    block_ = BufferBytes(info[0], &block_length_, "block");
    sequence_ = static_cast<uint64_t>(NumberArg(info, 1, 1, 9007199254740991.0, "sequence"));
    block_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
    return info.Env().Undefined();
  }

  Napi::Value Encode(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (block_ == nullptr) throw Napi::Error::New(env, "RecordEncoder: setBlock first");
    uint32_t offset = info[0].As<Napi::Number>().Uint32Value();
    uint32_t flags = info[1].As<Napi::Number>().Uint32Value();
    uint32_t payload_length = info[2].As<Napi::Number>().Uint32Value();
    if (offset % kRecordAlignBytes != 0 || offset > block_length_ || flags > 7 || kExData + uint64_t{payload_length} > exchange_length_) {
      throw Napi::RangeError::New(env, "RecordEncoder.encode: offset, flags or payloadLength out of range");
    }
    int64_t padded = EncodeRecord(exchange_, block_, block_length_, offset, sequence_, static_cast<uint16_t>(flags), payload_length);
    if (padded == -2) throw Napi::RangeError::New(env, "set or key too long");
    return Napi::Number::New(env, static_cast<double>(padded));
  }

  uint8_t* exchange_ = nullptr;
  size_t exchange_length_ = 0;
  uint8_t* block_ = nullptr;
  size_t block_length_ = 0;
  uint64_t sequence_ = 0;
  Napi::ObjectReference exchange_ref_, block_ref_;
};

// storageRewriteRecord(source, sourceOffset, block, offset, sequence) -> padded bytes, or -1
// when it does not fit. Copies a valid record under a new block sequence (defrag).
Napi::Value RewriteRecordJs(const Napi::CallbackInfo& info) {
  size_t source_length, block_length;
  const uint8_t* source = BufferBytes(info[0], &source_length, "source");
  uint32_t source_offset = static_cast<uint32_t>(NumberArg(info, 1, 0, source_length, "sourceOffset"));
  uint8_t* block = BufferBytes(info[2], &block_length, "block");
  uint32_t offset = static_cast<uint32_t>(NumberArg(info, 3, 0, block_length, "offset"));
  uint64_t sequence = static_cast<uint64_t>(NumberArg(info, 4, 1, 9007199254740991.0, "sequence"));
  uint32_t total = 0;
  if (CheckRecord(source + source_offset, source_length - source_offset, 0, &total) != RecordCheck::kValid) {
    throw Napi::Error::New(info.Env(), "storageRewriteRecord: the source record is not valid");
  }
  uint32_t padded = AlignUp(total, kRecordAlignBytes);
  if (offset % kRecordAlignBytes != 0) throw Napi::RangeError::New(info.Env(), "offset must be 16-byte aligned");
  if (static_cast<uint64_t>(offset) + padded > block_length) return Napi::Number::New(info.Env(), -1);
  uint8_t* at = block + offset;
  std::memmove(at, source + source_offset, total);
  Store<uint64_t>(at + kRecordSequenceAt, sequence);
  Store<uint32_t>(at + total - kRecordTrailerBytes, Crc32c(at, total - kRecordTrailerBytes, 0));
  std::memset(at + total, 0, padded - total);
  return Napi::Number::New(info.Env(), padded);
}

// storageWriteBlockHeader(block, sequence, signatureHigh, signatureLow, device, blockIndex)
Napi::Value WriteBlockHeaderJs(const Napi::CallbackInfo& info) {
  size_t block_length;
  uint8_t* block = BufferBytes(info[0], &block_length, "block");
  if (block_length < kBlockHeaderBytes) throw Napi::RangeError::New(info.Env(), "block too small");
  uint64_t sequence = static_cast<uint64_t>(NumberArg(info, 1, 1, 9007199254740991.0, "sequence"));
  uint64_t high = static_cast<uint64_t>(NumberArg(info, 2, 0, 4294967295.0, "signatureHigh"));
  uint64_t low = static_cast<uint64_t>(NumberArg(info, 3, 0, 4294967295.0, "signatureLow"));
  uint16_t device = static_cast<uint16_t>(NumberArg(info, 4, 0, 65535, "device"));
  uint32_t index = static_cast<uint32_t>(NumberArg(info, 5, 0, 4294967295.0, "blockIndex"));
  std::memset(block, 0, kBlockHeaderBytes);
  Store<uint32_t>(block + kBlockMagicAt, kBlockMagic);
  Store<uint16_t>(block + kBlockVersionAt, kFormatVersion);
  Store<uint64_t>(block + kBlockSequenceAt, sequence);
  Store<uint64_t>(block + kBlockSignatureAt, (high << 32) | low);
  Store<uint16_t>(block + kBlockDeviceAt, device);
  Store<uint32_t>(block + kBlockIndexAt, index);
  Store<uint32_t>(block + kBlockCrcAt, Crc32c(block, kBlockCrcAt, 0));
  return info.Env().Undefined();
}

// storageParseBlock(block, length, signatureHigh, signatureLow, out: Int32Array) -> count of
// valid records, writing (offset, length) pairs into out; -1 when the block header is not
// valid. out[out.length - 1] receives the number of corrupt records seen.
Napi::Value ParseBlockJs(const Napi::CallbackInfo& info) {
  size_t block_length;
  const uint8_t* block = BufferBytes(info[0], &block_length, "block");
  size_t length = static_cast<size_t>(NumberArg(info, 1, 0, block_length, "length"));
  uint64_t high = static_cast<uint64_t>(NumberArg(info, 2, 0, 4294967295.0, "signatureHigh"));
  uint64_t low = static_cast<uint64_t>(NumberArg(info, 3, 0, 4294967295.0, "signatureLow"));
  if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(info.Env(), "out must be an Int32Array");
  }
  Napi::Int32Array out = info[4].As<Napi::Int32Array>();
  size_t out_pairs = (out.ElementLength() - 1) / 2;
  if (length < kBlockHeaderBytes) return Napi::Number::New(info.Env(), -1);
  uint64_t sequence = CheckBlockHeader(block, (high << 32) | low);
  if (sequence == 0) return Napi::Number::New(info.Env(), -1);
  size_t count = 0;
  int32_t corrupt = 0;
  size_t position = kBlockHeaderBytes;
  while (position + kRecordMinBytes <= length && count < out_pairs) {
    uint32_t total = 0;
    RecordCheck check = CheckRecord(block + position, length - position, sequence, &total);
    if (check == RecordCheck::kValid) {
      out[count * 2] = static_cast<int32_t>(position);
      out[count * 2 + 1] = static_cast<int32_t>(total);
      count++;
      position += AlignUp(total, kRecordAlignBytes);
    } else {
      if (check == RecordCheck::kCorrupt) corrupt++;
      position += kRecordAlignBytes;  // resynchronise on the next record boundary
    }
  }
  out[out.ElementLength() - 1] = corrupt;
  return Napi::Number::New(info.Env(), static_cast<double>(count));
}

// storageCheckRecord(buffer, offset, length) -> record length when valid, -1 when there is no
// record there, -2 when a record there fails its checksum.
Napi::Value CheckRecordJs(const Napi::CallbackInfo& info) {
  size_t buffer_length;
  const uint8_t* buffer = BufferBytes(info[0], &buffer_length, "buffer");
  size_t offset = static_cast<size_t>(NumberArg(info, 1, 0, buffer_length, "offset"));
  size_t length = static_cast<size_t>(NumberArg(info, 2, 0, buffer_length - offset, "length"));
  uint32_t total = 0;
  RecordCheck check = CheckRecord(buffer + offset, length, 0, &total);
  if (check == RecordCheck::kValid) return Napi::Number::New(info.Env(), total);
  return Napi::Number::New(info.Env(), check == RecordCheck::kCorrupt ? -2 : -1);
}

}  // namespace

void InitStorageFormat(Napi::Env env, Napi::Object exports) {
  RecordEncoder::Init(env, exports);
  exports.Set("storageEncodeRecord", Napi::Function::New(env, EncodeRecordJs, "storageEncodeRecord"));
  exports.Set("storageRewriteRecord", Napi::Function::New(env, RewriteRecordJs, "storageRewriteRecord"));
  exports.Set("storageWriteBlockHeader", Napi::Function::New(env, WriteBlockHeaderJs, "storageWriteBlockHeader"));
  exports.Set("storageParseBlock", Napi::Function::New(env, ParseBlockJs, "storageParseBlock"));
  exports.Set("storageCheckRecord", Napi::Function::New(env, CheckRecordJs, "storageCheckRecord"));
}

}  // namespace storage
}  // namespace shoal
