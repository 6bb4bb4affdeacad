#pragma once
#include <napi.h>
namespace shoal {
void InitRipemd160(Napi::Env env, Napi::Object exports);
}
