// A fixed pool of I/O threads over one IoBackend. Requests are queued by the JS thread and
// executed concurrently (so random reads reach the queue depth the device needs, beyond
// libuv's 4 threads); finished requests go onto a CompletionQueue, which calls `notify` once
// per batch (not once per request) so the JS thread drains many at a time. The io_uring
// executor (io_uring.h) delivers through the same CompletionQueue.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "io_backend.h"

namespace shoal {

// 4096-aligned buffers, recycled by power-of-two size class so the hot path does not mmap.
class AlignedBufferPool {
 public:
  ~AlignedBufferPool();
  uint8_t* Acquire(size_t length, size_t* capacity);
  void Release(uint8_t* buffer, size_t capacity);

 private:
  static constexpr size_t kMaxCachedPerClass = 64;
  std::mutex mutex_;
  std::vector<std::vector<uint8_t*>> free_by_class_ = std::vector<std::vector<uint8_t*>>(32);
};

enum class IoKind : uint8_t { kRead, kWrite, kSync };

struct IoRequest {
  uint32_t id = 0;
  IoKind kind = IoKind::kRead;
  bool sync_after = false;   // kWrite: fdatasync after the write, in the same request
  bool verify_record = false;  // kRead: check the record at record_start (CRC) on the I/O thread
  uint64_t offset = 0;       // aligned device offset
  uint8_t* buffer = nullptr;  // aligned, owned by the request (AlignedBufferPool)
  // kWrite: when set, the I/O thread copies these bytes into buffer (zero-padding it to
  // length) before writing; the submitter keeps them alive and unchanged until completion.
  const uint8_t* copy_source = nullptr;
  size_t copy_length = 0;
  size_t capacity = 0;
  size_t length = 0;         // aligned transfer length
  uint32_t record_start = 0;  // kRead: bytes of interest start here in buffer
  uint32_t record_length = 0;
  int result = 0;            // 0 or -errno; -EBADMSG: the record failed its checks
  size_t transferred = 0;    // io_uring only: bytes read so far (a short read is resubmitted)
  uint8_t ring_retries = 0;  // io_uring only: resubmissions after -EAGAIN/-EINTR
};

// Checks the record a successful verify_record read brought in (CRC and lengths): sets
// result to -EBADMSG when it fails, else record_length to the record's real length. Runs on
// the I/O thread that finished the read (a pool thread or the io_uring reaper).
void VerifyReadRecord(IoRequest* request);

// Finished requests waiting for the JS thread. Any thread may push; `notify` runs once per
// batch: on the first push after a Drain, not again until the JS thread drains.
class CompletionQueue {
 public:
  explicit CompletionQueue(std::function<void()> notify) : notify_(std::move(notify)) {}
  void Push(IoRequest* const* requests, size_t count);
  // Moves finished requests into `out`; returns how many.
  size_t Drain(std::vector<IoRequest*>* out);

 private:
  std::function<void()> notify_;
  std::mutex mutex_;
  std::vector<IoRequest*> done_;
  bool notify_pending_ = false;
};

class IoPool {
 public:
  // Finished requests go to `done`, which must outlive the pool.
  IoPool(IoBackend* backend, int threads, CompletionQueue* done);
  ~IoPool();
  void Submit(IoRequest* request);
  // Queues many under one lock (one wake-up per request at most, none for busy threads).
  void SubmitMany(IoRequest* const* requests, size_t count);
  // Finishes queued work and joins the threads. Idempotent.
  void Stop();

 private:
  void Run();
  void Execute(IoRequest* request);
  IoBackend* backend_;
  CompletionQueue* done_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<IoRequest*> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace shoal
