#include "tests/faulty_pkcs11/functions.h"

namespace hsmd::faulty_pkcs11 {
namespace {

constexpr absl::string_view kNames[] = {
#define FAULTY_PKCS11_NAME(name, kind) #name,
    FAULTY_PKCS11_FUNCTIONS(FAULTY_PKCS11_NAME)
#undef FAULTY_PKCS11_NAME
};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == kFnCount);

}  // namespace

absl::string_view FnName(Fn fn) { return kNames[static_cast<int>(fn)]; }

absl::optional<Fn> FnByName(absl::string_view name) {
  for (int i = 0; i < kFnCount; ++i) {
    if (kNames[i] == name) return static_cast<Fn>(i);
  }
  return absl::nullopt;
}

}  // namespace hsmd::faulty_pkcs11
