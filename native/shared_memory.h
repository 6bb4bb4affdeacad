// Memory segments for the primary index and the record arena: POSIX shared memory
// (shm_open + ftruncate + mmap MAP_SHARED, surviving the process for warm restart), or the
// same interface over private anonymous memory. No N-API here: the storage engine may use it
// from a worker thread. Errors are thrown as NativeError and turned into JS errors at the
// N-API boundary; an OS error never aborts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace shoal {

// An error for JS: its kind picks the JS class and `code` becomes the error's code property
// ('IO_ERROR', 'OUT_OF_SPACE', 'NOT_OPEN', or empty for TypeError/RangeError).
class NativeError : public std::runtime_error {
 public:
  enum class Kind { kError, kTypeError, kRangeError };
  NativeError(Kind kind, std::string code, const std::string& message)
      : std::runtime_error(message), kind_(kind), code_(std::move(code)) {}
  Kind kind() const { return kind_; }
  const std::string& code() const { return code_; }

 private:
  Kind kind_;
  std::string code_;
};

// Throws NativeError for an errno value from `operation` on `name`: ENOSPC/ENOMEM/EFBIG
// become OUT_OF_SPACE, everything else IO_ERROR.
[[noreturn]] void ThrowOsError(const std::string& operation, const std::string& name, int error_number);

// One mapped segment. Shared segments reserve their pages explicitly with Commit() (fallocate
// on tmpfs), so running out of /dev/shm is an OUT_OF_SPACE error instead of a SIGBUS when a
// page is first touched. Move-only; the destructor unmaps but never unlinks.
class MemorySegment {
 public:
  MemorySegment() = default;
  MemorySegment(MemorySegment&& other) noexcept;
  MemorySegment& operator=(MemorySegment&& other) noexcept;
  MemorySegment(const MemorySegment&) = delete;
  MemorySegment& operator=(const MemorySegment&) = delete;
  ~MemorySegment() { Unmap(); }

  // Creates and maps a zero-filled segment of `bytes` (a multiple of the page size). A shared
  // segment gets exactly the file mode `mode` (whatever the umask); one of the same name left
  // over from a crash is replaced. Throws NativeError.
  static MemorySegment Create(const std::string& name, size_t bytes, bool shared, uint32_t mode);

  // Maps an existing shared segment whose size must be `expected_bytes` (0: any size).
  // Returns false when it does not exist or has another size; throws NativeError on other
  // errors.
  static bool OpenExisting(const std::string& name, size_t expected_bytes, MemorySegment* out);

  // Removes a shared segment's name; returns false if it did not exist. Throws on other errors.
  static bool Unlink(const std::string& name);

  // Removes every shared segment named `base_name` + "." + suffix (the index's naming scheme,
  // e.g. "/shoal-x-users.h", ".e0", ".a3"); returns how many were removed.
  static size_t UnlinkAll(const std::string& base_name);
  // UnlinkAll, but the pages are freed on a background thread: each segment is opened before
  // its name is removed, and those descriptors are closed there (the kernel frees a segment's
  // pages at its last close: ~0.3 ms per MiB, a 600 MiB index took 100-200 ms on the JS
  // thread). The names are gone when it returns, as with UnlinkAll.
  static size_t UnlinkAllFreeingLater(const std::string& base_name);

  // Ensures the pages of [0, bytes) are allocated (shared segments: fallocate in 1 MiB
  // steps). Throws NativeError OUT_OF_SPACE when /dev/shm is full.
  void Commit(size_t bytes) {
    if (bytes > committed_bytes_) CommitSlow(bytes);
  }

  void Unmap();
  bool mapped() const { return data_ != nullptr; }
  uint8_t* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  size_t committed_bytes() const { return committed_bytes_; }

 private:
  void CommitSlow(size_t bytes);
  // UnlinkAll; with `held`, each segment is opened first and its descriptor appended there.
  static size_t UnlinkAllInto(const std::string& base_name, std::vector<int>* held);

  uint8_t* data_ = nullptr;
  size_t bytes_ = 0;
  size_t committed_bytes_ = 0;
  int fd_ = -1;  // kept open while mapped so Commit() can fallocate; -1 for private memory
  std::string name_;
};

// Checks a POSIX shared-memory base name: starts with '/', has no other '/', at most
// kMaxSegmentBaseNameBytes bytes, and only [A-Za-z0-9._-]. Returns an error message or "".
constexpr size_t kMaxSegmentBaseNameBytes = 200;
// The file mode of new shared segments unless the index is given another (owner only).
constexpr uint32_t kDefaultSegmentMode = 0600;
std::string ValidateSegmentBaseName(const std::string& base_name);

}  // namespace shoal
