#include "file_lock.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace shoal {
namespace {

Napi::Error ErrorWithCode(Napi::Env env, const std::string& message, const char* code) {
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

// lockFile(path, mode = 0600): opens (creating, with exactly `mode` whatever the umask) the
// file and takes an exclusive, non-blocking flock. Returns the descriptor. Throws with code
// LOCKED if another descriptor holds the lock.
Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "lockFile(path, mode): path must be a string");
  }
  std::string path = info[0].As<Napi::String>();
  mode_t mode = 0600;
  if (info.Length() > 1 && !info[1].IsUndefined()) {
    if (!info[1].IsNumber()) throw Napi::TypeError::New(env, "lockFile(path, mode): mode must be a number");
    int64_t value = info[1].As<Napi::Number>().Int64Value();
    if (value < 0 || value > 0777 || (value & 0600) != 0600) throw Napi::RangeError::New(env, "lockFile(path, mode): mode must be 0600..0777 with owner read and write");
    mode = static_cast<mode_t>(value);
  }
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  bool created = fd >= 0;
  if (fd < 0 && errno == EEXIST) fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    throw ErrorWithCode(env, "cannot open lock file " + path + ": " + strerror(errno), "IO_ERROR");
  }
  // open()'s mode is masked by the umask; a file made now gets exactly the mode asked for.
  if (created && fchmod(fd, mode) != 0) {
    int saved = errno;
    close(fd);
    throw ErrorWithCode(env, "cannot set the mode of lock file " + path + ": " + strerror(saved), "IO_ERROR");
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
