// The software SDF device's key store: a directory holding, per key index, an
// SM2 signing key pair, an SM2 encryption key pair, an SM4 key, and the
// salted hash of the index's access password. A test device: private keys
// are plain PEM files protected only by their 0600 mode.
//
//   sign-<i>.pem       SM2 signing private key, PKCS#8 PEM        (0600)
//   enc-<i>.pem        SM2 encryption private key, PKCS#8 PEM     (0600)
//   sm4-<i>.key        SM4 key, 32 hex digits                     (0600)
//   passwords          lines "<i>:pbkdf2-sha256:ITER:SALT:HASH"    (0600)
//   sign-<i>.pub.pem,
//   enc-<i>.pub.pem    public keys for other tools (not read by the device)
#ifndef HSMD_TOOLS_SOFTSDF_KEY_STORE_H_
#define HSMD_TOOLS_SOFTSDF_KEY_STORE_H_

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"

namespace hsmd::softsdf {

inline constexpr unsigned int kMaxKeyIndex = 1024;
inline constexpr size_t kSm4KeyLen = 16;

// An SM4 key, wiped when destroyed.
struct Sm4Key {
  unsigned char bytes[kSm4KeyLen] = {};
  Sm4Key() = default;
  Sm4Key(const Sm4Key& other) = default;
  Sm4Key& operator=(const Sm4Key& other) = default;
  ~Sm4Key() { OPENSSL_cleanse(bytes, sizeof(bytes)); }
};

enum class KeyFile { kSign, kEnc, kSm4, kSignPublic, kEncPublic };

// The path of a key file of the store at `dir`.
std::string KeyFilePath(absl::string_view dir, KeyFile file,
                        unsigned int index);
std::string PasswordsPath(absl::string_view dir);

class KeyStore {
 public:
  // Loads and validates every key of the store at `dir`.
  static absl::StatusOr<std::unique_ptr<KeyStore>> Load(const std::string& dir);

  // The keys at `index`, or nullptr when the store has none. The EVP_PKEYs
  // are only read after Load, which OpenSSL allows from several threads.
  EVP_PKEY* sign_key(unsigned int index) const;
  EVP_PKEY* enc_key(unsigned int index) const;
  const Sm4Key* sm4_key(unsigned int index) const;
  // Whether `index` holds a private key (and so an access password).
  bool has_private_keys(unsigned int index) const;
  // Checks the index's access password; false for a wrong password or an
  // index without private keys.
  bool CheckPassword(unsigned int index, absl::string_view password) const;

  std::vector<unsigned int> indexes() const;

 private:
  struct Entry {
    EvpPkeyPtr sign;
    EvpPkeyPtr enc;
    std::unique_ptr<Sm4Key> sm4;
    std::string password_record;
  };
  KeyStore() = default;

  std::map<unsigned int, Entry> entries_;
};

// Writers used by softsdf-init. Each creates a new file (fails if it exists)
// with the mode given in the layout above.
absl::Status WritePrivateKey(const std::string& path, EVP_PKEY* key);
absl::Status WritePublicKey(const std::string& path, EVP_PKEY* key);
absl::Status WriteSm4Key(const std::string& path, const Sm4Key& key);
// `records` maps key index to password record.
absl::Status WritePasswords(const std::string& path,
                            const std::map<unsigned int, std::string>& records);

// Reads a PEM private key (not encrypted) and checks it is SM2.
absl::StatusOr<EvpPkeyPtr> ReadSm2PrivateKey(const std::string& path);
// Parses 32 hex digits (surrounding whitespace allowed).
absl::StatusOr<Sm4Key> ParseSm4KeyHex(absl::string_view text);

// Reads a whole file; `private_file` also requires that neither group nor
// others have any access to it.
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     bool private_file);

}  // namespace hsmd::softsdf

#endif  // HSMD_TOOLS_SOFTSDF_KEY_STORE_H_
