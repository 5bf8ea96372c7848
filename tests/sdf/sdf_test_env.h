// Test helpers for the SDF backend: software SDF (libsoftsdf.so) stores made
// with softsdf-init under $TEST_TMPDIR, password sources reading 0600 files,
// the fault-injecting libfaultysdf.so, and OpenSSL's SM2/SM4 as the
// reference the backend's results are checked against.
#ifndef HSMD_TESTS_SDF_SDF_TEST_ENV_H_
#define HSMD_TESTS_SDF_SDF_TEST_ENV_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"
#include "common/secret.h"

namespace hsmd::sdf_test {

// $TEST_SRCDIR/$TEST_WORKSPACE/<path>.
std::string Runfile(absl::string_view path);
std::string SoftSdfLibrary();
// tests/sdf/libfaultysdf<variant>.so ("", "_minimal", "_nosign"), with
// FAULTY_SDF_TARGET set to libsoftsdf.so.
std::string FaultySdfLibrary(absl::string_view variant = "");

// What softsdf-init puts in a store.
struct StoreSpec {
  // Generated keys.
  std::vector<uint32_t> sign_keys;
  std::vector<uint32_t> enc_keys;
  std::vector<uint32_t> sm4_keys;
  // Imported keys: SM2 private keys as PEM text, SM4 keys as 16 raw bytes.
  std::map<uint32_t, std::string> import_sign;
  std::map<uint32_t, std::string> import_enc;
  std::map<uint32_t, std::string> import_sm4;
  // One per index with a sign or enc key.
  std::map<uint32_t, std::string> passwords;
};

class SoftSdfStore {
 public:
  // Runs softsdf-init on $TEST_TMPDIR/<name> (replacing an existing store)
  // with the passwords in a 0600 file, never on its command line.
  static absl::StatusOr<SoftSdfStore> Create(absl::string_view name,
                                             const StoreSpec& spec);

  const std::string& dir() const { return dir_; }
  // Points SOFTSDF_STORE here: the next SDF_OpenDevice loads this store.
  void Activate() const;
  // A password source as the daemon has: reads the password of `index`
  // from a 0600 file on every call. SetPassword changes the file.
  std::function<absl::StatusOr<SecretString>()> PasswordSource(
      uint32_t index) const;
  void SetPassword(uint32_t index, absl::string_view password) const;
  // The 0600 file PasswordSource reads (for an hsmd config's password).
  std::string PasswordFile(uint32_t index) const;
  // The public key softsdf-init wrote (sign-<i>.pub.pem / enc-<i>.pub.pem).
  std::string PublicKeyPem(absl::string_view usage, uint32_t index) const;

 private:
  absl::Status SetPassword0(uint32_t index, absl::string_view password) const;

  std::string dir_;
  std::string password_dir_;
};

// Control of libfaultysdf*.so, through a dlopen of the same path.
class FaultControl {
 public:
  static absl::StatusOr<FaultControl> Open(const std::string& library_path);
  // Fails the next `count` calls of `function` ("*": any; count < 0: until
  // Clear) with `code`.
  void Fail(const char* function, int code, int count) const;
  void Hang(const char* function, bool on) const;
  void Clear() const;
  unsigned long Calls(const char* function) const;

 private:
  void (*fail_)(const char*, int, int) = nullptr;
  void (*hang_)(const char*, int) = nullptr;
  void (*clear_)() = nullptr;
  unsigned long (*calls_)(const char*) = nullptr;
};

// OpenSSL's default provider as the reference.
EvpPkeyPtr NewSm2Key();
std::string PrivateKeyPem(EVP_PKEY* key);
// Parses a DER SubjectPublicKeyInfo or a PEM public key.
absl::StatusOr<EvpPkeyPtr> PublicKeyFromDer(absl::string_view der);
absl::StatusOr<EvpPkeyPtr> PublicKeyFromPem(absl::string_view pem);
std::string PublicKeyDer(EVP_PKEY* key);
// SM2 with SM3 over `message` and distinguishing ID `id` (EVP_DigestSign /
// EVP_DigestVerify with EVP_PKEY_CTX_set1_id).
absl::StatusOr<std::string> Sm2Sign(EVP_PKEY* key, absl::string_view id,
                                    absl::string_view message);
bool Sm2Verify(EVP_PKEY* key, absl::string_view id, absl::string_view message,
               absl::string_view signature);
// e = SM3(Z || M), Z computed here from the published curve parameters
// (independently of the code under test).
absl::StatusOr<std::string> Sm2E(EVP_PKEY* key, absl::string_view id,
                                 absl::string_view message);
// EVP_PKEY_encrypt with an SM2 public key: OpenSSL's DER ciphertext.
absl::StatusOr<std::string> Sm2Encrypt(EVP_PKEY* key,
                                       absl::string_view plaintext);
// SM4-ECB / SM4-CBC without padding (iv empty for ECB).
absl::StatusOr<std::string> Sm4(absl::string_view key, absl::string_view iv,
                                absl::string_view data, bool encrypt);
std::string RandomBytes(size_t n);

}  // namespace hsmd::sdf_test

#endif  // HSMD_TESTS_SDF_SDF_TEST_ENV_H_
