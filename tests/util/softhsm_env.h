// Test helper: a private SoftHSM token store for one test process.
#ifndef HSMD_TESTS_UTIL_SOFTHSM_ENV_H_
#define HSMD_TESTS_UTIL_SOFTHSM_ENV_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/secret.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::testing {

inline constexpr char kSoftHsmModulePath[] = "/usr/lib/softhsm/libsofthsm2.so";
inline constexpr char kDefaultTestToken[] = "hsmd-test";

// A softhsm2.conf and token directory under $TEST_TMPDIR (or /tmp), with
// SOFTHSM2_CONF pointing at it, and one token initialised through PKCS#11
// with random PINs (the user PIN is also in a 0600 file). Create it before
// anything loads the module, and only once per test process: SoftHSM reads
// its configuration once.
class SoftHsmEnv {
 public:
  static absl::StatusOr<std::unique_ptr<SoftHsmEnv>> New(
      const std::string& token_label = kDefaultTestToken);

  SoftHsmEnv(const SoftHsmEnv&) = delete;
  SoftHsmEnv& operator=(const SoftHsmEnv&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& conf_path() const { return conf_path_; }
  const std::string& token_label() const { return token_label_; }
  const std::string& pin_file() const { return pin_file_; }

  // A copy of the main token's user PIN.
  SecretString user_pin() const { return SecretString(user_pin_); }
  // Reads the main token's PIN file on each call (like the daemon does).
  std::function<absl::StatusOr<SecretString>()> PinSource() const;
  // Options for a backend on the main token.
  backend::Pkcs11BackendOptions BackendOptions(uint32_t pool_size = 4) const;

  // Initialises another token in the same store with its own random PINs;
  // returns its user PIN.
  absl::StatusOr<SecretString> AddToken(const std::string& label);

 private:
  SoftHsmEnv() = default;

  std::string dir_;
  std::string conf_path_;
  std::string token_label_;
  std::string pin_file_;
  std::string user_pin_;
};

// A random PIN of hex digits.
std::string RandomPin();

// Reads a PIN file (contents without a trailing newline).
absl::StatusOr<SecretString> ReadPinFile(const std::string& path);

// The demo key set of `hsmd --demo`: labels rsa-2048, rsa-3072, ec-p256,
// ec-p384, ed25519.
const std::vector<v1::GenerateKeyRequest>& DemoKeyRequests();

// Generates the demo keys through `backend`; returns them in
// DemoKeyRequests() order.
absl::StatusOr<std::vector<v1::Key>> GenerateDemoKeys(
    backend::Backend& backend);

}  // namespace hsmd::testing

#endif  // HSMD_TESTS_UTIL_SOFTHSM_ENV_H_
