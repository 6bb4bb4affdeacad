// The index image: the whole index without data as one byte string, for the index checkpoint
// file (docs/storage.md, "Restart after a crash"; docs/storage-format.md, "The index checkpoint
// file"). It is a fixed head (magic, layout, the linear-hashing numbers), every entry slot
// [0, end) and every bucket [0, bucket count), cut into pieces (the head, 1,024 entries, 8,192
// buckets), each with its own CRC-32C.
//
// Writing (ImageCopy): BeginImageCopy, on the JS thread between two mutations, fixes the
// structure of that moment: the head's numbers, and for every piece where it lives. A worker
// thread (ImageCopy::Run) then copies the pieces in order into its own buffer, checksums them
// and writes them to the file, while the JS thread goes on using the index. Each piece is
// claimed by exactly one side (an atomic state per piece): before the JS thread makes a
// structural write to a piece (a slot allocated or freed, a chain link, a bucket head) that the
// worker has not copied yet, it writes that piece itself, as it still is; a piece the worker is
// copying at that moment is waited for (microseconds). Bucket splits are held back while a copy
// runs (primary_index.cc). So the image's structure (which slots are live, every chain, every
// bucket, the free list) is exactly the structure at BeginImageCopy. An in-place update of a
// live entry's fields is not held back, but it never overlaps the copy of its piece: it takes
// the piece's state from pending to kJsFields for its few stores (the worker waits), or waits
// for the worker's copy of it to end (UpdateFields). So every piece of the image is a copy of
// that piece as it was at one moment of the copy, by the worker or the JS thread, never
// read while the other thread writes it: no entry in it is torn (half-updated), and each
// entry is one that the index held at some moment since BeginImageCopy. Which moment does not
// matter: every such update wrote a copy of its record to a block at or above the checkpoint
// sequence, which recovery replays over the entry, and live bytes are recounted from the
// loaded entries.
//
// Loading (LoadImageFile) reads each run of pieces straight into the new index's segments on
// a worker thread (two when there are two cores; the reads allocate the segments' pages), checks each piece's CRC-32C and links while
// it is still in cache, collects the entries of blocks that were not kept and counts the others'
// bytes per block; the stale entries are removed at the end.
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <system_error>
#include <thread>

#include "crc32c.h"
#include "primary_index.h"
#include "primary_index_layout.h"

namespace shoal {

namespace {

constexpr uint64_t kImageMagic = 0x474D495844495053;  // "SPIDXIMG" little-endian
constexpr uint32_t kImageVersion = 2;
constexpr uint32_t kEntriesPerPiece = 1024;   // 48 KiB
constexpr uint32_t kBucketsPerPiece = 8192;   // 32 KiB
constexpr uint32_t kPiecesPerRun = 16;        // one write or read: at most 768 KiB
constexpr uint32_t kRecordAlignBytes = 16;    // lib/storage/constants.ts RECORD_ALIGN_BYTES
constexpr int kCopyNice = 10;                 // the image writer's niceness (CFS weight 110 against 1024)

struct ImageHead {
  uint64_t magic;
  uint32_t version;
  uint32_t head_bytes;
  IndexLayout layout;
  uint64_t entry_count;
  uint32_t free_head;
  uint32_t end_entry_id;
  uint32_t hash_level;
  uint32_t reserved;
  uint64_t split_pointer;
  uint64_t bucket_count;
};

// kPending: nobody took it yet. kWorker: the worker is copying it. kJs: the JS thread is
// writing it to the file itself (a structural write is coming). kDone: copied; anyone may
// change it. kJsFields: the JS thread is updating an entry's fields in it (back to kPending).
enum PieceState : uint8_t { kPending = 0, kWorker = 1, kJs = 2, kDone = 3, kJsFields = 4 };

struct Piece {
  uint8_t* memory;       // where the piece lives in the index (or the copy's head)
  uint32_t bytes;
  uint64_t file_offset;
};

uint64_t PieceCount(uint64_t end_entry_id, uint64_t bucket_count) {
  return 1 + (end_entry_id + kEntriesPerPiece - 1) / kEntriesPerPiece + (bucket_count + kBucketsPerPiece - 1) / kBucketsPerPiece;
}

// Every piece of an image of these numbers, in file order: where it lives (`at(kind, start)`:
// kind 0 entries, 1 buckets) and where it goes. Pieces never cross a stage: stages start at
// multiples of 64 Ki elements.
template <typename At>
std::vector<Piece> Pieces(uint8_t* head, uint64_t end_entry_id, uint64_t bucket_count, uint64_t file_offset, At at) {
  std::vector<Piece> pieces;
  pieces.reserve(PieceCount(end_entry_id, bucket_count));
  pieces.push_back({head, sizeof(ImageHead), file_offset});
  uint64_t offset = file_offset + sizeof(ImageHead);
  for (uint64_t start = 0; start < end_entry_id; start += kEntriesPerPiece) {
    uint32_t bytes = static_cast<uint32_t>(std::min<uint64_t>(kEntriesPerPiece, end_entry_id - start) * sizeof(IndexEntry));
    pieces.push_back({at(0, static_cast<uint32_t>(start)), bytes, offset});
    offset += bytes;
  }
  for (uint64_t start = 0; start < bucket_count; start += kBucketsPerPiece) {
    uint32_t bytes = static_cast<uint32_t>(std::min<uint64_t>(kBucketsPerPiece, bucket_count - start) * sizeof(uint32_t));
    pieces.push_back({at(1, static_cast<uint32_t>(start)), bytes, offset});
    offset += bytes;
  }
  return pieces;
}

// pwrite/pread of everything, or the errno (0: done; -1: the file ended first).
int WriteAll(int fd, const uint8_t* data, size_t bytes, uint64_t offset) {
  while (bytes > 0) {
    ssize_t written = pwrite(fd, data, bytes, static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += written;
    bytes -= static_cast<size_t>(written);
    offset += static_cast<uint64_t>(written);
  }
  return 0;
}

int ReadAll(int fd, uint8_t* data, size_t bytes, uint64_t offset) {
  while (bytes > 0) {
    ssize_t read = pread(fd, data, bytes, static_cast<off_t>(offset));
    if (read < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (read == 0) return -1;
    data += read;
    bytes -= static_cast<size_t>(read);
    offset += static_cast<uint64_t>(read);
  }
  return 0;
}

void Pause(uint32_t spins) {
  if (spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  } else {
    sched_yield();
  }
}

}  // namespace

// One image being written (see the top of the file). Shared by the index (JS thread) and the
// worker; lives until both let go.
class ImageCopy {
 public:
  ImageHead head{};
  std::vector<Piece> pieces;
  std::unique_ptr<std::atomic<uint8_t>[]> states;
  std::vector<uint32_t> crcs;
  uint64_t end_entry_id = 0;
  uint64_t bucket_count = 0;
  uint64_t first_bucket_piece = 0;
  uint64_t bytes = 0;
  int fd = -1;
  uint32_t piece_delay_us = 0;  // tests: the worker copies one piece at a time and sleeps this long after each
  uint32_t pause_at_bytes = 0;  // tests: ... or in the middle of each, after this many bytes
  std::atomic<bool> abandon{false};
  std::atomic<bool> finished{false};
  std::atomic<uint64_t> done{0};
  // The JS thread's side (only it touches these): how often it waited for the worker's copy
  // of a piece, the longest and the total wait, and the pieces it wrote itself.
  uint64_t js_waits = 0;
  uint64_t js_wait_max_ns = 0;
  uint64_t js_wait_total_ns = 0;
  uint64_t js_pieces = 0;

  // The worker's side: every piece still pending, in order, then fdatasync.
  void Run() {
    std::vector<uint8_t> buffer(size_t{kPiecesPerRun} * kEntriesPerPiece * sizeof(IndexEntry));
    size_t count = pieces.size();
    const size_t run_limit = piece_delay_us != 0 ? 1 : kPiecesPerRun;  // slowed down: one piece at a time
    for (size_t at = 0; at < count && !abandon.load(std::memory_order_relaxed);) {
      size_t used = 0;
      size_t first = at;
      for (; at < count && at - first < run_limit; ++at) {
        if (!Take(at)) break;
        const Piece& piece = pieces[at];
        if (pause_at_bytes != 0 && pause_at_bytes < piece.bytes) {
          std::memcpy(buffer.data() + used, piece.memory, pause_at_bytes);
          usleep(piece_delay_us);
          std::memcpy(buffer.data() + used + pause_at_bytes, piece.memory + pause_at_bytes, piece.bytes - pause_at_bytes);
        } else {
          std::memcpy(buffer.data() + used, piece.memory, piece.bytes);
        }
        states[at].store(kDone, std::memory_order_release);  // the JS thread may change it now: the copy is taken
        crcs[at] = Crc32c(buffer.data() + used, piece.bytes, 0);
        used += piece.bytes;
      }
      if (used == 0) {
        ++at;  // the JS thread took this one
        continue;
      }
      Fail(WriteAll(fd, buffer.data(), used, pieces[first].file_offset), "write");
      done.fetch_add(at - first, std::memory_order_relaxed);
      if (piece_delay_us != 0 && pause_at_bytes == 0) usleep(piece_delay_us);
    }
    // Pieces the JS thread is writing at this moment: wait for them before the sync.
    for (size_t at = 0; at < count; ++at) {
      for (uint32_t spins = 0; states[at].load(std::memory_order_acquire) == kJs; ++spins) Pause(spins);
    }
    if (!abandon.load() && fdatasync(fd) != 0) Fail(errno, "fdatasync");
    finished.store(true, std::memory_order_release);
  }

  // The JS thread's side, for an in-place update of entry fields in `piece` (a few stores):
  // never while the worker copies the piece (it waits for that copy), and the worker waits for
  // `write` (see Take). No file write here: the piece is copied later, whole, with the update.
  template <typename Write>
  void UpdateFields(uint64_t piece, Write write) {
    WaitTimer timer(this);
    for (uint32_t spins = 0;; ++spins) {
      uint8_t state = states[piece].load(std::memory_order_acquire);
      if (state == kDone) {
        write();
        return;
      }
      if (state == kPending && states[piece].compare_exchange_strong(state, kJsFields, std::memory_order_acq_rel)) {
        write();
        states[piece].store(kPending, std::memory_order_release);
        return;
      }
      timer.Waiting();
      Pause(spins);  // the worker is copying it
    }
  }

  // The JS thread's side, before a structural write to `piece`.
  void Claim(uint64_t piece) {
    WaitTimer timer(this);
    for (uint32_t spins = 0;; ++spins) {
      uint8_t state = states[piece].load(std::memory_order_acquire);
      if (state == kDone) return;
      if (state == kPending && states[piece].compare_exchange_strong(state, kJs, std::memory_order_acq_rel)) {
        js_pieces += 1;
        const Piece& at = pieces[piece];
        crcs[piece] = Crc32c(at.memory, at.bytes, 0);
        Fail(WriteAll(fd, at.memory, at.bytes, at.file_offset), "write");
        done.fetch_add(1, std::memory_order_relaxed);
        states[piece].store(kDone, std::memory_order_release);
        return;
      }
      timer.Waiting();
      Pause(spins);  // the worker is copying it
    }
  }

  std::string error() {
    std::lock_guard<std::mutex> lock(mutex_);
    return error_;
  }

 private:
  // Times one wait of the JS thread for the worker, from its first Waiting() to its end.
  class WaitTimer {
   public:
    explicit WaitTimer(ImageCopy* copy) : copy_(copy) {}
    void Waiting() {
      if (!waiting_) started_ = std::chrono::steady_clock::now();
      waiting_ = true;
    }
    ~WaitTimer() {
      if (!waiting_) return;
      uint64_t ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - started_).count());
      copy_->js_waits += 1;
      copy_->js_wait_total_ns += ns;
      copy_->js_wait_max_ns = std::max(copy_->js_wait_max_ns, ns);
    }

   private:
    ImageCopy* copy_;
    bool waiting_ = false;
    std::chrono::steady_clock::time_point started_;
  };

  // The worker takes piece `at` for its copy: true, or false when the JS thread took it
  // (kJs, kDone). While the JS thread updates fields in it (kJsFields), waits.
  bool Take(size_t at) {
    for (uint32_t spins = 0;; ++spins) {
      uint8_t expected = kPending;
      if (states[at].compare_exchange_strong(expected, kWorker, std::memory_order_acq_rel)) return true;
      if (expected != kJsFields) return false;
      Pause(spins);
    }
  }

  void Fail(int error_number, const char* what) {
    if (error_number == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_.empty()) error_ = std::string("the index image's ") + what + " failed: " + std::strerror(error_number);
  }

  std::mutex mutex_;
  std::string error_;
};

std::shared_ptr<ImageCopy> PrimaryIndex::BeginImageCopy(int fd, uint64_t file_offset, uint32_t piece_delay_us, uint32_t pause_at_bytes) {
  SHOAL_ASSERT(is_open() && !with_data_ && copy_ == nullptr, "an image copy needs an open index without data and no copy under way (%s)", base_name_.c_str());
  auto copy = std::make_shared<ImageCopy>();
  ImageHead& head = copy->head;
  head.magic = kImageMagic;
  head.version = kImageVersion;
  head.head_bytes = sizeof(ImageHead);
  head.layout = header_->layout;
  head.entry_count = header_->entry_count;
  head.free_head = header_->free_head;
  head.end_entry_id = header_->end_entry_id;
  head.hash_level = header_->hash_level;
  head.split_pointer = header_->split_pointer;
  head.bucket_count = header_->bucket_count;
  copy->end_entry_id = header_->end_entry_id;
  copy->bucket_count = header_->bucket_count;
  copy->first_bucket_piece = 1 + (copy->end_entry_id + kEntriesPerPiece - 1) / kEntriesPerPiece;
  copy->pieces = Pieces(reinterpret_cast<uint8_t*>(&head), copy->end_entry_id, copy->bucket_count, file_offset,
                        [&](int kind, uint32_t start) { return kind == 0 ? entries_.At(start) : buckets_.At(start); });
  copy->states.reset(new std::atomic<uint8_t>[copy->pieces.size()]());
  copy->crcs.assign(copy->pieces.size(), 0);
  copy->bytes = ImageBytes();
  copy->fd = fd;
  copy->piece_delay_us = piece_delay_us;
  copy->pause_at_bytes = pause_at_bytes;
  copy_ = copy;
  return copy;
}

void PrimaryIndex::EndImageCopy(const ImageCopy* copy) {
  if (copy_.get() == copy) copy_.reset();
}

void PrimaryIndex::AbandonImageCopy() {
  if (copy_ == nullptr) return;
  copy_->abandon.store(true);
  // The worker stops after its current run of pieces (it may not have started yet: it then
  // stops at once when it does).
  for (uint32_t spins = 0; !copy_->finished.load(std::memory_order_acquire); ++spins) Pause(spins);
  copy_.reset();
}

void PrimaryIndex::CopyBeforeEntryWrite(uint32_t id) {
  if (id < copy_->end_entry_id) copy_->Claim(1 + id / kEntriesPerPiece);
}

void PrimaryIndex::UpdateFieldsDuringCopy(uint32_t id, const EntryFields& fields) {
  IndexEntry* entry = EntryAt(id);
  if (id >= copy_->end_entry_id) {
    WriteFields(entry, fields);
    return;
  }
  copy_->UpdateFields(1 + id / kEntriesPerPiece, [&] { WriteFields(entry, fields); });
}

void PrimaryIndex::CopyBeforeBucketWrite(uint64_t bucket) {
  if (bucket < copy_->bucket_count) copy_->Claim(copy_->first_bucket_piece + bucket / kBucketsPerPiece);
}

size_t PrimaryIndex::ImageBytes() const {
  return sizeof(ImageHead) + size_t{header_->end_entry_id} * sizeof(IndexEntry) + size_t{header_->bucket_count} * sizeof(uint32_t);
}

std::string PrimaryIndex::LoadImageFile(int fd, uint64_t offset, uint64_t bytes, const std::vector<uint32_t>& crcs, const uint8_t* kept,
                                        uint32_t devices, uint32_t stride, double* live, uint32_t threads, ImageLoadReport* report) {
  SHOAL_ASSERT(is_open() && !with_data_, "an index image loads only into an open index without data (%s)", base_name_.c_str());
  if (header_->entry_count != 0 || header_->end_entry_id != 1) return "the index is not empty";
  if (bytes < sizeof(ImageHead) || crcs.empty()) return "the image is shorter than its head";
  ImageHead head;
  int error = ReadAll(fd, reinterpret_cast<uint8_t*>(&head), sizeof head, offset);
  if (error == -1) return "torn: the file ends inside the image";
  if (error != 0) return std::string("cannot be read: ") + std::strerror(error);
  if (Crc32c(reinterpret_cast<const uint8_t*>(&head), sizeof head, 0) != crcs[0]) {
    report->damaged = true;
    return "the checksum of its image's head does not match";
  }
  if (head.magic != kImageMagic || head.version != kImageVersion || head.head_bytes != sizeof(ImageHead)) return "the image has another format";
  if (std::memcmp(&head.layout, &header_->layout, sizeof head.layout) != 0) return "the image has another index layout";
  uint64_t round = uint64_t{1} << std::min<uint32_t>(head.layout.initial_buckets_log2 + head.hash_level, 40);
  bool sane = head.end_entry_id >= 1 && head.end_entry_id <= kMaxEntries && head.entry_count < head.end_entry_id &&
              head.free_head < head.end_entry_id && head.layout.initial_buckets_log2 + head.hash_level <= 32 &&
              head.split_pointer < round && head.bucket_count == round + head.split_pointer && head.bucket_count <= (uint64_t{1} << 32) &&
              bytes == sizeof(ImageHead) + size_t{head.end_entry_id} * sizeof(IndexEntry) + size_t{head.bucket_count} * sizeof(uint32_t) &&
              crcs.size() == PieceCount(head.end_entry_id, head.bucket_count);
  if (!sane) return "the image's numbers are out of bounds";
  // The stages, mapped but not committed: the preads below allocate their pages, on every
  // thread at once (a commit first would zero them all on this one); Reserve commits after.
  entries_.CreateStages(head.end_entry_id, &header_->entry_stage_count);
  buckets_.CreateStages(head.bucket_count, &header_->bucket_stage_count);
  std::vector<Piece> pieces = Pieces(reinterpret_cast<uint8_t*>(&head), head.end_entry_id, head.bucket_count, offset,
                                     [&](int kind, uint32_t start) { return kind == 0 ? entries_.At(start) : buckets_.At(start); });
  uint64_t first_bucket_piece = 1 + (uint64_t{head.end_entry_id} + kEntriesPerPiece - 1) / kEntriesPerPiece;
  // Runs of pieces contiguous in memory (one stage), read with one pread each.
  std::vector<std::pair<size_t, size_t>> runs;  // [first, last)
  for (size_t at = 1; at < pieces.size();) {
    size_t first = at++;
    while (at < pieces.size() && at - first < kPiecesPerRun && at != first_bucket_piece &&
           pieces[at].memory == pieces[at - 1].memory + pieces[at - 1].bytes) {
      ++at;
    }
    runs.emplace_back(first, at);
  }
  const uint32_t end = head.end_entry_id;
  const size_t blocks = size_t{devices} * stride;
  struct Worker {
    std::vector<uint64_t> live;
    std::vector<uint32_t> stale;
    uint64_t live_entries = 0;
    uint64_t bytes = 0;
    std::string refusal;
    bool damaged = false;
  };
  std::vector<Worker> workers(std::max<uint32_t>(1, threads));
  std::atomic<size_t> next_run{0};
  std::atomic<bool> failed{false};
  auto work = [&](Worker& worker) {
    worker.live.assign(blocks, 0);
    for (size_t run; !failed.load(std::memory_order_relaxed) && (run = next_run.fetch_add(1)) < runs.size();) {
      auto [first, last] = runs[run];
      size_t run_bytes = 0;
      for (size_t at = first; at < last; ++at) run_bytes += pieces[at].bytes;
      int read_error = ReadAll(fd, pieces[first].memory, run_bytes, pieces[first].file_offset);
      worker.bytes += run_bytes;
      if (read_error != 0) {
        worker.refusal = read_error == -1 ? "torn: the file ends inside the image" : std::string("cannot be read: ") + std::strerror(read_error);
        failed = true;
        return;
      }
      for (size_t at = first; at < last; ++at) {
        const Piece& piece = pieces[at];
        if (Crc32c(piece.memory, piece.bytes, 0) != crcs[at]) {
          worker.refusal = "the checksum of piece " + std::to_string(at) + " of its image does not match";
          worker.damaged = true;
          failed = true;
          return;
        }
        if (at < first_bucket_piece) {
          uint32_t first_id = static_cast<uint32_t>((at - 1) * kEntriesPerPiece);
          const IndexEntry* entry = reinterpret_cast<const IndexEntry*>(piece.memory);
          uint32_t count = piece.bytes / sizeof(IndexEntry);
          for (uint32_t slot = 0; slot < count; ++slot, ++entry) {
            if (entry->next >= end) {
              worker.refusal = "an entry of the image links past its end";
              failed = true;
              return;
            }
            uint32_t id = first_id + slot;
            if (id == 0 || LastUpdateMs(entry) == kFreeSlotMarker) continue;
            worker.live_entries++;
            uint32_t low = static_cast<uint32_t>(entry->location);
            uint32_t high = static_cast<uint32_t>(entry->location >> 32);
            uint32_t device = high >> 26;
            uint32_t block = (high >> 6) & 0xFFFFF;
            if (device < devices && block < stride && kept[size_t{device} * stride + block] != 0) {
              worker.live[size_t{device} * stride + block] += uint64_t{(low >> 19) | ((high & 0x3F) << 13)} * kRecordAlignBytes;
            } else {
              worker.stale.push_back(id);
            }
          }
        } else {
          const uint32_t* bucket = reinterpret_cast<const uint32_t*>(piece.memory);
          uint32_t count = piece.bytes / sizeof(uint32_t);
          for (uint32_t at_bucket = 0; at_bucket < count; ++at_bucket) {
            if (bucket[at_bucket] >= end) {
              worker.refusal = "a bucket of the image names a slot past its end";
              failed = true;
              return;
            }
          }
        }
      }
    }
  };
  std::vector<std::thread> helpers;
  try {
    for (size_t index = 1; index < workers.size(); ++index) helpers.emplace_back(work, std::ref(workers[index]));
  } catch (...) {
    // No second thread: the first does it all.
  }
  work(workers[0]);
  for (std::thread& helper : helpers) helper.join();
  uint64_t live_entries = 0;
  for (Worker& worker : workers) {
    report->bytes_read += worker.bytes;
    live_entries += worker.live_entries;
    if (!worker.refusal.empty()) {
      report->damaged = worker.damaged;
      return worker.refusal;
    }
  }
  report->bytes_read += sizeof head;
  entries_.Reserve(head.end_entry_id, &header_->entry_stage_count);
  buckets_.Reserve(head.bucket_count, &header_->bucket_stage_count);
  if (live_entries != head.entry_count) return "its image holds " + std::to_string(live_entries) + " live entries, its head says " + std::to_string(head.entry_count);
  header_->entry_count = head.entry_count;
  header_->free_head = head.free_head;
  header_->end_entry_id = head.end_entry_id;
  header_->hash_level = head.hash_level;
  header_->split_pointer = head.split_pointer;
  header_->bucket_count = head.bucket_count;
  insert_epoch_ += 1;
  for (Worker& worker : workers) {
    for (size_t block = 0; block < blocks; ++block) live[block] += static_cast<double>(worker.live[block]);
    for (uint32_t id : worker.stale) RemoveEntry(id, nullptr);
    report->stale += static_cast<uint32_t>(worker.stale.size());
  }
  return "";
}

// ---------------------------------------------------------------------------------------------
// The JS face: writeImage, imageProgress, loadImageFile (PrimaryIndexWrap; lib/native/addon.ts).
// ---------------------------------------------------------------------------------------------

namespace {

[[noreturn]] void ThrowImageType(Napi::Env env, const std::string& message) {
  throw Napi::TypeError::New(env, "shoal: PrimaryIndex." + message);
}

// A non-negative integer argument below 2^53.
uint64_t ArgCount(const Napi::CallbackInfo& info, size_t index, const std::string& what) {
  if (index >= info.Length() || !info[index].IsNumber()) ThrowImageType(info.Env(), what + " must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= 9007199254740991.0) || value != static_cast<double>(static_cast<uint64_t>(value))) {
    throw Napi::RangeError::New(info.Env(), "shoal: PrimaryIndex." + what + " must be an integer in [0, 2^53)");
  }
  return static_cast<uint64_t>(value);
}

class ImageWriteWorker : public Napi::AsyncWorker {
 public:
  ImageWriteWorker(Napi::Env env, Napi::Object wrap, PrimaryIndex* index, std::shared_ptr<ImageCopy> copy)
      : Napi::AsyncWorker(env, "shoal-index-image-write"), deferred_(Napi::Promise::Deferred::New(env)), index_(index), copy_(std::move(copy)) {
    wrap_ = Napi::Persistent(wrap);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }
  // The copy runs on a thread of its own at a lower priority (nice +kCopyNice) than the
  // application's: on a machine whose cores are all busy it takes its CPU from idle time
  // rather than from the JS thread (a 496 MiB image is ~0.5 s of copying, checksumming and
  // writing into the page cache). A pool thread is not reniced: an unprivileged process
  // could not raise its priority back afterwards.
  void Execute() override {
    try {
      std::thread copier([copy = copy_] {
        setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), kCopyNice);  // best effort
        copy->Run();
      });
      copier.join();
    } catch (const std::system_error&) {
      copy_->Run();  // no thread to be had: on this one, at its priority
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    index_->EndImageCopy(copy_.get());
    std::string error = copy_->error();
    if (error.empty() && copy_->abandon.load()) error = "the index image was abandoned (the index closed)";
    if (!error.empty()) {
      Napi::Error js_error = Napi::Error::New(env, "shoal: " + error);
      js_error.Set("code", Napi::String::New(env, "IO_ERROR"));
      deferred_.Reject(js_error.Value());
      return;
    }
    Napi::Object result = Napi::Object::New(env);
    Napi::Buffer<uint8_t> crcs = Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(copy_->crcs.data()), copy_->crcs.size() * sizeof(uint32_t));
    result.Set("crcs", crcs);
    result.Set("bytes", Napi::Number::New(env, static_cast<double>(copy_->bytes)));
    result.Set("pieces", Napi::Number::New(env, static_cast<double>(copy_->pieces.size())));
    result.Set("jsPieces", Napi::Number::New(env, static_cast<double>(copy_->js_pieces)));
    result.Set("jsWaits", Napi::Number::New(env, static_cast<double>(copy_->js_waits)));
    result.Set("jsWaitMaxUs", Napi::Number::New(env, static_cast<double>(copy_->js_wait_max_ns) / 1000));
    result.Set("jsWaitTotalUs", Napi::Number::New(env, static_cast<double>(copy_->js_wait_total_ns) / 1000));
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& error) override {
    index_->EndImageCopy(copy_.get());
    deferred_.Reject(error.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference wrap_;  // keeps the index alive while the worker runs
  PrimaryIndex* index_;
  std::shared_ptr<ImageCopy> copy_;
};

class ImageLoadWorker : public Napi::AsyncWorker {
 public:
  ImageLoadWorker(Napi::Env env, Napi::Object wrap, PrimaryIndex* index)
      : Napi::AsyncWorker(env, "shoal-index-image-load"), deferred_(Napi::Promise::Deferred::New(env)), index_(index) {
    wrap_ = Napi::Persistent(wrap);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override {
    try {
      unsigned cores = std::thread::hardware_concurrency();
      refusal_ = index_->LoadImageFile(fd, offset, bytes, crcs, kept.data(), devices, stride, live.data(), std::clamp(cores, 1u, 2u), &report_);
    } catch (const std::exception& error) {
      refusal_ = std::string("the index could not take it (") + error.what() + ")";
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Float64Array out = live_out_.Value().As<Napi::Float64Array>();
    if (refusal_.empty()) std::memcpy(out.Data(), live.data(), std::min(out.ElementLength(), live.size()) * sizeof(double));
    Napi::Object result = Napi::Object::New(env);
    result.Set("refusal", Napi::String::New(env, refusal_));
    result.Set("damaged", Napi::Boolean::New(env, report_.damaged));
    result.Set("stale", Napi::Number::New(env, report_.stale));
    result.Set("bytesRead", Napi::Number::New(env, static_cast<double>(report_.bytes_read)));
    deferred_.Resolve(result);
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

  int fd = -1;
  uint64_t offset = 0;
  uint64_t bytes = 0;
  std::vector<uint32_t> crcs;
  std::vector<uint8_t> kept;
  uint32_t devices = 0;
  uint32_t stride = 0;
  std::vector<double> live;
  Napi::Reference<Napi::Value> live_out_;

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference wrap_;
  PrimaryIndex* index_;
  std::string refusal_;
  ImageLoadReport report_;
};

}  // namespace

Napi::Value PrimaryIndexWrap::WriteImage(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string usage = "writeImage(fd, offset, pieceDelayUs[, pauseAtBytes])";
  uint64_t fd = ArgCount(info, 0, usage + ": fd");
  uint64_t offset = ArgCount(info, 1, usage + ": offset");
  uint64_t delay = ArgCount(info, 2, usage + ": pieceDelayUs");
  uint64_t pause_at = info.Length() > 3 && !info[3].IsUndefined() ? ArgCount(info, 3, usage + ": pauseAtBytes") : 0;
  if (fd > 0x7FFFFFFF || delay > 1000000 || pause_at > kEntriesPerPiece * sizeof(IndexEntry)) {
    throw Napi::RangeError::New(env, "shoal: PrimaryIndex." + usage + ": fd, pieceDelayUs or pauseAtBytes out of range");
  }
  OpenIndex(env);
  if (index_->with_data()) ThrowImageType(env, "writeImage(): an index with data has no image");
  if (index_->image_copy() != nullptr) ThrowImageType(env, "writeImage(): an image is being written already");
  std::shared_ptr<ImageCopy> copy = index_->BeginImageCopy(static_cast<int>(fd), offset, static_cast<uint32_t>(delay), static_cast<uint32_t>(pause_at));
  auto* worker = new ImageWriteWorker(env, info.This().As<Napi::Object>(), index_.get(), std::move(copy));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value PrimaryIndexWrap::ImageProgress(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ImageCopy* copy = index_->image_copy();
  if (copy == nullptr) return env.Null();
  Napi::Array progress = Napi::Array::New(env, 2);
  progress.Set(0u, Napi::Number::New(env, static_cast<double>(const_cast<ImageCopy*>(copy)->done.load(std::memory_order_relaxed))));
  progress.Set(1u, Napi::Number::New(env, static_cast<double>(copy->pieces.size())));
  return progress;
}

Napi::Value PrimaryIndexWrap::LoadImageFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string usage = "loadImageFile(fd, offset, bytes, crcs, kept, devices, stride, live)";
  uint64_t fd = ArgCount(info, 0, usage + ": fd");
  uint64_t offset = ArgCount(info, 1, usage + ": offset");
  uint64_t bytes = ArgCount(info, 2, usage + ": bytes");
  auto typed = [&](size_t index, napi_typedarray_type type, const char* what) {
    if (index >= info.Length() || !info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != type) {
      ThrowImageType(env, usage + ": " + what);
    }
    return info[index].As<Napi::TypedArray>();
  };
  Napi::Uint32Array crcs = typed(3, napi_uint32_array, "crcs must be a Uint32Array").As<Napi::Uint32Array>();
  Napi::Uint8Array kept = typed(4, napi_uint8_array, "kept must be a Uint8Array").As<Napi::Uint8Array>();
  uint64_t devices = ArgCount(info, 5, usage + ": devices");
  uint64_t stride = ArgCount(info, 6, usage + ": stride");
  Napi::Float64Array live = typed(7, napi_float64_array, "live must be a Float64Array").As<Napi::Float64Array>();
  if (fd > 0x7FFFFFFF || devices > 64 || stride > (1u << 20)) throw Napi::RangeError::New(env, "shoal: PrimaryIndex." + usage + ": fd, devices or stride out of range");
  if (kept.ElementLength() < devices * stride || live.ElementLength() < devices * stride) {
    throw Napi::RangeError::New(env, "shoal: PrimaryIndex." + usage + ": kept and live must hold devices * stride elements");
  }
  OpenIndex(env);
  if (index_->with_data()) ThrowImageType(env, "loadImageFile(): an index with data has no image");
  auto* worker = new ImageLoadWorker(env, info.This().As<Napi::Object>(), index_.get());
  worker->fd = static_cast<int>(fd);
  worker->offset = offset;
  worker->bytes = bytes;
  worker->crcs.assign(crcs.Data(), crcs.Data() + crcs.ElementLength());
  worker->kept.assign(kept.Data(), kept.Data() + devices * stride);
  worker->devices = static_cast<uint32_t>(devices);
  worker->stride = static_cast<uint32_t>(stride);
  worker->live.assign(devices * stride, 0.0);
  worker->live_out_ = Napi::Persistent(static_cast<Napi::Value>(live));
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace shoal
