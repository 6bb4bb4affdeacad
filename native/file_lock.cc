#include "file_lock.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <unistd.h>

namespace shoal {
namespace {

Napi::Error ErrorWithCode(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

// lockFile(path): opens (creating) the file and takes an exclusive, non-blocking flock.
// Returns the descriptor. Throws with code LOCKED if another descriptor holds the lock.
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "lockFile(path): path must be a string");
  }
  std::string path = info[0].As<Napi::String>();
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw ErrorWithCode(env, "cannot open lock file " + path + ": " + strerror(errno), "IO_ERROR");
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int saved = errno;
    close(fd);
    if (saved == EWOULDBLOCK) {
      throw ErrorWithCode(env, "lock file " + path + " is held by another open database", "LOCKED");
    }
    throw ErrorWithCode(env, "cannot lock " + path + ": " + strerror(saved), "IO_ERROR");
  }
  return Napi::Number::New(env, fd);
}

// unlockFile(fd): releases the lock and closes the descriptor.
Napi::Value UnlockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "unlockFile(fd): fd must be a number");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (fd >= 0) {
    flock(fd, LOCK_UN);
    close(fd);
  }
  return env.Undefined();
}

}  // namespace

void InitFileLock(Napi::Env env, Napi::Object exports) {
  exports.Set("lockFile", Napi::Function::New(env, LockFile, "lockFile"));
  exports.Set("unlockFile", Napi::Function::New(env, UnlockFile, "unlockFile"));
}

}  // namespace shoal
