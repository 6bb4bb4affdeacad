// The addon's entry point: each JS-visible class or function group registers itself here.
#include <napi.h>

#include "block_device.h"
#include "crc32c.h"
#include "file_lock.h"
#include "frame_mac.h"
#include "primary_index.h"
#include "ripemd160.h"

namespace shoal {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitRipemd160(env, exports);
  InitCrc32c(env, exports);
  InitFileLock(env, exports);
  InitFrameMac(env, exports);
  PrimaryIndexWrap::Init(env, exports);
  BlockDevice::Init(env, exports);
  return exports;
}

}  // namespace shoal

static Napi::Object InitShoal(Napi::Env env, Napi::Object exports) { return shoal::Init(env, exports); }

NODE_API_MODULE(shoal_native, InitShoal)
