#include "io_backend.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace shoal {

int PosixBackend::Read(uint64_t offset, uint8_t* buffer, size_t length) {
  size_t done = 0;
  while (done < length) {
    ssize_t got = pread(fd_, buffer + done, length - done, static_cast<off_t>(offset + done));
    if (got < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (got == 0) return -EIO;  // past the end of the device
    done += static_cast<size_t>(got);
  }
  return 0;
}

int PosixBackend::Write(uint64_t offset, const uint8_t* buffer, size_t length) {
  size_t done = 0;
  while (done < length) {
    ssize_t put = pwrite(fd_, buffer + done, length - done, static_cast<off_t>(offset + done));
    if (put < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (put == 0) return -ENOSPC;
    done += static_cast<size_t>(put);
  }
  return 0;
}

int PosixBackend::Sync() {
  while (fdatasync(fd_) != 0) {
    if (errno != EINTR) return -errno;
  }
  return 0;
}

void FaultBackend::SetPlan(const FaultPlan& plan) {
  std::lock_guard<std::mutex> lock(mutex_);
  plan_ = plan;
  max_write_delay_us_ = plan.max_write_delay_us;
  failing_writes_ = false;
}

void FaultBackend::AddBitFlip(uint64_t offset, uint8_t bit) {
  std::lock_guard<std::mutex> lock(mutex_);
  flips_.emplace_back(offset, static_cast<uint8_t>(1u << (bit & 7)));
}

void FaultBackend::ClearBitFlips() {
  std::lock_guard<std::mutex> lock(mutex_);
  flips_.clear();
}

void FaultBackend::DropUnsyncedAndDie() {
  std::lock_guard<std::mutex> lock(mutex_);
  held_.clear();
  dead_ = true;
}

void FaultBackend::Reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  plan_ = FaultPlan{};
  max_write_delay_us_ = 0;
  dead_ = false;
  failing_writes_ = false;
  flips_.clear();
  held_.clear();
}

int FaultBackend::Read(uint64_t offset, uint8_t* buffer, size_t length) {
  reads_++;
  std::lock_guard<std::mutex> lock(mutex_);
  if (dead_) return -EIO;
  int result = inner_->Read(offset, buffer, length);
  if (result != 0) return result;
  // Writes not yet synced are visible to reads, as in a page cache, in the order they happened.
  for (const HeldWrite& held : held_) {
    uint64_t start = std::max(offset, held.offset);
    uint64_t end = std::min(offset + length, held.offset + held.bytes.size());
    if (start < end) std::memcpy(buffer + (start - offset), held.bytes.data() + (start - held.offset), end - start);
  }
  for (const auto& [flip_offset, mask] : flips_) {
    if (flip_offset >= offset && flip_offset < offset + length) buffer[flip_offset - offset] ^= mask;
  }
  return 0;
}

int FaultBackend::Write(uint64_t offset, const uint8_t* buffer, size_t length) {
  writes_++;
  uint32_t max_delay = max_write_delay_us_.load();
  if (max_delay > 0) {
    // A device completes writes in any order: sleep a pseudo-random while before this one lands.
    uint64_t state = delay_state_.fetch_add(0x9E3779B97F4A7C15ull) * 0xBF58476D1CE4E5B9ull;
    std::this_thread::sleep_for(std::chrono::microseconds((state >> 33) % (uint64_t{max_delay} + 1)));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (dead_) return -EIO;
  if (failing_writes_) return -plan_.fail_errno;
  if (plan_.fail_write_in > 0 && --plan_.fail_write_in == 0) {
    failing_writes_ = plan_.fail_writes_after;
    return -plan_.fail_errno;
  }
  if (plan_.tear_write_in > 0 && --plan_.tear_write_in == 0) {
    // Power is lost part-way: a prefix reaches the medium (it is synced, as if the drive had
    // flushed it), everything held before is lost, and the device answers nothing afterwards.
    size_t keep = static_cast<size_t>(std::min<uint64_t>(plan_.tear_keep_bytes, length));
    held_.clear();
    int result = keep > 0 ? inner_->Write(offset, buffer, keep) : 0;
    if (result == 0) inner_->Sync();
    dead_ = true;
    return -EIO;
  }
  if (plan_.hold_unsynced) {
    held_.push_back(HeldWrite{offset, std::vector<uint8_t>(buffer, buffer + length)});
    return 0;
  }
  return inner_->Write(offset, buffer, length);
}

int FaultBackend::Sync() {
  syncs_++;
  std::lock_guard<std::mutex> lock(mutex_);
  if (dead_) return -EIO;
  if (plan_.fail_sync_in > 0 && --plan_.fail_sync_in == 0) return -plan_.fail_errno;
  // Held writes reach the inner backend only on sync; buffers are not O_DIRECT-aligned here,
  // so the inner backend of a FaultBackend is always opened without O_DIRECT (see BlockDevice).
  for (const HeldWrite& held : held_) {
    int result = inner_->Write(held.offset, held.bytes.data(), held.bytes.size());
    if (result != 0) return result;
  }
  held_.clear();
  return inner_->Sync();
}

}  // namespace shoal
