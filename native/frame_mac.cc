#include "frame_mac.h"

#include <dlfcn.h>

#include <cstdint>
#include <cstring>

namespace shoal {
namespace {

// The few OpenSSL functions used, by their stable C signatures (1.1 and 3.x alike); the
// contexts are opaque here.
struct OpenSsl {
  void* (*hmac_ctx_new)();
  void (*hmac_ctx_free)(void*);
  int (*hmac_init_ex)(void*, const void*, int, const void*, void*);
  int (*hmac_update)(void*, const unsigned char*, size_t);
  int (*hmac_final)(void*, unsigned char*, unsigned int*);
  const void* (*evp_sha256)();
  int (*crypto_memcmp)(const void*, const void*, size_t);
  bool available = false;
};

template <typename Function>
bool Resolve(Function* slot, const char* name) {
  *slot = reinterpret_cast<Function>(dlsym(RTLD_DEFAULT, name));
  return *slot != nullptr;
}

const OpenSsl& Library() {
  static const OpenSsl library = [] {
    OpenSsl found{};
    found.available = Resolve(&found.hmac_ctx_new, "HMAC_CTX_new") && Resolve(&found.hmac_ctx_free, "HMAC_CTX_free") &&
                      Resolve(&found.hmac_init_ex, "HMAC_Init_ex") && Resolve(&found.hmac_update, "HMAC_Update") &&
                      Resolve(&found.hmac_final, "HMAC_Final") && Resolve(&found.evp_sha256, "EVP_sha256") &&
                      Resolve(&found.crypto_memcmp, "CRYPTO_memcmp");
    return found;
  }();
  return library;
}

constexpr size_t kFrameHeaderBytes = 4;
constexpr size_t kSha256Bytes = 32;
constexpr size_t kMinKeyBytes = 16;
constexpr size_t kMaxKeyBytes = 64;

uint32_t ReadUint32BigEndian(const uint8_t* bytes) {
  return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) | uint32_t{bytes[3]};
}

class FrameMac : public Napi::ObjectWrap<FrameMac> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    Napi::Function constructor = DefineClass(env, "FrameMac",
                                             {InstanceMethod<&FrameMac::Seal>("seal"), InstanceMethod<&FrameMac::Verify>("verify"),
                                              InstanceAccessor<&FrameMac::Sequence>("sequence")});
    exports.Set("FrameMac", constructor);
  }

  explicit FrameMac(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FrameMac>(info) {
    Napi::Env env = info.Env();
    const OpenSsl& openssl = Library();
    if (!openssl.available) throw Napi::Error::New(env, "FrameMac: this Node binary does not export OpenSSL's HMAC functions");
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(env, "FrameMac: key must be a Buffer");
    Napi::Buffer<uint8_t> key = info[0].As<Napi::Buffer<uint8_t>>();
    if (key.Length() < kMinKeyBytes || key.Length() > kMaxKeyBytes) throw Napi::RangeError::New(env, "FrameMac: key must be 16..64 bytes");
    context_ = openssl.hmac_ctx_new();
    if (context_ == nullptr || openssl.hmac_init_ex(context_, key.Data(), static_cast<int>(key.Length()), openssl.evp_sha256(), nullptr) != 1) {
      throw Napi::Error::New(env, "FrameMac: OpenSSL could not set up HMAC-SHA-256");
    }
  }

  ~FrameMac() override {
    if (context_ != nullptr) Library().hmac_ctx_free(context_);
  }

 private:
  // The full tag of `length` bytes of a frame under the current sequence number.
  bool Tag(const uint8_t* frame, size_t length, uint8_t tag[kSha256Bytes]) {
    const OpenSsl& openssl = Library();
    uint8_t sequence[8];
    for (int i = 0; i < 8; ++i) sequence[i] = static_cast<uint8_t>(sequence_ >> (56 - 8 * i));
    unsigned int tag_length = 0;
    // A null key and digest restart from the key set in the constructor (its padded blocks are kept).
    return openssl.hmac_init_ex(context_, nullptr, 0, nullptr, nullptr) == 1 && openssl.hmac_update(context_, sequence, sizeof sequence) == 1 &&
           openssl.hmac_update(context_, frame, length) == 1 && openssl.hmac_final(context_, tag, &tag_length) == 1 && tag_length == kSha256Bytes;
  }

  static Napi::Buffer<uint8_t> BufferArgument(const Napi::CallbackInfo& info, const char* method) {
    if (info.Length() < 1 || !info[0].IsBuffer()) throw Napi::TypeError::New(info.Env(), std::string("FrameMac.") + method + ": argument must be a Buffer");
    return info[0].As<Napi::Buffer<uint8_t>>();
  }

  void Seal(const Napi::CallbackInfo& info) {
    Napi::Buffer<uint8_t> frames = BufferArgument(info, "seal");
    uint8_t* cursor = frames.Data();
    size_t left = frames.Length();
    while (left > 0) {
      if (left < kFrameHeaderBytes) throw Napi::RangeError::New(info.Env(), "FrameMac.seal: a frame header is cut short");
      size_t body = ReadUint32BigEndian(cursor);
      if (body < kFrameTagBytes || body > left - kFrameHeaderBytes) throw Napi::RangeError::New(info.Env(), "FrameMac.seal: a frame's length does not fit the buffer");
      size_t frame = kFrameHeaderBytes + body;
      uint8_t tag[kSha256Bytes];
      if (!Tag(cursor, frame - kFrameTagBytes, tag)) throw Napi::Error::New(info.Env(), "FrameMac.seal: HMAC failed");
      std::memcpy(cursor + frame - kFrameTagBytes, tag, kFrameTagBytes);
      ++sequence_;
      cursor += frame;
      left -= frame;
    }
  }

  Napi::Value Verify(const Napi::CallbackInfo& info) {
    Napi::Buffer<uint8_t> frame = BufferArgument(info, "verify");
    if (frame.Length() < kFrameHeaderBytes + kFrameTagBytes) return Napi::Boolean::New(info.Env(), false);
    size_t covered = frame.Length() - kFrameTagBytes;
    uint8_t tag[kSha256Bytes];
    if (!Tag(frame.Data(), covered, tag)) throw Napi::Error::New(info.Env(), "FrameMac.verify: HMAC failed");
    bool valid = Library().crypto_memcmp(tag, frame.Data() + covered, kFrameTagBytes) == 0;
    if (valid) ++sequence_;
    return Napi::Boolean::New(info.Env(), valid);
  }

  Napi::Value Sequence(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(sequence_)); }

  void* context_ = nullptr;
  uint64_t sequence_ = 0;
};

}  // namespace

void InitFrameMac(Napi::Env env, Napi::Object exports) {
  FrameMac::Init(env, exports);
  exports.Set("frameMacAvailable", Napi::Boolean::New(env, Library().available));
}

}  // namespace shoal
