// BlockDevice: one storage device (a file created and sized by Shoal, or a raw block device)
// opened with O_DIRECT where possible, exclusively locked, with completions delivered to JS in
// batches. Two I/O engines: "threads" (everything on an IoPool of `threads` threads, the
// default) and, when asked for, "io_uring" (reads through an IoRing, writes and fdatasync on a
// small IoPool), used only if the kernel allows it and the backend is the real one (never with
// fault injection).
//
// JS side: lib/storage/native-device.ts (which documents every method and the completion
// layout). Registers BlockDevice, StorageScanner and the storage* format functions.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "io_backend.h"
#include "io_pool.h"
#include "io_uring.h"

namespace shoal {

class BlockDevice : public Napi::ObjectWrap<BlockDevice> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit BlockDevice(const Napi::CallbackInfo& info);
  ~BlockDevice() override;

  // For the cold-start scanner (same thread-safety as the pool: any thread).
  IoBackend* backend() const { return backend_.get(); }
  bool direct_io() const { return direct_io_; }
  uint64_t size_bytes() const { return size_bytes_; }
  bool is_open() const { return fd_ >= 0; }
  const char* io_engine() const { return ring_ ? "io_uring" : "threads"; }
  AlignedBufferPool* buffers() { return &buffers_; }

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Write(const Napi::CallbackInfo& info);
  Napi::Value Sync(const Napi::CallbackInfo& info);
  Napi::Value SubmitReads(const Napi::CallbackInfo& info);
  Napi::Value ReadSync(const Napi::CallbackInfo& info);
  Napi::Value WriteSync(const Napi::CallbackInfo& info);
  Napi::Value Pending(const Napi::CallbackInfo& info);
  Napi::Value Poll(const Napi::CallbackInfo& info);
  Napi::Value Fault(const Napi::CallbackInfo& info);
  Napi::Value Grow(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  void OpenDevice(Napi::Env env, const std::string& path, uint64_t size_bytes, bool create, uint32_t file_mode, int direct_mode, bool refuse_direct);
  void GrowFile(Napi::Env env, uint64_t size_bytes);
  void Submit(Napi::Env env, IoRequest* request);
  void DrainToJs(Napi::Env env);
  void CheckOpen(Napi::Env env) const;

  int fd_ = -1;
  bool direct_io_ = false;
  bool block_device_ = false;
  uint64_t size_bytes_ = 0;  // usable: file_bytes_ aligned down to 4 KiB (a block device's size)
  uint64_t file_bytes_ = 0;
  bool created_ = false;  // this open created the file
  std::string path_;
  std::unique_ptr<IoBackend> backend_;
  FaultBackend* faults_ = nullptr;  // non-null when opened with fault injection
  AlignedBufferPool buffers_;
  // Declared before the executors that push into it, so it is destroyed after them.
  std::unique_ptr<CompletionQueue> done_;
  std::unique_ptr<IoRing> ring_;  // reads, when the io_uring engine is in use
  int io_uring_errno_ = 0;  // why io_uring_setup (or its probe) was refused; 0 if not tried
  std::unique_ptr<IoPool> pool_;  // writes and syncs; reads too without ring_
  Napi::ThreadSafeFunction notify_;
  Napi::FunctionReference on_complete_;
  Napi::Reference<Napi::Buffer<uint8_t>> completions_ref_;
  Napi::Reference<Napi::Buffer<uint8_t>> results_ref_;
  int32_t* completions_ = nullptr;
  size_t completion_capacity_ = 0;
  double* submissions_ = nullptr;
  size_t submission_capacity_ = 0;
  Napi::Reference<Napi::Buffer<uint8_t>> submissions_ref_;
  std::vector<IoRequest*> batch_;
  uint8_t* results_ = nullptr;
  size_t results_capacity_ = 0;
  uint64_t pending_ = 0;  // submitted and not yet delivered to JS (JS thread only)
  std::atomic<int64_t> calls_in_flight_{0};
  bool referenced_ = false;
  std::vector<IoRequest*> drained_;
  // Sources of writes whose copy the I/O thread makes (write(..., sourceStable)): held until
  // the request's completion is drained, so the bytes stay alive while the I/O thread reads them.
  std::unordered_map<IoRequest*, Napi::Reference<Napi::Buffer<uint8_t>>> held_sources_;
};

}  // namespace shoal
