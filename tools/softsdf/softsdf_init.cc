// softsdf-init: creates the key store of the software SDF device.
//
//   softsdf-init --store DIR [--sign-keys 1,2] [--enc-keys 1,2]
//                [--sm4-keys 1,2] [--import-sign INDEX=PEMFILE]...
//                [--import-enc INDEX=PEMFILE]... [--import-sm4
//                INDEX=HEXFILE]...
//                [--password-file FILE] [--pbkdf2-iterations N] [--force]
//
// Key access passwords come from FILE (mode 0600, "INDEX:password" lines),
// never from the command line. See README.md.

#include <dirent.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"
#include "tools/softsdf/key_store.h"
#include "tools/softsdf/password_hash.h"

namespace hsmd::softsdf {
namespace {

constexpr char kUsage[] =
    "usage: softsdf-init --store DIR [--sign-keys LIST] [--enc-keys LIST]\n"
    "                    [--sm4-keys LIST] [--import-sign INDEX=PEMFILE]...\n"
    "                    [--import-enc INDEX=PEMFILE]...\n"
    "                    [--import-sm4 INDEX=HEXFILE]...\n"
    "                    [--password-file FILE] [--pbkdf2-iterations N]\n"
    "                    [--force]\n"
    "  LIST is comma-separated key indexes in [1, 1024]. Generated keys are\n"
    "  random; imported SM2 keys are unencrypted PEM private keys, imported\n"
    "  SM4 keys 32 hex digits. FILE (mode 0600) holds one INDEX:password\n"
    "  line per index with a signing or encryption key. --force replaces an\n"
    "  existing store in DIR.\n";

struct Options {
  std::string store;
  std::set<unsigned int> sign_keys;
  std::set<unsigned int> enc_keys;
  std::set<unsigned int> sm4_keys;
  std::map<unsigned int, std::string> import_sign;
  std::map<unsigned int, std::string> import_enc;
  std::map<unsigned int, std::string> import_sm4;
  std::string password_file;
  int iterations = kDefaultPbkdf2Iterations;
  bool force = false;
};

absl::StatusOr<unsigned int> ParseIndex(absl::string_view text) {
  unsigned int index = 0;
  if (!absl::SimpleAtoi(text, &index) || index < 1 || index > kMaxKeyIndex) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "key index \"%s\" is not a number in [1, %u]", text, kMaxKeyIndex));
  }
  return index;
}

absl::Status AddList(absl::string_view flag, absl::string_view list,
                     std::set<unsigned int>* out) {
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    absl::StatusOr<unsigned int> index = ParseIndex(item);
    if (!index.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": ", index.status().message()));
    }
    out->insert(*index);
  }
  return absl::OkStatus();
}

absl::Status AddImport(absl::string_view flag, absl::string_view value,
                       std::map<unsigned int, std::string>* out) {
  const std::vector<absl::string_view> parts =
      absl::StrSplit(value, absl::MaxSplits('=', 1));
  if (parts.size() != 2 || parts[1].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " wants INDEX=FILE, got \"", value, "\""));
  }
  absl::StatusOr<unsigned int> index = ParseIndex(parts[0]);
  if (!index.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": ", index.status().message()));
  }
  if (!out->emplace(*index, std::string(parts[1])).second) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": index ", *index, " given twice"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Options> ParseArgs(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    std::string flag(arg);
    std::string value;
    bool has_value = false;
    if (const size_t eq = arg.find('=');
        absl::StartsWith(arg, "--") && eq != absl::string_view::npos) {
      flag = std::string(arg.substr(0, eq));
      value = std::string(arg.substr(eq + 1));
      has_value = true;
    }
    if (flag == "--force") {
      if (has_value)
        return absl::InvalidArgumentError("--force takes no value");
      options.force = true;
      continue;
    }
    if (flag == "--help" || flag == "-h") {
      return absl::CancelledError("help");
    }
    static constexpr absl::string_view kValueFlags[] = {
        "--store",      "--sign-keys",     "--enc-keys",
        "--sm4-keys",   "--import-sign",   "--import-enc",
        "--import-sm4", "--password-file", "--pbkdf2-iterations"};
    if (std::find(std::begin(kValueFlags), std::end(kValueFlags), flag) ==
        std::end(kValueFlags)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        return absl::InvalidArgumentError(absl::StrCat(flag, " needs a value"));
      }
      value = argv[++i];
    }
    absl::Status status;
    if (flag == "--store") {
      options.store = value;
    } else if (flag == "--sign-keys") {
      status = AddList(flag, value, &options.sign_keys);
    } else if (flag == "--enc-keys") {
      status = AddList(flag, value, &options.enc_keys);
    } else if (flag == "--sm4-keys") {
      status = AddList(flag, value, &options.sm4_keys);
    } else if (flag == "--import-sign") {
      status = AddImport(flag, value, &options.import_sign);
    } else if (flag == "--import-enc") {
      status = AddImport(flag, value, &options.import_enc);
    } else if (flag == "--import-sm4") {
      status = AddImport(flag, value, &options.import_sm4);
    } else if (flag == "--password-file") {
      options.password_file = value;
    } else if (flag == "--pbkdf2-iterations") {
      if (!absl::SimpleAtoi(value, &options.iterations)) {
        status =
            absl::InvalidArgumentError("--pbkdf2-iterations wants a number");
      }
    }
    if (!status.ok()) return status;
  }
  if (options.store.empty()) {
    return absl::InvalidArgumentError("--store is required");
  }
  auto overlap = [](const std::set<unsigned int>& generated,
                    const std::map<unsigned int, std::string>& imported,
                    absl::string_view what) -> absl::Status {
    for (const auto& [index, path] : imported) {
      if (generated.count(index) != 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            what, " key ", index, " is both generated and imported"));
      }
    }
    return absl::OkStatus();
  };
  if (absl::Status s = overlap(options.sign_keys, options.import_sign, "sign");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = overlap(options.enc_keys, options.import_enc, "enc");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = overlap(options.sm4_keys, options.import_sm4, "sm4");
      !s.ok()) {
    return s;
  }
  return options;
}

// Passwords, wiped when the map is destroyed.
class Passwords {
 public:
  ~Passwords() {
    for (auto& [index, password] : by_index) {
      OPENSSL_cleanse(password.data(), password.size());
    }
  }
  std::map<unsigned int, std::string> by_index;
};

absl::Status ReadPasswords(const std::string& path, Passwords* out) {
  absl::StatusOr<std::string> text = ReadFile(path, /*private_file=*/true);
  if (!text.ok()) return text.status();
  absl::Status status;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_number;
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);
    if (line.empty() || line[0] == '#') continue;
    const size_t colon = line.find(':');
    absl::StatusOr<unsigned int> index = absl::InvalidArgumentError("no ':'");
    if (colon != absl::string_view::npos) {
      index = ParseIndex(line.substr(0, colon));
    }
    if (!index.ok() || colon + 1 == line.size()) {
      status = absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: want INDEX:password with a non-empty password", path,
          line_number));
      break;
    }
    if (out->by_index.count(*index) != 0) {
      status = absl::InvalidArgumentError(absl::StrFormat(
          "%s:%d: second password for index %u", path, line_number, *index));
      break;
    }
    out->by_index[*index] = std::string(line.substr(colon + 1));
  }
  OPENSSL_cleanse(text->data(), text->size());
  return status;
}

bool IsStoreFile(absl::string_view name) {
  if (name == "passwords") return true;
  for (const char* prefix : {"sign-", "enc-", "sm4-"}) {
    if (absl::StartsWith(name, prefix) &&
        (absl::EndsWith(name, ".pem") || absl::EndsWith(name, ".key"))) {
      return true;
    }
  }
  return false;
}

// Creates DIR (0700) or checks that it is empty; with --force, removes the
// store files already there.
absl::Status PrepareDirectory(const Options& options) {
  if (mkdir(options.store.c_str(), 0700) == 0) return absl::OkStatus();
  if (errno != EEXIST) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create ", options.store, ": ", std::strerror(errno)));
  }
  DIR* d = opendir(options.store.c_str());
  if (d == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot open ", options.store, ": ", std::strerror(errno)));
  }
  std::vector<std::string> existing;
  while (const dirent* e = readdir(d)) {
    if (IsStoreFile(e->d_name)) existing.push_back(e->d_name);
  }
  closedir(d);
  if (existing.empty()) return absl::OkStatus();
  if (!options.force) {
    return absl::AlreadyExistsError(absl::StrCat(
        options.store, " already holds a key store (",
        absl::StrJoin(existing, ", "), "); use --force to replace it"));
  }
  for (const std::string& name : existing) {
    const std::string path = absl::StrCat(options.store, "/", name);
    if (unlink(path.c_str()) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot remove ", path, ": ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status Init(const Options& options) {
  // Read and check every input before writing anything.
  std::map<unsigned int, EvpPkeyPtr> sign_keys;
  std::map<unsigned int, EvpPkeyPtr> enc_keys;
  std::map<unsigned int, Sm4Key> sm4_keys;
  std::map<unsigned int, std::string> origin;  // index -> summary
  for (const auto& [index, path] : options.import_sign) {
    absl::StatusOr<EvpPkeyPtr> key = ReadSm2PrivateKey(path);
    if (!key.ok()) return key.status();
    sign_keys[index] = *std::move(key);
  }
  for (const auto& [index, path] : options.import_enc) {
    absl::StatusOr<EvpPkeyPtr> key = ReadSm2PrivateKey(path);
    if (!key.ok()) return key.status();
    enc_keys[index] = *std::move(key);
  }
  for (const auto& [index, path] : options.import_sm4) {
    absl::StatusOr<std::string> hex = ReadFile(path, /*private_file=*/false);
    if (!hex.ok()) return hex.status();
    absl::StatusOr<Sm4Key> key = ParseSm4KeyHex(*hex);
    OPENSSL_cleanse(hex->data(), hex->size());
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", key.status().message()));
    }
    sm4_keys[index] = *key;
  }
  std::set<unsigned int> private_indexes(options.sign_keys.begin(),
                                         options.sign_keys.end());
  private_indexes.insert(options.enc_keys.begin(), options.enc_keys.end());
  for (const auto& [index, key] : sign_keys) private_indexes.insert(index);
  for (const auto& [index, key] : enc_keys) private_indexes.insert(index);

  Passwords passwords;
  if (!private_indexes.empty() && options.password_file.empty()) {
    return absl::InvalidArgumentError(
        "SM2 keys need access passwords: give --password-file");
  }
  if (!options.password_file.empty()) {
    if (absl::Status s = ReadPasswords(options.password_file, &passwords);
        !s.ok()) {
      return s;
    }
  }
  for (unsigned int index : private_indexes) {
    if (passwords.by_index.count(index) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.password_file, ": no password for key index ", index));
    }
  }
  std::map<unsigned int, std::string> records;
  for (const auto& [index, password] : passwords.by_index) {
    if (private_indexes.count(index) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(options.password_file, ": password for key index ",
                       index, ", which gets no signing or encryption key"));
    }
    absl::StatusOr<std::string> record =
        HashPassword(password, options.iterations);
    if (!record.ok()) return record.status();
    records[index] = *std::move(record);
  }

  for (unsigned int index : options.sign_keys) {
    sign_keys[index] = EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
    if (sign_keys[index] == nullptr) {
      return absl::InternalError("SM2 key generation failed");
    }
  }
  for (unsigned int index : options.enc_keys) {
    enc_keys[index] = EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
    if (enc_keys[index] == nullptr) {
      return absl::InternalError("SM2 key generation failed");
    }
  }
  for (unsigned int index : options.sm4_keys) {
    Sm4Key key;
    if (RAND_bytes(key.bytes, sizeof(key.bytes)) != 1) {
      return absl::InternalError("RAND_bytes failed");
    }
    sm4_keys[index] = key;
  }
  if (sign_keys.empty() && enc_keys.empty() && sm4_keys.empty()) {
    return absl::InvalidArgumentError("no keys to create");
  }

  if (absl::Status s = PrepareDirectory(options); !s.ok()) return s;
  const std::string& dir = options.store;
  auto note = [&](unsigned int index, absl::string_view what, bool imported) {
    std::string& line = origin[index];
    absl::StrAppend(&line, line.empty() ? "" : ", ", what,
                    imported ? " (imported)" : " (generated)");
  };
  for (const auto& [index, key] : sign_keys) {
    if (absl::Status s =
            WritePrivateKey(KeyFilePath(dir, KeyFile::kSign, index), key.get());
        !s.ok()) {
      return s;
    }
    if (absl::Status s = WritePublicKey(
            KeyFilePath(dir, KeyFile::kSignPublic, index), key.get());
        !s.ok()) {
      return s;
    }
    note(index, "SM2 sign", options.import_sign.count(index) != 0);
  }
  for (const auto& [index, key] : enc_keys) {
    if (absl::Status s =
            WritePrivateKey(KeyFilePath(dir, KeyFile::kEnc, index), key.get());
        !s.ok()) {
      return s;
    }
    if (absl::Status s = WritePublicKey(
            KeyFilePath(dir, KeyFile::kEncPublic, index), key.get());
        !s.ok()) {
      return s;
    }
    note(index, "SM2 enc", options.import_enc.count(index) != 0);
  }
  for (const auto& [index, key] : sm4_keys) {
    if (absl::Status s =
            WriteSm4Key(KeyFilePath(dir, KeyFile::kSm4, index), key);
        !s.ok()) {
      return s;
    }
    note(index, "SM4", options.import_sm4.count(index) != 0);
  }
  if (!records.empty()) {
    if (absl::Status s = WritePasswords(PasswordsPath(dir), records); !s.ok()) {
      return s;
    }
  }
  // What the device will load, checked the way it loads it.
  if (absl::StatusOr<std::unique_ptr<KeyStore>> store = KeyStore::Load(dir);
      !store.ok()) {
    return absl::InternalError(absl::StrCat("the new store does not load: ",
                                            store.status().message()));
  }
  printf("softsdf key store %s\n", dir.c_str());
  for (const auto& [index, line] : origin) {
    printf("  index %u: %s\n", index, line.c_str());
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace hsmd::softsdf

int main(int argc, char** argv) {
  absl::StatusOr<hsmd::softsdf::Options> options =
      hsmd::softsdf::ParseArgs(argc, argv);
  if (!options.ok()) {
    if (absl::IsCancelled(options.status())) {
      fputs(hsmd::softsdf::kUsage, stdout);
      return 0;
    }
    fprintf(stderr, "softsdf-init: %s\n%s",
            std::string(options.status().message()).c_str(),
            hsmd::softsdf::kUsage);
    return 2;
  }
  if (absl::Status s = hsmd::softsdf::Init(*options); !s.ok()) {
    fprintf(stderr, "softsdf-init: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
