// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of records and blocks.
// Uses the SSE4.2 crc32 instruction when the CPU has it, else a slicing-by-8 table.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>

namespace shoal {

// Returns the CRC32C of data[0, length) continuing from `seed`, the CRC of the bytes before
// (0 to start). Crc32c(b, Crc32c(a, 0)) == Crc32c(a + b, 0). Safe from any thread.
uint32_t Crc32c(const uint8_t* data, size_t length, uint32_t seed);

// The table-driven path, same contract; exported so tests can compare the two paths.
uint32_t Crc32cPortable(const uint8_t* data, size_t length, uint32_t seed);

// Whether Crc32c() uses the SSE4.2 instruction on this CPU.
bool Crc32cUsesHardware();

// Registers crc32c(data: Uint8Array, seed?: number): number and the test hooks
// crc32cPortable(data, seed?) and crc32cHardware: boolean.
// Throws TypeError for a non-Uint8Array and RangeError for a seed outside [0, 2^32).
void InitCrc32c(Napi::Env env, Napi::Object exports);

}  // namespace shoal
