// HMAC-SHA-256 tags of cluster frames (docs/cluster.md, "Security": "Frame authentication"),
// computed with the OpenSSL that the Node binary itself links and exports, the library behind
// node:crypto. Its functions are looked up at load time (dlsym), so an addon loaded by a Node
// built without them still loads; frameMacAvailable then says false and lib/cluster falls
// back to node:crypto's createHmac.
#pragma once

#include <napi.h>

namespace shoal {

// Bytes of a frame's tag: HMAC-SHA-256 truncated to 128 bits (RFC 4868, HMAC-SHA-256-128).
constexpr size_t kFrameTagBytes = 16;

// Registers the class FrameMac and the boolean frameMacAvailable:
//
//   new FrameMac(key: Buffer)        one direction of one connection; key 16..64 bytes
//   seal(frames: Buffer): void       for each frame laid back to back in `frames` (u32
//                                    big-endian length L, then L bytes whose last 16 are the
//                                    tag's place): tag = HMAC(key, u64 BE sequence | the frame
//                                    without its tag), written in place; the sequence then
//                                    counts up by one per frame
//   verify(frame: Buffer): boolean   one whole frame received: whether its tag is the one of
//                                    the next sequence number (constant-time comparison); the
//                                    sequence counts up only on success
//   sequence: number                 frames sealed or verified so far
//
// Throws TypeError for a key or frame that is not a Buffer, RangeError for a key of the wrong
// size or frames whose lengths do not add up, Error if OpenSSL fails (or is unavailable).
void InitFrameMac(Napi::Env env, Napi::Object exports);

}  // namespace shoal
