// hsmd with fake backends (see BUILD.bazel): the real RunHsmd, so tests of
// signals, exit codes, socket handling, health and reflection run the same
// code as the daemon, without an HSM.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/config/config.pb.h"
#include "daemon/hsmd_main.h"

namespace {

absl::StatusOr<std::unique_ptr<hsmd::backend::Backend>> NewFake(
    const hsmd::config::Backend& config) {
  absl::StatusOr<std::unique_ptr<hsmd::backend::FakeBackend>> fake =
      hsmd::backend::FakeBackend::New(
          {.name = config.name(),
           .token_label = config.pkcs11().token_label().empty()
                              ? "fake"
                              : config.pkcs11().token_label()});
  if (!fake.ok()) return fake.status();
  hsmd::v1::GenerateKeyRequest request;
  request.set_label("ec-p256");
  request.set_key_type(hsmd::v1::KEY_TYPE_EC);
  request.set_curve(hsmd::v1::CURVE_P256);
  if (absl::StatusOr<hsmd::v1::Key> key = (*fake)->GenerateKey(request, {});
      !key.ok()) {
    return key.status();
  }
  int delay_ms = 0;
  if (const char* d = std::getenv("HSMD_FAKE_SIGN_DELAY_MS")) {
    if (absl::SimpleAtoi(d, &delay_ms) && delay_ms > 0) {
      (*fake)->SetDelay("Sign", absl::Milliseconds(delay_ms));
    }
  }
  if (const char* f = std::getenv("HSMD_FAKE_SIGN_STARTED_FILE")) {
    std::string path = f;
    (*fake)->SetCallHook([path](absl::string_view method) {
      if (method != "Sign") return;
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
      if (fd >= 0) close(fd);
    });
  }
  return std::unique_ptr<hsmd::backend::Backend>(std::move(*fake));
}

}  // namespace

int main(int argc, char** argv) { return hsmd::RunHsmd(argc, argv, NewFake); }
