// Shared pieces of the fault tests: a SoftHSM token store seen through the
// fault-injecting module, backends on per-test tokens, continuous signing
// load that verifies every signature, and a watchdog.
#ifndef HSMD_TESTS_FAULT_FAULT_ENV_H_
#define HSMD_TESTS_FAULT_FAULT_ENV_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.pb.h"
#include "tests/faulty_pkcs11/control.h"
#include "tests/util/softhsm_env.h"

namespace hsmd::fault_testing {

// libfaulty_pkcs11.so in the test's runfiles.
std::string FaultyModulePath();

// Once per test process, before anything loads a PKCS#11 module: a SoftHSM
// token store (SOFTHSM2_CONF) and the control / stats files of the faulty
// module (FAULTY_PKCS11_CONTROL / FAULTY_PKCS11_STATS), rules cleared.
class FaultEnv {
 public:
  static absl::StatusOr<std::unique_ptr<FaultEnv>> New();

  const faulty_pkcs11::FaultControl& faults() const { return faults_; }
  const std::string& module_path() const { return module_path_; }

  // Initialises a new token `label` (random PINs; the user PIN in a 0600
  // file read by the PIN source) and returns options for a backend on it
  // through the faulty module, with quick recovery backoff (20 ms doubling
  // to 200 ms) unless the test sets its own.
  absl::StatusOr<backend::Pkcs11BackendOptions> NewToken(
      const std::string& label, uint32_t pool_size = 4);

 private:
  FaultEnv(std::unique_ptr<testing::SoftHsmEnv> softhsm,
           faulty_pkcs11::FaultControl faults)
      : softhsm_(std::move(softhsm)), faults_(std::move(faults)) {}

  std::unique_ptr<testing::SoftHsmEnv> softhsm_;
  faulty_pkcs11::FaultControl faults_;
  std::string module_path_;
};

// A new EC P-256 signing key on `backend`.
absl::StatusOr<v1::Key> GenerateP256(backend::Backend& backend,
                                     const std::string& label);

// A SignRequest for ECDSA with SHA-256 over `message` with `key`.
v1::SignRequest EcdsaRequest(const v1::Key& key, const std::string& message);

// True if `signature` (DER ECDSA) verifies over SHA-256(`message`) with the
// key's public key, checked by OpenSSL.
bool VerifyEcdsaSha256(const v1::Key& key, const std::string& message,
                       const std::string& signature);

// What a SignerLoad saw.
struct LoadStats {
  uint64_t ok = 0;
  // Signatures returned as success that did not verify.
  uint64_t wrong = 0;
  std::map<absl::StatusCode, uint64_t> errors;
  // One message per error code, for diagnostics.
  std::map<absl::StatusCode, std::string> error_samples;
  absl::Duration max_error_latency = absl::ZeroDuration();
  uint64_t error_count() const;
};

// `threads` threads signing continuously with `key` (each request with a
// deadline `timeout` away) and verifying every signature, until Stop.
// After an error a thread pauses 2 ms, like a client backing off.
class SignerLoad {
 public:
  SignerLoad(backend::Backend& backend, v1::Key key, int threads,
             absl::Duration timeout);
  SignerLoad(const SignerLoad&) = delete;
  SignerLoad& operator=(const SignerLoad&) = delete;
  ~SignerLoad();

  void Stop();
  LoadStats Stats() const;

  // Waits for `n` more successes than so far; false after `timeout`.
  bool WaitForSuccesses(uint64_t n, absl::Duration timeout);
  // Starts watching for the first success of a request that began at or
  // after `mark`.
  void Mark(absl::Time mark);
  // Waits for that success and returns when it completed; nullopt after
  // `timeout`.
  std::optional<absl::Time> WaitForFirstSuccessAfterMark(
      absl::Duration timeout);

 private:
  void Run(int index);

  backend::Backend& backend_;
  const v1::Key key_;
  const absl::Duration timeout_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  LoadStats stats_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> mark_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> first_after_mark_ ABSL_GUARDED_BY(mu_);
};

// Aborts the test process with a message if not destroyed within `limit`:
// a hang fails the test instead of blocking the run.
class Watchdog {
 public:
  Watchdog(absl::Duration limit, std::string what);
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Polls `condition` every millisecond until it holds (true) or `timeout`
// passes (false).
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);

// The backend's recovery counters (fails the test for other backends).
backend::Pkcs11BackendCounters Counters(const backend::Backend& backend);

// Resident set size of this process in KiB, from /proc/self/status.
int64_t RssKib();

// A request context whose deadline is `timeout` from now.
backend::RequestContext Within(absl::Duration timeout);

// The fixture of a fault test suite: one FaultEnv for the whole suite (the
// faulty module's files are per process), and every test leaves with the
// fault rules cleared.
class FaultEnvTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  void TearDown() override;

  static FaultEnv* env_;
};

}  // namespace hsmd::fault_testing

#endif  // HSMD_TESTS_FAULT_FAULT_ENV_H_
