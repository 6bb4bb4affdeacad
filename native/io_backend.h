// The storage engine's only access to the operating system's block I/O (STYLE.md: "all
// operating-system access goes through one interface"). PosixBackend is the real one (O_DIRECT
// or buffered pread/pwrite/fdatasync); FaultBackend wraps any backend and injects the failures
// the fault tests need: EIO on the Nth write or sync, a torn write followed by "power loss",
// flipped bits on read, and dropping writes that were never synced.
//
// Every method is thread-safe and returns 0 or a negative errno. Offsets, lengths and buffers
// must be 4096-aligned when the backend was opened with O_DIRECT (the caller guarantees it).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace shoal {

class IoBackend {
 public:
  virtual ~IoBackend() = default;
  // Reads exactly `length` bytes (a short read past the end of the device is -EIO).
  virtual int Read(uint64_t offset, uint8_t* buffer, size_t length) = 0;
  // Writes exactly `length` bytes (short writes are retried).
  virtual int Write(uint64_t offset, const uint8_t* buffer, size_t length) = 0;
  // fdatasync: everything written before the call returned is on stable storage after it.
  virtual int Sync() = 0;
};

class PosixBackend final : public IoBackend {
 public:
  explicit PosixBackend(int fd) : fd_(fd) {}
  int Read(uint64_t offset, uint8_t* buffer, size_t length) override;
  int Write(uint64_t offset, const uint8_t* buffer, size_t length) override;
  int Sync() override;

 private:
  int fd_;
};

// What FaultBackend does next; counters count down to 1 ("the next one") and 0 means off.
struct FaultPlan {
  int64_t fail_write_in = 0;  // the Nth write from now fails with fail_errno (no bytes written)
  bool fail_writes_after = false;  // every write after that one fails too
  int64_t fail_sync_in = 0;  // the Nth sync from now fails with fail_errno
  int64_t tear_write_in = 0;  // the Nth write from now writes only tear_keep_bytes, then the device is dead
  uint64_t tear_keep_bytes = 0;
  int fail_errno = 5;  // EIO
  bool hold_unsynced = false;  // keep writes in memory until Sync() (so they can be dropped)
  uint32_t max_write_delay_us = 0;  // each write waits a random 0..this long first (reorders I/O)
};

class FaultBackend final : public IoBackend {
 public:
  explicit FaultBackend(std::unique_ptr<IoBackend> inner) : inner_(std::move(inner)) {}
  int Read(uint64_t offset, uint8_t* buffer, size_t length) override;
  int Write(uint64_t offset, const uint8_t* buffer, size_t length) override;
  int Sync() override;

  void SetPlan(const FaultPlan& plan);
  // Flips bit `bit` (0..7) of the byte at device offset `offset` in everything read from now on.
  void AddBitFlip(uint64_t offset, uint8_t bit);
  void ClearBitFlips();
  // Simulates power loss: forgets unsynced writes and fails every later I/O with EIO.
  void DropUnsyncedAndDie();
  // Everything back to normal (the device is alive, no plan, no flips, nothing held).
  void Reset();

  uint64_t reads() const { return reads_.load(); }
  uint64_t writes() const { return writes_.load(); }
  uint64_t syncs() const { return syncs_.load(); }

 private:
  struct HeldWrite {
    uint64_t offset;
    std::vector<uint8_t> bytes;
  };
  std::unique_ptr<IoBackend> inner_;
  std::mutex mutex_;
  FaultPlan plan_;
  bool dead_ = false;
  bool failing_writes_ = false;
  std::vector<std::pair<uint64_t, uint8_t>> flips_;
  std::vector<HeldWrite> held_;
  std::atomic<uint64_t> reads_{0}, writes_{0}, syncs_{0};
  std::atomic<uint32_t> max_write_delay_us_{0};
  std::atomic<uint64_t> delay_state_{0x9E3779B97F4A7C15ull};
};

}  // namespace shoal
