#include "crc32c.h"
namespace shoal {
void InitCrc32c(Napi::Env env, Napi::Object exports) {}
}
