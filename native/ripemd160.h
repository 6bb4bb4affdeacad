// RIPEMD-160 (Dobbertin, Bosselaers, Preneel, 1996), implemented from the published
// algorithm. Used for record digests (SPEC section 1), exactly as Aerospike's clients do.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace shoal {

constexpr size_t kRipemd160Bytes = 20;

// Incremental RIPEMD-160. Update() any number of times, then Final() once.
class Ripemd160 {
 public:
  Ripemd160();
  void Update(const uint8_t* data, size_t length);
  // Writes the 20-byte digest. The object must not be used afterwards.
  void Final(uint8_t digest[kRipemd160Bytes]);

 private:
  uint32_t state_[5];
  uint64_t total_bytes_ = 0;
  uint8_t block_[64];
  size_t block_used_ = 0;
};

// Several short messages at once (batchPut's keys): a message of at most
// kRipemd160OneBlockMaxBytes is one padded block; Ripemd160PadOneBlock pads block[0, length)
// in place, and Ripemd160OneBlockLanes digests kRipemd160Lanes such blocks together, one per
// vector lane (the same compression as Ripemd160, on vectors of words).
constexpr size_t kRipemd160OneBlockMaxBytes = 55;
constexpr size_t kRipemd160Lanes = 16;
void Ripemd160PadOneBlock(uint8_t block[64], size_t length);
void Ripemd160OneBlockLanes(const uint8_t blocks[kRipemd160Lanes][64], uint8_t digests[kRipemd160Lanes][kRipemd160Bytes]);

// One-shot digest of a byte range.
void Ripemd160Digest(const uint8_t* data, size_t length, uint8_t digest[kRipemd160Bytes]);

// Registers ripemd160(data: Uint8Array): Buffer (TypeError for anything but a Uint8Array) and
// ripemd160Many(messages, ends, digests), many short messages in one call.
void InitRipemd160(Napi::Env env, Napi::Object exports);

}  // namespace shoal
