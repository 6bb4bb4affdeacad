// RIPEMD-160 as specified in "RIPEMD-160: A Strengthened Version of RIPEMD" (1996): two
// parallel lines of five 16-step rounds over little-endian 32-bit words, MD4-style padding.
#include "ripemd160.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "assert.h"

// 16-lane vector types in a file compiled for the baseline ISA: the ABI note GCC gives for
// them concerns calls that pass such vectors, and every function doing so here is inlined.
#pragma GCC diagnostic ignored "-Wpsabi"

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

// The compression is written once over a word type W: uint32_t for one message, or a vector
// of kRipemd160Lanes words (GCC/Clang vector extension, SSE2/NEON code) for that many
// messages at once, one per lane.
template <typename W>
[[gnu::always_inline]] inline W RotateLeft(W value, unsigned bits) { return (value << bits) | (value >> (32 - bits)); }

// The five boolean functions f1..f5; the left line uses them in order, the right in reverse.
template <int kFunction, typename W>
[[gnu::always_inline]] inline W Boolean(W x, W y, W z) {
  if constexpr (kFunction == 0) return x ^ y ^ z;
  if constexpr (kFunction == 1) return (x & y) | (~x & z);
  if constexpr (kFunction == 2) return (x | ~y) ^ z;
  if constexpr (kFunction == 3) return (x & z) | (y & ~z);
  if constexpr (kFunction == 4) return x ^ (y | ~z);
}

template <typename W>
struct Line {
  W a, b, c, d, e;
};

// One 16-step round of one line; round numbers and functions are compile-time constants so
// the compiler unrolls the steps.
template <int kRound, int kFunction, typename W>
[[gnu::always_inline]] inline void Round(Line<W>& line, const W* words, const uint8_t* word_index, const uint8_t* shift, uint32_t constant) {
#pragma GCC unroll 16
  for (int step = kRound * 16; step < kRound * 16 + 16; ++step) {
    W t = RotateLeft<W>(line.a + Boolean<kFunction, W>(line.b, line.c, line.d) + words[word_index[step]] + constant, shift[step]) +
          line.e;
    line.a = line.e;
    line.e = line.d;
    line.d = RotateLeft(line.c, 10);
    line.c = line.b;
    line.b = t;
  }
}

// Always inlined, so that each target clone of Ripemd160OneBlockLanes compiles it for its own
// instruction set.
template <typename W>
[[gnu::always_inline]] inline void CompressWords(W state[5], const W words[16]) {
  Line<W> left{state[0], state[1], state[2], state[3], state[4]};
  Line<W> right = left;
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
  W t = state[1] + left.c + right.d;
  state[1] = state[2] + left.d + right.e;
  state[2] = state[3] + left.e + right.a;
  state[3] = state[4] + left.a + right.b;
  state[4] = state[0] + left.b + right.c;
  state[0] = t;
}

void Compress(uint32_t state[5], const uint8_t block[64]) {
  uint32_t words[16];
  std::memcpy(words, block, 64);  // little-endian host
  CompressWords<uint32_t>(state, words);
}

constexpr uint32_t kInitialState[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "RIPEMD-160 code assumes a little-endian host");

}  // namespace

Ripemd160::Ripemd160() : state_{kInitialState[0], kInitialState[1], kInitialState[2], kInitialState[3], kInitialState[4]} {}

void Ripemd160PadOneBlock(uint8_t block[64], size_t length) {
  SHOAL_ASSERT(length <= kRipemd160OneBlockMaxBytes, "one-block message of %zu bytes", length);
  block[length] = 0x80;
  std::memset(block + length + 1, 0, 56 - length - 1);
  uint64_t total_bits = uint64_t{length} * 8;
  std::memcpy(block + 56, &total_bits, 8);  // little-endian bit count
}

namespace {

typedef uint32_t Lanes4 __attribute__((vector_size(16)));
typedef uint32_t Lanes16 __attribute__((vector_size(64)));

// Digests blocks[first, first + lanes of Lanes) with one compression over vectors of words.
// Always inlined, so that each caller below compiles it for its own instruction set.
template <typename Lanes>
[[gnu::always_inline]] inline void DigestLanes(const uint8_t blocks[][64], uint8_t digests[][kRipemd160Bytes], size_t first) {
  constexpr size_t kWidth = sizeof(Lanes) / sizeof(uint32_t);
  Lanes words[16];
  for (size_t word = 0; word < 16; ++word) {
    for (size_t lane = 0; lane < kWidth; ++lane) {
      uint32_t value;
      std::memcpy(&value, blocks[first + lane] + 4 * word, 4);
      words[word][lane] = value;
    }
  }
  Lanes state[5];
  for (size_t i = 0; i < 5; ++i) {
    for (size_t lane = 0; lane < kWidth; ++lane) state[i][lane] = kInitialState[i];
  }
  CompressWords<Lanes>(state, words);
  for (size_t lane = 0; lane < kWidth; ++lane) {
    for (size_t i = 0; i < 5; ++i) {
      uint32_t value = state[i][lane];
      std::memcpy(digests[first + lane] + 4 * i, &value, 4);
    }
  }
}

using LanesFunction = void (*)(const uint8_t[][64], uint8_t[][kRipemd160Bytes]);

// Baseline (SSE2 on x86-64, NEON on arm64): four lanes a vector, as 16-lane vectors would not
// fit the registers.
void LanesBaseline(const uint8_t blocks[][64], uint8_t digests[][kRipemd160Bytes]) {
  for (size_t first = 0; first < kRipemd160Lanes; first += 4) DigestLanes<Lanes4>(blocks, digests, first);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SHOAL_RIPEMD160_X86_LANES 1
// Wider vectors on CPUs that have them: AVX2 (two 8-lane registers a vector), and AVX-512
// with its rotate instruction (one 16-lane register).
__attribute__((target("avx2"))) void LanesAvx2(const uint8_t blocks[][64], uint8_t digests[][kRipemd160Bytes]) {
  DigestLanes<Lanes16>(blocks, digests, 0);
}
__attribute__((target("avx512f,avx512vl"))) void LanesAvx512(const uint8_t blocks[][64], uint8_t digests[][kRipemd160Bytes]) {
  DigestLanes<Lanes16>(blocks, digests, 0);
}
#endif

// The widest the CPU has; SHOAL_RIPEMD160_LANES=baseline or avx2 picks a narrower one (tests
// check every one the CPU can run).
LanesFunction PickLanes() {
  const char* forced = std::getenv("SHOAL_RIPEMD160_LANES");
  std::string narrowest = forced == nullptr ? "" : forced;
  if (narrowest == "baseline") return LanesBaseline;
#ifdef SHOAL_RIPEMD160_X86_LANES
  __builtin_cpu_init();
  if (narrowest != "avx2" && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return LanesAvx512;
  if (__builtin_cpu_supports("avx2")) return LanesAvx2;
#endif
  return LanesBaseline;
}

}  // namespace

void Ripemd160OneBlockLanes(const uint8_t blocks[kRipemd160Lanes][64], uint8_t digests[kRipemd160Lanes][kRipemd160Bytes]) {
  static const LanesFunction lanes = PickLanes();
  lanes(blocks, digests);
}

static_assert(kRipemd160Lanes == 16, "the lane functions are written for 16 lanes (Lanes16, four Lanes4)");

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

// ripemd160Many(messages, ends, digests): message i is messages[ends[i - 1], ends[i]) (from 0
// for i = 0); its digest goes to digests[20 i, 20 i + 20). Messages of one block are digested
// kRipemd160Lanes at a time, longer ones alone. Cluster-mode batchPut routes 100,000 keys with
// one call per slice instead of one per key.
static Napi::Value Ripemd160ManyJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto is_bytes = [](const Napi::Value& value) {
    return value.IsTypedArray() && value.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  };
  if (info.Length() < 3 || !is_bytes(info[0]) || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array || !is_bytes(info[2])) {
    throw Napi::TypeError::New(env, "ripemd160Many(messages, ends, digests): Uint8Array, Uint32Array, Uint8Array");
  }
  Napi::Uint8Array messages = info[0].As<Napi::Uint8Array>();
  Napi::Uint32Array ends = info[1].As<Napi::Uint32Array>();
  Napi::Uint8Array digests = info[2].As<Napi::Uint8Array>();
  size_t count = ends.ElementLength();
  if (digests.ByteLength() < count * kRipemd160Bytes) throw Napi::RangeError::New(env, "ripemd160Many(): digests holds fewer than 20 bytes per message");
  const uint8_t* data = messages.Data();
  uint8_t blocks[kRipemd160Lanes][64] = {};
  uint8_t lane_digests[kRipemd160Lanes][kRipemd160Bytes];
  size_t lane_message[kRipemd160Lanes];
  size_t lanes = 0;
  uint32_t start = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t end = ends[i];
    if (end < start || end > messages.ByteLength()) throw Napi::RangeError::New(env, "ripemd160Many(): ends must rise and stay within messages");
    size_t length = end - start;
    if (length > kRipemd160OneBlockMaxBytes) {
      Ripemd160Digest(data + start, length, digests.Data() + i * kRipemd160Bytes);
    } else {
      std::memcpy(blocks[lanes], data + start, length);
      Ripemd160PadOneBlock(blocks[lanes], length);
      lane_message[lanes++] = i;
    }
    start = end;
    if (lanes == kRipemd160Lanes || (i + 1 == count && lanes > 0)) {
      Ripemd160OneBlockLanes(blocks, lane_digests);  // lanes past `lanes` hold stale blocks: ignored
      for (size_t lane = 0; lane < lanes; ++lane) std::memcpy(digests.Data() + lane_message[lane] * kRipemd160Bytes, lane_digests[lane], kRipemd160Bytes);
      lanes = 0;
    }
  }
  return env.Undefined();
}

void InitRipemd160(Napi::Env env, Napi::Object exports) {
  exports.Set("ripemd160", Napi::Function::New(env, Ripemd160Js, "ripemd160"));
  exports.Set("ripemd160Many", Napi::Function::New(env, Ripemd160ManyJs, "ripemd160Many"));
}

}  // namespace shoal
