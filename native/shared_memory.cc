#include "shared_memory.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "assert.h"

namespace shoal {
namespace {

constexpr size_t kCommitStepBytes = 1 << 20;
constexpr const char* kShmDirectory = "/dev/shm";

size_t PageBytes() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// Whether `suffix` (after "base.") is one the index creates: "h", or a letter from "ebsa"
// followed by decimal digits.
bool IsIndexSuffix(const char* suffix) {
  if (std::strcmp(suffix, "h") == 0) return true;
  if (std::strchr("ebsa", suffix[0]) == nullptr || suffix[0] == '\0' || suffix[1] == '\0') return false;
  for (const char* c = suffix + 1; *c != '\0'; ++c) {
    if (*c < '0' || *c > '9') return false;
  }
  return true;
}

// Random lookups over hundreds of MiB are bound by TLB misses; huge pages remove most of
// them. Only advice: the kernel ignores it where transparent huge pages are off (for tmpfs
// that is /sys/kernel/mm/transparent_hugepage/shmem_enabled).
void AdviseHugePages(uint8_t* data, size_t bytes) {
  constexpr size_t kHugePageBytes = 2 << 20;
  if (bytes >= kHugePageBytes) madvise(data, bytes, MADV_HUGEPAGE);
}

}  // namespace

void ThrowOsError(const std::string& operation, const std::string& name, int error_number) {
  bool space = error_number == ENOSPC || error_number == ENOMEM || error_number == EFBIG;
  std::string message = "shoal: " + operation + " of shared memory segment '" + name +
                        "' failed: " + std::strerror(error_number);
  if (space) message += " (is /dev/shm or memory full? free memory or lower the namespace's size)";
  throw NativeError(NativeError::Kind::kError, space ? "OUT_OF_SPACE" : "IO_ERROR", message);
}

MemorySegment::MemorySegment(MemorySegment&& other) noexcept { *this = std::move(other); }

MemorySegment& MemorySegment::operator=(MemorySegment&& other) noexcept {
  if (this != &other) {
    Unmap();
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
    committed_bytes_ = std::exchange(other.committed_bytes_, 0);
    fd_ = std::exchange(other.fd_, -1);
    name_ = std::move(other.name_);
  }
  return *this;
}

MemorySegment MemorySegment::Create(const std::string& name, size_t bytes, bool shared, uint32_t mode) {
  SHOAL_ASSERT(bytes > 0 && bytes % PageBytes() == 0, "segment %s bytes %zu", name.c_str(), bytes);
  MemorySegment segment;
  segment.name_ = name;
  segment.bytes_ = bytes;
  if (!shared) {
    void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (data == MAP_FAILED) ThrowOsError("mmap", name, errno);
    segment.data_ = static_cast<uint8_t*>(data);
    segment.committed_bytes_ = bytes;  // private memory cannot be reserved; the kernel overcommits
    AdviseHugePages(segment.data_, bytes);
    return segment;
  }
  int fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST) {
    // The index header does not know this segment: a leftover of a crash mid-growth.
    if (shm_unlink(name.c_str()) != 0 && errno != ENOENT) ThrowOsError("shm_unlink", name, errno);
    fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (fd < 0) ThrowOsError("shm_open", name, errno);
  // shm_open's mode is masked by the umask; the index asks for an exact one.
  if (fchmod(fd, static_cast<mode_t>(mode)) != 0 || ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    int error_number = errno;
    close(fd);
    shm_unlink(name.c_str());
    ThrowOsError("ftruncate", name, error_number);
  }
  void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) {
    int error_number = errno;
    close(fd);
    shm_unlink(name.c_str());
    ThrowOsError("mmap", name, error_number);
  }
  segment.data_ = static_cast<uint8_t*>(data);
  segment.fd_ = fd;
  AdviseHugePages(segment.data_, bytes);
  return segment;
}

bool MemorySegment::OpenExisting(const std::string& name, size_t expected_bytes, MemorySegment* out) {
  int fd = shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    ThrowOsError("shm_open", name, errno);
  }
  struct stat status;
  if (fstat(fd, &status) != 0) {
    int error_number = errno;
    close(fd);
    ThrowOsError("fstat", name, error_number);
  }
  size_t bytes = static_cast<size_t>(status.st_size);
  if (bytes == 0 || bytes % PageBytes() != 0 || (expected_bytes != 0 && bytes != expected_bytes)) {
    close(fd);
    return false;
  }
  void* data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) {
    int error_number = errno;
    close(fd);
    ThrowOsError("mmap", name, error_number);
  }
  MemorySegment segment;
  segment.name_ = name;
  segment.data_ = static_cast<uint8_t*>(data);
  segment.bytes_ = bytes;
  segment.fd_ = fd;
  AdviseHugePages(segment.data_, bytes);
  // The previous owner committed a prefix; its allocated size tells roughly how long.
  // Re-committing a page that exists is harmless, so an underestimate is fine.
  size_t allocated = static_cast<size_t>(status.st_blocks) * 512;
  segment.committed_bytes_ = std::min(bytes, allocated / kCommitStepBytes * kCommitStepBytes);
  *out = std::move(segment);
  return true;
}

void MemorySegment::CommitSlow(size_t bytes) {
  SHOAL_ASSERT(data_ != nullptr && bytes <= bytes_, "commit %zu of %s (%zu bytes)", bytes, name_.c_str(), bytes_);
  size_t target = std::min(bytes_, (bytes + kCommitStepBytes - 1) / kCommitStepBytes * kCommitStepBytes);
  if (fd_ >= 0) {
    int result = fallocate(fd_, 0, static_cast<off_t>(committed_bytes_), static_cast<off_t>(target - committed_bytes_));
    if (result != 0 && errno != EOPNOTSUPP && errno != ENOSYS) ThrowOsError("fallocate", name_, errno);
  }
  committed_bytes_ = target;
}

void MemorySegment::Unmap() {
  if (data_ != nullptr) munmap(data_, bytes_);
  if (fd_ >= 0) close(fd_);
  data_ = nullptr;
  fd_ = -1;
  bytes_ = 0;
  committed_bytes_ = 0;
}

bool MemorySegment::Unlink(const std::string& name) {
  if (shm_unlink(name.c_str()) == 0) return true;
  if (errno == ENOENT) return false;
  ThrowOsError("shm_unlink", name, errno);
}

size_t MemorySegment::UnlinkAll(const std::string& base_name) { return UnlinkAllInto(base_name, nullptr); }

size_t MemorySegment::UnlinkAllFreeingLater(const std::string& base_name) {
  std::vector<int> held;
  size_t removed = 0;
  try {
    removed = UnlinkAllInto(base_name, &held);
  } catch (...) {
    for (int fd : held) close(fd);
    throw;
  }
  if (held.empty()) return removed;
  try {
    std::thread([held = std::move(held)] {
      for (int fd : held) close(fd);
    }).detach();
  } catch (...) {
    for (int fd : held) close(fd);  // no thread: free them here
  }
  return removed;
}

size_t MemorySegment::UnlinkAllInto(const std::string& base_name, std::vector<int>* held) {
  SHOAL_ASSERT(!base_name.empty() && base_name[0] == '/', "base name '%s'", base_name.c_str());
  std::string prefix = base_name.substr(1) + ".";
  DIR* directory = opendir(kShmDirectory);
  if (directory == nullptr) {
    if (errno == ENOENT) return 0;
    ThrowOsError("opendir", kShmDirectory, errno);
  }
  size_t removed = 0;
  std::string failure;
  int failure_errno = 0;
  while (struct dirent* item = readdir(directory)) {
    if (std::strncmp(item->d_name, prefix.c_str(), prefix.size()) != 0) continue;
    if (!IsIndexSuffix(item->d_name + prefix.size())) continue;
    std::string name = std::string("/") + item->d_name;
    if (held != nullptr) {
      int fd = shm_open(name.c_str(), O_RDONLY | O_CLOEXEC, 0);
      if (fd >= 0) held->push_back(fd);  // else: unlinked synchronously below, as UnlinkAll does
    }
    if (shm_unlink(name.c_str()) == 0) {
      ++removed;
    } else if (errno != ENOENT && failure.empty()) {
      failure = name;
      failure_errno = errno;
    }
  }
  closedir(directory);
  if (!failure.empty()) ThrowOsError("shm_unlink", failure, failure_errno);
  return removed;
}

std::string ValidateSegmentBaseName(const std::string& base_name) {
  if (base_name.size() < 2 || base_name[0] != '/') return "name must start with '/' and have at least one more character";
  if (base_name.size() > kMaxSegmentBaseNameBytes) return "name must be at most 200 bytes";
  for (size_t i = 1; i < base_name.size(); ++i) {
    char c = base_name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return "name may contain only letters, digits, '-', '_' and '.' after the leading '/'";
  }
  return "";
}

}  // namespace shoal
