#include "ripemd160.h"
namespace shoal {
void InitRipemd160(Napi::Env env, Napi::Object exports) {}
}
