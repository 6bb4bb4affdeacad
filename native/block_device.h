#pragma once
#include <napi.h>
namespace shoal {
class BlockDevice {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {}
};
}
