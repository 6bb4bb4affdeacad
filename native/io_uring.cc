#include "io_uring.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "assert.h"

namespace shoal {

namespace {

// The wake read's user_data; requests are identified by their (non-null) address.
constexpr uint64_t kWakeTag = 0;
// Reads in flight at once, leaving one submission slot for the wake read.
constexpr uint32_t kMaxReadsInFlight = IoRing::kRingEntries - 1;
// A read the kernel answers with -EAGAIN or -EINTR is resubmitted at most this many times.
constexpr uint8_t kMaxRetries = 16;

int SetupSyscall(unsigned entries, io_uring_params* params) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, params));
}

int EnterSyscall(int ring_fd, unsigned to_submit, unsigned min_complete, unsigned flags) {
  return static_cast<int>(syscall(__NR_io_uring_enter, ring_fd, to_submit, min_complete, flags, nullptr, 0));
}

int RegisterSyscall(int ring_fd, unsigned opcode, void* argument, unsigned count) {
  return static_cast<int>(syscall(__NR_io_uring_register, ring_fd, opcode, argument, count));
}

template <typename T>
T* At(void* base, uint32_t offset) {
  return reinterpret_cast<T*>(static_cast<uint8_t*>(base) + offset);
}

}  // namespace

std::unique_ptr<IoRing> IoRing::Create(int fd, CompletionQueue* done, int* error_number) {
  std::unique_ptr<IoRing> ring(new IoRing(fd, done));
  int error = ring->Setup();
  if (error == 0) {
    try {
      ring->reaper_ = std::thread([raw = ring.get()] { raw->Run(); });
    } catch (const std::system_error& thread_error) {
      error = thread_error.code().value() > 0 ? thread_error.code().value() : EAGAIN;
    }
  }
  if (error != 0) {
    *error_number = error;
    return nullptr;  // the destructor unmaps whatever Setup mapped and closes its descriptors
  }
  return ring;
}

// io_uring_setup(2), the probe for IORING_OP_READ, the three mappings, and the eventfd.
// Returns 0 or a positive errno; on failure the destructor releases what was obtained.
int IoRing::Setup() {
  io_uring_params params;
  std::memset(&params, 0, sizeof params);
  ring_fd_ = SetupSyscall(kRingEntries, &params);
  if (ring_fd_ < 0) return errno;

  // IORING_REGISTER_PROBE itself needs 5.6, as does IORING_OP_READ: a failing probe means the
  // kernel is too old, and the thread pool is used instead.
  alignas(io_uring_probe) uint8_t probe_bytes[sizeof(io_uring_probe) + 256 * sizeof(io_uring_probe_op)] = {};
  auto* probe = reinterpret_cast<io_uring_probe*>(probe_bytes);
  if (RegisterSyscall(ring_fd_, IORING_REGISTER_PROBE, probe, 256) < 0) return errno == EPERM ? EPERM : EINVAL;
  if (probe->last_op < IORING_OP_READ || (probe->ops[IORING_OP_READ].flags & IO_URING_OP_SUPPORTED) == 0) return EINVAL;
  if (params.sq_entries < kRingEntries || params.cq_entries < params.sq_entries) return EINVAL;

  sq_map_bytes_ = params.sq_off.array + params.sq_entries * sizeof(unsigned);
  cq_map_bytes_ = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
  bool single_map = (params.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single_map) sq_map_bytes_ = cq_map_bytes_ = std::max(sq_map_bytes_, cq_map_bytes_);
  void* map = mmap(nullptr, sq_map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd_, IORING_OFF_SQ_RING);
  if (map == MAP_FAILED) return errno;
  sq_map_ = map;
  if (single_map) {
    cq_map_ = sq_map_;
  } else {
    map = mmap(nullptr, cq_map_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd_, IORING_OFF_CQ_RING);
    if (map == MAP_FAILED) return errno;
    cq_map_ = map;
  }
  sqes_bytes_ = params.sq_entries * sizeof(io_uring_sqe);
  map = mmap(nullptr, sqes_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring_fd_, IORING_OFF_SQES);
  if (map == MAP_FAILED) return errno;
  sqes_ = static_cast<io_uring_sqe*>(map);

  sq_head_ = At<unsigned>(sq_map_, params.sq_off.head);
  sq_tail_ = At<unsigned>(sq_map_, params.sq_off.tail);
  sq_mask_ = *At<unsigned>(sq_map_, params.sq_off.ring_mask);
  sq_array_ = At<unsigned>(sq_map_, params.sq_off.array);
  cq_head_ = At<unsigned>(cq_map_, params.cq_off.head);
  cq_tail_ = At<unsigned>(cq_map_, params.cq_off.tail);
  cq_mask_ = *At<unsigned>(cq_map_, params.cq_off.ring_mask);
  cqes_ = At<io_uring_cqe>(cq_map_, params.cq_off.cqes);
  sq_local_tail_ = *sq_tail_;

  // Blocking on purpose: io_uring answers a read of an O_NONBLOCK file with -EAGAIN instead of
  // waiting for it to become readable.
  wake_fd_ = eventfd(0, EFD_CLOEXEC);
  if (wake_fd_ < 0) return errno;
  return 0;
}

IoRing::~IoRing() { Stop(); }

void IoRing::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (reaper_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    // Completes the armed wake read (if any), so the reaper sees stopping_ once its reads are in.
    Wake();
    reaper_.join();
  }
  Unmap();
  if (wake_fd_ >= 0) close(wake_fd_);
  if (ring_fd_ >= 0) close(ring_fd_);  // nothing is in flight: the reaper waited for it all
  wake_fd_ = ring_fd_ = -1;
}

void IoRing::Unmap() {
  if (sqes_ != nullptr) munmap(sqes_, sqes_bytes_);
  if (cq_map_ != nullptr && cq_map_ != sq_map_) munmap(cq_map_, cq_map_bytes_);
  if (sq_map_ != nullptr) munmap(sq_map_, sq_map_bytes_);
  sqes_ = nullptr;
  cq_map_ = sq_map_ = nullptr;
}

void IoRing::SubmitMany(IoRequest* const* requests, size_t count) {
  if (count == 0) return;
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    SHOAL_ASSERT(!stopping_, "io_uring: %zu reads submitted after stop", count);
    for (size_t i = 0; i < count; i++) {
      SHOAL_ASSERT(requests[i]->kind == IoKind::kRead, "io_uring: request kind %d is not a read", static_cast<int>(requests[i]->kind));
      queue_.push_back(requests[i]);
    }
    wake = reaper_sleeping_;
    reaper_sleeping_ = false;
  }
  if (wake) Wake();  // else the reaper is busy and looks at the queue before it next waits
}

// Completes the reaper's wake read (a write to its eventfd).
void IoRing::Wake() {
  uint64_t one = 1;
  ssize_t written;
  do {
    written = write(wake_fd_, &one, sizeof one);
  } while (written < 0 && errno == EINTR);
  SHOAL_ASSERT(written == sizeof one, "io_uring: eventfd write failed: %s", std::strerror(errno));
}

// The reaper: fill the submission ring, then one io_uring_enter that submits and waits for at
// least one completion (a device read or the wake read), then reap everything that finished.
void IoRing::Run() {
  for (;;) {
    if (!TakeWork()) return;
    __atomic_store_n(sq_tail_, sq_local_tail_, __ATOMIC_RELEASE);
    unsigned to_submit = sq_local_tail_ - __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
    int entered = EnterSyscall(ring_fd_, to_submit, 1, IORING_ENTER_GETEVENTS);
    if (entered < 0) {
      int error = errno;
      // EINTR: a signal; EAGAIN/EBUSY: the kernel is short of memory for now. Entries it did not
      // take stay in the ring and are submitted on the next pass.
      SHOAL_ASSERT(error == EINTR || error == EAGAIN || error == EBUSY, "io_uring_enter(%u to submit) failed: %s", to_submit, std::strerror(error));
      if (error != EINTR) usleep(100);
    }
    ReapCompletions();
    done_->Push(finished_.data(), finished_.size());
    finished_.clear();
  }
}

// Returns false when the reaper should exit: stopping, nothing queued, nothing in flight. The
// lock is held only to take the whole queue (a swap): the JS thread must never wait behind a
// reaper that was preempted while filling the ring, which on a busy machine can last a
// scheduling period.
bool IoRing::TakeWork() {
  bool stopping;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    taken_.swap(queue_);
    stopping = stopping_;
    // The queue is empty now: a submission from here on must wake the reaper, which may be
    // about to wait for completions only. (When reads stay in the backlog because the ring is
    // full, the reaper comes back here after the next completion anyway.)
    reaper_sleeping_ = true;
  }
  backlog_.insert(backlog_.end(), taken_.begin(), taken_.end());
  taken_.clear();
  while (!retries_.empty() && reads_in_flight_ < kMaxReadsInFlight) {
    PrepareRead(retries_.back());
    retries_.pop_back();
  }
  while (!backlog_.empty() && reads_in_flight_ < kMaxReadsInFlight) {
    PrepareRead(backlog_.front());
    backlog_.pop_front();
  }
  if (!wake_armed_ && !stopping) PrepareWakeRead();
  return !(stopping && backlog_.empty() && retries_.empty() && reads_in_flight_ == 0 && !wake_armed_);
}

void IoRing::PrepareRead(IoRequest* request) {
  unsigned used = sq_local_tail_ - __atomic_load_n(sq_head_, __ATOMIC_ACQUIRE);
  SHOAL_ASSERT(used < kRingEntries, "io_uring: submission ring full (%u used, %u reads in flight)", used, reads_in_flight_);
  unsigned index = sq_local_tail_ & sq_mask_;
  io_uring_sqe* sqe = &sqes_[index];
  std::memset(sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_READ;
  sqe->fd = fd_;
  sqe->off = request->offset + request->transferred;
  sqe->addr = reinterpret_cast<uint64_t>(request->buffer + request->transferred);
  sqe->len = static_cast<uint32_t>(request->length - request->transferred);
  sqe->user_data = reinterpret_cast<uint64_t>(request);
  sq_array_[index] = index;
  sq_local_tail_++;
  reads_in_flight_++;
}

void IoRing::PrepareWakeRead() {
  unsigned index = sq_local_tail_ & sq_mask_;
  io_uring_sqe* sqe = &sqes_[index];
  std::memset(sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_READ;
  sqe->fd = wake_fd_;
  sqe->addr = reinterpret_cast<uint64_t>(&wake_value_);
  sqe->len = sizeof wake_value_;
  sqe->user_data = kWakeTag;
  sq_array_[index] = index;
  sq_local_tail_++;
  wake_armed_ = true;
}

void IoRing::ReapCompletions() {
  unsigned head = *cq_head_;  // only this thread moves the head
  unsigned tail = __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE);
  for (; head != tail; head++) {
    const io_uring_cqe& cqe = cqes_[head & cq_mask_];
    if (cqe.user_data == kWakeTag) {
      wake_armed_ = false;  // re-armed on the next pass unless stopping
      continue;
    }
    auto* request = reinterpret_cast<IoRequest*>(cqe.user_data);
    int result = cqe.res;
    reads_in_flight_--;
    if ((result == -EAGAIN || result == -EINTR) && request->ring_retries < kMaxRetries) {
      request->ring_retries++;
      retries_.push_back(request);
    } else if (result < 0) {
      FinishRead(request, result);
    } else if (result == 0) {
      FinishRead(request, -EIO);  // past the end of the device, as PosixBackend::Read says
    } else {
      request->transferred += static_cast<size_t>(result);
      if (request->transferred < request->length) {
        retries_.push_back(request);  // a short read: the rest is submitted on the next pass
      } else {
        FinishRead(request, 0);
      }
    }
  }
  __atomic_store_n(cq_head_, head, __ATOMIC_RELEASE);
}

void IoRing::FinishRead(IoRequest* request, int result) {
  request->result = result;
  if (result == 0 && request->verify_record) VerifyReadRecord(request);
  finished_.push_back(request);
}

}  // namespace shoal
