#pragma once
#include <napi.h>
namespace shoal {
class PrimaryIndexWrap {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {}
};
}
