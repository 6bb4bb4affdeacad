// Hot instance methods bound to their object: an own property of the JS object, a function
// created with the C++ object as its data. A call then skips napi_unwrap, which an ObjectWrap
// prototype method pays on every call (a private-symbol lookup on the object: about 600
// instructions on Node 20, a third of what a put spends crossing into native code, measured
// with valgrind --tool=callgrind; docs/native-boundary.md, "Bound methods").
#pragma once

#include <napi.h>

namespace shoal {

template <typename T, Napi::Value (T::*Method)(const Napi::CallbackInfo&)>
Napi::Value CallBound(const Napi::CallbackInfo& info) {
  return (static_cast<T*>(info.Data())->*Method)(info);
}

// Defines `name` on `self` (the JS object wrapping `object`) as Method bound to `object`. The
// function holds `self` (its "owner" property), so it is never called on a collected object.
template <typename T, Napi::Value (T::*Method)(const Napi::CallbackInfo&)>
void BindMethod(Napi::Env env, Napi::Object self, T* object, const char* name) {
  Napi::Function function = Napi::Function::New(env, &CallBound<T, Method>, name, object);
  function.DefineProperty(Napi::PropertyDescriptor::Value("owner", self, napi_default));
  self.DefineProperty(Napi::PropertyDescriptor::Value(name, function, napi_default));
}

}  // namespace shoal
