#include "storage_scan.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <thread>
#include <unordered_map>

#include "block_device.h"
#include "storage_format.h"

namespace shoal {

using namespace storage;

namespace {

// Winner descriptor written by finish(), 96 bytes each (lib/storage/cold-start.ts mirrors it).
constexpr size_t kWinnerBytes = 96;
// A guess at the average padded record size, to size the candidate table before the scan.
constexpr uint64_t kExpectedRecordBytes = 192;
constexpr uint32_t kWinnerTombstone = 1, kWinnerHasKey = 2, kWinnerExpiredShadow = 4, kWinnerPayloadKey = 8;

// The copy written last wins: block sequence, then position in the block. On one node's log
// this is the exact write order, even when the clock steps back or a removed key is written
// again with generation 1 (last-update time and generation order versions between nodes).
bool Newer(const StorageScanner::Candidate& a, uint64_t sequence, uint32_t offset) {
  if (sequence != a.sequence) return sequence > a.sequence;
  return offset > a.offset;
}

class ScanWorker : public Napi::AsyncWorker {
 public:
  ScanWorker(Napi::Function callback, StorageScanner* scanner, Napi::Object scanner_object, BlockDevice* device,
             Napi::Object device_object, Napi::Float64Array sequences, uint32_t device_index, uint64_t data_start,
             uint32_t block_bytes, uint32_t block_count)
      : Napi::AsyncWorker(callback, "shoal-cold-start"),
        scanner_(scanner),
        device_(device),
        sequences_(sequences.Data()),
        device_index_(device_index),
        data_start_(data_start),
        block_bytes_(block_bytes),
        block_count_(block_count) {
    scanner_ref_ = Napi::Persistent(scanner_object);
    device_ref_ = Napi::Persistent(device_object);
    sequences_ref_ = Napi::Persistent(sequences);
  }

  void Execute() override {
    auto started = std::chrono::steady_clock::now();
    ReadHeaders();
    if (!error_.empty()) return SetError(error_);
    uint64_t valid = 0;
    for (uint32_t block = 0; block < block_count_; block++) valid += sequences_[block] != 0 ? 1 : 0;
    scanner_->Reserve(static_cast<size_t>(valid * block_bytes_ / kExpectedRecordBytes));
    ReadBlocks();
    if (!error_.empty()) return SetError(error_);
    elapsed_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  }

  void OnOK() override {
    scanner_->busy_ = false;
    Napi::Env env = Env();
    Napi::Object result = Napi::Object::New(env);
    result.Set("validBlocks", static_cast<double>(valid_blocks_));
    result.Set("bytesScanned", static_cast<double>(bytes_));
    result.Set("ms", elapsed_ms_);
    Callback().Call({env.Null(), result});
  }

  void OnError(const Napi::Error& error) override {
    scanner_->busy_ = false;
    error.Set("code", Napi::String::New(Env(), "IO_ERROR"));
    Callback().Call({error.Value()});
  }

 private:
  // Phase 1: the first 4 KiB of every block, read by several threads (random 4 KiB reads need
  // queue depth), decides which blocks hold data of this namespace.
  void ReadHeaders() {
    IoBackend* backend = device_->backend();
    int threads = std::max(1, std::min<int>(scanner_->header_threads_, static_cast<int>(block_count_)));
    std::vector<std::thread> workers;
    std::vector<int> errors(threads, 0);
    for (int t = 0; t < threads; t++) {
      workers.emplace_back([&, t] {
        size_t capacity;
        uint8_t* page = device_->buffers()->Acquire(kIoAlignBytes, &capacity);
        for (uint32_t block = t; block < block_count_; block += threads) {
          int result = backend->Read(data_start_ + uint64_t{block} * block_bytes_, page, kIoAlignBytes);
          if (result != 0) {
            errors[t] = result;
            break;
          }
          sequences_[block] = static_cast<double>(CheckBlockHeader(page, scanner_->signature_));
        }
        device_->buffers()->Release(page, capacity);
      });
    }
    for (auto& worker : workers) worker.join();
    for (int error : errors) {
      if (error != 0) error_ = std::string("cold start: reading block headers failed: ") + std::strerror(-error);
    }
  }

  // Phase 2: runs of valid blocks, read sequentially in chunks of up to chunk_bytes_, the next
  // chunk's read overlapping the parse of the current one.
  void ReadBlocks() {
    IoBackend* backend = device_->backend();
    uint32_t blocks_per_chunk = static_cast<uint32_t>(std::max<size_t>(1, scanner_->chunk_bytes_ / block_bytes_));
    struct Chunk { uint32_t first; uint32_t count; };
    std::vector<Chunk> chunks;
    for (uint32_t block = 0; block < block_count_;) {
      if (sequences_[block] == 0) { block++; continue; }
      uint32_t first = block;
      while (block < block_count_ && sequences_[block] != 0 && block - first < blocks_per_chunk) block++;
      chunks.push_back({first, block - first});
      valid_blocks_ += block - first;
    }
    if (chunks.empty()) return;
    size_t chunk_capacity[2];
    uint8_t* buffers[2];
    size_t chunk_bytes = size_t{blocks_per_chunk} * block_bytes_;
    buffers[0] = device_->buffers()->Acquire(chunk_bytes, &chunk_capacity[0]);
    buffers[1] = device_->buffers()->Acquire(chunk_bytes, &chunk_capacity[1]);
    auto read_chunk = [&](size_t index, uint8_t* into) {
      return backend->Read(data_start_ + uint64_t{chunks[index].first} * block_bytes_, into, size_t{chunks[index].count} * block_bytes_);
    };
    std::future<int> pending = std::async(std::launch::async, read_chunk, 0, buffers[0]);
    for (size_t index = 0; index < chunks.size(); index++) {
      int result = pending.get();
      if (result != 0) {
        error_ = std::string("cold start: reading blocks failed: ") + std::strerror(-result);
        break;
      }
      uint8_t* current = buffers[index % 2];
      if (index + 1 < chunks.size()) pending = std::async(std::launch::async, read_chunk, index + 1, buffers[(index + 1) % 2]);
      for (uint32_t i = 0; i < chunks[index].count; i++) {
        uint32_t block = chunks[index].first + i;
        scanner_->ParseBlock(current + size_t{i} * block_bytes_, block_bytes_, device_index_, block,
                             static_cast<uint64_t>(sequences_[block]));
      }
      uint64_t bytes = uint64_t{chunks[index].count} * block_bytes_;
      bytes_ += bytes;
      scanner_->bytes_scanned_ += bytes;
    }
    if (pending.valid()) pending.wait();
    device_->buffers()->Release(buffers[0], chunk_capacity[0]);
    device_->buffers()->Release(buffers[1], chunk_capacity[1]);
  }

  StorageScanner* scanner_;
  BlockDevice* device_;
  double* sequences_;
  uint32_t device_index_;
  uint64_t data_start_;
  uint32_t block_bytes_;
  uint32_t block_count_;
  Napi::ObjectReference scanner_ref_, device_ref_;
  Napi::Reference<Napi::Float64Array> sequences_ref_;
  std::string error_;
  uint64_t valid_blocks_ = 0, bytes_ = 0;
  double elapsed_ms_ = 0;
};

}  // namespace

void StorageScanner::Init(Napi::Env env, Napi::Object exports) {
  exports.Set("StorageScanner", DefineClass(env, "StorageScanner", {
      InstanceMethod<&StorageScanner::ScanDevice>("scanDevice"),
      InstanceMethod<&StorageScanner::Progress>("progress"),
      InstanceMethod<&StorageScanner::Finish>("finish"),
  }));
}

// new StorageScanner({ signatureHigh, signatureLow, nowSeconds, withPayload, chunkBytes,
//                      truncates: [{ set: string | null, beforeMs }] })
StorageScanner::StorageScanner(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StorageScanner>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "StorageScanner: options must be an object");
  Napi::Object options = info[0].As<Napi::Object>();
  auto number = [&](const char* name, double fallback) {
    Napi::Value value = options.Get(name);
    return value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : fallback;
  };
  signature_ = (static_cast<uint64_t>(number("signatureHigh", 0)) << 32) | static_cast<uint64_t>(number("signatureLow", 0));
  now_seconds_ = static_cast<uint32_t>(number("nowSeconds", 0));
  with_payload_ = options.Get("withPayload").ToBoolean();
  double chunk = number("chunkBytes", 8 << 20);
  if (!(chunk >= kIoAlignBytes && chunk <= (256 << 20))) throw Napi::RangeError::New(env, "StorageScanner: chunkBytes out of range");
  chunk_bytes_ = static_cast<size_t>(chunk);
  if (options.Get("truncates").IsArray()) {
    Napi::Array list = options.Get("truncates").As<Napi::Array>();
    for (uint32_t i = 0; i < list.Length(); i++) {
      Napi::Object marker = list.Get(i).As<Napi::Object>();
      TruncateMarker entry;
      entry.all_sets = !marker.Get("set").IsString();
      entry.set = entry.all_sets ? "" : marker.Get("set").As<Napi::String>().Utf8Value();
      entry.before_ms = static_cast<uint64_t>(marker.Get("beforeMs").As<Napi::Number>().DoubleValue());
      truncates_.push_back(entry);
    }
  }
  table_.assign(1 << 16, 0);
}

uint64_t* StorageScanner::Slot(const uint8_t* digest) {
  uint64_t hash;
  std::memcpy(&hash, digest + 4, 8);
  uint64_t tag = hash >> 32;
  size_t mask = table_.size() - 1;
  for (size_t position = hash & mask;; position = (position + 1) & mask) {
    uint64_t entry = table_[position];
    if (entry == 0) return &table_[position];
    if ((entry >> 32) == tag && std::memcmp(candidates_[static_cast<uint32_t>(entry) - 1].digest, digest, 20) == 0) return &table_[position];
  }
}

namespace {
uint64_t TableEntry(const uint8_t* digest, uint32_t candidate_number) {
  uint64_t hash;
  std::memcpy(&hash, digest + 4, 8);
  return ((hash >> 32) << 32) | candidate_number;
}
}  // namespace

void StorageScanner::Reserve(size_t records) {
  size_t wanted = candidates_.size() + records;
  candidates_.reserve(wanted);
  size_t slots = table_.size();
  while (slots < wanted * 2) slots *= 2;
  if (slots != table_.size()) {
    std::vector<uint64_t> old = std::move(table_);
    table_.assign(slots, 0);
    for (uint64_t entry : old) {
      if (entry != 0) *Slot(candidates_[static_cast<uint32_t>(entry) - 1].digest) = entry;
    }
  }
}

void StorageScanner::Grow() {
  std::vector<uint64_t> old = std::move(table_);
  table_.assign(old.size() * 2, 0);
  for (uint64_t entry : old) {
    if (entry != 0) *Slot(candidates_[static_cast<uint32_t>(entry) - 1].digest) = entry;
  }
}

void StorageScanner::ParseBlock(const uint8_t* block, size_t block_bytes, uint32_t device, uint32_t block_index, uint64_t sequence) {
  if (sequence == 0) return;
  blocks_valid_++;
  size_t position = kBlockHeaderBytes;
  while (position + kRecordMinBytes <= block_bytes) {
    const uint8_t* at = block + position;
    uint32_t total = 0;
    RecordCheck check = CheckRecord(at, block_bytes - position, sequence, &total);
    if (check != RecordCheck::kValid) {
      if (check == RecordCheck::kCorrupt) corrupt_++;
      position += kRecordAlignBytes;
      continue;
    }
    records_seen_++;
    uint64_t last_update = Load<uint64_t>(at + kRecordLastUpdateAt);
    uint32_t generation = Load<uint32_t>(at + kRecordGenerationAt);
    if ((candidates_.size() + 1) * 2 > table_.size()) Grow();
    uint64_t* slot = Slot(at + kRecordDigestAt);
    Candidate* candidate;
    if (*slot == 0) {
      candidates_.emplace_back();
      *slot = TableEntry(at + kRecordDigestAt, static_cast<uint32_t>(candidates_.size()));
      candidate = &candidates_.back();
      std::memcpy(candidate->digest, at + kRecordDigestAt, 20);
      candidate->copies = 1;
    } else {
      candidate = &candidates_[static_cast<uint32_t>(*slot) - 1];
      candidate->copies++;
      if (!Newer(*candidate, sequence, static_cast<uint32_t>(position))) {
        position += AlignUp(total, kRecordAlignBytes);
        continue;
      }
    }
    candidate->generation = generation;
    candidate->void_time = Load<uint32_t>(at + kRecordVoidTimeAt);
    candidate->flags = Load<uint16_t>(at + kRecordFlagsAt);
    candidate->set_length = at[kRecordSetLengthAt];
    candidate->key_type = at[kRecordKeyTypeAt];
    candidate->key_length = Load<uint16_t>(at + kRecordKeyLengthAt);
    candidate->payload_length = Load<uint32_t>(at + kRecordPayloadLengthAt);
    candidate->last_update_ms = last_update;
    candidate->sequence = sequence;
    candidate->origin_sequence = sequence;
    if ((candidate->flags & kRecordFlagTombstone) && candidate->payload_length >= 8) {
      candidate->origin_sequence = Load<uint64_t>(at + kRecordHeaderBytes + candidate->set_length + candidate->key_length);
    }
    candidate->device = device;
    candidate->block = block_index;
    candidate->offset = static_cast<uint32_t>(position);
    candidate->padded_length = AlignUp(total, kRecordAlignBytes);
    size_t variable_length = candidate->set_length + candidate->key_length + (with_payload_ ? candidate->payload_length : 0);
    candidate->variable_offset = variable_.size();
    variable_.insert(variable_.end(), at + kRecordHeaderBytes, at + kRecordHeaderBytes + variable_length);
    position += AlignUp(total, kRecordAlignBytes);
  }
}

// scanDevice(device, sequences: Float64Array(blockCount), deviceIndex, dataStartBytes,
//            blockBytes, blockCount, callback(error, { validBlocks, bytesScanned, ms }))
Napi::Value StorageScanner::ScanDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsObject() || !info[1].IsTypedArray() || !info[6].IsFunction()) {
    throw Napi::TypeError::New(env, "scanDevice(device, sequences, deviceIndex, dataStartBytes, blockBytes, blockCount, callback)");
  }
  BlockDevice* device = Napi::ObjectWrap<BlockDevice>::Unwrap(info[0].As<Napi::Object>());
  if (device == nullptr || !device->is_open()) throw Napi::Error::New(env, "scanDevice: the device is not open");
  if (info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) throw Napi::TypeError::New(env, "scanDevice: sequences must be a Float64Array");
  Napi::Float64Array sequences = info[1].As<Napi::Float64Array>();
  uint32_t device_index = info[2].As<Napi::Number>().Uint32Value();
  double data_start = info[3].As<Napi::Number>().DoubleValue();
  uint32_t block_bytes = info[4].As<Napi::Number>().Uint32Value();
  uint32_t block_count = info[5].As<Napi::Number>().Uint32Value();
  if (block_bytes < 2 * kIoAlignBytes || block_bytes % kIoAlignBytes != 0 || std::fmod(data_start, kIoAlignBytes) != 0 ||
      sequences.ElementLength() < block_count || data_start + double(block_bytes) * block_count > double(device->size_bytes())) {
    throw Napi::RangeError::New(env, "scanDevice: geometry does not fit the device");
  }
  if (busy_.exchange(true)) throw Napi::Error::New(env, "scanDevice: a scan is already running on this scanner");
  auto* worker = new ScanWorker(info[6].As<Napi::Function>(), this, info.This().As<Napi::Object>(), device,
                                info[0].As<Napi::Object>(), sequences, device_index, static_cast<uint64_t>(data_start),
                                block_bytes, block_count);
  worker->Queue();
  return env.Undefined();
}

Napi::Value StorageScanner::Progress(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(bytes_scanned_.load()));
}

// finish() -> { count, winners: Buffer (80 bytes each), variable: Buffer, recordsSeen, corrupt,
//               expired, tombstones, truncated, shadows, validBlocks }
Napi::Value StorageScanner::Finish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) throw Napi::Error::New(env, "finish: a scan is still running");
  auto* winners_owned = new std::vector<uint8_t>();
  std::vector<uint8_t>& winners = *winners_owned;
  winners.reserve(candidates_.size() * kWinnerBytes);
  std::unordered_map<std::string, uint32_t> set_ids;
  std::vector<std::string> set_names;
  uint64_t expired = 0, tombstones = 0, truncated = 0, shadows = 0;
  for (const Candidate& candidate : candidates_) {
    const uint8_t* set = variable_.data() + candidate.variable_offset;
    bool is_truncated = false;
    for (const TruncateMarker& marker : truncates_) {
      if (candidate.last_update_ms >= marker.before_ms) continue;
      if (marker.all_sets || (marker.set.size() == candidate.set_length && std::memcmp(marker.set.data(), set, candidate.set_length) == 0)) {
        is_truncated = true;
        break;
      }
    }
    uint32_t flags = ((candidate.flags & kRecordFlagHasKey) ? kWinnerHasKey : 0) | ((candidate.flags & kRecordFlagPayloadKey) ? kWinnerPayloadKey : 0);
    uint64_t origin = candidate.origin_sequence;
    if (is_truncated) {
      // Truncated. An older copy may carry a later last-update time (a clock step, a replicated
      // version), so the newest copy keeps hiding it while one exists.
      truncated++;
      if (candidate.copies < 2) continue;
      flags |= kWinnerExpiredShadow;
      shadows++;
    } else if (candidate.flags & kRecordFlagTombstone) {
      tombstones++;
      if (candidate.copies < 2) continue;  // nothing older on the devices: the tombstone is no longer needed
      flags |= kWinnerTombstone;
      shadows++;
    } else if (candidate.void_time != 0 && candidate.void_time <= now_seconds_) {
      expired++;
      if (candidate.copies < 2) continue;
      flags |= kWinnerExpiredShadow;  // hides older, unexpired copies until they are gone
      shadows++;
    }
    size_t at = winners.size();
    winners.resize(at + kWinnerBytes);
    uint8_t* out = winners.data() + at;
    std::memcpy(out, candidate.digest, 20);
    Store<uint32_t>(out + 20, candidate.generation);
    Store<uint32_t>(out + 24, candidate.void_time);
    Store<uint32_t>(out + 28, flags);
    Store<double>(out + 32, static_cast<double>(candidate.last_update_ms));
    Store<uint32_t>(out + 40, candidate.device);
    Store<uint32_t>(out + 44, candidate.block);
    Store<uint32_t>(out + 48, candidate.offset);
    Store<uint32_t>(out + 52, candidate.padded_length);
    Store<uint32_t>(out + 56, static_cast<uint32_t>(candidate.variable_offset));
    out[60] = candidate.set_length;
    out[61] = candidate.key_type;
    Store<uint16_t>(out + 62, candidate.key_length);
    Store<uint32_t>(out + 64, with_payload_ ? candidate.payload_length : 0);
    Store<uint32_t>(out + 68, candidate.copies);
    Store<double>(out + 72, static_cast<double>(origin));
    std::string set_name(reinterpret_cast<const char*>(set), candidate.set_length);
    auto found = set_ids.find(set_name);
    uint32_t set_index;
    if (found == set_ids.end()) {
      set_index = static_cast<uint32_t>(set_names.size());
      set_ids.emplace(set_name, set_index);
      set_names.push_back(std::move(set_name));
    } else {
      set_index = found->second;
    }
    Store<uint32_t>(out + 80, set_index);
    uint32_t size_units = candidate.padded_length >> 4;
    Store<uint32_t>(out + 84, (candidate.offset >> 4) | ((size_units & 0x1FFF) << 19));
    Store<uint32_t>(out + 88, (size_units >> 13) | (candidate.block << 6) | (candidate.device << 26));
    Store<uint32_t>(out + 92, 0);
  }
  if (variable_.size() > 0xFFFFFFFFull) throw Napi::RangeError::New(env, "finish: more than 4 GiB of in-memory data");
  Napi::Object result = Napi::Object::New(env);
  result.Set("count", static_cast<double>(winners.size() / kWinnerBytes));
  // Handed over without a copy: the buffers own the vectors.
  auto* variable_owned = new std::vector<uint8_t>(std::move(variable_));
  variable_ = std::vector<uint8_t>();
  if (winners.empty()) winners.resize(8);
  if (variable_owned->empty()) variable_owned->resize(8);
  result.Set("winners", Napi::Buffer<uint8_t>::New(env, winners.data(), winners.size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* owned) { delete owned; }, winners_owned));
  result.Set("variable", Napi::Buffer<uint8_t>::New(env, variable_owned->data(), variable_owned->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* owned) { delete owned; }, variable_owned));
  Napi::Array names = Napi::Array::New(env, set_names.size());
  for (size_t i = 0; i < set_names.size(); i++) names.Set(static_cast<uint32_t>(i), Napi::String::New(env, set_names[i]));
  result.Set("setNames", names);
  result.Set("recordsSeen", static_cast<double>(records_seen_));
  result.Set("corrupt", static_cast<double>(corrupt_));
  result.Set("expired", static_cast<double>(expired));
  result.Set("tombstones", static_cast<double>(tombstones));
  result.Set("truncated", static_cast<double>(truncated));
  result.Set("shadows", static_cast<double>(shadows));
  result.Set("validBlocks", static_cast<double>(blocks_valid_));
  result.Set("bytesScanned", static_cast<double>(bytes_scanned_.load()));
  candidates_.clear();
  candidates_.shrink_to_fit();
  table_.assign(1 << 16, 0);
  return result;
}

}  // namespace shoal
