// Invariant checks for native code. A failed check means the index or arena is internally
// inconsistent (a bug, or shared memory overwritten by someone else): carrying on would
// corrupt data, so it prints the condition, the place and a formatted context, then aborts.
// Never use these for user input: validate that and throw a JS TypeError/RangeError instead.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace shoal {

[[noreturn]] inline void AssertFailed(const char* condition, const char* file, int line) {
  std::fprintf(stderr, "shoal: invariant failed: %s\n  at %s:%d\n", condition, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace shoal

// SHOAL_ASSERT(condition, "format", args...): the format describes the values involved.
#define SHOAL_ASSERT(condition, ...)                                                 \
  do {                                                                               \
    if (__builtin_expect(!(condition), 0)) {                                         \
      std::fprintf(stderr, "shoal: context: ");                                      \
      std::fprintf(stderr, __VA_ARGS__);                                             \
      std::fprintf(stderr, "\n");                                                    \
      ::shoal::AssertFailed(#condition, __FILE__, __LINE__);                         \
    }                                                                                \
  } while (0)
