#include "daemon/demo.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/secret.h"
#include "common/status_macros.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/config/config_loader.h"
#include "daemon/logging.h"
#include "tools/softsdf/key_store.h"
#include "tools/softsdf/password_hash.h"

namespace hsmd {
namespace {

std::string Errno() { return std::strerror(errno); }

bool Exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

// Writes `contents` to a new file (replacing `path` atomically) with `mode`.
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents, mode_t mode) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  unlink(tmp.c_str());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create ", tmp, ": ", Errno()));
  }
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = write(fd, contents.data() + done, contents.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return absl::InternalError(
          absl::StrCat("cannot write ", tmp, ": ", Errno()));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot write ", tmp, ": ", Errno()));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", Errno()));
  }
  return absl::OkStatus();
}

bool DirectoryIsEmpty(const std::string& path) {
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return true;
  bool empty = true;
  while (dirent* entry = readdir(dir)) {
    if (std::strcmp(entry->d_name, ".") != 0 &&
        std::strcmp(entry->d_name, "..") != 0) {
      empty = false;
      break;
    }
  }
  closedir(dir);
  return empty;
}

absl::StatusOr<SecretString> RandomPin() {
  unsigned char bytes[12];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  SecretString pin(absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes))));
  OPENSSL_cleanse(bytes, sizeof(bytes));
  return pin;
}

std::string Quote(absl::string_view s) {
  return absl::StrCat("\"", absl::CEscape(s), "\"");
}

// The softsdf key index the demo uses for its three keys.
constexpr unsigned int kDemoSdfIndex = 1;

bool IsReadableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         access(path.c_str(), R_OK) == 0;
}

// `path` made absolute (against the working directory) and lexically
// normalised, without resolving symlinks (Bazel's runfiles are symlinks).
std::string Absolute(const std::string& path) {
  std::filesystem::path p(path);
  if (p.is_relative()) {
    std::error_code ec;
    std::filesystem::path cwd = std::filesystem::current_path(ec);
    if (!ec) p = cwd / p;
  }
  return p.lexically_normal().string();
}

// Creates the softsdf key store at `store` (index 1: SM2 sign and enc key
// pairs, an SM4 key) and writes its random access password to
// `password_path` (0600). The store is built under a temporary name and
// renamed into place after the password file exists, so no run leaves a
// store whose password is lost.
absl::Status CreateSoftSdfStore(const std::string& store,
                                const std::string& password_path) {
  const std::string tmp = absl::StrCat(store, ".new");
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  if (mkdir(tmp.c_str(), 0700) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot create ", tmp, ": ", Errno()));
  }
  ASSIGN_OR_RETURN(SecretString password, RandomPin());
  ASSIGN_OR_RETURN(std::string record,
                   softsdf::HashPassword(password.view(),
                                         softsdf::kDefaultPbkdf2Iterations));
  for (softsdf::KeyFile kind : {softsdf::KeyFile::kSign,
                                softsdf::KeyFile::kEnc}) {
    EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
    if (key == nullptr) return absl::InternalError("SM2 key generation failed");
    const softsdf::KeyFile pub = kind == softsdf::KeyFile::kSign
                                     ? softsdf::KeyFile::kSignPublic
                                     : softsdf::KeyFile::kEncPublic;
    RETURN_IF_ERROR(softsdf::WritePrivateKey(
        softsdf::KeyFilePath(tmp, kind, kDemoSdfIndex), key.get()));
    RETURN_IF_ERROR(softsdf::WritePublicKey(
        softsdf::KeyFilePath(tmp, pub, kDemoSdfIndex), key.get()));
  }
  softsdf::Sm4Key sm4;
  if (RAND_bytes(sm4.bytes, sizeof(sm4.bytes)) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  RETURN_IF_ERROR(softsdf::WriteSm4Key(
      softsdf::KeyFilePath(tmp, softsdf::KeyFile::kSm4, kDemoSdfIndex), sm4));
  RETURN_IF_ERROR(softsdf::WritePasswords(
      softsdf::PasswordsPath(tmp),
      std::map<unsigned int, std::string>{{kDemoSdfIndex, record}}));
  // Checked the way the device will load it.
  if (absl::StatusOr<std::unique_ptr<softsdf::KeyStore>> loaded =
          softsdf::KeyStore::Load(tmp);
      !loaded.ok()) {
    return absl::InternalError(absl::StrCat(
        "the new SDF key store does not load: ", loaded.status().message()));
  }
  RETURN_IF_ERROR(WriteFileAtomically(
      password_path, absl::StrCat(password.view(), "\n"), 0600));
  if (rename(tmp.c_str(), store.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", store, ": ", Errno()));
  }
  return absl::OkStatus();
}

std::string SdfConfigText(const std::string& dir, const std::string& library) {
  const std::string password = absl::StrCat(dir, "/sdf.password");
  return absl::StrCat(
      "# 国密: the software SDF device (GM/T 0018) in ", dir,
      "/sdf. libsoftsdf.so\n"
      "# finds its store through SOFTSDF_STORE (hsmd --demo sets it; set\n"
      "# SOFTSDF_STORE=",
      dir,
      "/sdf when running this file with --config).\n"
      "backends {\n"
      "  name: \"",
      kDemoSdfDevice,
      "\"\n"
      "  sdf {\n"
      "    library_path: ",
      Quote(library),
      "\n"
      "    device_name: \"",
      kDemoSdfDevice,
      "\"\n"
      "    # One access password covers both SM2 key pairs of index 1.\n"
      "    keys {\n"
      "      index: 1 usage: SIGN label: \"sm2-sign\"\n"
      "      password { file: ",
      Quote(password),
      " }\n"
      "    }\n"
      "    keys { index: 1 usage: ENC label: \"sm2-enc\" }\n"
      "    keys { index: 1 usage: SM4 label: \"sm4-demo\" }\n"
      "  }\n"
      "}\n");
}

std::string ConfigText(const std::string& dir, const std::string& socket,
                       const std::string& softsdf_library) {
  return absl::StrCat(
      "# Written by `hsmd --demo ", dir,
      "`: serves the SoftHSM token \"demo\" in this directory",
      softsdf_library.empty() ? "" : "\n# and the software SDF device \"soft0\"",
      ".\n"
      "# Reference: daemon/config/config.proto.\n"
      "listen {\n"
      "  socket_path: ",
      Quote(socket),
      "\n"
      "  # Only this user may connect.\n"
      "  socket_mode: \"0600\"\n"
      "}\n"
      "backends {\n"
      "  name: \"demo\"\n"
      "  pkcs11 {\n"
      "    module_path: ",
      Quote(kDemoModulePath),
      "\n"
      "    token_label: ",
      Quote(kDemoTokenLabel),
      "\n"
      "    pin { file: ",
      Quote(absl::StrCat(dir, "/user.pin")),
      " }\n"
      "  }\n"
      "}\n",
      softsdf_library.empty() ? "" : SdfConfigText(dir, softsdf_library),
      "# Access control (policy rules in config.proto). With a policy\n"
      "# section everything not granted is denied; this one rule is the\n"
      "# permissive demo rule: the user who ran --demo (uid ",
      getuid(),
      ") may do\n"
      "# everything with every key. A production rule names the keys and\n"
      "# operations each user or group needs, e.g.\n"
      "#   rules { groups: \"www-data\" keys: \"pkcs11:object=web-*\"\n"
      "#           operations: [SIGN] }\n"
      "policy {\n"
      "  rules {\n"
      "    name: \"demo-owner\"\n"
      "    users: \"",
      getuid(),
      "\"\n"
      "    keys: \"*\"\n"
      "    operations: [SIGN, DECRYPT, ENCRYPT, DERIVE, RANDOM, LIST, STATUS,\n"
      "                 ADMIN]\n"
      "  }\n"
      "}\n");
}

v1::GenerateKeyRequest KeyRequest(const char* label, v1::KeyType type,
                                  uint32_t rsa_bits, v1::Curve curve) {
  v1::GenerateKeyRequest request;
  request.set_label(label);
  request.set_key_type(type);
  request.set_rsa_bits(rsa_bits);
  request.set_curve(curve);
  return request;
}

}  // namespace

const std::vector<v1::GenerateKeyRequest>& DemoKeyRequests() {
  static const auto* requests = new std::vector<v1::GenerateKeyRequest>{
      KeyRequest("rsa-2048", v1::KEY_TYPE_RSA, 2048, v1::CURVE_UNSPECIFIED),
      KeyRequest("rsa-3072", v1::KEY_TYPE_RSA, 3072, v1::CURVE_UNSPECIFIED),
      KeyRequest("ec-p256", v1::KEY_TYPE_EC, 0, v1::CURVE_P256),
      KeyRequest("ec-p384", v1::KEY_TYPE_EC, 0, v1::CURVE_P384),
      KeyRequest("ed25519", v1::KEY_TYPE_ED25519, 0, v1::CURVE_UNSPECIFIED),
  };
  return *requests;
}

absl::StatusOr<std::string> FindSoftSdfLibrary(const std::string& flag,
                                               const std::string& argv0) {
  if (!flag.empty()) {
    if (!IsReadableFile(flag)) {
      return absl::NotFoundError(absl::StrCat(
          "--softsdf-library ", flag,
          ": not a readable file (bazel build //tools/softsdf:libsoftsdf.so)"));
    }
    return Absolute(flag);
  }
  std::vector<std::string> candidates;
  auto add = [&candidates](const std::string& binary) {
    const size_t slash = binary.rfind('/');
    const std::string dir =
        slash == std::string::npos ? "." : binary.substr(0, slash);
    // bazel-bin/daemon/hsmd, or a test's runfiles/hsmd/daemon/hsmd.
    candidates.push_back(
        absl::StrCat(dir, "/../tools/softsdf/libsoftsdf.so"));
    // The binary's own runfiles tree.
    candidates.push_back(absl::StrCat(
        binary, ".runfiles/hsmd/tools/softsdf/libsoftsdf.so"));
  };
  if (argv0.find('/') != std::string::npos) add(argv0);
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) add(std::string(exe, static_cast<size_t>(n)));
  for (const std::string& candidate : candidates) {
    if (IsReadableFile(candidate)) return Absolute(candidate);
  }
  return std::string();
}

absl::StatusOr<DemoSetup> PrepareDemo(const std::string& dir_arg,
                                      const std::string& socket_override,
                                      const std::string& softsdf_library) {
  if (dir_arg.empty()) {
    return absl::InvalidArgumentError("--demo needs a directory");
  }
  if (access(kDemoModulePath, R_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("--demo needs SoftHSM: ", kDemoModulePath,
                     " is missing (apt-get install softhsm2)"));
  }
  if (mkdir(dir_arg.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", dir_arg, ": ", Errno()));
  }
  char resolved[PATH_MAX];
  if (realpath(dir_arg.c_str(), resolved) == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot resolve ", dir_arg, ": ", Errno()));
  }
  DemoSetup setup;
  setup.dir = resolved;
  const std::string& dir = setup.dir;
  const std::string tokens = absl::StrCat(dir, "/tokens");
  const std::string softhsm_conf = absl::StrCat(dir, "/softhsm2.conf");
  const std::string pin_path = absl::StrCat(dir, "/user.pin");
  setup.config_path = absl::StrCat(dir, "/hsmd.conf");
  const std::string socket = socket_override.empty()
                                 ? absl::StrCat(dir, "/hsmd.sock")
                                 : socket_override;
  if (socket.size() > config::kMaxSocketPathBytes || socket[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path ", socket, " is not absolute or longer than ",
        config::kMaxSocketPathBytes,
        " bytes (Unix socket limit): use a shorter DIR or --socket PATH"));
  }

  const bool initialised = Exists(pin_path);
  if (!initialised && !DirectoryIsEmpty(tokens)) {
    return absl::FailedPreconditionError(absl::StrCat(
        tokens, " holds a token but ", pin_path,
        " is missing (an earlier --demo run was interrupted?): remove ", dir,
        " and run again"));
  }
  if (mkdir(tokens.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", tokens, ": ", Errno()));
  }
  if (!initialised || !Exists(softhsm_conf)) {
    RETURN_IF_ERROR(
        WriteFileAtomically(softhsm_conf,
                            absl::StrCat("# Written by hsmd --demo.\n"
                                         "directories.tokendir = ",
                                         tokens,
                                         "\n"
                                         "objectstore.backend = file\n"
                                         "log.level = ERROR\n"
                                         "slots.removable = false\n"),
                            0600));
  }
  // SoftHSM reads this when the module is first loaded (below, or by the
  // backend).
  if (setenv("SOFTHSM2_CONF", softhsm_conf.c_str(), 1) != 0) {
    return absl::InternalError("cannot set SOFTHSM2_CONF");
  }

  if (!initialised) {
    ASSIGN_OR_RETURN(SecretString so_pin, RandomPin());
    ASSIGN_OR_RETURN(SecretString user_pin, RandomPin());
    // The PIN file is written before the token exists, under a temporary
    // name, so no run can leave a token whose PIN is lost.
    const std::string pending = absl::StrCat(pin_path, ".pending");
    RETURN_IF_ERROR(WriteFileAtomically(
        pending, absl::StrCat(user_pin.view(), "\n"), 0600));
    absl::StatusOr<uint64_t> slot = backend::InitializeToken(
        kDemoModulePath, kDemoTokenLabel, so_pin.view(), user_pin.view());
    if (!slot.ok()) {
      unlink(pending.c_str());
      return absl::Status(slot.status().code(),
                          absl::StrCat("initialising the demo token: ",
                                       slot.status().message()));
    }
    if (rename(pending.c_str(), pin_path.c_str()) != 0) {
      return absl::InternalError(
          absl::StrCat("cannot rename ", pending, ": ", Errno()));
    }
    setup.created = true;
    log::Info("demo token created",
              {{"dir", dir}, {"token", kDemoTokenLabel}, {"slot", *slot}});
  }
  if (!softsdf_library.empty()) {
    const std::string store = absl::StrCat(dir, "/sdf");
    const std::string password = absl::StrCat(dir, "/sdf.password");
    if (!Exists(store)) {
      RETURN_IF_ERROR(CreateSoftSdfStore(store, password));
      setup.sdf_created = true;
      log::Info("demo SDF device created",
                {{"store", store}, {"device", kDemoSdfDevice}});
    } else if (!Exists(password)) {
      return absl::FailedPreconditionError(
          absl::StrCat(store, " exists but ", password,
                       " is missing: remove ", store, " and run again"));
    }
    // Read by libsoftsdf.so in SDF_OpenDevice (the backend opens it below).
    if (setenv("SOFTSDF_STORE", store.c_str(), 1) != 0) {
      return absl::InternalError("cannot set SOFTSDF_STORE");
    }
    setup.softsdf_library = softsdf_library;
  }
  // Derived from DIR and --socket on every run, so a run without --socket
  // is back on DIR/hsmd.sock.
  RETURN_IF_ERROR(WriteFileAtomically(
      setup.config_path, ConfigText(dir, socket, softsdf_library), 0600));
  return setup;
}

absl::StatusOr<std::vector<v1::Key>> EnsureDemoKeys(backend::Backend& backend) {
  std::vector<v1::Key> keys;
  for (const v1::GenerateKeyRequest& request : DemoKeyRequests()) {
    backend::RequestContext ctx{absl::Now() + absl::Minutes(2)};
    v1::ListKeysRequest list;
    list.set_label(request.label());
    ASSIGN_OR_RETURN(std::vector<v1::Key> found, backend.ListKeys(list, ctx));
    if (!found.empty()) {
      keys.push_back(found.front());
      continue;
    }
    ASSIGN_OR_RETURN(v1::Key key, backend.GenerateKey(request, ctx));
    log::Info("demo key generated",
              {{"label", key.label()}, {"uri", key.uri()}});
    keys.push_back(std::move(key));
  }
  return keys;
}

std::string DemoUsage(const std::string& socket_path,
                      const std::vector<v1::Key>& keys,
                      const std::vector<v1::Key>& sdf_keys) {
  std::string out = absl::StrCat(
      "\nhsmd demo is serving the SoftHSM token \"demo\"",
      sdf_keys.empty() ? "" : " and the SDF device \"soft0\"", " on ",
      socket_path,
      "\n\nTry it (in another shell):\n"
      "  export HSMD_SOCKET=",
      socket_path,
      "\n"
      "  hsmctl status\n"
      "  hsmctl list\n"
      "  echo hello > msg.txt\n"
      "  hsmctl sign 'pkcs11:token=demo;object=ec-p256;type=private' "
      "--alg ecdsa-sha256 --in msg.txt --out msg.sig\n"
      "  hsmctl show 'pkcs11:token=demo;object=ec-p256;type=private' "
      "--pubout ec-p256.pub.pem\n"
      "  openssl dgst -sha256 -verify ec-p256.pub.pem -signature msg.sig "
      "msg.txt\n"
      "  grpcurl -plaintext -unix ",
      socket_path, " list   # if grpcurl is installed\n\nKeys:\n");
  for (const v1::Key& key : keys) {
    absl::StrAppendFormat(&out, "  %-10s %s\n", key.label(), key.uri());
  }
  for (const v1::Key& key : sdf_keys) {
    absl::StrAppendFormat(&out, "  %-10s %s\n", key.label(), key.uri());
  }
  if (!sdf_keys.empty()) {
    absl::StrAppend(
        &out,
        "\n国密 (SM2 / SM3 / SM4) on the software SDF device \"",
        kDemoSdfDevice,
        "\":\n"
        "  hsmctl list --uri 'sdf:device=soft0'\n"
        "  hsmctl show 'sdf:device=soft0;index=1;usage=sign' "
        "--pubout sm2.pub.pem\n"
        "  # with OPENSSL_CONF naming hsmproxy.so (socket = ",
        socket_path,
        "):\n"
        "  openssl pkeyutl -sign -inkey 'sdf:device=soft0;index=1;usage=sign' "
        "-rawin -digest sm3 -in msg.txt -out msg.sm2.sig\n"
        "  OPENSSL_CONF=/dev/null openssl pkeyutl -verify -pubin -inkey "
        "sm2.pub.pem -rawin -digest sm3 \\\n"
        "      -pkeyopt distid:1234567812345678 -in msg.txt -sigfile "
        "msg.sm2.sig\n"
        "  openssl pkey -in 'sdf:device=soft0;index=1;usage=enc' -pubout "
        "-out sm2-enc.pub.pem\n"
        "  OPENSSL_CONF=/dev/null openssl pkeyutl -encrypt -pubin -inkey "
        "sm2-enc.pub.pem -in msg.txt -out msg.sm2\n"
        "  openssl pkeyutl -decrypt -inkey "
        "'sdf:device=soft0;index=1;usage=enc' -in msg.sm2\n");
  }
  out +=
      "\nStop with Ctrl-C; running the same command again reuses the "
      "token.\n";
  return out;
}

}  // namespace hsmd
