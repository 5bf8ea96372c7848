#include "tests/util/softhsm_env.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace hsmd::testing {
namespace {

absl::Status WriteFile(const std::string& path, const std::string& contents,
                       mode_t mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  }
  size_t written = 0;
  while (written < contents.size()) {
    ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return absl::InternalError(absl::StrCat("cannot write ", path));
    }
    written += static_cast<size_t>(n);
  }
  close(fd);
  return absl::OkStatus();
}

v1::GenerateKeyRequest Request(const std::string& label, v1::KeyType type,
                               uint32_t rsa_bits, v1::Curve curve) {
  v1::GenerateKeyRequest request;
  request.set_label(label);
  request.set_key_type(type);
  request.set_rsa_bits(rsa_bits);
  request.set_curve(curve);
  return request;
}

}  // namespace

std::string RandomPin() {
  unsigned char bytes[8];
  RAND_bytes(bytes, sizeof(bytes));
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

absl::StatusOr<SecretString> ReadPinFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string pin = buffer.str();
  while (!pin.empty() && (pin.back() == '\n' || pin.back() == '\r')) {
    pin.pop_back();
  }
  return SecretString(std::move(pin));
}

absl::StatusOr<std::unique_ptr<SoftHsmEnv>> SoftHsmEnv::New(
    const std::string& token_label) {
  const char* base = getenv("TEST_TMPDIR");
  std::string templ =
      absl::StrCat(base != nullptr ? base : "/tmp", "/softhsm-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp ", templ, ": ", std::strerror(errno)));
  }
  std::unique_ptr<SoftHsmEnv> env(new SoftHsmEnv);
  env->dir_ = templ;
  const std::string token_dir = absl::StrCat(templ, "/tokens");
  if (mkdir(token_dir.c_str(), 0700) != 0) {
    return absl::InternalError(
        absl::StrCat("mkdir ", token_dir, ": ", std::strerror(errno)));
  }
  env->conf_path_ = absl::StrCat(templ, "/softhsm2.conf");
  RETURN_IF_ERROR(WriteFile(env->conf_path_,
                            absl::StrCat("directories.tokendir = ", token_dir,
                                         "\nobjectstore.backend = file\n"
                                         "log.level = ERROR\n"
                                         "slots.removable = false\n"),
                            0600));
  if (setenv("SOFTHSM2_CONF", env->conf_path_.c_str(), 1) != 0) {
    return absl::InternalError("setenv SOFTHSM2_CONF failed");
  }
  env->token_label_ = token_label;
  env->user_pin_ = RandomPin();
  // (SoftHSM renumbers slots when the module is re-initialised, so the
  // slot id is not kept: tokens are selected by label.)
  RETURN_IF_ERROR(backend::InitializeToken(kSoftHsmModulePath, token_label,
                                           RandomPin(), env->user_pin_)
                      .status());
  env->pin_file_ = absl::StrCat(templ, "/user.pin");
  RETURN_IF_ERROR(WriteFile(env->pin_file_, env->user_pin_, 0600));
  return env;
}

std::function<absl::StatusOr<SecretString>()> SoftHsmEnv::PinSource() const {
  std::string path = pin_file_;
  return [path]() { return ReadPinFile(path); };
}

backend::Pkcs11BackendOptions SoftHsmEnv::BackendOptions(
    uint32_t pool_size) const {
  backend::Pkcs11BackendOptions options;
  options.name = "softhsm";
  options.module_path = kSoftHsmModulePath;
  options.token_label = token_label_;
  options.pin_source = PinSource();
  options.session_pool_size = pool_size;
  return options;
}

absl::StatusOr<SecretString> SoftHsmEnv::AddToken(const std::string& label) {
  std::string pin = RandomPin();
  RETURN_IF_ERROR(
      backend::InitializeToken(kSoftHsmModulePath, label, RandomPin(), pin)
          .status());
  return SecretString(std::move(pin));
}

const std::vector<v1::GenerateKeyRequest>& DemoKeyRequests() {
  static const auto* requests = new std::vector<v1::GenerateKeyRequest>{
      Request("rsa-2048", v1::KEY_TYPE_RSA, 2048, v1::CURVE_UNSPECIFIED),
      Request("rsa-3072", v1::KEY_TYPE_RSA, 3072, v1::CURVE_UNSPECIFIED),
      Request("ec-p256", v1::KEY_TYPE_EC, 0, v1::CURVE_P256),
      Request("ec-p384", v1::KEY_TYPE_EC, 0, v1::CURVE_P384),
      Request("ed25519", v1::KEY_TYPE_ED25519, 0, v1::CURVE_UNSPECIFIED),
  };
  return *requests;
}

absl::StatusOr<std::vector<v1::Key>> GenerateDemoKeys(
    backend::Backend& backend) {
  std::vector<v1::Key> keys;
  for (const v1::GenerateKeyRequest& request : DemoKeyRequests()) {
    ASSIGN_OR_RETURN(v1::Key key,
                     backend.GenerateKey(request, backend::RequestContext()));
    keys.push_back(std::move(key));
  }
  return keys;
}

}  // namespace hsmd::testing

// Sanitizer hooks for every test that links this helper. SoftHSM 2.6.1 leaks
// an ASN1 string in each Ed25519 C_SignInit (it parses the "edwards25519"
// curve name and never frees it); that is not hsmd's leak. The suppression
// can only see SoftHSM's frames with the slow unwinder (Debian's libcrypto
// has no frame pointers). Both hooks are ignored in non-sanitizer builds.
extern "C" __attribute__((visibility("default"), used)) const char*
__lsan_default_suppressions() {
  return "leak:libsofthsm2.so\n";
}

extern "C" __attribute__((visibility("default"), used)) const char*
__asan_default_options() {
  return "fast_unwind_on_malloc=0";
}
