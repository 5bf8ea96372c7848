// libsoftsdf.so: a software SDF (GM/T 0018-2012) device on OpenSSL's SM2, SM3
// and SM4, for tests and demos (see README.md). Only the SDF_* functions are
// exported (softsdf.lds).
//
// Handles are opaque numbers, never pointers: a stale or forged handle finds
// nothing in the registry and gets an error code instead of a crash, and a
// closed handle is never reused. Each session has its own mutex; the key
// store is immutable once loaded, so operations on different sessions run in
// parallel. Locks are std::mutex (pthreads), not absl::Mutex: Debian's Abseil
// is not built for TSan, which then reports false races.

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/openssl_ptr.h"
#include "daemon/backend/sdf/gmt0018.h"
#include "daemon/backend/sdf/sdr_names.h"
#include "tools/softsdf/key_store.h"
#include "tools/softsdf/sm2_codec.h"

namespace hsmd::softsdf {
namespace {

// DEVICEINFO.BufferSize: the most data one SDF_Encrypt / SDF_Decrypt /
// SDF_GenerateRandom call accepts.
constexpr unsigned int kBufferSize = 1 << 20;
// Vendor cards bound SM2 plaintexts too; this one is generous.
constexpr unsigned int kMaxSm2PlaintextLen = 4096;
constexpr unsigned int kMaxPasswordLen = 256;
constexpr size_t kMaxSessions = 4096;
constexpr size_t kMaxKeyHandlesPerSession = 1024;
constexpr size_t kSm4BlockLen = 16;

using EvpCipherCtxPtr = OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

// ---------------------------------------------------------------------------
// Diagnostics: silent unless SOFTSDF_DEBUG is set; never prints secrets.

bool DebugEnabled() {
  static const bool enabled = getenv("SOFTSDF_DEBUG") != nullptr;
  return enabled;
}

const char* CodeName(int code) {
  const char* name = backend::sdf::SdrCodeName(code);
  return name != nullptr ? name : "SDR_?";
}

// Carries the SDF function's name so that errors say where they come from.
class Call {
 public:
  explicit Call(const char* function) : function_(function) {}
  int Fail(int code, absl::string_view why) const {
    if (DebugEnabled()) {
      fprintf(stderr, "softsdf: %s: %s: %.*s\n", function_, CodeName(code),
              static_cast<int>(why.size()), why.data());
    }
    return code;
  }

 private:
  const char* function_;
};

// Runs an SDF function body: no exception crosses the C boundary, and errors
// OpenSSL queued during the call are dropped so the caller's thread does not
// inherit them.
template <typename Body>
int Run(const char* function, Body&& body) {
  const Call call(function);
  ERR_set_mark();
  int rc;
  try {
    rc = body(call);
  } catch (const std::bad_alloc&) {
    rc = call.Fail(SDR_NOBUFFER, "out of memory");
  } catch (...) {
    rc = call.Fail(SDR_UNKNOWERR, "internal error");
  }
  ERR_pop_to_mark();
  return rc;
}

// ---------------------------------------------------------------------------
// Device, sessions and the handle registry.

struct Device {
  std::unique_ptr<KeyStore> store;
};

struct Session {
  explicit Session(std::shared_ptr<const Device> d) : device(std::move(d)) {}

  const std::shared_ptr<const Device> device;
  std::mutex mu;
  absl::flat_hash_set<unsigned int> access_rights ABSL_GUARDED_BY(mu);
  absl::flat_hash_map<uintptr_t, std::unique_ptr<Sm4Key>> keys
      ABSL_GUARDED_BY(mu);
  EvpMdCtxPtr hash ABSL_GUARDED_BY(mu);

  const KeyStore& store() const { return *device->store; }
};

class Registry {
 public:
  uintptr_t NewHandle() { return next_handle_.fetch_add(1); }

  void* AddDevice(std::shared_ptr<const Device> device) {
    const uintptr_t handle = NewHandle();
    std::lock_guard<std::mutex> lock(mu_);
    devices_[handle] = std::move(device);
    return reinterpret_cast<void*>(handle);
  }

  std::shared_ptr<const Device> FindDevice(void* handle) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = devices_.find(reinterpret_cast<uintptr_t>(handle));
    return it == devices_.end() ? nullptr : it->second;
  }

  // Removes the device and all its sessions; false if unknown.
  bool RemoveDevice(void* handle) {
    std::vector<std::shared_ptr<Session>> closed;  // destroyed unlocked
    std::lock_guard<std::mutex> lock(mu_);
    auto it = devices_.find(reinterpret_cast<uintptr_t>(handle));
    if (it == devices_.end()) return false;
    const Device* device = it->second.get();
    devices_.erase(it);
    for (auto s = sessions_.begin(); s != sessions_.end();) {
      if (s->second->device.get() == device) {
        closed.push_back(std::move(s->second));
        sessions_.erase(s++);
      } else {
        ++s;
      }
    }
    return true;
  }

  // Null if the registry is full.
  void* AddSession(std::shared_ptr<Session> session) {
    const uintptr_t handle = NewHandle();
    std::lock_guard<std::mutex> lock(mu_);
    if (sessions_.size() >= kMaxSessions) return nullptr;
    sessions_[handle] = std::move(session);
    return reinterpret_cast<void*>(handle);
  }

  std::shared_ptr<Session> FindSession(void* handle) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(reinterpret_cast<uintptr_t>(handle));
    return it == sessions_.end() ? nullptr : it->second;
  }

  std::shared_ptr<Session> RemoveSession(void* handle) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sessions_.find(reinterpret_cast<uintptr_t>(handle));
    if (it == sessions_.end()) return nullptr;
    std::shared_ptr<Session> session = std::move(it->second);
    sessions_.erase(it);
    return session;
  }

 private:
  // Starts far from small integers so that handles are not mistaken for
  // indexes, and never wraps in practice.
  std::atomic<uintptr_t> next_handle_{0x5d0000};
  std::mutex mu_;
  absl::flat_hash_map<uintptr_t, std::shared_ptr<const Device>> devices_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uintptr_t, std::shared_ptr<Session>> sessions_
      ABSL_GUARDED_BY(mu_);
};

// Never destroyed: SDF calls may still run from other threads during exit.
Registry& registry() {
  static Registry* const instance = new Registry();
  return *instance;
}

// Run() for a function of an open session: an unknown handle fails with
// SDR_OPENSESSION before `body` runs. The body holds a reference to the
// session, shared ownership keeping it alive should another thread close
// the handle meanwhile.
template <typename Body>
int RunInSession(const char* function, void* handle, Body&& body) {
  return Run(function, [&](const Call& call) {
    std::shared_ptr<Session> session = registry().FindSession(handle);
    if (session == nullptr) {
      return call.Fail(SDR_OPENSESSION, "unknown session handle");
    }
    return body(call, *session);
  });
}

// ---------------------------------------------------------------------------
// Helpers.

// SOFTSDF_STORE names the store directory; otherwise SOFTSDF_CONF names a
// file with a "store = /absolute/dir" line.
absl::StatusOr<std::string> StoreDirectory() {
  if (const char* store = getenv("SOFTSDF_STORE"); store && *store) {
    return std::string(store);
  }
  const char* conf = getenv("SOFTSDF_CONF");
  if (conf == nullptr || *conf == '\0') {
    return absl::FailedPreconditionError(
        "set SOFTSDF_STORE (key store directory) or SOFTSDF_CONF "
        "(configuration file)");
  }
  absl::StatusOr<std::string> text = ReadFile(conf, /*private_file=*/false);
  if (!text.ok()) return text.status();
  std::string store;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const std::vector<absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits('=', 1));
    const absl::string_view key =
        kv.size() == 2 ? absl::StripAsciiWhitespace(kv[0]) : "";
    const absl::string_view value =
        kv.size() == 2 ? absl::StripAsciiWhitespace(kv[1]) : "";
    if (key != "store" || value.empty() || value[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          conf, ":", line_number, ": want \"store = /absolute/directory\""));
    }
    store = std::string(value);
  }
  if (store.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(conf, ": no \"store = /absolute/directory\" line"));
  }
  return store;
}

bool IsSm2SignAlg(unsigned int alg) {
  return alg == SGD_SM2 || alg == SGD_SM2_1;
}
bool IsSm2EncAlg(unsigned int alg) {
  return alg == SGD_SM2 || alg == SGD_SM2_3;
}

// Maps an SM4 algorithm identifier to an OpenSSL cipher, or to an SDR code.
int Sm4Cipher(const Call& call, unsigned int alg, const EVP_CIPHER** cipher) {
  // Fetched once: EVP_CIPHER objects are immutable and shareable.
  static const EVP_CIPHER* const ecb =
      EVP_CIPHER_fetch(nullptr, "SM4-ECB", nullptr);
  static const EVP_CIPHER* const cbc =
      EVP_CIPHER_fetch(nullptr, "SM4-CBC", nullptr);
  if (alg == SGD_SM4_ECB) {
    *cipher = ecb;
  } else if (alg == SGD_SM4_CBC) {
    *cipher = cbc;
  } else if ((alg & ~0xffu) == SGD_SM4) {
    return call.Fail(SDR_ALGMODNOTSUPPORT,
                     absl::StrCat("SM4 mode 0x", absl::Hex(alg),
                                  " (only SGD_SM4_ECB and SGD_SM4_CBC)"));
  } else {
    return call.Fail(
        SDR_ALGNOTSUPPORT,
        absl::StrCat("algorithm 0x", absl::Hex(alg), " (only SM4 ECB/CBC)"));
  }
  if (*cipher == nullptr) {
    return call.Fail(SDR_ALGNOTSUPPORT, "OpenSSL has no SM4");
  }
  return SDR_OK;
}

// SM4 without padding; `out` may equal `in`.
bool Sm4Crypt(const EVP_CIPHER* cipher, const Sm4Key& key,
              const unsigned char* iv, bool encrypt, const unsigned char* in,
              size_t len, unsigned char* out) {
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int n1 = 0, n2 = 0;
  return ctx != nullptr &&
         EVP_CipherInit_ex2(ctx.get(), cipher, key.bytes, iv, encrypt ? 1 : 0,
                            nullptr) == 1 &&
         EVP_CIPHER_CTX_set_padding(ctx.get(), 0) == 1 &&
         EVP_CipherUpdate(ctx.get(), out, &n1, in, static_cast<int>(len)) ==
             1 &&
         EVP_CipherFinal_ex(ctx.get(), out + n1, &n2) == 1 &&
         static_cast<size_t>(n1 + n2) == len;
}

// Copies the key behind a handle of `session`.
bool FindKey(Session& session, void* handle, Sm4Key* key) {
  std::lock_guard<std::mutex> lock(session.mu);
  auto it = session.keys.find(reinterpret_cast<uintptr_t>(handle));
  if (it == session.keys.end()) return false;
  *key = *it->second;
  return true;
}

int AddKey(const Call& call, Session& session, const Sm4Key& key,
           void** handle) {
  const uintptr_t h = registry().NewHandle();
  std::lock_guard<std::mutex> lock(session.mu);
  if (session.keys.size() >= kMaxKeyHandlesPerSession) {
    return call.Fail(SDR_NOBUFFER,
                     absl::StrCat("more than ", kMaxKeyHandlesPerSession,
                                  " key handles in a session"));
  }
  session.keys[h] = std::make_unique<Sm4Key>(key);
  *handle = reinterpret_cast<void*>(h);
  return SDR_OK;
}

// SDR_KEYNOTEXIST unless the device has private keys at `index`.
int RequirePrivateKeys(const Call& call, Session& session, unsigned int index) {
  if (!session.store().has_private_keys(index)) {
    return call.Fail(SDR_KEYNOTEXIST,
                     absl::StrCat("no private key at index ", index));
  }
  return SDR_OK;
}

void SetAccessRight(Session& session, unsigned int index, bool granted) {
  std::lock_guard<std::mutex> lock(session.mu);
  if (granted) {
    session.access_rights.insert(index);
  } else {
    session.access_rights.erase(index);
  }
}

bool HasAccessRight(Session& session, unsigned int index) {
  std::lock_guard<std::mutex> lock(session.mu);
  return session.access_rights.contains(index);
}

// Sign / verify the 32-byte digest e with an SM2 key.
int SignDigest(const Call& call, EVP_PKEY* key, const unsigned char* e,
               ECCSignature* sig) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  size_t der_len = 0;
  if (ctx == nullptr || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &der_len, e, kSm3DigestBytes) != 1) {
    return call.Fail(SDR_SIGNERR, "OpenSSL SM2 sign setup failed");
  }
  std::string der(der_len, '\0');
  if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()),
                    &der_len, e, kSm3DigestBytes) != 1) {
    return call.Fail(SDR_SIGNERR, "OpenSSL SM2 sign failed");
  }
  der.resize(der_len);
  if (absl::Status s = SignatureFromDer(der, sig); !s.ok()) {
    return call.Fail(SDR_SIGNERR, s.message());
  }
  return SDR_OK;
}

int VerifyDigest(const Call& call, EVP_PKEY* key, const unsigned char* e,
                 const ECCSignature& sig) {
  absl::StatusOr<std::string> der = SignatureToDer(sig);
  if (!der.ok()) return call.Fail(SDR_VERIFYERR, der.status().message());
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) != 1) {
    return call.Fail(SDR_PKOPERR, "OpenSSL SM2 verify setup failed");
  }
  if (EVP_PKEY_verify(ctx.get(),
                      reinterpret_cast<const unsigned char*>(der->data()),
                      der->size(), e, kSm3DigestBytes) != 1) {
    return call.Fail(SDR_VERIFYERR, "signature does not verify");
  }
  return SDR_OK;
}

int Encrypt(const Call& call, EVP_PKEY* key, const unsigned char* data,
            unsigned int len, ECCCipher* out) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  size_t der_len = 0;
  if (ctx == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_encrypt(ctx.get(), nullptr, &der_len, data, len) != 1) {
    return call.Fail(SDR_PKOPERR, "OpenSSL SM2 encrypt setup failed");
  }
  std::string der(der_len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(der.data()),
                       &der_len, data, len) != 1) {
    return call.Fail(SDR_PKOPERR, "OpenSSL SM2 encrypt failed");
  }
  der.resize(der_len);
  if (absl::Status s = CipherFromDer(der, len, out); !s.ok()) {
    return call.Fail(SDR_PKOPERR, s.message());
  }
  return SDR_OK;
}

// Shared argument checks of the SM2 encryption functions.
int CheckEncryptArgs(const Call& call, unsigned int alg,
                     const unsigned char* data, unsigned int len,
                     const ECCCipher* out) {
  if (!IsSm2EncAlg(alg)) {
    return call.Fail(SDR_ALGNOTSUPPORT,
                     absl::StrCat("algorithm 0x", absl::Hex(alg),
                                  " (want SGD_SM2_3 or SGD_SM2)"));
  }
  if (data == nullptr) return call.Fail(SDR_INARGERR, "pucData is NULL");
  if (len == 0 || len > kMaxSm2PlaintextLen) {
    return call.Fail(SDR_INARGERR,
                     absl::StrCat("plaintext length ", len, " not in [1, ",
                                  kMaxSm2PlaintextLen, "]"));
  }
  if (out == nullptr) return call.Fail(SDR_OUTARGERR, "pucEncData is NULL");
  return SDR_OK;
}

int CheckDigestArgs(const Call& call, const unsigned char* data,
                    unsigned int len, const void* sig, int sig_null_code) {
  if (data == nullptr) return call.Fail(SDR_INARGERR, "pucData is NULL");
  if (len != kSm3DigestBytes) {
    return call.Fail(SDR_INARGERR,
                     absl::StrCat("data length ", len,
                                  "; SM2 signs a 32-byte SM3 digest e"));
  }
  if (sig == nullptr) return call.Fail(sig_null_code, "pucSignature is NULL");
  return SDR_OK;
}

int ExportPublicKey(const Call& call, Session& session, unsigned int index,
                    ECCrefPublicKey* out, bool sign) {
  if (out == nullptr) return call.Fail(SDR_OUTARGERR, "pucPublicKey is NULL");
  EVP_PKEY* key =
      sign ? session.store().sign_key(index) : session.store().enc_key(index);
  if (key == nullptr) {
    return call.Fail(SDR_KEYNOTEXIST,
                     absl::StrCat("no ", sign ? "signing" : "encryption",
                                  " key at index ", index));
  }
  if (absl::Status s = Sm2PublicKeyToRef(key, out); !s.ok()) {
    return call.Fail(SDR_KEYERR, s.message());
  }
  return SDR_OK;
}

int SymmetricCrypt(const Call& call, Session& session, void* hKey,
                   unsigned int alg, unsigned char* iv, const unsigned char* in,
                   unsigned int len, unsigned char* out, unsigned int* out_len,
                   bool encrypt) {
  const EVP_CIPHER* cipher = nullptr;
  if (int rc = Sm4Cipher(call, alg, &cipher); rc != SDR_OK) return rc;
  if (in == nullptr) return call.Fail(SDR_INARGERR, "input data is NULL");
  if (len == 0 || len % kSm4BlockLen != 0 || len > kBufferSize) {
    return call.Fail(SDR_INARGERR,
                     absl::StrCat("data length ", len,
                                  " must be a non-zero multiple of 16 up to ",
                                  kBufferSize, " (no padding)"));
  }
  const bool cbc = alg == SGD_SM4_CBC;
  if (cbc && iv == nullptr) return call.Fail(SDR_INARGERR, "pucIV is NULL");
  if (out == nullptr || out_len == nullptr) {
    return call.Fail(SDR_OUTARGERR, "output buffer or length is NULL");
  }
  Sm4Key key;
  if (!FindKey(session, hKey, &key)) {
    return call.Fail(SDR_KEYNOTEXIST, "unknown key handle in this session");
  }
  // The next chaining value is the last ciphertext block; save it before an
  // in-place decryption overwrites it.
  unsigned char next_iv[kSm4BlockLen] = {};
  if (cbc && !encrypt) {
    std::memcpy(next_iv, in + len - kSm4BlockLen, kSm4BlockLen);
  }
  if (!Sm4Crypt(cipher, key, cbc ? iv : nullptr, encrypt, in, len, out)) {
    return call.Fail(SDR_SYMOPERR, "OpenSSL SM4 failed");
  }
  if (cbc) {
    if (encrypt) std::memcpy(next_iv, out + len - kSm4BlockLen, kSm4BlockLen);
    std::memcpy(iv, next_iv, kSm4BlockLen);
  }
  *out_len = len;
  return SDR_OK;
}

// SDF_InternalSign_ECC / SDF_InternalVerify_ECC with the signing key pair
// at `index`: signing needs the session's access right to it, verifying
// does not.
int InternalSignOrVerify(const Call& call, Session& session, unsigned int index,
                         unsigned char* digest, unsigned int digest_len,
                         ECCSignature* sig, bool sign) {
  if (int rc = CheckDigestArgs(call, digest, digest_len, sig,
                               sign ? SDR_OUTARGERR : SDR_INARGERR);
      rc != SDR_OK) {
    return rc;
  }
  EVP_PKEY* key = session.store().sign_key(index);
  if (key == nullptr) {
    return call.Fail(SDR_KEYNOTEXIST,
                     absl::StrCat("no signing key at index ", index));
  }
  if (!sign) return VerifyDigest(call, key, digest, *sig);
  if (!HasAccessRight(session, index)) {
    return call.Fail(SDR_PARDENY, absl::StrCat("no access right for key index ",
                                               index, " in this session"));
  }
  return SignDigest(call, key, digest, sig);
}

// The cipher (SM4 ECB, the only wrapping mode) and the key-encryption key
// at `index` for SDF_GenerateKeyWithKEK and SDF_ImportKeyWithKEK.
int FindKek(const Call& call, Session& session, unsigned int alg,
            unsigned int index, const EVP_CIPHER** cipher, const Sm4Key** kek) {
  if (int rc = Sm4Cipher(call, alg, cipher); rc != SDR_OK) return rc;
  if (alg != SGD_SM4_ECB) {
    return call.Fail(SDR_ALGMODNOTSUPPORT, "keys are wrapped with SM4 ECB");
  }
  *kek = session.store().sm4_key(index);
  if (*kek == nullptr) {
    return call.Fail(SDR_KEYNOTEXIST,
                     absl::StrCat("no SM4 key at index ", index));
  }
  return SDR_OK;
}

}  // namespace
}  // namespace hsmd::softsdf

// ---------------------------------------------------------------------------
// The exported SDF functions.

using hsmd::softsdf::Call;
using hsmd::softsdf::Run;

#define SOFTSDF_CHECK_TYPE(name)                            \
  static_assert(std::is_same_v<decltype(&name), name##_fn>, \
                #name " in gmt0018.h: prototype and _fn type differ")

// Every function here has a prototype and a pointer type in the header; a
// mismatch between them is a compile error.
SOFTSDF_CHECK_TYPE(SDF_OpenDevice);
SOFTSDF_CHECK_TYPE(SDF_CloseDevice);
SOFTSDF_CHECK_TYPE(SDF_OpenSession);
SOFTSDF_CHECK_TYPE(SDF_CloseSession);
SOFTSDF_CHECK_TYPE(SDF_GetDeviceInfo);
SOFTSDF_CHECK_TYPE(SDF_GenerateRandom);
SOFTSDF_CHECK_TYPE(SDF_GetPrivateKeyAccessRight);
SOFTSDF_CHECK_TYPE(SDF_ReleasePrivateKeyAccessRight);
SOFTSDF_CHECK_TYPE(SDF_ExportSignPublicKey_ECC);
SOFTSDF_CHECK_TYPE(SDF_ExportEncPublicKey_ECC);
SOFTSDF_CHECK_TYPE(SDF_GenerateKeyPair_ECC);
SOFTSDF_CHECK_TYPE(SDF_GenerateKeyWithKEK);
SOFTSDF_CHECK_TYPE(SDF_ImportKeyWithKEK);
SOFTSDF_CHECK_TYPE(SDF_ImportKey);
SOFTSDF_CHECK_TYPE(SDF_DestroyKey);
SOFTSDF_CHECK_TYPE(SDF_GetSymmKeyHandle);
SOFTSDF_CHECK_TYPE(SDF_ExternalVerify_ECC);
SOFTSDF_CHECK_TYPE(SDF_InternalSign_ECC);
SOFTSDF_CHECK_TYPE(SDF_InternalVerify_ECC);
SOFTSDF_CHECK_TYPE(SDF_ExternalEncrypt_ECC);
SOFTSDF_CHECK_TYPE(SDF_InternalEncrypt_ECC);
SOFTSDF_CHECK_TYPE(SDF_InternalDecrypt_ECC);
SOFTSDF_CHECK_TYPE(SDF_Encrypt);
SOFTSDF_CHECK_TYPE(SDF_Decrypt);
SOFTSDF_CHECK_TYPE(SDF_HashInit);
SOFTSDF_CHECK_TYPE(SDF_HashUpdate);
SOFTSDF_CHECK_TYPE(SDF_HashFinal);

namespace sdf = hsmd::softsdf;

extern "C" {

int SDF_OpenDevice(void** phDeviceHandle) {
  return Run(__func__, [&](const Call& call) {
    if (phDeviceHandle == nullptr) {
      return call.Fail(SDR_OUTARGERR, "phDeviceHandle is NULL");
    }
    absl::StatusOr<std::string> dir = sdf::StoreDirectory();
    if (!dir.ok()) return call.Fail(SDR_OPENDEVICE, dir.status().message());
    absl::StatusOr<std::unique_ptr<sdf::KeyStore>> store =
        sdf::KeyStore::Load(*dir);
    if (!store.ok()) return call.Fail(SDR_OPENDEVICE, store.status().message());
    auto device = std::make_shared<sdf::Device>();
    device->store = *std::move(store);
    *phDeviceHandle = sdf::registry().AddDevice(std::move(device));
    return SDR_OK;
  });
}

int SDF_CloseDevice(void* hDeviceHandle) {
  return Run(__func__, [&](const Call& call) {
    if (!sdf::registry().RemoveDevice(hDeviceHandle)) {
      return call.Fail(SDR_OPENDEVICE, "unknown device handle");
    }
    return SDR_OK;
  });
}

int SDF_OpenSession(void* hDeviceHandle, void** phSessionHandle) {
  return Run(__func__, [&](const Call& call) {
    std::shared_ptr<const sdf::Device> device =
        sdf::registry().FindDevice(hDeviceHandle);
    if (device == nullptr) {
      return call.Fail(SDR_OPENDEVICE, "unknown device handle");
    }
    if (phSessionHandle == nullptr) {
      return call.Fail(SDR_OUTARGERR, "phSessionHandle is NULL");
    }
    void* handle = sdf::registry().AddSession(
        std::make_shared<sdf::Session>(std::move(device)));
    if (handle == nullptr) {
      return call.Fail(SDR_OPENSESSION, "too many open sessions");
    }
    *phSessionHandle = handle;
    return SDR_OK;
  });
}

int SDF_CloseSession(void* hSessionHandle) {
  return Run(__func__, [&](const Call& call) {
    if (sdf::registry().RemoveSession(hSessionHandle) == nullptr) {
      return call.Fail(SDR_OPENSESSION, "unknown session handle");
    }
    return SDR_OK;
  });
}

int SDF_GetDeviceInfo(void* hSessionHandle, DEVICEINFO* pstDeviceInfo) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session&) {
        if (pstDeviceInfo == nullptr) {
          return call.Fail(SDR_OUTARGERR, "pstDeviceInfo is NULL");
        }
        std::memset(pstDeviceInfo, 0, sizeof(*pstDeviceInfo));
        // Fixed-size fields, not NUL-terminated when full.
        const absl::string_view issuer = "hsmd project";
        const absl::string_view name = "softsdf";
        const absl::string_view serial =
            "2025010100100001";  // date+batch+serial
        std::memcpy(pstDeviceInfo->IssuerName, issuer.data(), issuer.size());
        std::memcpy(pstDeviceInfo->DeviceName, name.data(), name.size());
        std::memcpy(pstDeviceInfo->DeviceSerial, serial.data(), serial.size());
        pstDeviceInfo->DeviceVersion = 1;
        pstDeviceInfo->StandardVersion = 1;
        pstDeviceInfo->AsymAlgAbility[0] = SGD_SM2_1 | SGD_SM2_3;
        pstDeviceInfo->AsymAlgAbility[1] = 256;
        pstDeviceInfo->SymAlgAbility = SGD_SM4_ECB | SGD_SM4_CBC;
        pstDeviceInfo->HashAlgAbility = SGD_SM3;
        pstDeviceInfo->BufferSize = sdf::kBufferSize;
        return SDR_OK;
      });
}

int SDF_GenerateRandom(void* hSessionHandle, unsigned int uiLength,
                       unsigned char* pucRandom) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session&) {
        if (uiLength == 0 || uiLength > sdf::kBufferSize) {
          return call.Fail(SDR_INARGERR,
                           absl::StrCat("length ", uiLength, " not in [1, ",
                                        sdf::kBufferSize, "]"));
        }
        if (pucRandom == nullptr) {
          return call.Fail(SDR_OUTARGERR, "pucRandom is NULL");
        }
        if (RAND_bytes(pucRandom, static_cast<int>(uiLength)) != 1) {
          return call.Fail(SDR_RANDERR, "RAND_bytes failed");
        }
        return SDR_OK;
      });
}

int SDF_GetPrivateKeyAccessRight(void* hSessionHandle, unsigned int uiKeyIndex,
                                 unsigned char* pucPassword,
                                 unsigned int uiPwdLength) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (pucPassword == nullptr) {
          return call.Fail(SDR_INARGERR, "pucPassword is NULL");
        }
        if (uiPwdLength == 0 || uiPwdLength > sdf::kMaxPasswordLen) {
          return call.Fail(
              SDR_INARGERR,
              absl::StrCat("password length ", uiPwdLength, " not in [1, ",
                           sdf::kMaxPasswordLen, "]"));
        }
        if (int rc = sdf::RequirePrivateKeys(call, session, uiKeyIndex);
            rc != SDR_OK) {
          return rc;
        }
        const absl::string_view password(reinterpret_cast<char*>(pucPassword),
                                         uiPwdLength);
        if (!session.store().CheckPassword(uiKeyIndex, password)) {
          return call.Fail(
              SDR_PRKRERR,
              absl::StrCat("wrong password for key index ", uiKeyIndex));
        }
        sdf::SetAccessRight(session, uiKeyIndex, /*granted=*/true);
        return SDR_OK;
      });
}

int SDF_ReleasePrivateKeyAccessRight(void* hSessionHandle,
                                     unsigned int uiKeyIndex) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (int rc = sdf::RequirePrivateKeys(call, session, uiKeyIndex);
            rc != SDR_OK) {
          return rc;
        }
        sdf::SetAccessRight(session, uiKeyIndex, /*granted=*/false);
        return SDR_OK;
      });
}

int SDF_ExportSignPublicKey_ECC(void* hSessionHandle, unsigned int uiKeyIndex,
                                ECCrefPublicKey* pucPublicKey) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        return sdf::ExportPublicKey(call, session, uiKeyIndex, pucPublicKey,
                                    /*sign=*/true);
      });
}

int SDF_ExportEncPublicKey_ECC(void* hSessionHandle, unsigned int uiKeyIndex,
                               ECCrefPublicKey* pucPublicKey) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        return sdf::ExportPublicKey(call, session, uiKeyIndex, pucPublicKey,
                                    /*sign=*/false);
      });
}

int SDF_GenerateKeyPair_ECC(void* hSessionHandle, unsigned int uiAlgID,
                            unsigned int uiKeyBits,
                            ECCrefPublicKey* pucPublicKey,
                            ECCrefPrivateKey* pucPrivateKey) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session&) {
        if (!sdf::IsSm2SignAlg(uiAlgID) && !sdf::IsSm2EncAlg(uiAlgID)) {
          return call.Fail(
              SDR_ALGNOTSUPPORT,
              absl::StrCat("algorithm 0x", absl::Hex(uiAlgID),
                           " (want SGD_SM2, SGD_SM2_1 or SGD_SM2_3)"));
        }
        if (uiKeyBits != 256) {
          return call.Fail(SDR_INARGERR, absl::StrCat("key bits ", uiKeyBits,
                                                      "; SM2 keys have 256"));
        }
        if (pucPublicKey == nullptr || pucPrivateKey == nullptr) {
          return call.Fail(SDR_OUTARGERR, "key output is NULL");
        }
        hsmd::EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
        if (key == nullptr)
          return call.Fail(SDR_UNKNOWERR, "SM2 keygen failed");
        if (absl::Status s = sdf::Sm2PublicKeyToRef(key.get(), pucPublicKey);
            !s.ok()) {
          return call.Fail(SDR_UNKNOWERR, s.message());
        }
        if (absl::Status s = sdf::Sm2PrivateKeyToRef(key.get(), pucPrivateKey);
            !s.ok()) {
          return call.Fail(SDR_UNKNOWERR, s.message());
        }
        return SDR_OK;
      });
}

int SDF_GenerateKeyWithKEK(void* hSessionHandle, unsigned int uiKeyBits,
                           unsigned int uiAlgID, unsigned int uiKEKIndex,
                           unsigned char* pucKey, unsigned int* puiKeyLength,
                           void** phKeyHandle) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (uiKeyBits != 8 * sdf::kSm4KeyLen) {
          return call.Fail(SDR_INARGERR, absl::StrCat("key bits ", uiKeyBits,
                                                      "; SM4 keys have 128"));
        }
        const EVP_CIPHER* cipher = nullptr;
        const sdf::Sm4Key* kek = nullptr;
        if (int rc =
                sdf::FindKek(call, session, uiAlgID, uiKEKIndex, &cipher, &kek);
            rc != SDR_OK) {
          return rc;
        }
        if (pucKey == nullptr || puiKeyLength == nullptr ||
            phKeyHandle == nullptr) {
          return call.Fail(SDR_OUTARGERR, "key output is NULL");
        }
        sdf::Sm4Key key;
        if (RAND_bytes(key.bytes, sizeof(key.bytes)) != 1) {
          return call.Fail(SDR_RANDERR, "RAND_bytes failed");
        }
        unsigned char wrapped[sdf::kSm4KeyLen];
        if (!sdf::Sm4Crypt(cipher, *kek, nullptr, /*encrypt=*/true, key.bytes,
                           sizeof(key.bytes), wrapped)) {
          return call.Fail(SDR_SYMOPERR, "wrapping the key failed");
        }
        void* handle = nullptr;
        if (int rc = sdf::AddKey(call, session, key, &handle); rc != SDR_OK) {
          return rc;
        }
        std::memcpy(pucKey, wrapped, sizeof(wrapped));
        *puiKeyLength = sizeof(wrapped);
        *phKeyHandle = handle;
        return SDR_OK;
      });
}

int SDF_ImportKeyWithKEK(void* hSessionHandle, unsigned int uiAlgID,
                         unsigned int uiKEKIndex, unsigned char* pucKey,
                         unsigned int uiKeyLength, void** phKeyHandle) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        const EVP_CIPHER* cipher = nullptr;
        const sdf::Sm4Key* kek = nullptr;
        if (int rc =
                sdf::FindKek(call, session, uiAlgID, uiKEKIndex, &cipher, &kek);
            rc != SDR_OK) {
          return rc;
        }
        if (pucKey == nullptr) return call.Fail(SDR_INARGERR, "pucKey is NULL");
        if (uiKeyLength != sdf::kSm4KeyLen) {
          return call.Fail(SDR_INARGERR,
                           absl::StrCat("wrapped key length ", uiKeyLength,
                                        "; an SM4-wrapped SM4 key has 16"));
        }
        if (phKeyHandle == nullptr) {
          return call.Fail(SDR_OUTARGERR, "phKeyHandle is NULL");
        }
        sdf::Sm4Key key;
        if (!sdf::Sm4Crypt(cipher, *kek, nullptr, /*encrypt=*/false, pucKey,
                           uiKeyLength, key.bytes)) {
          return call.Fail(SDR_SYMOPERR, "unwrapping the key failed");
        }
        return sdf::AddKey(call, session, key, phKeyHandle);
      });
}

int SDF_ImportKey(void* hSessionHandle, unsigned char* pucKey,
                  unsigned int uiKeyLength, void** phKeyHandle) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (pucKey == nullptr) return call.Fail(SDR_INARGERR, "pucKey is NULL");
        if (uiKeyLength != sdf::kSm4KeyLen) {
          return call.Fail(
              SDR_INARGERR,
              absl::StrCat("key length ", uiKeyLength, "; SM4 keys have 16"));
        }
        if (phKeyHandle == nullptr) {
          return call.Fail(SDR_OUTARGERR, "phKeyHandle is NULL");
        }
        sdf::Sm4Key key;
        std::memcpy(key.bytes, pucKey, sizeof(key.bytes));
        return sdf::AddKey(call, session, key, phKeyHandle);
      });
}

int SDF_GetSymmKeyHandle(void* hSessionHandle, unsigned int uiKeyIndex,
                         void** phKeyHandle) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (phKeyHandle == nullptr) {
          return call.Fail(SDR_OUTARGERR, "phKeyHandle is NULL");
        }
        const sdf::Sm4Key* key = session.store().sm4_key(uiKeyIndex);
        if (key == nullptr) {
          return call.Fail(SDR_KEYNOTEXIST,
                           absl::StrCat("no SM4 key at index ", uiKeyIndex));
        }
        return sdf::AddKey(call, session, *key, phKeyHandle);
      });
}

int SDF_DestroyKey(void* hSessionHandle, void* hKeyHandle) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        std::lock_guard<std::mutex> lock(session.mu);
        if (session.keys.erase(reinterpret_cast<uintptr_t>(hKeyHandle)) == 0) {
          return call.Fail(SDR_KEYNOTEXIST,
                           "unknown key handle in this session");
        }
        return SDR_OK;
      });
}

int SDF_ExternalVerify_ECC(void* hSessionHandle, unsigned int uiAlgID,
                           ECCrefPublicKey* pucPublicKey,
                           unsigned char* pucDataInput,
                           unsigned int uiInputLength,
                           ECCSignature* pucSignature) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session&) {
        if (!sdf::IsSm2SignAlg(uiAlgID)) {
          return call.Fail(SDR_ALGNOTSUPPORT,
                           absl::StrCat("algorithm 0x", absl::Hex(uiAlgID),
                                        " (want SGD_SM2_1 or SGD_SM2)"));
        }
        if (pucPublicKey == nullptr) {
          return call.Fail(SDR_INARGERR, "pucPublicKey is NULL");
        }
        if (int rc = sdf::CheckDigestArgs(call, pucDataInput, uiInputLength,
                                          pucSignature, SDR_INARGERR);
            rc != SDR_OK) {
          return rc;
        }
        absl::StatusOr<hsmd::EvpPkeyPtr> key =
            sdf::Sm2PublicKeyFromRef(*pucPublicKey);
        if (!key.ok()) return call.Fail(SDR_KEYERR, key.status().message());
        return sdf::VerifyDigest(call, key->get(), pucDataInput, *pucSignature);
      });
}

int SDF_InternalSign_ECC(void* hSessionHandle, unsigned int uiISKIndex,
                         unsigned char* pucData, unsigned int uiDataLength,
                         ECCSignature* pucSignature) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        return sdf::InternalSignOrVerify(call, session, uiISKIndex, pucData,
                                         uiDataLength, pucSignature,
                                         /*sign=*/true);
      });
}

int SDF_InternalVerify_ECC(void* hSessionHandle, unsigned int uiISKIndex,
                           unsigned char* pucData, unsigned int uiDataLength,
                           ECCSignature* pucSignature) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        return sdf::InternalSignOrVerify(call, session, uiISKIndex, pucData,
                                         uiDataLength, pucSignature,
                                         /*sign=*/false);
      });
}

int SDF_ExternalEncrypt_ECC(void* hSessionHandle, unsigned int uiAlgID,
                            ECCrefPublicKey* pucPublicKey,
                            unsigned char* pucData, unsigned int uiDataLength,
                            ECCCipher* pucEncData) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session&) {
        if (pucPublicKey == nullptr) {
          return call.Fail(SDR_INARGERR, "pucPublicKey is NULL");
        }
        if (int rc = sdf::CheckEncryptArgs(call, uiAlgID, pucData, uiDataLength,
                                           pucEncData);
            rc != SDR_OK) {
          return rc;
        }
        absl::StatusOr<hsmd::EvpPkeyPtr> key =
            sdf::Sm2PublicKeyFromRef(*pucPublicKey);
        if (!key.ok()) return call.Fail(SDR_KEYERR, key.status().message());
        return sdf::Encrypt(call, key->get(), pucData, uiDataLength,
                            pucEncData);
      });
}

int SDF_InternalEncrypt_ECC(void* hSessionHandle, unsigned int uiIPKIndex,
                            unsigned int uiAlgID, unsigned char* pucData,
                            unsigned int uiDataLength, ECCCipher* pucEncData) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (int rc = sdf::CheckEncryptArgs(call, uiAlgID, pucData, uiDataLength,
                                           pucEncData);
            rc != SDR_OK) {
          return rc;
        }
        EVP_PKEY* key = session.store().enc_key(uiIPKIndex);
        if (key == nullptr) {
          return call.Fail(
              SDR_KEYNOTEXIST,
              absl::StrCat("no encryption key at index ", uiIPKIndex));
        }
        return sdf::Encrypt(call, key, pucData, uiDataLength, pucEncData);
      });
}

int SDF_InternalDecrypt_ECC(void* hSessionHandle, unsigned int uiISKIndex,
                            unsigned int uiAlgID, ECCCipher* pucEncData,
                            unsigned char* pucData,
                            unsigned int* puiDataLength) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (!sdf::IsSm2EncAlg(uiAlgID)) {
          return call.Fail(SDR_ALGNOTSUPPORT,
                           absl::StrCat("algorithm 0x", absl::Hex(uiAlgID),
                                        " (want SGD_SM2_3 or SGD_SM2)"));
        }
        if (pucEncData == nullptr) {
          return call.Fail(SDR_INARGERR, "pucEncData is NULL");
        }
        if (pucData == nullptr || puiDataLength == nullptr) {
          return call.Fail(SDR_OUTARGERR, "output buffer or length is NULL");
        }
        // Checks L before anything reads the C bytes behind it.
        absl::StatusOr<std::string> der =
            sdf::CipherToDer(*pucEncData, sdf::kMaxSm2PlaintextLen);
        if (!der.ok()) return call.Fail(SDR_INARGERR, der.status().message());
        EVP_PKEY* key = session.store().enc_key(uiISKIndex);
        if (key == nullptr) {
          return call.Fail(
              SDR_KEYNOTEXIST,
              absl::StrCat("no encryption key at index ", uiISKIndex));
        }
        if (!sdf::HasAccessRight(session, uiISKIndex)) {
          return call.Fail(SDR_PARDENY,
                           absl::StrCat("no access right for key index ",
                                        uiISKIndex, " in this session"));
        }
        hsmd::EvpPkeyCtxPtr ctx(
            EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
        const auto* in = reinterpret_cast<const unsigned char*>(der->data());
        size_t max_len = 0;
        if (ctx == nullptr || EVP_PKEY_decrypt_init(ctx.get()) != 1 ||
            EVP_PKEY_decrypt(ctx.get(), nullptr, &max_len, in, der->size()) !=
                1) {
          return call.Fail(SDR_SKOPERR, "OpenSSL SM2 decrypt setup failed");
        }
        std::vector<unsigned char> plain(max_len);
        size_t len = plain.size();
        const bool ok = EVP_PKEY_decrypt(ctx.get(), plain.data(), &len, in,
                                         der->size()) == 1;
        if (!ok || len != pucEncData->L) {
          OPENSSL_cleanse(plain.data(), plain.size());
          return call.Fail(
              SDR_ENCDATAERR,
              "ciphertext does not decrypt (wrong key or corrupt)");
        }
        std::memcpy(pucData, plain.data(), len);
        OPENSSL_cleanse(plain.data(), plain.size());
        *puiDataLength = static_cast<unsigned int>(len);
        return SDR_OK;
      });
}

int SDF_Encrypt(void* hSessionHandle, void* hKeyHandle, unsigned int uiAlgID,
                unsigned char* pucIV, unsigned char* pucData,
                unsigned int uiDataLength, unsigned char* pucEncData,
                unsigned int* puiEncDataLength) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        return sdf::SymmetricCrypt(call, session, hKeyHandle, uiAlgID, pucIV,
                                   pucData, uiDataLength, pucEncData,
                                   puiEncDataLength, /*encrypt=*/true);
      });
}

int SDF_Decrypt(void* hSessionHandle, void* hKeyHandle, unsigned int uiAlgID,
                unsigned char* pucIV, unsigned char* pucEncData,
                unsigned int uiEncDataLength, unsigned char* pucData,
                unsigned int* puiDataLength) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        return sdf::SymmetricCrypt(call, session, hKeyHandle, uiAlgID, pucIV,
                                   pucEncData, uiEncDataLength, pucData,
                                   puiDataLength, /*encrypt=*/false);
      });
}

int SDF_HashInit(void* hSessionHandle, unsigned int uiAlgID,
                 ECCrefPublicKey* pucPublicKey, unsigned char* pucID,
                 unsigned int uiIDLength) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (uiAlgID != SGD_SM3) {
          return call.Fail(SDR_ALGNOTSUPPORT,
                           absl::StrCat("hash algorithm 0x", absl::Hex(uiAlgID),
                                        " (only SGD_SM3)"));
        }
        std::string z;
        if (pucPublicKey != nullptr) {
          if (pucID == nullptr || uiIDLength == 0) {
            return call.Fail(SDR_INARGERR,
                             "a public key needs an ID (pucID, uiIDLength)");
          }
          absl::StatusOr<std::string> computed = sdf::Sm2Z(
              *pucPublicKey,
              absl::string_view(reinterpret_cast<char*>(pucID), uiIDLength));
          if (!computed.ok()) {
            return call.Fail(SDR_INARGERR, computed.status().message());
          }
          z = *std::move(computed);
        } else if (uiIDLength != 0) {
          return call.Fail(SDR_INARGERR, "an ID needs the signer's public key");
        }
        hsmd::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
        if (ctx == nullptr ||
            EVP_DigestInit_ex(ctx.get(), EVP_sm3(), nullptr) != 1 ||
            EVP_DigestUpdate(ctx.get(), z.data(), z.size()) != 1) {
          return call.Fail(SDR_UNKNOWERR, "OpenSSL SM3 init failed");
        }
        std::lock_guard<std::mutex> lock(session.mu);
        session.hash = std::move(ctx);
        return SDR_OK;
      });
}

int SDF_HashUpdate(void* hSessionHandle, unsigned char* pucData,
                   unsigned int uiDataLength) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        if (pucData == nullptr && uiDataLength != 0) {
          return call.Fail(SDR_INARGERR, "pucData is NULL");
        }
        std::lock_guard<std::mutex> lock(session.mu);
        if (session.hash == nullptr) {
          return call.Fail(SDR_STEPERR, "SDF_HashInit was not called");
        }
        if (EVP_DigestUpdate(session.hash.get(), pucData, uiDataLength) != 1) {
          return call.Fail(SDR_UNKNOWERR, "OpenSSL SM3 update failed");
        }
        return SDR_OK;
      });
}

int SDF_HashFinal(void* hSessionHandle, unsigned char* pucHash,
                  unsigned int* puiHashLength) {
  return sdf::RunInSession(
      __func__, hSessionHandle, [&](const Call& call, sdf::Session& session) {
        std::lock_guard<std::mutex> lock(session.mu);
        if (session.hash == nullptr) {
          return call.Fail(SDR_STEPERR, "SDF_HashInit was not called");
        }
        if (pucHash == nullptr || puiHashLength == nullptr) {
          return call.Fail(SDR_OUTARGERR, "output buffer or length is NULL");
        }
        unsigned int len = 0;
        const bool ok =
            EVP_DigestFinal_ex(session.hash.get(), pucHash, &len) == 1;
        session.hash.reset();
        if (!ok) return call.Fail(SDR_UNKNOWERR, "OpenSSL SM3 final failed");
        *puiHashLength = len;
        return SDR_OK;
      });
}

}  // extern "C"
