#include "tools/softsdf/key_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "tools/softsdf/password_hash.h"

namespace hsmd::softsdf {
namespace {

constexpr size_t kMaxFileSize = 1 << 20;

struct FileName {
  const char* prefix;
  const char* suffix;
  KeyFile kind;
};
// ".pub.pem" comes before ".pem" so that public files are not taken for
// private ones.
constexpr FileName kFileNames[] = {
    {"sign-", ".pub.pem", KeyFile::kSignPublic},
    {"enc-", ".pub.pem", KeyFile::kEncPublic},
    {"sign-", ".pem", KeyFile::kSign},
    {"enc-", ".pem", KeyFile::kEnc},
    {"sm4-", ".key", KeyFile::kSm4},
};

std::string ErrnoText() { return std::strerror(errno); }

// A key index as written in file names: decimal, no sign, no leading zero.
bool ParseIndex(absl::string_view text, unsigned int* index) {
  if (text.empty() || text.size() > 5 || text[0] == '0') return false;
  for (char c : text) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return absl::SimpleAtoi(text, index) && *index >= 1 && *index <= kMaxKeyIndex;
}

int NoPassphrase(char*, int, int, void*) { return -1; }

absl::StatusOr<EvpPkeyPtr> ParseSm2PrivateKey(absl::string_view pem,
                                              const std::string& path) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory");
  EvpPkeyPtr key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an unencrypted PEM private key"));
  }
  if (!EVP_PKEY_is_a(key.get(), "SM2")) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not an SM2 key (", EVP_PKEY_get0_type_name(key.get()), ")"));
  }
  return key;
}

absl::Status WriteNewFile(const std::string& path, absl::string_view data,
                          mode_t mode) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", path, ": ", ErrnoText()));
  }
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = ErrnoText();
      close(fd);
      return absl::InternalError(
          absl::StrCat("cannot write ", path, ": ", why));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot write ", path, ": ", ErrnoText()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<unsigned int, std::string>> ParsePasswords(
    absl::string_view text, const std::string& path) {
  std::map<unsigned int, std::string> records;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    unsigned int index = 0;
    if (colon == absl::string_view::npos ||
        !ParseIndex(line.substr(0, colon), &index)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: want <index>:<record> with index in [1, %u]",
                          path, line_number, kMaxKeyIndex));
    }
    const absl::string_view record = line.substr(colon + 1);
    if (absl::Status s = ValidatePasswordRecord(record); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: %s", path, line_number, s.message()));
    }
    if (!records.emplace(index, std::string(record)).second) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: second record for key index %u", path, line_number, index));
    }
  }
  return records;
}

}  // namespace

std::string KeyFilePath(absl::string_view dir, KeyFile file,
                        unsigned int index) {
  for (const FileName& name : kFileNames) {
    if (name.kind == file) {
      return absl::StrCat(dir, "/", name.prefix, index, name.suffix);
    }
  }
  return "";
}

std::string PasswordsPath(absl::string_view dir) {
  return absl::StrCat(dir, "/passwords");
}

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     bool private_file) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, ": ", ErrnoText()));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not a regular file"));
  }
  if (private_file && (st.st_mode & 077) != 0) {
    close(fd);
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s has mode %04o; group and others must have no access (chmod 600)",
        path, st.st_mode & 07777));
  }
  if (static_cast<size_t>(st.st_size) > kMaxFileSize) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is larger than ", kMaxFileSize, " bytes"));
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = read(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
  close(fd);
  data.resize(done);
  return data;
}

absl::StatusOr<EvpPkeyPtr> ReadSm2PrivateKey(const std::string& path) {
  absl::StatusOr<std::string> pem = ReadFile(path, /*private_file=*/false);
  if (!pem.ok()) return pem.status();
  absl::StatusOr<EvpPkeyPtr> key = ParseSm2PrivateKey(*pem, path);
  OPENSSL_cleanse(pem->data(), pem->size());
  return key;
}

absl::StatusOr<Sm4Key> ParseSm4KeyHex(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (text.size() != 2 * kSm4KeyLen) {
    return absl::InvalidArgumentError(
        absl::StrCat("an SM4 key is ", 2 * kSm4KeyLen, " hex digits, got ",
                     text.size(), " characters"));
  }
  for (char c : text) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("SM4 key is not hex");
    }
  }
  std::string bytes = absl::HexStringToBytes(text);
  Sm4Key key;
  std::memcpy(key.bytes, bytes.data(), kSm4KeyLen);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  return key;
}

absl::StatusOr<std::unique_ptr<KeyStore>> KeyStore::Load(
    const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("cannot open key store ", dir, ": ", ErrnoText()));
  }
  std::set<std::pair<KeyFile, unsigned int>> files;
  bool has_passwords = false;
  absl::Status status;
  while (const dirent* e = readdir(d)) {
    const absl::string_view name = e->d_name;
    if (name == "passwords") {
      has_passwords = true;
      continue;
    }
    for (const FileName& pattern : kFileNames) {
      if (!absl::StartsWith(name, pattern.prefix) ||
          !absl::EndsWith(name, pattern.suffix)) {
        continue;
      }
      absl::string_view middle = name;
      middle.remove_prefix(strlen(pattern.prefix));
      middle.remove_suffix(strlen(pattern.suffix));
      unsigned int index = 0;
      if (!ParseIndex(middle, &index)) {
        if (status.ok()) {
          status = absl::InvalidArgumentError(
              absl::StrFormat("%s/%s: key index must be a number in [1, %u]",
                              dir, name, kMaxKeyIndex));
        }
        break;
      }
      files.emplace(pattern.kind, index);
      break;
    }
  }
  closedir(d);
  if (!status.ok()) return status;

  std::unique_ptr<KeyStore> store(new KeyStore());
  for (const auto& [kind, index] : files) {
    const std::string path = KeyFilePath(dir, kind, index);
    Entry& entry = store->entries_[index];
    switch (kind) {
      case KeyFile::kSign:
      case KeyFile::kEnc: {
        absl::StatusOr<std::string> pem = ReadFile(path, /*private_file=*/true);
        if (!pem.ok()) return pem.status();
        absl::StatusOr<EvpPkeyPtr> key = ParseSm2PrivateKey(*pem, path);
        OPENSSL_cleanse(pem->data(), pem->size());
        if (!key.ok()) return key.status();
        (kind == KeyFile::kSign ? entry.sign : entry.enc) = *std::move(key);
        break;
      }
      case KeyFile::kSm4: {
        absl::StatusOr<std::string> hex = ReadFile(path, /*private_file=*/true);
        if (!hex.ok()) return hex.status();
        absl::StatusOr<Sm4Key> key = ParseSm4KeyHex(*hex);
        OPENSSL_cleanse(hex->data(), hex->size());
        if (!key.ok()) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": ", key.status().message()));
        }
        entry.sm4 = std::make_unique<Sm4Key>(*key);
        break;
      }
      case KeyFile::kSignPublic:
      case KeyFile::kEncPublic:
        break;  // for other tools; the device derives public keys
    }
  }

  std::map<unsigned int, std::string> records;
  if (has_passwords) {
    const std::string path = PasswordsPath(dir);
    absl::StatusOr<std::string> text = ReadFile(path, /*private_file=*/true);
    if (!text.ok()) return text.status();
    absl::StatusOr<std::map<unsigned int, std::string>> parsed =
        ParsePasswords(*text, path);
    if (!parsed.ok()) return parsed.status();
    records = *std::move(parsed);
  }
  for (auto& [index, record] : records) {
    auto it = store->entries_.find(index);
    if (it == store->entries_.end() ||
        (it->second.sign == nullptr && it->second.enc == nullptr)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s: password for key index %u, which holds no private key",
          PasswordsPath(dir), index));
    }
    it->second.password_record = std::move(record);
  }
  for (auto it = store->entries_.begin(); it != store->entries_.end();) {
    const Entry& entry = it->second;
    const bool has_private = entry.sign != nullptr || entry.enc != nullptr;
    if (has_private && entry.password_record.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: no access password for key index %u",
                          PasswordsPath(dir), it->first));
    }
    // Only public files at this index: nothing the device can use.
    if (!has_private && entry.sm4 == nullptr) {
      it = store->entries_.erase(it);
    } else {
      ++it;
    }
  }
  return store;
}

EVP_PKEY* KeyStore::sign_key(unsigned int index) const {
  auto it = entries_.find(index);
  return it == entries_.end() ? nullptr : it->second.sign.get();
}

EVP_PKEY* KeyStore::enc_key(unsigned int index) const {
  auto it = entries_.find(index);
  return it == entries_.end() ? nullptr : it->second.enc.get();
}

const Sm4Key* KeyStore::sm4_key(unsigned int index) const {
  auto it = entries_.find(index);
  return it == entries_.end() ? nullptr : it->second.sm4.get();
}

bool KeyStore::has_private_keys(unsigned int index) const {
  auto it = entries_.find(index);
  return it != entries_.end() &&
         (it->second.sign != nullptr || it->second.enc != nullptr);
}

bool KeyStore::CheckPassword(unsigned int index,
                             absl::string_view password) const {
  auto it = entries_.find(index);
  if (it == entries_.end() || it->second.password_record.empty()) {
    return false;
  }
  absl::StatusOr<bool> match =
      VerifyPassword(it->second.password_record, password);
  return match.ok() && *match;
}

std::vector<unsigned int> KeyStore::indexes() const {
  std::vector<unsigned int> out;
  for (const auto& [index, entry] : entries_) out.push_back(index);
  return out;
}

absl::Status WritePrivateKey(const std::string& path, EVP_PKEY* key) {
  // Secure-heap BIO: the PEM text is wiped when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                               nullptr) != 1) {
    return absl::InternalError("cannot encode the private key as PEM");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return WriteNewFile(path, absl::string_view(data, static_cast<size_t>(len)),
                      0600);
}

absl::Status WritePublicKey(const std::string& path, EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return absl::InternalError("cannot encode the public key as PEM");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return WriteNewFile(path, absl::string_view(data, static_cast<size_t>(len)),
                      0644);
}

absl::Status WriteSm4Key(const std::string& path, const Sm4Key& key) {
  std::string hex = absl::StrCat(
      absl::BytesToHexString(absl::string_view(
          reinterpret_cast<const char*>(key.bytes), sizeof(key.bytes))),
      "\n");
  absl::Status status = WriteNewFile(path, hex, 0600);
  OPENSSL_cleanse(hex.data(), hex.size());
  return status;
}

absl::Status WritePasswords(
    const std::string& path,
    const std::map<unsigned int, std::string>& records) {
  std::string text =
      "# softsdf key access passwords: <index>:<PBKDF2 record>\n";
  for (const auto& [index, record] : records) {
    absl::StrAppend(&text, index, ":", record, "\n");
  }
  return WriteNewFile(path, text, 0600);
}

}  // namespace hsmd::softsdf
