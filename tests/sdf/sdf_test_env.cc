#include "tests/sdf/sdf_test_env.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace hsmd::sdf_test {
namespace {

using EvpCipherCtxPtr = OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

std::string TmpDir() {
  const char* tmp = getenv("TEST_TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

absl::Status WritePrivateFile(const std::string& path, absl::string_view data) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("cannot create ", path, ": ", strerror(errno)));
  }
  fchmod(fd, 0600);
  const bool ok =
      write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  close(fd);
  if (!ok) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::Status RemoveTree(const std::string& dir) {
  const std::string rm = "/bin/rm";
  std::vector<char*> argv = {const_cast<char*>(rm.c_str()),
                             const_cast<char*>("-rf"),
                             const_cast<char*>(dir.c_str()), nullptr};
  pid_t pid = 0;
  if (posix_spawn(&pid, rm.c_str(), nullptr, nullptr, argv.data(), environ) !=
      0) {
    return absl::InternalError("cannot run rm");
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return absl::OkStatus();
}

std::string Join(const std::vector<uint32_t>& v) {
  return absl::StrJoin(v, ",");
}

unsigned char* U(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}
const unsigned char* U(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string Runfile(absl::string_view path) {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"), "/",
                      path);
}

std::string SoftSdfLibrary() { return Runfile("tools/softsdf/libsoftsdf.so"); }

std::string FaultySdfLibrary(absl::string_view variant) {
  setenv("FAULTY_SDF_TARGET", SoftSdfLibrary().c_str(), 1);
  return Runfile(absl::StrCat("tests/sdf/libfaultysdf", variant, ".so"));
}

absl::StatusOr<SoftSdfStore> SoftSdfStore::Create(absl::string_view name,
                                                  const StoreSpec& spec) {
  SoftSdfStore store;
  store.dir_ = absl::StrCat(TmpDir(), "/", name);
  store.password_dir_ = absl::StrCat(store.dir_, ".passwords");
  const std::string inputs = absl::StrCat(store.dir_, ".inputs");
  for (const std::string& d : {store.dir_, store.password_dir_, inputs}) {
    if (absl::Status s = RemoveTree(d); !s.ok()) return s;
  }
  if (mkdir(store.password_dir_.c_str(), 0700) != 0 ||
      mkdir(inputs.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("cannot create directories for ",
                                            store.dir_, ": ", strerror(errno)));
  }
  std::vector<std::string> args = {Runfile("tools/softsdf/softsdf-init"),
                                   "--store", store.dir_,
                                   // The minimum: tests open many sessions.
                                   "--pbkdf2-iterations", "1000"};
  if (!spec.sign_keys.empty()) {
    args.insert(args.end(), {"--sign-keys", Join(spec.sign_keys)});
  }
  if (!spec.enc_keys.empty()) {
    args.insert(args.end(), {"--enc-keys", Join(spec.enc_keys)});
  }
  if (!spec.sm4_keys.empty()) {
    args.insert(args.end(), {"--sm4-keys", Join(spec.sm4_keys)});
  }
  auto add_imports = [&](const char* flag, absl::string_view kind,
                         const std::map<uint32_t, std::string>& keys,
                         bool hex) -> absl::Status {
    for (const auto& [index, data] : keys) {
      const std::string path = absl::StrCat(inputs, "/", kind, "-", index);
      absl::Status s = WritePrivateFile(
          path, hex ? absl::BytesToHexString(data) + "\n" : data);
      if (!s.ok()) return s;
      args.insert(args.end(), {flag, absl::StrCat(index, "=", path)});
    }
    return absl::OkStatus();
  };
  if (absl::Status s =
          add_imports("--import-sign", "sign", spec.import_sign, false);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          add_imports("--import-enc", "enc", spec.import_enc, false);
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          add_imports("--import-sm4", "sm4", spec.import_sm4, true);
      !s.ok()) {
    return s;
  }
  std::string lines;
  for (const auto& [index, password] : spec.passwords) {
    absl::StrAppend(&lines, index, ":", password, "\n");
    if (absl::Status s = store.SetPassword0(index, password); !s.ok()) {
      return s;
    }
  }
  if (!lines.empty()) {
    const std::string file = absl::StrCat(inputs, "/passwords");
    if (absl::Status s = WritePrivateFile(file, lines); !s.ok()) return s;
    args.insert(args.end(), {"--password-file", file});
  }
  const std::string err_path = absl::StrCat(inputs, "/init.stderr");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int rc =
      posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("cannot run softsdf-init: ", strerror(rc)));
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("softsdf-init failed: ", ReadText(err_path)));
  }
  return store;
}

absl::Status SoftSdfStore::SetPassword0(uint32_t index,
                                        absl::string_view password) const {
  return WritePrivateFile(absl::StrCat(password_dir_, "/", index), password);
}

std::string SoftSdfStore::PasswordFile(uint32_t index) const {
  return absl::StrCat(password_dir_, "/", index);
}

void SoftSdfStore::SetPassword(uint32_t index,
                               absl::string_view password) const {
  SetPassword0(index, password).IgnoreError();
}

void SoftSdfStore::Activate() const {
  setenv("SOFTSDF_STORE", dir_.c_str(), 1);
}

std::function<absl::StatusOr<SecretString>()> SoftSdfStore::PasswordSource(
    uint32_t index) const {
  const std::string path = absl::StrCat(password_dir_, "/", index);
  return [path]() -> absl::StatusOr<SecretString> {
    std::string text = ReadText(path);
    if (text.empty()) {
      return absl::NotFoundError(absl::StrCat("no password in ", path));
    }
    return SecretString(std::move(text));
  };
}

std::string SoftSdfStore::PublicKeyPem(absl::string_view usage,
                                       uint32_t index) const {
  return ReadText(absl::StrCat(dir_, "/", usage, "-", index, ".pub.pem"));
}

absl::StatusOr<FaultControl> FaultControl::Open(
    const std::string& library_path) {
  // The same path as the backend's dlopen: the same mapping and state.
  void* handle = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return absl::InternalError(absl::StrCat("dlopen ", library_path));
  }
  FaultControl control;
  control.fail_ = reinterpret_cast<void (*)(const char*, int, int)>(
      dlsym(handle, "FaultySdf_Fail"));
  control.hang_ = reinterpret_cast<void (*)(const char*, int)>(
      dlsym(handle, "FaultySdf_Hang"));
  control.clear_ =
      reinterpret_cast<void (*)()>(dlsym(handle, "FaultySdf_Clear"));
  control.calls_ = reinterpret_cast<unsigned long (*)(const char*)>(
      dlsym(handle, "FaultySdf_Calls"));
  if (control.fail_ == nullptr || control.hang_ == nullptr ||
      control.clear_ == nullptr || control.calls_ == nullptr) {
    return absl::InternalError(
        absl::StrCat(library_path, " has no FaultySdf_* control functions"));
  }
  return control;
}

void FaultControl::Fail(const char* function, int code, int count) const {
  fail_(function, code, count);
}
void FaultControl::Hang(const char* function, bool on) const {
  hang_(function, on ? 1 : 0);
}
void FaultControl::Clear() const { clear_(); }
unsigned long FaultControl::Calls(const char* function) const {
  return calls_(function);
}

EvpPkeyPtr NewSm2Key() {
  return EvpPkeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
}

std::string PrivateKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                           nullptr);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<EvpPkeyPtr> PublicKeyFromDer(absl::string_view der) {
  const unsigned char* p = U(der);
  EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (key == nullptr) return absl::InvalidArgumentError("not an SPKI");
  return key;
}

absl::StatusOr<EvpPkeyPtr> PublicKeyFromPem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EvpPkeyPtr key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) return absl::InvalidArgumentError("not a PEM key");
  return key;
}

std::string PublicKeyDer(EVP_PKEY* key) {
  const int len = i2d_PUBKEY(key, nullptr);
  std::string der(static_cast<size_t>(len > 0 ? len : 0), '\0');
  unsigned char* p = U(der);
  i2d_PUBKEY(key, &p);
  return der;
}

absl::StatusOr<std::string> Sm2Sign(EVP_PKEY* key, absl::string_view id,
                                    absl::string_view message) {
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  size_t len = 0;
  if (EVP_DigestSignInit(md.get(), &pctx, EVP_sm3(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set1_id(pctx, id.data(), id.size()) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len, U(message), message.size()) !=
          1) {
    return absl::InternalError("EVP_DigestSign setup failed");
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(md.get(), U(der), &len, U(message), message.size()) != 1) {
    return absl::InternalError("EVP_DigestSign failed");
  }
  der.resize(len);
  return der;
}

bool Sm2Verify(EVP_PKEY* key, absl::string_view id, absl::string_view message,
               absl::string_view signature) {
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit(md.get(), &pctx, EVP_sm3(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set1_id(pctx, id.data(), id.size()) != 1) {
    return false;
  }
  return EVP_DigestVerify(md.get(), U(signature), signature.size(), U(message),
                          message.size()) == 1;
}

absl::StatusOr<std::string> Sm2E(EVP_PKEY* key, absl::string_view id,
                                 absl::string_view message) {
  // GB/T 32918.5 curve parameters a, b, xG, yG: independent of the code
  // under test.
  const std::string curve = absl::HexStringToBytes(
      "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
      "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
      "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
      "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");
  unsigned char point[65];
  size_t point_len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, point,
                                      sizeof(point), &point_len) != 1 ||
      point_len != 65 || point[0] != 4) {
    return absl::InternalError("cannot read the SM2 public point");
  }
  std::string z_input;
  const size_t bits = id.size() * 8;
  z_input.push_back(static_cast<char>(bits >> 8));
  z_input.push_back(static_cast<char>(bits & 0xff));
  absl::StrAppend(&z_input, id, curve,
                  absl::string_view(reinterpret_cast<char*>(point + 1), 64));
  auto sm3 = [](absl::string_view data) {
    std::string out(32, '\0');
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), U(out), &len, EVP_sm3(), nullptr);
    return out;
  };
  return sm3(absl::StrCat(sm3(z_input), message));
}

absl::StatusOr<std::string> Sm2Encrypt(EVP_PKEY* key,
                                       absl::string_view plaintext) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  size_t len = 0;
  if (ctx == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_encrypt(ctx.get(), nullptr, &len, U(plaintext),
                       plaintext.size()) != 1) {
    return absl::InternalError("EVP_PKEY_encrypt setup failed");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), U(out), &len, U(plaintext),
                       plaintext.size()) != 1) {
    return absl::InternalError("EVP_PKEY_encrypt failed");
  }
  out.resize(len);
  return out;
}

absl::StatusOr<std::string> Sm4(absl::string_view key, absl::string_view iv,
                                absl::string_view data, bool encrypt) {
  const EVP_CIPHER* cipher = iv.empty() ? EVP_sm4_ecb() : EVP_sm4_cbc();
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  std::string out(data.size() + 16, '\0');
  int n1 = 0, n2 = 0;
  if (ctx == nullptr ||
      EVP_CipherInit_ex(ctx.get(), cipher, nullptr, U(key),
                        iv.empty() ? nullptr : U(iv), encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
      EVP_CipherUpdate(ctx.get(), U(out), &n1, U(data),
                       static_cast<int>(data.size())) != 1 ||
      EVP_CipherFinal_ex(ctx.get(), U(out) + n1, &n2) != 1) {
    return absl::InternalError("OpenSSL SM4 failed");
  }
  out.resize(static_cast<size_t>(n1 + n2));
  return out;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  RAND_bytes(U(out), static_cast<int>(n));
  return out;
}

}  // namespace hsmd::sdf_test
