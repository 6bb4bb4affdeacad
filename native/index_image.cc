// The index image: the whole index without data as one byte string, for the index checkpoint
// file (docs/storage.md, "Restart after a crash"). An image is taken in one call on the JS
// thread, between two mutations, so it is always a consistent index; the file around it
// carries the checksums. Loading copies it into a freshly created index stage by stage, after
// checking every number the way Attach checks a header.
#include <cstring>

#include "primary_index.h"
#include "primary_index_layout.h"

namespace shoal {

namespace {

constexpr uint64_t kImageMagic = 0x474D495844495053;  // "SPIDXIMG" little-endian
constexpr uint32_t kImageVersion = 1;

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

// Copies elements [0, count) between a staged array and a flat buffer, one stage at a time.
template <typename Copy>
void EachStage(uint64_t count, Copy copy) {
  for (uint32_t stage = 0; StagedArray::StageStart(stage) < count; ++stage) {
    uint64_t start = StagedArray::StageStart(stage);
    uint64_t elements = std::min<uint64_t>(StagedArray::StageElements(stage), count - start);
    copy(static_cast<uint32_t>(start), elements);
  }
}

}  // namespace

size_t PrimaryIndex::ImageBytes() const {
  return sizeof(ImageHead) + size_t{header_->end_entry_id} * sizeof(IndexEntry) + size_t{header_->bucket_count} * sizeof(uint32_t);
}

void PrimaryIndex::SaveImage(uint8_t* out) const {
  SHOAL_ASSERT(!with_data_, "an index image is only taken of an index without data (%s)", base_name_.c_str());
  ImageHead head{};
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
  std::memcpy(out, &head, sizeof head);
  uint8_t* entries = out + sizeof head;
  EachStage(header_->end_entry_id, [&](uint32_t start, uint64_t elements) {
    std::memcpy(entries + size_t{start} * sizeof(IndexEntry), entries_.At(start), elements * sizeof(IndexEntry));
  });
  uint8_t* buckets = entries + size_t{header_->end_entry_id} * sizeof(IndexEntry);
  EachStage(header_->bucket_count, [&](uint32_t start, uint64_t elements) {
    std::memcpy(buckets + size_t{start} * sizeof(uint32_t), buckets_.At(start), elements * sizeof(uint32_t));
  });
}

std::string PrimaryIndex::LoadImage(const uint8_t* image, size_t bytes) {
  SHOAL_ASSERT(is_open() && !with_data_, "an index image loads only into an open index without data (%s)", base_name_.c_str());
  if (header_->entry_count != 0 || header_->end_entry_id != 1) return "the index is not empty";
  if (bytes < sizeof(ImageHead)) return "the image is shorter than its head";
  ImageHead head;
  std::memcpy(&head, image, sizeof head);
  if (head.magic != kImageMagic || head.version != kImageVersion || head.head_bytes != sizeof(ImageHead)) return "the image has another format";
  if (std::memcmp(&head.layout, &header_->layout, sizeof head.layout) != 0) return "the image has another index layout";
  uint64_t round = uint64_t{1} << std::min<uint32_t>(head.layout.initial_buckets_log2 + head.hash_level, 40);
  bool sane = head.end_entry_id >= 1 && head.end_entry_id <= kMaxEntries && head.entry_count < head.end_entry_id &&
              head.free_head < head.end_entry_id && head.layout.initial_buckets_log2 + head.hash_level <= 32 &&
              head.split_pointer < round && head.bucket_count == round + head.split_pointer && head.bucket_count <= (uint64_t{1} << 32) &&
              bytes == sizeof(ImageHead) + size_t{head.end_entry_id} * sizeof(IndexEntry) + size_t{head.bucket_count} * sizeof(uint32_t);
  if (!sane) return "the image's numbers are out of bounds";
  const uint8_t* entries = image + sizeof head;
  const uint8_t* buckets = entries + size_t{head.end_entry_id} * sizeof(IndexEntry);
  // Every chain link and bucket must name a slot below the end before anything follows them.
  for (uint64_t bucket = 0; bucket < head.bucket_count; ++bucket) {
    uint32_t first;
    std::memcpy(&first, buckets + bucket * sizeof(uint32_t), sizeof first);
    if (first >= head.end_entry_id) return "a bucket of the image names a slot past its end";
  }
  for (uint32_t id = 0; id < head.end_entry_id; ++id) {
    uint32_t next;
    std::memcpy(&next, entries + size_t{id} * sizeof(IndexEntry) + offsetof(IndexEntry, next), sizeof next);
    if (next >= head.end_entry_id) return "an entry of the image links past its end";
  }
  entries_.Reserve(head.end_entry_id, &header_->entry_stage_count);
  buckets_.Reserve(head.bucket_count, &header_->bucket_stage_count);
  EachStage(head.end_entry_id, [&](uint32_t start, uint64_t elements) {
    std::memcpy(entries_.At(start), entries + size_t{start} * sizeof(IndexEntry), elements * sizeof(IndexEntry));
  });
  EachStage(head.bucket_count, [&](uint32_t start, uint64_t elements) {
    std::memcpy(buckets_.At(start), buckets + size_t{start} * sizeof(uint32_t), elements * sizeof(uint32_t));
  });
  header_->entry_count = head.entry_count;
  header_->free_head = head.free_head;
  header_->end_entry_id = head.end_entry_id;
  header_->hash_level = head.hash_level;
  header_->split_pointer = head.split_pointer;
  header_->bucket_count = head.bucket_count;
  insert_epoch_ += 1;
  return "";
}

uint32_t PrimaryIndex::RemoveOutside(const uint8_t* valid, uint32_t devices, uint32_t blocks_per_device) {
  uint32_t removed = 0;
  uint32_t end = header_->end_entry_id;
  for (uint32_t id = 1; id < end; ++id) {
    if (!IsLive(id)) continue;
    uint32_t high = static_cast<uint32_t>(EntryAt(id)->location >> 32);
    uint32_t device = high >> 26;
    uint32_t block = (high >> 6) & 0xFFFFF;
    if (device < devices && block < blocks_per_device && valid[size_t{device} * blocks_per_device + block] != 0) continue;
    RemoveEntry(id, nullptr);
    removed++;
  }
  return removed;
}

}  // namespace shoal
