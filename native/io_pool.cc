#include "io_pool.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "assert.h"
#include "storage_format.h"

namespace shoal {

namespace {
size_t SizeClass(size_t length, size_t* capacity) {
  size_t size_class = 12;  // 4096
  while ((size_t{1} << size_class) < length) size_class++;
  *capacity = size_t{1} << size_class;
  return size_class;
}
}  // namespace

AlignedBufferPool::~AlignedBufferPool() {
  for (auto& list : free_by_class_) {
    for (uint8_t* buffer : list) std::free(buffer);
  }
}

uint8_t* AlignedBufferPool::Acquire(size_t length, size_t* capacity) {
  size_t size_class = SizeClass(length, capacity);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& list = free_by_class_[size_class];
    if (!list.empty()) {
      uint8_t* buffer = list.back();
      list.pop_back();
      return buffer;
    }
  }
  void* memory = nullptr;
  if (posix_memalign(&memory, storage::kIoAlignBytes, *capacity) != 0) return nullptr;
  return static_cast<uint8_t*>(memory);
}

void AlignedBufferPool::Release(uint8_t* buffer, size_t capacity) {
  if (buffer == nullptr) return;
  size_t ignored;
  size_t size_class = SizeClass(capacity, &ignored);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto& list = free_by_class_[size_class];
    if (list.size() < kMaxCachedPerClass) {
      list.push_back(buffer);
      return;
    }
  }
  std::free(buffer);
}

void VerifyReadRecord(IoRequest* request) {
  uint32_t total = 0;
  storage::RecordCheck check = storage::CheckRecord(request->buffer + request->record_start,
                                                    request->length - request->record_start, 0, &total);
  if (check != storage::RecordCheck::kValid || total > request->record_length) {
    request->result = -EBADMSG;
  } else {
    request->record_length = total;
  }
}

void CompletionQueue::Push(IoRequest* const* requests, size_t count) {
  if (count == 0) return;
  bool notify;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_.insert(done_.end(), requests, requests + count);
    notify = !notify_pending_;
    notify_pending_ = true;
  }
  if (notify) notify_();
}

size_t CompletionQueue::Drain(std::vector<IoRequest*>* out) {
  std::lock_guard<std::mutex> lock(mutex_);
  notify_pending_ = false;
  size_t count = done_.size();
  out->insert(out->end(), done_.begin(), done_.end());
  done_.clear();
  return count;
}

IoPool::IoPool(IoBackend* backend, int threads, CompletionQueue* done)
    : backend_(backend), done_(done) {
  for (int i = 0; i < threads; i++) threads_.emplace_back([this] { Run(); });
}

IoPool::~IoPool() { Stop(); }

void IoPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& thread : threads_) thread.join();
  threads_.clear();
}

void IoPool::Submit(IoRequest* request) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(request);
  }
  wake_.notify_one();
}

void IoPool::SubmitMany(IoRequest* const* requests, size_t count) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < count; i++) queue_.push_back(requests[i]);
  }
  if (count >= threads_.size()) {
    wake_.notify_all();
  } else {
    for (size_t i = 0; i < count; i++) wake_.notify_one();
  }
}

void IoPool::Run() {
  for (;;) {
    IoRequest* request;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and nothing left
      request = queue_.front();
      queue_.pop_front();
    }
    Execute(request);
    done_->Push(&request, 1);
  }
}

void IoPool::Execute(IoRequest* request) {
  switch (request->kind) {
    case IoKind::kRead: {
      request->result = backend_->Read(request->offset, request->buffer, request->length);
      if (request->result == 0 && request->verify_record) VerifyReadRecord(request);
      break;
    }
    case IoKind::kWrite:
      if (request->copy_source != nullptr) {
        SHOAL_ASSERT(request->copy_length <= request->length, "write copy of %zu bytes into %zu", request->copy_length, request->length);
        std::memcpy(request->buffer, request->copy_source, request->copy_length);
        std::memset(request->buffer + request->copy_length, 0, request->length - request->copy_length);
      }
      request->result = backend_->Write(request->offset, request->buffer, request->length);
      if (request->result == 0 && request->sync_after) request->result = backend_->Sync();
      break;
    case IoKind::kSync:
      request->result = backend_->Sync();
      break;
  }
}

}  // namespace shoal
