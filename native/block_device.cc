#include "block_device.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "storage_format.h"
#include "storage_scan.h"

namespace shoal {

namespace {

constexpr int kDirectOff = 0, kDirectAuto = 1, kDirectRequired = 2;
constexpr int kCompletionInts = 4;  // id, result, results offset, length
constexpr int kMaxThreads = 128;
constexpr int kEngineThreads = 0, kEngineIoUring = 1;
// With io_uring doing the reads, the pool only runs writes and syncs: the store keeps a few
// block writes in flight per device (docs/storage.md), so a few threads are enough.
constexpr int kWriteThreadsWithRing = 4;

Napi::Error CodedError(Napi::Env env, const std::string& code, const std::string& message, int error_number = 0) {
  Napi::Error error = Napi::Error::New(env, message + (error_number ? std::string(": ") + std::strerror(error_number) : ""));
  error.Set("code", Napi::String::New(env, code));
  if (error_number) error.Set("errno", Napi::Number::New(env, error_number));
  return error;
}

double Integer(const Napi::CallbackInfo& info, size_t index, double min, double max, const char* what) {
  if (index >= info.Length() || !info[index].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= min && value <= max) || std::floor(value) != value) {
    throw Napi::RangeError::New(info.Env(), std::string(what) + " is out of range");
  }
  return value;
}

Napi::Buffer<uint8_t> BufferOption(Napi::Object options, const char* name, size_t min_length) {
  Napi::Value value = options.Get(name);
  if (!value.IsBuffer()) throw Napi::TypeError::New(options.Env(), std::string("BlockDevice: options.") + name + " must be a Buffer");
  Napi::Buffer<uint8_t> buffer = value.As<Napi::Buffer<uint8_t>>();
  if (buffer.Length() < min_length) throw Napi::RangeError::New(options.Env(), std::string("BlockDevice: options.") + name + " is too small");
  if (reinterpret_cast<uintptr_t>(buffer.Data()) % 8 != 0) throw Napi::RangeError::New(options.Env(), std::string("BlockDevice: options.") + name + " must be 8-byte aligned");
  return buffer;
}

}  // namespace

void BlockDevice::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor = DefineClass(env, "BlockDevice", {
      InstanceMethod<&BlockDevice::Info>("info"),
      InstanceMethod<&BlockDevice::Read>("read"),
      InstanceMethod<&BlockDevice::Write>("write"),
      InstanceMethod<&BlockDevice::Sync>("sync"),
      InstanceMethod<&BlockDevice::SubmitReads>("submitReads"),
      InstanceMethod<&BlockDevice::ReadSync>("readSync"),
      InstanceMethod<&BlockDevice::WriteSync>("writeSync"),
      InstanceMethod<&BlockDevice::Pending>("pending"),
      InstanceMethod<&BlockDevice::Poll>("poll"),
      InstanceMethod<&BlockDevice::Fault>("fault"),
      InstanceMethod<&BlockDevice::Grow>("grow"),
      InstanceMethod<&BlockDevice::Close>("close"),
  });
  exports.Set("BlockDevice", constructor);
  storage::InitStorageFormat(env, exports);
  StorageScanner::Init(env, exports);
}

// new BlockDevice({ path, sizeBytes, create, fileMode, directIo: 0 off | 1 auto | 2 required,
//                   threads, ioEngine: 0 threads | 1 io_uring, faults, refuseDirectIo,
//                   refuseIoUring, completions: Buffer, results: Buffer, onComplete(count) })
// A file that does not exist is created (with `create`) with exactly `fileMode` (default
// 0600) and sized to sizeBytes; a file that exists is never resized here (grow() does that
// once the store has read what the file holds), nor is a block device.
BlockDevice::BlockDevice(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BlockDevice>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "BlockDevice: options must be an object");
  Napi::Object options = info[0].As<Napi::Object>();
  if (!options.Get("path").IsString()) throw Napi::TypeError::New(env, "BlockDevice: options.path must be a string");
  std::string path = options.Get("path").As<Napi::String>().Utf8Value();
  double size = options.Get("sizeBytes").IsNumber() ? options.Get("sizeBytes").As<Napi::Number>().DoubleValue() : 0;
  if (!(size >= 0 && size <= 9007199254740991.0) || std::fmod(size, storage::kIoAlignBytes) != 0) {
    throw Napi::RangeError::New(env, "BlockDevice: options.sizeBytes must be a multiple of 4096");
  }
  bool create = options.Get("create").ToBoolean();
  uint32_t file_mode = 0600;
  if (!options.Get("fileMode").IsUndefined()) {
    double mode = options.Get("fileMode").IsNumber() ? options.Get("fileMode").As<Napi::Number>().DoubleValue() : -1;
    if (!(mode >= 0 && mode <= 0777) || std::floor(mode) != mode || (static_cast<uint32_t>(mode) & 0600) != 0600) {
      throw Napi::RangeError::New(env, "BlockDevice: options.fileMode must be a file mode from 0600 to 0777 with owner read and write");
    }
    file_mode = static_cast<uint32_t>(mode);
  }
  int direct_mode = options.Get("directIo").IsNumber() ? options.Get("directIo").As<Napi::Number>().Int32Value() : kDirectAuto;
  int threads = options.Get("threads").IsNumber() ? options.Get("threads").As<Napi::Number>().Int32Value() : 32;
  if (threads < 1 || threads > kMaxThreads) throw Napi::RangeError::New(env, "BlockDevice: options.threads must be 1..128");
  bool faults = options.Get("faults").ToBoolean();
  int io_engine = kEngineThreads;
  if (!options.Get("ioEngine").IsUndefined()) {
    if (!options.Get("ioEngine").IsNumber()) throw Napi::TypeError::New(env, "BlockDevice: options.ioEngine must be 0 (threads) or 1 (io_uring)");
    io_engine = options.Get("ioEngine").As<Napi::Number>().Int32Value();
    if (io_engine != kEngineThreads && io_engine != kEngineIoUring) throw Napi::RangeError::New(env, "BlockDevice: options.ioEngine must be 0 (threads) or 1 (io_uring)");
  }
  if (!options.Get("onComplete").IsFunction()) throw Napi::TypeError::New(env, "BlockDevice: options.onComplete must be a function");
  Napi::Buffer<uint8_t> completions = BufferOption(options, "completions", kCompletionInts * 4 * 16);
  Napi::Buffer<uint8_t> results = BufferOption(options, "results", storage::kIoAlignBytes);

  // Fault injection holds writes in ordinary memory, so its inner device is opened buffered.
  // refuseDirectIo (tests): behave as a file system that refuses O_DIRECT with EINVAL.
  OpenDevice(env, path, static_cast<uint64_t>(size), create, file_mode, faults ? kDirectOff : direct_mode, options.Get("refuseDirectIo").ToBoolean());
  auto posix = std::make_unique<PosixBackend>(fd_);
  if (faults) {
    auto wrapper = std::make_unique<FaultBackend>(std::move(posix));
    faults_ = wrapper.get();
    backend_ = std::move(wrapper);
  } else {
    backend_ = std::move(posix);
  }
  if (options.Get("submissions").IsBuffer()) {
    Napi::Buffer<uint8_t> submissions = BufferOption(options, "submissions", 32);
    submissions_ref_ = Napi::Persistent(submissions);
    submissions_ = reinterpret_cast<double*>(submissions.Data());
    submission_capacity_ = submissions.Length() / 32;
  }
  completions_ref_ = Napi::Persistent(completions);
  results_ref_ = Napi::Persistent(results);
  completions_ = reinterpret_cast<int32_t*>(completions.Data());
  completion_capacity_ = completions.Length() / (kCompletionInts * 4);
  results_ = results.Data();
  results_capacity_ = results.Length();
  on_complete_ = Napi::Persistent(options.Get("onComplete").As<Napi::Function>());
  notify_ = Napi::ThreadSafeFunction::New(env, options.Get("onComplete").As<Napi::Function>(), "shoal-block-device", 0, 1);
  notify_.Unref(env);
  done_ = std::make_unique<CompletionQueue>([this] {
    calls_in_flight_++;
    napi_status status = notify_.NonBlockingCall([this](Napi::Env env, Napi::Function) {
      calls_in_flight_--;
      DrainToJs(env);
    });
    if (status != napi_ok) calls_in_flight_--;
  });
  // io_uring reads the file descriptor directly, so it is only used over the real backend:
  // FaultBackend's flips, held writes and failures happen in its Read, which io_uring bypasses.
  // refuseIoUring (tests): behave as a kernel whose seccomp filter refuses io_uring_setup.
  if (io_engine == kEngineIoUring && faults_ == nullptr) {
    if (options.Get("refuseIoUring").ToBoolean()) {
      io_uring_errno_ = EPERM;
    } else {
      ring_ = IoRing::Create(fd_, done_.get(), &io_uring_errno_);
    }
  }
  pool_ = std::make_unique<IoPool>(backend_.get(), ring_ ? std::min(threads, kWriteThreadsWithRing) : threads, done_.get());
}

BlockDevice::~BlockDevice() {
  if (ring_) ring_->Stop();
  if (pool_) pool_->Stop();
  // Requests finished but never delivered (the object is collected without close()).
  if (done_) done_->Drain(&drained_);
  for (IoRequest* request : drained_) {
    if (request == nullptr) continue;
    buffers_.Release(request->buffer, request->capacity);
    delete request;
  }
  if (fd_ >= 0) close(fd_);
}

void BlockDevice::OpenDevice(Napi::Env env, const std::string& path, uint64_t size_bytes, bool create, uint32_t file_mode, int direct_mode, bool refuse_direct) {
  path_ = path;
  struct stat status;
  bool exists = stat(path.c_str(), &status) == 0;
  block_device_ = exists && S_ISBLK(status.st_mode);
  if (!exists && !create) throw CodedError(env, "IO_ERROR", "cannot open device " + path, ENOENT);
  // O_EXCL with O_CREAT: a file made meanwhile by someone else is not taken for one made now.
  int flags = O_RDWR | O_CLOEXEC | (exists ? 0 : O_CREAT | O_EXCL) | (block_device_ ? O_EXCL : 0);
  int fd = -1;
  if (direct_mode != kDirectOff) {
    if (refuse_direct) {
      errno = EINVAL;
    } else {
      fd = open(path.c_str(), flags | O_DIRECT, file_mode);
    }
    if (fd < 0 && errno == EBUSY && block_device_) throw CodedError(env, "LOCKED", "device " + path + " is in use by another process");
    if (fd < 0 && !(errno == EINVAL && direct_mode == kDirectAuto)) {
      if (errno == EINVAL) throw CodedError(env, "IO_ERROR", "the file system refuses O_DIRECT for " + path + " (directIo: 'required'); use 'auto' or 'off'", EINVAL);
      throw CodedError(env, "IO_ERROR", "cannot open device " + path, errno);
    }
    direct_io_ = fd >= 0;
  }
  if (fd < 0) fd = open(path.c_str(), flags, file_mode);
  if (fd < 0) {
    if (errno == EBUSY && block_device_) throw CodedError(env, "LOCKED", "device " + path + " is in use by another process");
    throw CodedError(env, "IO_ERROR", "cannot open device " + path, errno);
  }
  created_ = !exists;
  // open()'s mode is masked by the umask; a file made now gets exactly the mode asked for.
  if (created_ && fchmod(fd, static_cast<mode_t>(file_mode)) != 0) {
    int error = errno;
    close(fd);
    throw CodedError(env, "IO_ERROR", "cannot set the mode of device " + path, error);
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int error = errno;
    close(fd);
    if (error == EWOULDBLOCK) throw CodedError(env, "LOCKED", "device " + path + " is already open (by this or another process); close the other Db first");
    throw CodedError(env, "IO_ERROR", "cannot lock device " + path, error);
  }
  fd_ = fd;
  if (block_device_) {
    uint64_t bytes = 0;
    if (ioctl(fd, BLKGETSIZE64, &bytes) != 0) throw CodedError(env, "IO_ERROR", "cannot size block device " + path, errno);
    size_bytes_ = bytes & ~uint64_t{storage::kIoAlignBytes - 1};  // a block device is used whole; sizeBytes is ignored
    return;
  }
  if (fstat(fd, &status) != 0) throw CodedError(env, "IO_ERROR", "cannot stat device " + path, errno);
  file_bytes_ = static_cast<uint64_t>(status.st_size);
  size_bytes_ = file_bytes_ & ~uint64_t{storage::kIoAlignBytes - 1};
  if (created_) GrowFile(env, size_bytes);
}

void BlockDevice::GrowFile(Napi::Env env, uint64_t size_bytes) {
  if (size_bytes <= file_bytes_) return;
  int result = posix_fallocate(fd_, 0, static_cast<off_t>(size_bytes));
  if (result != 0 && ftruncate(fd_, static_cast<off_t>(size_bytes)) != 0) {
    throw CodedError(env, result == ENOSPC ? "OUT_OF_SPACE" : "IO_ERROR", "cannot size device " + path_, result);
  }
  file_bytes_ = size_bytes;
  size_bytes_ = size_bytes & ~uint64_t{storage::kIoAlignBytes - 1};
}

// grow(sizeBytes): extends a file device to sizeBytes (never shrinks it, never touches a block
// device): for a file the store has read and found blank, or one it restores after a
// truncation (storage.repairDevices). The new bytes read as zeros.
Napi::Value BlockDevice::Grow(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  uint64_t size_bytes = static_cast<uint64_t>(Integer(info, 0, 0, 9007199254740991.0, "sizeBytes"));
  if (size_bytes % storage::kIoAlignBytes != 0) throw Napi::RangeError::New(env, "grow: sizeBytes must be a multiple of 4096");
  if (block_device_) throw Napi::Error::New(env, "grow: " + path_ + " is a block device; its size is its own");
  GrowFile(env, size_bytes);
  return env.Undefined();
}

void BlockDevice::CheckOpen(Napi::Env env) const {
  if (fd_ < 0) throw CodedError(env, "IO_ERROR", "device " + path_ + " is closed");
}

Napi::Value BlockDevice::Info(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("path", path_);
  result.Set("directIo", direct_io_);
  result.Set("ioEngine", io_engine());
  result.Set("ioUringErrno", io_uring_errno_);
  result.Set("blockDevice", block_device_);
  result.Set("sizeBytes", static_cast<double>(size_bytes_));
  result.Set("fileBytes", static_cast<double>(block_device_ ? size_bytes_ : file_bytes_));
  result.Set("created", created_);
  result.Set("faults", faults_ != nullptr);
  result.Set("open", fd_ >= 0);
  return result;
}

void BlockDevice::Submit(Napi::Env env, IoRequest* request) {
  if (pending_++ == 0 && !referenced_) {
    referenced_ = true;
    Ref();
    notify_.Ref(env);
  }
  if (ring_ && request->kind == IoKind::kRead) {
    ring_->SubmitMany(&request, 1);
  } else {
    pool_->Submit(request);
  }
}

// read(id, offset, length, verifyRecord): reads the aligned span around [offset, offset+length);
// the completion carries those bytes (with verifyRecord: the record there, CRC-checked).
Napi::Value BlockDevice::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  uint32_t id = static_cast<uint32_t>(Integer(info, 0, 0, 4294967295.0, "id"));
  uint64_t offset = static_cast<uint64_t>(Integer(info, 1, 0, static_cast<double>(size_bytes_), "offset"));
  uint64_t length = static_cast<uint64_t>(Integer(info, 2, 1, static_cast<double>(results_capacity_), "length"));
  if (offset + length > size_bytes_) throw Napi::RangeError::New(env, "read past the end of the device");
  auto* request = new IoRequest();
  request->id = id;
  request->kind = IoKind::kRead;
  request->verify_record = info.Length() > 3 && info[3].ToBoolean();
  request->offset = offset & ~uint64_t{storage::kIoAlignBytes - 1};
  request->length = storage::AlignUp64(offset + length, storage::kIoAlignBytes) - request->offset;
  request->record_start = static_cast<uint32_t>(offset - request->offset);
  request->record_length = static_cast<uint32_t>(length);
  request->buffer = buffers_.Acquire(request->length, &request->capacity);
  if (request->buffer == nullptr) {
    delete request;
    throw CodedError(env, "IO_ERROR", "out of memory for an aligned read buffer", ENOMEM);
  }
  Submit(env, request);
  return env.Undefined();
}

// submitReads(count): queues `count` reads described in the submissions buffer, 4 f64 each:
// id, device offset, length, verifyRecord (0/1). One call and one lock for the whole batch.
Napi::Value BlockDevice::SubmitReads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  if (submissions_ == nullptr) throw Napi::Error::New(env, "submitReads: the device was opened without a submissions buffer");
  size_t count = static_cast<size_t>(Integer(info, 0, 0, static_cast<double>(submission_capacity_), "count"));
  batch_.clear();
  for (size_t i = 0; i < count; i++) {
    const double* entry = submissions_ + i * 4;
    uint64_t offset = static_cast<uint64_t>(entry[1]);
    uint64_t length = static_cast<uint64_t>(entry[2]);
    if (!(entry[1] >= 0) || !(entry[2] >= 1) || length > results_capacity_ || offset + length > size_bytes_) {
      for (IoRequest* queued : batch_) {
        buffers_.Release(queued->buffer, queued->capacity);
        delete queued;
      }
      batch_.clear();
      throw Napi::RangeError::New(env, "submitReads: a read is outside the device");
    }
    auto* request = new IoRequest();
    request->id = static_cast<uint32_t>(entry[0]);
    request->kind = IoKind::kRead;
    request->verify_record = entry[3] != 0;
    request->offset = offset & ~uint64_t{storage::kIoAlignBytes - 1};
    request->length = storage::AlignUp64(offset + length, storage::kIoAlignBytes) - request->offset;
    request->record_start = static_cast<uint32_t>(offset - request->offset);
    request->record_length = static_cast<uint32_t>(length);
    request->buffer = buffers_.Acquire(request->length, &request->capacity);
    if (request->buffer == nullptr) {
      delete request;
      throw CodedError(env, "IO_ERROR", "out of memory for an aligned read buffer", ENOMEM);
    }
    batch_.push_back(request);
  }
  if (batch_.empty()) return env.Undefined();
  if (pending_ == 0 && !referenced_) {
    referenced_ = true;
    Ref();
    notify_.Ref(env);
  }
  pending_ += batch_.size();
  if (ring_) {
    ring_->SubmitMany(batch_.data(), batch_.size());
  } else {
    pool_->SubmitMany(batch_.data(), batch_.size());
  }
  batch_.clear();
  return env.Undefined();
}

// write(id, offset, source, sourceStart, sourceEnd, syncAfter, sourceStable): copies
// source[sourceStart, sourceEnd) (so JS may keep appending to its block past sourceEnd),
// zero-pads it to 4096 and writes it at the aligned device offset; with syncAfter, fdatasync
// follows in the same request. The copy is made now, on the JS thread, unless sourceStable
// says the caller will not change those bytes until the write completes: then the I/O thread
// makes it (a 1 MiB block copy into a fresh aligned buffer is ~0.5 ms of page faults and
// memcpy), and the source is held by a reference until the completion is drained.
Napi::Value BlockDevice::Write(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  uint32_t id = static_cast<uint32_t>(Integer(info, 0, 0, 4294967295.0, "id"));
  uint64_t offset = static_cast<uint64_t>(Integer(info, 1, 0, static_cast<double>(size_bytes_), "offset"));
  if (!info[2].IsBuffer()) throw Napi::TypeError::New(env, "write: source must be a Buffer");
  Napi::Buffer<uint8_t> source = info[2].As<Napi::Buffer<uint8_t>>();
  size_t start = static_cast<size_t>(Integer(info, 3, 0, static_cast<double>(source.Length()), "sourceStart"));
  size_t end = static_cast<size_t>(Integer(info, 4, static_cast<double>(start), static_cast<double>(source.Length()), "sourceEnd"));
  if (offset % storage::kIoAlignBytes != 0) throw Napi::RangeError::New(env, "write: offset must be 4096-aligned");
  size_t length = storage::AlignUp64(end - start, storage::kIoAlignBytes);
  if (length == 0) throw Napi::RangeError::New(env, "write: nothing to write");
  if (offset + length > size_bytes_) throw Napi::RangeError::New(env, "write past the end of the device");
  auto* request = new IoRequest();
  request->id = id;
  request->kind = IoKind::kWrite;
  request->sync_after = info.Length() > 5 && info[5].ToBoolean();
  request->offset = offset;
  request->length = length;
  request->buffer = buffers_.Acquire(length, &request->capacity);
  if (request->buffer == nullptr) {
    delete request;
    throw CodedError(env, "IO_ERROR", "out of memory for an aligned write buffer", ENOMEM);
  }
  bool source_stable = info.Length() > 6 && info[6].ToBoolean();
  if (source_stable) {
    request->copy_source = source.Data() + start;
    request->copy_length = end - start;
    held_sources_.emplace(request, Napi::Persistent(source));
  } else {
    std::memcpy(request->buffer, source.Data() + start, end - start);
    std::memset(request->buffer + (end - start), 0, length - (end - start));
  }
  Submit(env, request);
  return env.Undefined();
}

Napi::Value BlockDevice::Sync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  auto* request = new IoRequest();
  request->id = static_cast<uint32_t>(Integer(info, 0, 0, 4294967295.0, "id"));
  request->kind = IoKind::kSync;
  Submit(env, request);
  return env.Undefined();
}

void BlockDevice::DrainToJs(Napi::Env env) {
  if (pool_ == nullptr) return;  // closed: everything was delivered by close()
  Napi::HandleScope scope(env);
  drained_.clear();
  done_->Drain(&drained_);
  size_t count = 0, results_used = 0;
  auto deliver = [&] {
    if (count == 0) return;
    size_t delivered = count;
    count = 0;
    results_used = 0;
    on_complete_.Call({Napi::Number::New(env, static_cast<double>(delivered))});
  };
  for (size_t i = 0; i < drained_.size(); i++) {
    IoRequest* request = drained_[i];
    uint32_t copy_length = 0;
    if (request->kind == IoKind::kRead && request->result == 0) {
      copy_length = request->record_length;
      if (results_used + copy_length > results_capacity_ || count == completion_capacity_) deliver();
      std::memcpy(results_ + results_used, request->buffer + request->record_start, copy_length);
    } else if (count == completion_capacity_) {
      deliver();
    }
    int32_t* slot = completions_ + count * kCompletionInts;
    slot[0] = static_cast<int32_t>(request->id);
    slot[1] = request->result;
    slot[2] = static_cast<int32_t>(results_used);
    slot[3] = static_cast<int32_t>(copy_length);
    results_used = storage::AlignUp64(results_used + copy_length, 8);
    count++;
    pending_--;
    buffers_.Release(request->buffer, request->capacity);
    request->buffer = nullptr;
    if (request->copy_source != nullptr) held_sources_.erase(request);
    delete request;
    drained_[i] = nullptr;
  }
  drained_.clear();
  try {
    deliver();
  } catch (...) {
    // An exception thrown by onComplete is reported by Node as an uncaught exception.
  }
  if (pending_ == 0 && calls_in_flight_.load() == 0 && referenced_) {
    referenced_ = false;
    notify_.Unref(env);
    Unref();
  }
}

// readSync(offset, length) -> Buffer: a blocking aligned read, for headers at open.
Napi::Value BlockDevice::ReadSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  uint64_t offset = static_cast<uint64_t>(Integer(info, 0, 0, static_cast<double>(size_bytes_), "offset"));
  uint64_t length = static_cast<uint64_t>(Integer(info, 1, 1, 64.0 * 1024 * 1024, "length"));
  if (offset % storage::kIoAlignBytes != 0 || length % storage::kIoAlignBytes != 0) throw Napi::RangeError::New(env, "readSync: offset and length must be 4096-aligned");
  if (offset + length > size_bytes_) throw Napi::RangeError::New(env, "readSync past the end of the device");
  size_t capacity;
  uint8_t* buffer = buffers_.Acquire(length, &capacity);
  int result = backend_->Read(offset, buffer, length);
  if (result != 0) {
    buffers_.Release(buffer, capacity);
    throw CodedError(env, "IO_ERROR", "read failed on " + path_, -result);
  }
  Napi::Buffer<uint8_t> copy = Napi::Buffer<uint8_t>::Copy(env, buffer, length);
  buffers_.Release(buffer, capacity);
  return copy;
}

// writeSync(offset, source, sync) : a blocking aligned write (+ fdatasync), for headers.
Napi::Value BlockDevice::WriteSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CheckOpen(env);
  uint64_t offset = static_cast<uint64_t>(Integer(info, 0, 0, static_cast<double>(size_bytes_), "offset"));
  if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "writeSync: source must be a Buffer");
  Napi::Buffer<uint8_t> source = info[1].As<Napi::Buffer<uint8_t>>();
  size_t length = storage::AlignUp64(source.Length(), storage::kIoAlignBytes);
  if (offset % storage::kIoAlignBytes != 0) throw Napi::RangeError::New(env, "writeSync: offset must be 4096-aligned");
  if (offset + length > size_bytes_) throw Napi::RangeError::New(env, "writeSync past the end of the device");
  size_t capacity;
  uint8_t* buffer = buffers_.Acquire(length, &capacity);
  std::memcpy(buffer, source.Data(), source.Length());
  std::memset(buffer + source.Length(), 0, length - source.Length());
  int result = backend_->Write(offset, buffer, length);
  if (result == 0 && info.Length() > 2 && info[2].ToBoolean()) result = backend_->Sync();
  buffers_.Release(buffer, capacity);
  if (result != 0) throw CodedError(env, "IO_ERROR", "write failed on " + path_, -result);
  return env.Undefined();
}

// poll(): delivers the completions that are already finished now, during this call (onComplete
// runs before it returns), instead of when the event loop next turns. For callers that keep the
// JS thread busy for long (a bulk load of awaited batchPut calls never yields to the event
// loop): a write's aligned buffer goes back to the pool, and the store learns that its block
// landed, only on delivery.
Napi::Value BlockDevice::Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ >= 0 && pool_) DrainToJs(env);
  return env.Undefined();
}

Napi::Value BlockDevice::Pending(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(pending_));
}

// fault(command, ...): 'plan' {failWriteIn, failWritesAfter, failSyncIn, tearWriteIn,
// tearKeepBytes, errno, holdUnsynced} | 'flip' (offset, bit) | 'clearFlips' | 'die' | 'reset' |
// 'counts' -> { reads, writes, syncs }.
Napi::Value BlockDevice::Fault(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (faults_ == nullptr) throw Napi::Error::New(env, "fault(): this device was not opened with faults: true");
  if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "fault(command, ...)");
  std::string command = info[0].As<Napi::String>().Utf8Value();
  if (command == "plan") {
    if (!info[1].IsObject()) throw Napi::TypeError::New(env, "fault('plan', plan)");
    Napi::Object plan_object = info[1].As<Napi::Object>();
    auto number = [&](const char* name, double fallback) {
      Napi::Value value = plan_object.Get(name);
      return value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : fallback;
    };
    FaultPlan plan;
    plan.fail_write_in = static_cast<int64_t>(number("failWriteIn", 0));
    plan.fail_writes_after = plan_object.Get("failWritesAfter").ToBoolean();
    plan.fail_sync_in = static_cast<int64_t>(number("failSyncIn", 0));
    plan.tear_write_in = static_cast<int64_t>(number("tearWriteIn", 0));
    plan.tear_keep_bytes = static_cast<uint64_t>(number("tearKeepBytes", 0));
    plan.fail_errno = static_cast<int>(number("errno", EIO));
    plan.hold_unsynced = plan_object.Get("holdUnsynced").ToBoolean();
    plan.max_write_delay_us = static_cast<uint32_t>(number("maxWriteDelayUs", 0));
    faults_->SetPlan(plan);
  } else if (command == "flip") {
    faults_->AddBitFlip(static_cast<uint64_t>(Integer(info, 1, 0, static_cast<double>(size_bytes_), "offset")),
                        static_cast<uint8_t>(Integer(info, 2, 0, 7, "bit")));
  } else if (command == "clearFlips") {
    faults_->ClearBitFlips();
  } else if (command == "die") {
    faults_->DropUnsyncedAndDie();
  } else if (command == "reset") {
    faults_->Reset();
  } else if (command == "counts") {
    Napi::Object counts = Napi::Object::New(env);
    counts.Set("reads", static_cast<double>(faults_->reads()));
    counts.Set("writes", static_cast<double>(faults_->writes()));
    counts.Set("syncs", static_cast<double>(faults_->syncs()));
    return counts;
  } else {
    throw Napi::Error::New(env, "fault(): unknown command " + command);
  }
  return env.Undefined();
}

// close(): finishes queued I/O (delivering its completions now), unlocks and closes. Idempotent.
Napi::Value BlockDevice::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd_ < 0) return env.Undefined();
  if (pool_) {
    if (ring_) ring_->Stop();  // waits for the reads in flight; unmaps and closes the ring
    pool_->Stop();
    DrainToJs(env);
    ring_.reset();
    pool_.reset();
  }
  notify_.Release();
  // A notification already queued still runs DrainToJs on this object: keep it alive then.
  if (referenced_ && calls_in_flight_.load() == 0) {
    referenced_ = false;
    Unref();
  }
  close(fd_);  // also releases the flock
  fd_ = -1;
  return env.Undefined();
}

}  // namespace shoal
