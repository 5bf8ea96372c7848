#include "tests/fault/fault_env.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"

namespace hsmd::fault_testing {
namespace {

absl::Status WritePrivateFile(const std::string& path, absl::string_view data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  const bool ok =
      write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

std::string FaultyModulePath() {
  const char* srcdir = getenv("TEST_SRCDIR");
  const char* workspace = getenv("TEST_WORKSPACE");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".", "/",
                      workspace != nullptr ? workspace : "hsmd",
                      "/tests/faulty_pkcs11/libfaulty_pkcs11.so");
}

absl::StatusOr<std::unique_ptr<FaultEnv>> FaultEnv::New() {
  ASSIGN_OR_RETURN(std::unique_ptr<testing::SoftHsmEnv> softhsm,
                   testing::SoftHsmEnv::New());
  const std::string control = absl::StrCat(softhsm->dir(), "/control");
  const std::string stats = absl::StrCat(softhsm->dir(), "/stats");
  if (setenv("FAULTY_PKCS11_CONTROL", control.c_str(), 1) != 0 ||
      setenv("FAULTY_PKCS11_STATS", stats.c_str(), 1) != 0) {
    return absl::InternalError("setenv failed");
  }
  unsetenv("FAULTY_PKCS11_TARGET");  // SoftHSM.
  std::unique_ptr<FaultEnv> env(new FaultEnv(
      std::move(softhsm), faulty_pkcs11::FaultControl(control, stats)));
  env->module_path_ = FaultyModulePath();
  if (access(env->module_path_.c_str(), R_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("faulty module not found at ", env->module_path_));
  }
  RETURN_IF_ERROR(env->faults_.Clear());
  return env;
}

absl::StatusOr<backend::Pkcs11BackendOptions> FaultEnv::NewToken(
    const std::string& label, uint32_t pool_size) {
  ASSIGN_OR_RETURN(SecretString pin, softhsm_->AddToken(label));
  const std::string pin_file =
      absl::StrCat(softhsm_->dir(), "/", label, ".pin");
  RETURN_IF_ERROR(
      WritePrivateFile(pin_file, absl::string_view(pin.data(), pin.size())));
  backend::Pkcs11BackendOptions options;
  options.name = label;
  options.module_path = module_path_;
  options.token_label = label;
  options.pin_source = [pin_file]() { return testing::ReadPinFile(pin_file); };
  options.session_pool_size = pool_size;
  options.reinit_backoff_initial = absl::Milliseconds(20);
  options.reinit_backoff_max = absl::Milliseconds(200);
  options.reinit_drain_timeout = absl::Seconds(1);
  return options;
}

absl::StatusOr<v1::Key> GenerateP256(backend::Backend& backend,
                                     const std::string& label) {
  v1::GenerateKeyRequest request;
  request.set_label(label);
  request.set_key_type(v1::KEY_TYPE_EC);
  request.set_curve(v1::CURVE_P256);
  return backend.GenerateKey(request, backend::RequestContext());
}

v1::SignRequest EcdsaRequest(const v1::Key& key, const std::string& message) {
  v1::SignRequest request;
  request.mutable_key()->set_uri(key.uri());
  request.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  request.set_message(message);
  return request;
}

bool VerifyEcdsaSha256(const v1::Key& key, const std::string& message,
                       const std::string& signature) {
  const unsigned char* der =
      reinterpret_cast<const unsigned char*>(key.public_key_der().data());
  EvpPkeyPtr pkey(d2i_PUBKEY(nullptr, &der,
                             static_cast<long>(key.public_key_der().size())));
  if (pkey == nullptr) return false;
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  return ctx != nullptr &&
         EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr,
                              pkey.get()) == 1 &&
         EVP_DigestVerify(
             ctx.get(),
             reinterpret_cast<const unsigned char*>(signature.data()),
             signature.size(),
             reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

uint64_t LoadStats::error_count() const {
  uint64_t total = 0;
  for (const auto& [code, count] : errors) total += count;
  return total;
}

SignerLoad::SignerLoad(backend::Backend& backend, v1::Key key, int threads,
                       absl::Duration timeout)
    : backend_(backend), key_(std::move(key)), timeout_(timeout) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i] { Run(i); });
  }
}

SignerLoad::~SignerLoad() { Stop(); }

void SignerLoad::Stop() {
  stop_ = true;
  for (std::thread& thread : threads_) {
    if (thread.joinable()) thread.join();
  }
}

void SignerLoad::Run(int index) {
  for (uint64_t i = 0; !stop_.load(); ++i) {
    const std::string message = absl::StrCat("signer ", index, " message ", i);
    backend::RequestContext ctx;
    const absl::Time start = absl::Now();
    ctx.deadline = start + timeout_;
    absl::StatusOr<v1::SignResponse> response =
        backend_.Sign(EcdsaRequest(key_, message), ctx);
    const absl::Time end = absl::Now();
    if (response.ok()) {
      const bool good = VerifyEcdsaSha256(key_, message, response->signature());
      std::lock_guard<std::mutex> lock(mu_);
      if (good) {
        ++stats_.ok;
        if (mark_.has_value() && start >= *mark_ &&
            !first_after_mark_.has_value()) {
          first_after_mark_ = end;
        }
      } else {
        ++stats_.wrong;
      }
      cv_.notify_all();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      const absl::StatusCode code = response.status().code();
      ++stats_.errors[code];
      if (!stats_.error_samples.count(code)) {
        stats_.error_samples[code] = std::string(response.status().message());
      }
      stats_.max_error_latency =
          std::max(stats_.max_error_latency, end - start);
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
}

LoadStats SignerLoad::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

bool SignerLoad::WaitForSuccesses(uint64_t n, absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t target = stats_.ok + n;
  return cv_.wait_for(
      lock, absl::ToChronoNanoseconds(timeout),
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stats_.ok >= target; });
}

void SignerLoad::Mark(absl::Time mark) {
  std::lock_guard<std::mutex> lock(mu_);
  mark_ = mark;
  first_after_mark_.reset();
}

std::optional<absl::Time> SignerLoad::WaitForFirstSuccessAfterMark(
    absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
               [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                 return first_after_mark_.has_value();
               });
  return first_after_mark_;
}

Watchdog::Watchdog(absl::Duration limit, std::string what) {
  thread_ = std::thread([this, limit, what = std::move(what)] {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(
            lock, absl::ToChronoNanoseconds(limit),
            [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; })) {
      fprintf(stderr, "watchdog: %s did not finish within %s; aborting\n",
              what.c_str(), absl::FormatDuration(limit).c_str());
      fflush(stderr);
      abort();
    }
  });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

backend::Pkcs11BackendCounters Counters(const backend::Backend& backend) {
  absl::StatusOr<backend::Pkcs11BackendCounters> counters =
      backend::GetPkcs11BackendCounters(backend);
  EXPECT_TRUE(counters.ok()) << counters.status();
  return counters.ok() ? *counters : backend::Pkcs11BackendCounters();
}

int64_t RssKib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) != 0) continue;
    std::vector<std::string> parts =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t kib = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib;
  }
  return -1;
}

backend::RequestContext Within(absl::Duration timeout) {
  backend::RequestContext ctx;
  ctx.deadline = absl::Now() + timeout;
  return ctx;
}

FaultEnv* FaultEnvTest::env_ = nullptr;

void FaultEnvTest::SetUpTestSuite() {
  absl::StatusOr<std::unique_ptr<FaultEnv>> env = FaultEnv::New();
  ASSERT_TRUE(env.ok()) << env.status();
  env_ = env->release();
}

void FaultEnvTest::TearDown() { ASSERT_TRUE(env_->faults().Clear().ok()); }

}  // namespace hsmd::fault_testing
