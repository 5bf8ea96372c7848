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

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/secret.h"
#include "common/status_macros.h"
#include "daemon/backend/pkcs11/pkcs11_backend.h"
#include "daemon/config/config_loader.h"
#include "daemon/logging.h"

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

std::string ConfigText(const std::string& dir, const std::string& socket) {
  return absl::StrCat(
      "# Written by `hsmd --demo ", dir,
      "`: serves the SoftHSM token \"demo\" in this directory.\n"
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
      "}\n"
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
      "    operations: [SIGN, DECRYPT, ENCRYPT, RANDOM, LIST, STATUS, ADMIN]\n"
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

absl::StatusOr<DemoSetup> PrepareDemo(const std::string& dir_arg,
                                      const std::string& socket_override) {
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
  // Derived from DIR and --socket on every run, so a run without --socket
  // is back on DIR/hsmd.sock.
  RETURN_IF_ERROR(
      WriteFileAtomically(setup.config_path, ConfigText(dir, socket), 0600));
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
                      const std::vector<v1::Key>& keys) {
  std::string out = absl::StrCat(
      "\nhsmd demo is serving the SoftHSM token \"demo\" on ", socket_path,
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
  out +=
      "\nStop with Ctrl-C; running the same command again reuses the "
      "token.\n";
  return out;
}

}  // namespace hsmd
