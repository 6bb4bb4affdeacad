// RIPEMD-160 as specified in "RIPEMD-160: A Strengthened Version of RIPEMD" (1996): two
// parallel lines of five 16-step rounds over little-endian 32-bit words, MD4-style padding.
#include "ripemd160.h"

#include <cstring>

namespace shoal {
namespace {

// Message word selection, left line (r) and right line (r'), 80 steps each.
constexpr uint8_t kWordLeft[80] = {
    0, 1, 2,  3,  4,  5,  6,  7,  8, 9, 10, 11, 12, 13, 14, 15,  //
    7, 4, 13, 1,  10, 6,  15, 3,  12, 0, 9, 5,  2,  14, 11, 8,   //
    3, 10, 14, 4, 9,  15, 8,  1,  2, 7, 0,  6,  13, 11, 5,  12,  //
    1, 9, 11, 10, 0,  8,  12, 4,  13, 3, 7,  15, 14, 5,  6,  2,  //
    4, 0, 5,  9,  7,  12, 2,  10, 14, 1, 3,  8,  11, 6,  15, 13};
constexpr uint8_t kWordRight[80] = {
    5,  14, 7,  0, 9, 2,  11, 4,  13, 6,  15, 8,  1,  10, 3,  12,  //
    6,  11, 3,  7, 0, 13, 5,  10, 14, 15, 8,  12, 4,  9,  1,  2,   //
    15, 5,  1,  3, 7, 14, 6,  9,  11, 8,  12, 2,  10, 0,  4,  13,  //
    8,  6,  4,  1, 3, 11, 15, 0,  5,  12, 2,  13, 9,  7,  10, 14,  //
    12, 15, 10, 4, 1, 5,  8,  7,  6,  2,  13, 14, 0,  3,  9,  11};
// Rotation amounts, left (s) and right (s').
constexpr uint8_t kShiftLeft[80] = {
    11, 14, 15, 12, 5,  8,  7,  9,  11, 13, 14, 15, 6,  7,  9,  8,   //
    7,  6,  8,  13, 11, 9,  7,  15, 7,  12, 15, 9,  11, 7,  13, 12,  //
    11, 13, 6,  7,  14, 9,  13, 15, 14, 8,  13, 6,  5,  12, 7,  5,   //
    11, 12, 14, 15, 14, 15, 9,  8,  9,  14, 5,  6,  8,  6,  5,  12,  //
    9,  15, 5,  11, 6,  8,  13, 12, 5,  12, 13, 14, 11, 8,  5,  6};
constexpr uint8_t kShiftRight[80] = {
    8,  9,  9,  11, 13, 15, 15, 5,  7,  7,  8,  11, 14, 14, 12, 6,   //
    9,  13, 15, 7,  12, 8,  9,  11, 7,  7,  12, 7,  6,  15, 13, 11,  //
    9,  7,  15, 11, 8,  6,  6,  14, 12, 13, 5,  14, 13, 13, 7,  5,   //
    15, 5,  8,  11, 14, 14, 6,  14, 6,  9,  12, 9,  12, 5,  15, 8,   //
    8,  5,  12, 9,  12, 5,  14, 6,  8,  13, 6,  5,  15, 13, 11, 11};
constexpr uint32_t kConstantLeft[5] = {0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E};
constexpr uint32_t kConstantRight[5] = {0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000};

inline uint32_t RotateLeft(uint32_t value, unsigned bits) { return (value << bits) | (value >> (32 - bits)); }

// The five boolean functions f1..f5; the left line uses them in order, the right in reverse.
template <int kFunction>
inline uint32_t Boolean(uint32_t x, uint32_t y, uint32_t z) {
  if constexpr (kFunction == 0) return x ^ y ^ z;
  if constexpr (kFunction == 1) return (x & y) | (~x & z);
  if constexpr (kFunction == 2) return (x | ~y) ^ z;
  if constexpr (kFunction == 3) return (x & z) | (y & ~z);
  if constexpr (kFunction == 4) return x ^ (y | ~z);
}

struct Line {
  uint32_t a, b, c, d, e;
};

// One 16-step round of one line; round numbers and functions are compile-time constants so
// the compiler unrolls the steps.
template <int kRound, int kFunction>
inline void Round(Line& line, const uint32_t* words, const uint8_t* word_index, const uint8_t* shift,
                  uint32_t constant) {
#pragma GCC unroll 16
  for (int step = kRound * 16; step < kRound * 16 + 16; ++step) {
    uint32_t t = RotateLeft(line.a + Boolean<kFunction>(line.b, line.c, line.d) + words[word_index[step]] + constant,
                            shift[step]) +
                 line.e;
    line.a = line.e;
    line.e = line.d;
    line.d = RotateLeft(line.c, 10);
    line.c = line.b;
    line.b = t;
  }
}

void Compress(uint32_t state[5], const uint8_t block[64]) {
  uint32_t words[16];
  std::memcpy(words, block, 64);  // little-endian host
  Line left{state[0], state[1], state[2], state[3], state[4]};
  Line right = left;
  Round<0, 0>(left, words, kWordLeft, kShiftLeft, kConstantLeft[0]);
  Round<0, 4>(right, words, kWordRight, kShiftRight, kConstantRight[0]);
  Round<1, 1>(left, words, kWordLeft, kShiftLeft, kConstantLeft[1]);
  Round<1, 3>(right, words, kWordRight, kShiftRight, kConstantRight[1]);
  Round<2, 2>(left, words, kWordLeft, kShiftLeft, kConstantLeft[2]);
  Round<2, 2>(right, words, kWordRight, kShiftRight, kConstantRight[2]);
  Round<3, 3>(left, words, kWordLeft, kShiftLeft, kConstantLeft[3]);
  Round<3, 1>(right, words, kWordRight, kShiftRight, kConstantRight[3]);
  Round<4, 4>(left, words, kWordLeft, kShiftLeft, kConstantLeft[4]);
  Round<4, 0>(right, words, kWordRight, kShiftRight, kConstantRight[4]);
  uint32_t t = state[1] + left.c + right.d;
  state[1] = state[2] + left.d + right.e;
  state[2] = state[3] + left.e + right.a;
  state[3] = state[4] + left.a + right.b;
  state[4] = state[0] + left.b + right.c;
  state[0] = t;
}

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "RIPEMD-160 code assumes a little-endian host");

}  // namespace

Ripemd160::Ripemd160() : state_{0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0} {}

void Ripemd160::Update(const uint8_t* data, size_t length) {
  total_bytes_ += length;
  if (block_used_ > 0) {
    size_t take = std::min(length, sizeof block_ - block_used_);
    std::memcpy(block_ + block_used_, data, take);
    block_used_ += take;
    data += take;
    length -= take;
    if (block_used_ < sizeof block_) return;
    Compress(state_, block_);
    block_used_ = 0;
  }
  for (; length >= 64; data += 64, length -= 64) Compress(state_, data);
  if (length > 0) std::memcpy(block_, data, length);
  block_used_ = length;
}

void Ripemd160::Final(uint8_t digest[kRipemd160Bytes]) {
  uint64_t total_bits = total_bytes_ * 8;
  block_[block_used_++] = 0x80;
  if (block_used_ > 56) {
    std::memset(block_ + block_used_, 0, 64 - block_used_);
    Compress(state_, block_);
    block_used_ = 0;
  }
  std::memset(block_ + block_used_, 0, 56 - block_used_);
  std::memcpy(block_ + 56, &total_bits, 8);  // little-endian bit count
  Compress(state_, block_);
  std::memcpy(digest, state_, kRipemd160Bytes);
}

void Ripemd160Digest(const uint8_t* data, size_t length, uint8_t digest[kRipemd160Bytes]) {
  Ripemd160 hash;
  hash.Update(data, length);
  hash.Final(digest);
}

static Napi::Value Ripemd160Js(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw Napi::TypeError::New(env, "ripemd160(data): data must be a Uint8Array or Buffer");
  }
  Napi::Uint8Array data = info[0].As<Napi::Uint8Array>();
  Napi::Buffer<uint8_t> digest = Napi::Buffer<uint8_t>::New(env, kRipemd160Bytes);
  Ripemd160Digest(data.Data(), data.ByteLength(), digest.Data());
  return digest;
}

void InitRipemd160(Napi::Env env, Napi::Object exports) {
  exports.Set("ripemd160", Napi::Function::New(env, Ripemd160Js, "ripemd160"));
}

}  // namespace shoal
