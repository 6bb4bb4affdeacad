#pragma once
// Exclusive advisory locks (flock) on files, so one Db owns a namespace's data at a time.
// The kernel drops the lock when the process dies, so a crash never leaves data locked.
#include <napi.h>

namespace shoal {
void InitFileLock(Napi::Env env, Napi::Object exports);
}
