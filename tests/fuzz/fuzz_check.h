// FUZZ_CHECK: the invariant a fuzz target asserts. Aborts with the failed
// condition so both libFuzzer and fuzz_driver report the input (abort is the
// signal both treat as a finding).
#ifndef HSMD_TESTS_FUZZ_FUZZ_CHECK_H_
#define HSMD_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#define FUZZ_CHECK(cond, what)                                        \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, \
              __LINE__, #cond, std::string(what).c_str());            \
      abort();                                                        \
    }                                                                 \
  } while (false)

#endif  // HSMD_TESTS_FUZZ_FUZZ_CHECK_H_
