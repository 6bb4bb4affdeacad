// IoRing: executes a device's reads through one io_uring, with raw system calls (liburing is
// not a dependency). Why: the IoPool spends a thread wake-up, a blocking pread and a context
// switch per read; on a small machine those cycles are the ones the JS thread needs. Here one
// reaper thread takes queued reads in batches, puts them on the submission ring, and in the
// same io_uring_enter call waits for completions; it verifies records (verify_record) and hands
// finished requests to the same CompletionQueue as the pool (one notify per batch).
//
// Only kRead requests come here. Writes and syncs stay on the IoPool, so their ordering and
// durability rules are exactly the pool's (docs/native-boundary.md, "I/O engines"). A device
// uses an IoRing only when asked to (ioEngine 1): it measured slower for db.get than the pool
// on a busy 2-core machine, for the reasons given there.
//
// Thread use: Create, SubmitMany and Stop are called from the JS thread; while the reaper runs,
// every access to the rings happens on it. The JS thread wakes the reaper by
// writing to an eventfd that the reaper keeps a read armed on in the ring itself, so one
// io_uring_enter waits for both device completions and new work.
#pragma once

#include <linux/io_uring.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "io_pool.h"

namespace shoal {

class IoRing {
 public:
  // Submission ring slots; reads in flight are bounded by kRingEntries - 1 (one slot is the
  // eventfd wake read), so the completion ring (twice as large) can never overflow.
  static constexpr uint32_t kRingEntries = 256;

  // Sets up the ring for reads of `fd` (the caller keeps fd open until Stop returns) and starts
  // the reaper. Returns nullptr with *error_number set (a positive errno) when the kernel
  // refuses: ENOSYS without io_uring, EPERM under a seccomp filter or when io_uring is disabled
  // by sysctl, EINVAL when IORING_OP_READ is not supported (kernels before 5.6).
  static std::unique_ptr<IoRing> Create(int fd, CompletionQueue* done, int* error_number);
  ~IoRing();
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  // Queues kRead requests (never writes or syncs); their results arrive through `done`.
  void SubmitMany(IoRequest* const* requests, size_t count);
  // Finishes every queued and in-flight read (their completions go to `done`), joins the
  // reaper, unmaps the rings and closes the ring and eventfd. Idempotent.
  void Stop();

 private:
  IoRing(int fd, CompletionQueue* done) : fd_(fd), done_(done) {}
  int Setup();
  void Run();
  void Wake();
  // Fills submission slots from retries, then the queue, and arms the wake read; returns false
  // when the reaper should exit (stopping, and nothing queued or in flight).
  bool TakeWork();
  void PrepareRead(IoRequest* request);
  void PrepareWakeRead();
  void ReapCompletions();
  void FinishRead(IoRequest* request, int result);
  void Unmap();

  const int fd_;  // the device
  CompletionQueue* const done_;
  int ring_fd_ = -1;
  int wake_fd_ = -1;  // eventfd
  uint64_t wake_value_ = 0;  // the armed wake read lands here (reaper thread only)

  // The shared rings, as mapped (pointers into sq_map_/cq_map_; see io_uring_setup(2)).
  void* sq_map_ = nullptr;
  size_t sq_map_bytes_ = 0;
  void* cq_map_ = nullptr;  // == sq_map_ with IORING_FEAT_SINGLE_MMAP
  size_t cq_map_bytes_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  size_t sqes_bytes_ = 0;
  unsigned* sq_head_ = nullptr;
  unsigned* sq_tail_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned* sq_array_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;

  // Reaper thread only.
  unsigned sq_local_tail_ = 0;  // slots prepared, published to the kernel in Run
  uint32_t reads_in_flight_ = 0;  // prepared or submitted and not yet reaped (wake read excluded)
  bool wake_armed_ = false;
  std::vector<IoRequest*> retries_;  // short or interrupted reads to resubmit
  std::vector<IoRequest*> finished_;  // this pass's completions, pushed to done_ together
  std::vector<IoRequest*> taken_;  // swapped with queue_ under the lock
  std::deque<IoRequest*> backlog_;  // taken, waiting for a free slot (ring full)

  // Shared between the JS thread and the reaper.
  std::mutex mutex_;
  std::vector<IoRequest*> queue_;
  bool reaper_sleeping_ = false;  // the reaper found no work and will wait: wake it
  bool stopping_ = false;
  std::thread reaper_;
  bool stopped_ = false;  // JS thread only
};

}  // namespace shoal
