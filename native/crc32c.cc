#include "crc32c.h"

#include <array>
#include <cmath>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace shoal {
namespace {

constexpr uint32_t kPolynomial = 0x82F63B78;  // Castagnoli, bit-reflected

// table[k][b]: the CRC of byte b followed by k zero bytes (slicing-by-8).
using Tables = std::array<std::array<uint32_t, 256>, 8>;

constexpr Tables MakeTables() {
  Tables tables{};
  for (uint32_t byte = 0; byte < 256; ++byte) {
    uint32_t crc = byte;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ ((crc & 1) ? kPolynomial : 0);
    tables[0][byte] = crc;
  }
  for (uint32_t byte = 0; byte < 256; ++byte) {
    for (int k = 1; k < 8; ++k) tables[k][byte] = (tables[k - 1][byte] >> 8) ^ tables[0][tables[k - 1][byte] & 0xFF];
  }
  return tables;
}

constexpr Tables kTables = MakeTables();

uint32_t UpdatePortable(uint32_t crc, const uint8_t* data, size_t length) {
  for (; length >= 8; data += 8, length -= 8) {
    uint32_t low, high;
    std::memcpy(&low, data, 4);
    std::memcpy(&high, data + 4, 4);
    low ^= crc;
    crc = kTables[7][low & 0xFF] ^ kTables[6][(low >> 8) & 0xFF] ^ kTables[5][(low >> 16) & 0xFF] ^
          kTables[4][low >> 24] ^ kTables[3][high & 0xFF] ^ kTables[2][(high >> 8) & 0xFF] ^
          kTables[1][(high >> 16) & 0xFF] ^ kTables[0][high >> 24];
  }
  while (length-- > 0) crc = (crc >> 8) ^ kTables[0][(crc ^ *data++) & 0xFF];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t UpdateHardware(uint32_t crc, const uint8_t* data, size_t length) {
  uint64_t crc64 = crc;
  for (; length >= 8; data += 8, length -= 8) {
    uint64_t word;
    std::memcpy(&word, data, 8);
    crc64 = _mm_crc32_u64(crc64, word);
  }
  uint32_t crc32 = static_cast<uint32_t>(crc64);
  while (length-- > 0) crc32 = _mm_crc32_u8(crc32, *data++);
  return crc32;
}

bool DetectHardware() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#else
uint32_t UpdateHardware(uint32_t crc, const uint8_t* data, size_t length) { return UpdatePortable(crc, data, length); }
bool DetectHardware() { return false; }
#endif

const bool kHasHardware = DetectHardware();

}  // namespace

uint32_t Crc32c(const uint8_t* data, size_t length, uint32_t seed) {
  uint32_t crc = ~seed;
  crc = kHasHardware ? UpdateHardware(crc, data, length) : UpdatePortable(crc, data, length);
  return ~crc;
}

uint32_t Crc32cPortable(const uint8_t* data, size_t length, uint32_t seed) {
  return ~UpdatePortable(~seed, data, length);
}

bool Crc32cUsesHardware() { return kHasHardware; }

namespace {

template <uint32_t (*kFunction)(const uint8_t*, size_t, uint32_t)>
Napi::Value Crc32cJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, "crc32c(data, seed?): data must be a Uint8Array or Buffer");
  }
  uint32_t seed = 0;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "crc32c(data, seed?): seed must be a number");
    double value = info[1].As<Napi::Number>().DoubleValue();
    if (!(value >= 0 && value <= 4294967295.0) || std::floor(value) != value) {
      throw Napi::RangeError::New(env, "crc32c(data, seed?): seed must be an integer in [0, 2^32)");
    }
    seed = static_cast<uint32_t>(value);
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  return Napi::Number::New(env, kFunction(data.Data(), data.ByteLength(), seed));
}

}  // namespace

void InitCrc32c(Napi::Env env, Napi::Object exports) {
  exports.Set("crc32c", Napi::Function::New(env, Crc32cJs<Crc32c>, "crc32c"));
  exports.Set("crc32cPortable", Napi::Function::New(env, Crc32cJs<Crc32cPortable>, "crc32cPortable"));
  exports.Set("crc32cHardware", Napi::Boolean::New(env, kHasHardware));
}

}  // namespace shoal
