#include "storage_scan.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <thread>

#include "block_device.h"
#include "storage_format.h"

namespace shoal {

using namespace storage;

namespace {

// Winner descriptor, 96 bytes each (lib/storage/cold-start.ts mirrors it).
constexpr size_t kWinnerBytes = 96;
constexpr uint32_t kWinnerTombstone = 1, kWinnerHasKey = 2, kWinnerExpiredShadow = 4, kWinnerPayloadKey = 8;
constexpr uint8_t kLive = 0, kTombstone = 1, kExpired = 2, kTruncated = 3;
// Live winners per hand-over to JS: large enough to amortise the call, small enough that the
// JS thread starts filling the index early.
constexpr uint32_t kBatchRecords = 16384;
// A guess at the average padded record size, to size the tables before the scan, and a cap on
// that guess (the table is zero-filled: a huge device of large records must not reserve GBs).
constexpr uint64_t kExpectedRecordBytes = 192;
constexpr uint64_t kMaxReservedRecords = 8u << 20;

void WriteWinner(std::vector<uint8_t>* out, const StorageScanner::Candidate& candidate, uint32_t flags, uint32_t variable_offset, bool with_payload) {
  size_t at = out->size();
  out->resize(at + kWinnerBytes);
  uint8_t* w = out->data() + at;
  std::memcpy(w, candidate.digest, 20);
  Store<uint32_t>(w + 20, candidate.generation);
  Store<uint32_t>(w + 24, candidate.void_time);
  Store<uint32_t>(w + 28, flags);
  Store<double>(w + 32, static_cast<double>(candidate.last_update_ms));
  Store<uint32_t>(w + 40, candidate.device);
  Store<uint32_t>(w + 44, candidate.block);
  Store<uint32_t>(w + 48, candidate.offset);
  Store<uint32_t>(w + 52, candidate.padded_length);
  Store<uint32_t>(w + 56, variable_offset);
  w[60] = candidate.set_length;
  w[61] = candidate.key_type;
  Store<uint16_t>(w + 62, candidate.key_length);
  Store<uint32_t>(w + 64, with_payload ? candidate.payload_length : 0);
  Store<uint32_t>(w + 68, candidate.copies);
  Store<double>(w + 72, static_cast<double>(candidate.origin_sequence));
  Store<uint32_t>(w + 80, candidate.set_index);
  uint32_t size_units = candidate.padded_length >> 4;
  Store<uint32_t>(w + 84, (candidate.offset >> 4) | ((size_units & 0x1FFF) << 19));
  Store<uint32_t>(w + 88, (size_units >> 13) | (candidate.block << 6) | (candidate.device << 26));
  Store<uint32_t>(w + 92, 0);
}

uint32_t RecordFlags(const StorageScanner::Candidate& candidate) {
  return ((candidate.flags & kRecordFlagHasKey) ? kWinnerHasKey : 0) | ((candidate.flags & kRecordFlagPayloadKey) ? kWinnerPayloadKey : 0);
}

Napi::Buffer<uint8_t> OwnedBuffer(Napi::Env env, std::vector<uint8_t>&& bytes) {
  if (bytes.empty()) bytes.resize(8);
  auto* owned = new std::vector<uint8_t>(std::move(bytes));
  return Napi::Buffer<uint8_t>::New(env, owned->data(), owned->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* data) { delete data; }, owned);
}

Napi::Array StringArray(Napi::Env env, const std::vector<std::string>& names) {
  Napi::Array array = Napi::Array::New(env, names.size());
  for (size_t i = 0; i < names.size(); i++) array.Set(static_cast<uint32_t>(i), Napi::String::New(env, names[i]));
  return array;
}

struct DeviceScan {
  BlockDevice* device;
  double* sequences;
  uint32_t block_count;
};

struct Run {
  uint32_t device;
  uint32_t first;  // lowest block index of the run
  uint32_t count;
};

class ScanWorker : public Napi::AsyncProgressQueueWorker<StorageScanner::Batch*> {
 public:
  ScanWorker(Napi::Function callback, Napi::Function on_batch, StorageScanner* scanner, Napi::Object scanner_object,
             std::vector<DeviceScan> devices, Napi::Array device_objects, Napi::Array sequence_arrays, uint64_t data_start,
             uint32_t block_bytes)
      : Napi::AsyncProgressQueueWorker<StorageScanner::Batch*>(callback, "shoal-cold-start"),
        scanner_(scanner),
        devices_(std::move(devices)),
        data_start_(data_start),
        block_bytes_(block_bytes) {
    on_batch_ = Napi::Persistent(on_batch);
    scanner_ref_ = Napi::Persistent(scanner_object);
    devices_ref_ = Napi::Persistent(device_objects.As<Napi::Object>());
    sequences_ref_ = Napi::Persistent(sequence_arrays.As<Napi::Object>());
  }

  void Execute(const ExecutionProgress& progress) override {
    auto started = std::chrono::steady_clock::now();
    for (uint32_t index = 0; index < devices_.size() && error_.empty(); index++) ReadHeaders(index);
    if (!error_.empty()) return SetError(error_);
    std::vector<Run> runs = PlanRuns();
    ReadRuns(runs, progress);
    if (!error_.empty()) return SetError(error_);
    if (scanner_->batch_count() > 0) {
      StorageScanner::Batch* batch = scanner_->TakeBatch();
      progress.Send(&batch, 1);
    }
    elapsed_ms_ = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  }

  void OnProgress(StorageScanner::Batch* const* batches, size_t count) override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t i = 0; i < count; i++) {
      StorageScanner::Batch* batch = batches[i];
      uint32_t records = batch->count;
      Napi::Buffer<uint8_t> winners = OwnedBuffer(env, std::move(batch->winners));
      Napi::Buffer<uint8_t> variable = OwnedBuffer(env, std::move(batch->variable));
      Napi::Array names = StringArray(env, batch->new_set_names);
      delete batch;
      try {
        on_batch_.Call({winners, variable, Napi::Number::New(env, records), names});
      } catch (const Napi::Error& error) {
        if (batch_error_.empty()) batch_error_ = error.Message();
      }
    }
  }

  void OnOK() override {
    scanner_->busy_ = false;
    Napi::Env env = Env();
    if (!batch_error_.empty()) {
      Callback().Call({Napi::Error::New(env, "cold start: handing records to the index failed: " + batch_error_).Value()});
      return;
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("validBlocks", static_cast<double>(scanner_->blocks_valid_));
    result.Set("bytesScanned", static_cast<double>(scanner_->bytes_scanned_.load()));
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
  // queue depth), decides which blocks hold data of this namespace and their sequences.
  void ReadHeaders(uint32_t device_index) {
    DeviceScan& scan = devices_[device_index];
    IoBackend* backend = scan.device->backend();
    int threads = std::max(1, std::min<int>(scanner_->header_threads_, static_cast<int>(scan.block_count)));
    std::vector<std::thread> workers;
    std::vector<int> errors(threads, 0);
    for (int t = 0; t < threads; t++) {
      workers.emplace_back([&, t] {
        size_t capacity;
        uint8_t* page = scan.device->buffers()->Acquire(kIoAlignBytes, &capacity);
        for (uint32_t block = t; block < scan.block_count; block += threads) {
          int result = backend->Read(data_start_ + uint64_t{block} * block_bytes_, page, kIoAlignBytes);
          if (result != 0) {
            errors[t] = result;
            break;
          }
          scan.sequences[block] = static_cast<double>(CheckBlockHeader(page, scanner_->signature_));
        }
        scan.device->buffers()->Release(page, capacity);
      });
    }
    for (auto& worker : workers) worker.join();
    for (int error : errors) {
      if (error != 0) error_ = std::string("cold start: reading block headers failed: ") + std::strerror(-error);
    }
  }

  // Valid blocks newest first, merged into runs of adjacent blocks (read with one request).
  std::vector<Run> PlanRuns() {
    struct Valid {
      uint64_t sequence;
      uint32_t device;
      uint32_t block;
    };
    std::vector<Valid> valid;
    for (uint32_t device = 0; device < devices_.size(); device++) {
      for (uint32_t block = 0; block < devices_[device].block_count; block++) {
        double sequence = devices_[device].sequences[block];
        if (sequence != 0 && static_cast<uint64_t>(sequence) >= scanner_->min_sequence_) valid.push_back({static_cast<uint64_t>(sequence), device, block});
      }
    }
    std::sort(valid.begin(), valid.end(), [](const Valid& a, const Valid& b) { return a.sequence > b.sequence; });
    scanner_->Reserve(static_cast<size_t>(std::min<uint64_t>(kMaxReservedRecords, valid.size() * uint64_t{block_bytes_} / kExpectedRecordBytes)));
    uint32_t blocks_per_run = static_cast<uint32_t>(std::max<size_t>(1, scanner_->chunk_bytes_ / block_bytes_));
    std::vector<Run> runs;
    for (const Valid& entry : valid) {
      // Newest first usually walks the device backwards: extend a run downwards.
      if (!runs.empty()) {
        Run& last = runs.back();
        if (last.device == entry.device && entry.block + 1 == last.first && last.count < blocks_per_run) {
          last.first = entry.block;
          last.count++;
          continue;
        }
      }
      runs.push_back({entry.device, entry.block, 1});
    }
    return runs;
  }

  // Phase 2: each run with one aligned read, the next run's read overlapping this one's parse;
  // blocks of a run are parsed newest first (highest index first: runs grow downwards).
  void ReadRuns(const std::vector<Run>& runs, const ExecutionProgress& progress) {
    if (runs.empty()) return;
    size_t run_bytes = std::max<size_t>(block_bytes_, scanner_->chunk_bytes_ / block_bytes_ * block_bytes_);
    AlignedBufferPool* pool = devices_[0].device->buffers();
    size_t capacity[2];
    uint8_t* buffers[2] = {pool->Acquire(run_bytes, &capacity[0]), pool->Acquire(run_bytes, &capacity[1])};
    auto read_run = [&](size_t index, uint8_t* into) {
      const Run& run = runs[index];
      return devices_[run.device].device->backend()->Read(data_start_ + uint64_t{run.first} * block_bytes_, into, size_t{run.count} * block_bytes_);
    };
    std::future<int> pending = std::async(std::launch::async, read_run, 0, buffers[0]);
    for (size_t index = 0; index < runs.size(); index++) {
      int result = pending.get();
      if (result != 0) {
        error_ = std::string("cold start: reading blocks failed: ") + std::strerror(-result);
        break;
      }
      uint8_t* current = buffers[index % 2];
      if (index + 1 < runs.size()) pending = std::async(std::launch::async, read_run, index + 1, buffers[(index + 1) % 2]);
      const Run& run = runs[index];
      for (uint32_t i = run.count; i-- > 0;) {
        uint32_t block = run.first + i;
        scanner_->ParseBlockNewestFirst(current + size_t{i} * block_bytes_, block_bytes_, run.device, block,
                                        static_cast<uint64_t>(devices_[run.device].sequences[block]));
      }
      scanner_->bytes_scanned_ += uint64_t{run.count} * block_bytes_;
      if (scanner_->batch_count() >= kBatchRecords) {
        StorageScanner::Batch* batch = scanner_->TakeBatch();
        progress.Send(&batch, 1);
      }
    }
    if (pending.valid()) pending.wait();
    pool->Release(buffers[0], capacity[0]);
    pool->Release(buffers[1], capacity[1]);
  }

  StorageScanner* scanner_;
  std::vector<DeviceScan> devices_;
  uint64_t data_start_;
  uint32_t block_bytes_;
  Napi::FunctionReference on_batch_;
  Napi::ObjectReference scanner_ref_, devices_ref_, sequences_ref_;
  std::string error_;
  std::string batch_error_;
  double elapsed_ms_ = 0;
};

uint64_t TableEntry(const uint8_t* digest, uint32_t number) {
  uint64_t hash;
  std::memcpy(&hash, digest + 4, 8);
  return ((hash >> 32) << 32) | number;
}

}  // namespace

void StorageScanner::Init(Napi::Env env, Napi::Object exports) {
  exports.Set("StorageScanner", DefineClass(env, "StorageScanner", {
      InstanceMethod<&StorageScanner::Scan>("scan"),
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
  double min_sequence = number("minSequence", 0);
  if (!(min_sequence >= 0 && min_sequence <= 9007199254740991.0)) throw Napi::RangeError::New(env, "StorageScanner: minSequence out of range");
  min_sequence_ = static_cast<uint64_t>(min_sequence);
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
    if ((entry >> 32) == tag && std::memcmp(seen_[static_cast<uint32_t>(entry) - 1].digest, digest, 20) == 0) return &table_[position];
  }
}

void StorageScanner::Reserve(size_t records) {
  size_t wanted = seen_.size() + records;
  seen_.reserve(wanted);
  size_t slots = table_.size();
  while (slots < wanted * 2) slots *= 2;
  if (slots != table_.size()) {
    std::vector<uint64_t> old = std::move(table_);
    table_.assign(slots, 0);
    for (uint64_t entry : old) {
      if (entry != 0) *Slot(seen_[static_cast<uint32_t>(entry) - 1].digest) = entry;
    }
  }
}

void StorageScanner::Grow() {
  std::vector<uint64_t> old = std::move(table_);
  table_.assign(old.size() * 2, 0);
  for (uint64_t entry : old) {
    if (entry != 0) *Slot(seen_[static_cast<uint32_t>(entry) - 1].digest) = entry;
  }
}

uint32_t StorageScanner::SetIndex(const uint8_t* set, uint8_t length) {
  std::string name(reinterpret_cast<const char*>(set), length);
  auto found = set_ids_.find(name);
  if (found != set_ids_.end()) return found->second;
  uint32_t index = static_cast<uint32_t>(set_names_.size());
  set_ids_.emplace(name, index);
  set_names_.push_back(std::move(name));
  return index;
}

bool StorageScanner::Truncated(const uint8_t* set, uint8_t set_length, uint64_t last_update) const {
  for (const TruncateMarker& marker : truncates_) {
    if (last_update >= marker.before_ms) continue;
    if (marker.all_sets || (marker.set.size() == set_length && std::memcmp(marker.set.data(), set, set_length) == 0)) return true;
  }
  return false;
}

StorageScanner::Batch* StorageScanner::TakeBatch() {
  Batch* batch = batch_ == nullptr ? new Batch() : batch_;
  batch_ = nullptr;
  batch->new_set_names.assign(set_names_.begin() + static_cast<std::ptrdiff_t>(set_names_sent_), set_names_.end());
  set_names_sent_ = set_names_.size();
  return batch;
}

// The first copy of a digest that the scan meets (newest first) is its newest copy.
void StorageScanner::Take(const uint8_t* at, uint32_t total, uint32_t device, uint32_t block_index, uint32_t position, uint64_t sequence) {
  const uint8_t* digest = at + kRecordDigestAt;
  if ((seen_.size() + 1) * 2 > table_.size()) Grow();
  uint64_t* slot = Slot(digest);
  if (*slot != 0) {
    uint32_t pending = seen_[static_cast<uint32_t>(*slot) - 1].pending;
    if (pending != 0) pending_[pending - 1].copies++;  // an older copy that the winner hides
    return;
  }
  Candidate candidate;
  std::memcpy(candidate.digest, digest, 20);
  candidate.generation = Load<uint32_t>(at + kRecordGenerationAt);
  candidate.void_time = Load<uint32_t>(at + kRecordVoidTimeAt);
  candidate.flags = Load<uint16_t>(at + kRecordFlagsAt);
  candidate.set_length = at[kRecordSetLengthAt];
  candidate.key_type = at[kRecordKeyTypeAt];
  candidate.key_length = Load<uint16_t>(at + kRecordKeyLengthAt);
  candidate.payload_length = Load<uint32_t>(at + kRecordPayloadLengthAt);
  candidate.last_update_ms = Load<uint64_t>(at + kRecordLastUpdateAt);
  candidate.origin_sequence = sequence;
  candidate.copies = 1;
  candidate.device = device;
  candidate.block = block_index;
  candidate.offset = position;
  candidate.padded_length = AlignUp(total, kRecordAlignBytes);
  const uint8_t* set = at + kRecordHeaderBytes;
  candidate.set_index = SetIndex(set, candidate.set_length);
  if (candidate.flags & kRecordFlagTombstone) {
    candidate.kind = kTombstone;
    if (candidate.payload_length >= 8) candidate.origin_sequence = Load<uint64_t>(set + candidate.set_length + candidate.key_length);
  } else if (Truncated(set, candidate.set_length, candidate.last_update_ms)) {
    candidate.kind = kTruncated;
  } else if (candidate.void_time != 0 && candidate.void_time <= now_seconds_) {
    candidate.kind = kExpired;
  } else {
    candidate.kind = kLive;
  }
  size_t variable_length = candidate.set_length + candidate.key_length + (with_payload_ && candidate.kind == kLive ? candidate.payload_length : 0);
  Seen seen;
  std::memcpy(seen.digest, digest, 20);
  seen.pending = 0;
  if (candidate.kind == kLive) {
    if (batch_ == nullptr) batch_ = new Batch();
    uint32_t variable_offset = static_cast<uint32_t>(batch_->variable.size());
    batch_->variable.insert(batch_->variable.end(), set, set + variable_length);
    WriteWinner(&batch_->winners, candidate, RecordFlags(candidate), variable_offset, with_payload_);
    batch_->count++;
  } else {
    candidate.variable_offset = pending_variable_.size();
    pending_variable_.insert(pending_variable_.end(), set, set + variable_length);
    pending_.push_back(candidate);
    seen.pending = static_cast<uint32_t>(pending_.size());
  }
  seen_.push_back(seen);
  *slot = TableEntry(digest, static_cast<uint32_t>(seen_.size()));
}

void StorageScanner::ParseBlockNewestFirst(const uint8_t* block, size_t block_bytes, uint32_t device, uint32_t block_index, uint64_t sequence) {
  if (sequence == 0) return;
  blocks_valid_++;
  record_offsets_.clear();
  size_t position = kBlockHeaderBytes;
  while (position + kRecordMinBytes <= block_bytes) {
    uint32_t total = 0;
    RecordCheck check = CheckRecord(block + position, block_bytes - position, sequence, &total);
    if (check != RecordCheck::kValid) {
      if (check == RecordCheck::kCorrupt) corrupt_++;
      position += kRecordAlignBytes;  // resynchronise on the next record boundary
      continue;
    }
    record_offsets_.push_back(static_cast<uint32_t>(position));
    position += AlignUp(total, kRecordAlignBytes);
  }
  records_seen_ += record_offsets_.size();
  // Within a block the later record is the newer one. Each digest's probe is a random DRAM
  // access into table_: prefetch it a few records ahead so the misses overlap.
  constexpr size_t kProbeAhead = 8;
  auto prefetch = [&](size_t index) {
    uint64_t hash;
    std::memcpy(&hash, block + record_offsets_[index] + kRecordDigestAt + 4, 8);
    __builtin_prefetch(table_.data() + (hash & (table_.size() - 1)));
  };
  for (size_t i = record_offsets_.size(), k = 0; i-- > 0 && k < kProbeAhead; ++k) prefetch(i);
  for (size_t i = record_offsets_.size(); i-- > 0;) {
    if (i >= kProbeAhead) prefetch(i - kProbeAhead);
    uint32_t at = record_offsets_[i];
    Take(block + at, Load<uint32_t>(block + at + kRecordLengthAt), device, block_index, at, sequence);
  }
}

// scan(devices: BlockDevice[], sequences: Float64Array[], blockCounts: number[], dataStartBytes,
//      blockBytes, onBatch(winners, variable, count, newSetNames), callback(error, { validBlocks,
//      bytesScanned, ms })). onBatch runs on the JS thread while the worker goes on reading.
Napi::Value StorageScanner::Scan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsArray() || !info[1].IsArray() || !info[2].IsArray() || !info[5].IsFunction() || !info[6].IsFunction()) {
    throw Napi::TypeError::New(env, "scan(devices, sequences, blockCounts, dataStartBytes, blockBytes, onBatch, callback)");
  }
  Napi::Array device_objects = info[0].As<Napi::Array>();
  Napi::Array sequence_arrays = info[1].As<Napi::Array>();
  Napi::Array block_counts = info[2].As<Napi::Array>();
  double data_start = info[3].As<Napi::Number>().DoubleValue();
  uint32_t block_bytes = info[4].As<Napi::Number>().Uint32Value();
  if (device_objects.Length() == 0 || sequence_arrays.Length() != device_objects.Length() || block_counts.Length() != device_objects.Length()) {
    throw Napi::RangeError::New(env, "scan: one sequences array and one block count per device");
  }
  if (block_bytes < 2 * kIoAlignBytes || block_bytes % kIoAlignBytes != 0 || std::fmod(data_start, kIoAlignBytes) != 0) {
    throw Napi::RangeError::New(env, "scan: bad geometry");
  }
  std::vector<DeviceScan> devices;
  for (uint32_t i = 0; i < device_objects.Length(); i++) {
    BlockDevice* device = Napi::ObjectWrap<BlockDevice>::Unwrap(device_objects.Get(i).As<Napi::Object>());
    if (device == nullptr || !device->is_open()) throw Napi::Error::New(env, "scan: a device is not open");
    Napi::Value sequences_value = sequence_arrays.Get(i);
    if (!sequences_value.IsTypedArray() || sequences_value.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
      throw Napi::TypeError::New(env, "scan: sequences must be Float64Arrays");
    }
    Napi::Float64Array sequences = sequences_value.As<Napi::Float64Array>();
    uint32_t block_count = block_counts.Get(i).As<Napi::Number>().Uint32Value();
    if (sequences.ElementLength() < block_count || data_start + double(block_bytes) * block_count > double(device->size_bytes())) {
      throw Napi::RangeError::New(env, "scan: geometry does not fit a device");
    }
    devices.push_back({device, sequences.Data(), block_count});
  }
  if (busy_.exchange(true)) throw Napi::Error::New(env, "scan: a scan is already running on this scanner");
  auto* worker = new ScanWorker(info[6].As<Napi::Function>(), info[5].As<Napi::Function>(), this, info.This().As<Napi::Object>(),
                                std::move(devices), device_objects, sequence_arrays, static_cast<uint64_t>(data_start), block_bytes);
  worker->Queue();
  return env.Undefined();
}

Napi::Value StorageScanner::Progress(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(bytes_scanned_.load()));
}

// finish() -> { count, winners, variable, setNames (new since the last batch), recordsSeen,
// corrupt, expired, tombstones, truncated, shadows, validBlocks, bytesScanned }: the newest
// copies that are tombstones, expired or truncated and still hide an older copy (shadows).
Napi::Value StorageScanner::Finish(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (busy_) throw Napi::Error::New(env, "finish: a scan is still running");
  std::vector<uint8_t> winners;
  std::vector<uint8_t> variable;
  uint64_t expired = 0, tombstones = 0, truncated = 0, shadows = 0;
  for (const Candidate& candidate : pending_) {
    if (candidate.kind == kTombstone) tombstones++;
    if (candidate.kind == kExpired) expired++;
    if (candidate.kind == kTruncated) truncated++;
    if (candidate.copies < 2 && min_sequence_ == 0) continue;  // nothing older on the devices: nothing to hide
    shadows++;
    uint32_t flags = RecordFlags(candidate) | (candidate.kind == kTombstone ? kWinnerTombstone : kWinnerExpiredShadow);
    uint32_t variable_offset = static_cast<uint32_t>(variable.size());
    size_t length = candidate.set_length + candidate.key_length;
    const uint8_t* source = pending_variable_.data() + candidate.variable_offset;
    variable.insert(variable.end(), source, source + length);
    WriteWinner(&winners, candidate, flags, variable_offset, false);
  }
  Batch* names = TakeBatch();
  Napi::Object result = Napi::Object::New(env);
  result.Set("count", static_cast<double>(winners.size() / kWinnerBytes));
  result.Set("winners", OwnedBuffer(env, std::move(winners)));
  result.Set("variable", OwnedBuffer(env, std::move(variable)));
  result.Set("setNames", StringArray(env, names->new_set_names));
  delete names;
  result.Set("recordsSeen", static_cast<double>(records_seen_));
  result.Set("corrupt", static_cast<double>(corrupt_));
  result.Set("expired", static_cast<double>(expired));
  result.Set("tombstones", static_cast<double>(tombstones));
  result.Set("truncated", static_cast<double>(truncated));
  result.Set("shadows", static_cast<double>(shadows));
  result.Set("validBlocks", static_cast<double>(blocks_valid_));
  result.Set("bytesScanned", static_cast<double>(bytes_scanned_.load()));
  seen_ = std::vector<Seen>();
  pending_ = std::vector<Candidate>();
  pending_variable_ = std::vector<uint8_t>();
  table_.assign(1 << 16, 0);
  return result;
}

}  // namespace shoal
