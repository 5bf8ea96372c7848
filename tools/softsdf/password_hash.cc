#include "tools/softsdf/password_hash.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hsmd::softsdf {
namespace {

constexpr char kScheme[] = "pbkdf2-sha256";
constexpr size_t kSaltLen = 16;
constexpr size_t kHashLen = 32;
// Far above any sane setting; bounds the work a corrupt record can cause.
constexpr int kMaxIterations = 10000000;

absl::StatusOr<std::string> Pbkdf2(absl::string_view password,
                                   absl::string_view salt, int iterations) {
  std::string out(kHashLen, '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char*>(salt.data()),
                        static_cast<int>(salt.size()), iterations, EVP_sha256(),
                        static_cast<int>(out.size()),
                        reinterpret_cast<unsigned char*>(out.data())) != 1) {
    return absl::InternalError("PBKDF2-HMAC-SHA256 failed");
  }
  return out;
}

struct Record {
  int iterations = 0;
  std::string salt;
  std::string hash;
};

absl::StatusOr<Record> ParseRecord(absl::string_view record) {
  const std::vector<absl::string_view> parts = absl::StrSplit(record, ':');
  Record parsed;
  if (parts.size() != 4 || parts[0] != kScheme ||
      !absl::SimpleAtoi(parts[1], &parsed.iterations) ||
      parsed.iterations < 1 || parsed.iterations > kMaxIterations ||
      parts[2].size() != 2 * kSaltLen || parts[3].size() != 2 * kHashLen) {
    return absl::InvalidArgumentError(
        "malformed password record (want pbkdf2-sha256:ITER:SALT:HASH)");
  }
  for (absl::string_view hex : {parts[2], parts[3]}) {
    for (char c : hex) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
        return absl::InvalidArgumentError(
            "malformed password record: salt and hash must be hex");
      }
    }
  }
  parsed.salt = absl::HexStringToBytes(parts[2]);
  parsed.hash = absl::HexStringToBytes(parts[3]);
  return parsed;
}

}  // namespace

absl::StatusOr<std::string> HashPassword(absl::string_view password,
                                         int iterations) {
  if (iterations < kMinPbkdf2Iterations || iterations > kMaxIterations) {
    return absl::InvalidArgumentError(
        absl::StrCat("PBKDF2 iterations must be in [", kMinPbkdf2Iterations,
                     ", ", kMaxIterations, "], got ", iterations));
  }
  if (password.empty()) {
    return absl::InvalidArgumentError("empty password");
  }
  std::string salt(kSaltLen, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(salt.data()),
                 static_cast<int>(salt.size())) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  absl::StatusOr<std::string> hash = Pbkdf2(password, salt, iterations);
  if (!hash.ok()) return hash.status();
  return absl::StrCat(kScheme, ":", iterations, ":",
                      absl::BytesToHexString(salt), ":",
                      absl::BytesToHexString(*hash));
}

absl::Status ValidatePasswordRecord(absl::string_view record) {
  return ParseRecord(record).status();
}

absl::StatusOr<bool> VerifyPassword(absl::string_view record,
                                    absl::string_view password) {
  absl::StatusOr<Record> parsed = ParseRecord(record);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<std::string> actual =
      Pbkdf2(password, parsed->salt, parsed->iterations);
  if (!actual.ok()) return actual.status();
  return CRYPTO_memcmp(actual->data(), parsed->hash.data(), kHashLen) == 0;
}

}  // namespace hsmd::softsdf
