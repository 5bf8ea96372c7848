#include "daemon/backend/fake/fake_backend.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"
#include "daemon/backend/ec_peer_key.h"
#include "daemon/backend/hash_algorithms.h"

namespace hsmd::backend {

struct FakeBackend::FakeKey {
  v1::Key info;
  EvpPkeyPtr pkey;
};

namespace {

constexpr char kManufacturer[] = "hsmd";
constexpr char kModel[] = "fake";
constexpr char kSerial[] = "0000000000000001";

std::string OpenSslErrors() {
  std::string out;
  unsigned long err;
  while ((err = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(err, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(
      absl::StrCat("fake backend: ", what, ": ", OpenSslErrors()));
}

void CopyPadded(unsigned char* dst, size_t size, absl::string_view src) {
  std::memset(dst, ' ', size);
  std::memcpy(dst, src.data(), std::min(size, src.size()));
}

std::string PercentEncode(absl::string_view value, bool all) {
  std::string out;
  for (unsigned char c : value) {
    if (!all && (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
                 c == '~')) {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

// The key's name in messages: its URI.
const std::string& KeyName(const v1::Key& key) { return key.uri(); }

absl::string_view KeyTypeName(v1::KeyType type) {
  switch (type) {
    case v1::KEY_TYPE_RSA:
      return "an RSA key";
    case v1::KEY_TYPE_EC:
      return "an EC key";
    case v1::KEY_TYPE_ED25519:
      return "an Ed25519 key";
    case v1::KEY_TYPE_SM2:
      return "an SM2 key";
    default:
      return "a key of unknown type";
  }
}

absl::Status NeedKeyType(const v1::Key& key, v1::KeyType want,
                         absl::string_view algorithm) {
  if (key.key_type() == want) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("algorithm ", algorithm, " needs ", KeyTypeName(want), "; ",
                   KeyName(key), " is ", KeyTypeName(key.key_type())));
}

bool Allows(const v1::Key& key, v1::Operation op) {
  return std::find(key.allowed_operations().begin(),
                   key.allowed_operations().end(),
                   op) != key.allowed_operations().end();
}

// The bytes to sign for hash-based algorithms: the digest of `message`, or
// the caller's digest after a length check.
absl::StatusOr<std::string> DigestOf(const v1::SignRequest& request,
                                     v1::HashAlgorithm hash) {
  const EVP_MD* md = HashEvpMd(hash);
  if (md == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("hash ", HashName(hash), " is not supported"));
  }
  if (request.input_case() == v1::SignRequest::kDigest) {
    if (request.digest().size() != HashSize(hash)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "digest is %d bytes; a %s digest is %d bytes",
          request.digest().size(), HashName(hash), HashSize(hash)));
    }
    return request.digest();
  }
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(request.message().data(), request.message().size(), out, &len,
                 md, nullptr) != 1) {
    return OpenSslError("EVP_Digest");
  }
  return std::string(reinterpret_cast<char*>(out), len);
}

template <typename Configure>
absl::StatusOr<std::string> PkeySign(EVP_PKEY* pkey, absl::string_view tbs,
                                     Configure configure) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (ctx == nullptr || EVP_PKEY_sign_init(ctx.get()) <= 0 ||
      !configure(ctx.get())) {
    return OpenSslError("sign init");
  }
  const auto* in = reinterpret_cast<const unsigned char*>(tbs.data());
  size_t len = 0;
  if (EVP_PKEY_sign(ctx.get(), nullptr, &len, in, tbs.size()) <= 0) {
    return OpenSslError("EVP_PKEY_sign");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_sign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                    &len, in, tbs.size()) <= 0) {
    return OpenSslError("EVP_PKEY_sign");
  }
  out.resize(len);
  return out;
}

int RsaModulusBytes(const v1::Key& key) {
  return static_cast<int>((key.size_bits() + 7) / 8);
}

absl::StatusOr<std::string> SignRsaPkcs1(const v1::Key& key, EVP_PKEY* pkey,
                                         const v1::RsaPkcs1Signature& alg,
                                         const v1::SignRequest& request) {
  RETURN_IF_ERROR(NeedKeyType(key, v1::KEY_TYPE_RSA, "rsa_pkcs1"));
  if (alg.hash() == v1::HASH_ALGORITHM_UNSPECIFIED) {
    // Raw: the caller supplies the complete DigestInfo.
    if (request.input_case() != v1::SignRequest::kDigest) {
      return absl::InvalidArgumentError(
          "rsa_pkcs1 without a hash signs a DigestInfo given as `digest`, not "
          "a message");
    }
    int max = RsaModulusBytes(key) - 11;
    if (static_cast<int>(request.digest().size()) > max) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "digest is %d bytes; raw rsa_pkcs1 with a %d-bit key takes at most "
          "%d",
          request.digest().size(), key.size_bits(), max));
    }
    return PkeySign(pkey, request.digest(), [](EVP_PKEY_CTX* ctx) {
      return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0;
    });
  }
  if (alg.hash() == v1::HASH_ALGORITHM_MD5_SHA1 &&
      request.input_case() != v1::SignRequest::kDigest) {
    return absl::InvalidArgumentError(
        "rsa_pkcs1 with MD5-SHA1 takes the 36-byte digest, not a message");
  }
  ASSIGN_OR_RETURN(std::string digest, DigestOf(request, alg.hash()));
  const EVP_MD* md = HashEvpMd(alg.hash());
  return PkeySign(pkey, digest, [md](EVP_PKEY_CTX* ctx) {
    return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
           EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
  });
}

absl::StatusOr<std::string> SignRsaPss(const v1::Key& key, EVP_PKEY* pkey,
                                       const v1::RsaPssSignature& alg,
                                       const v1::SignRequest& request) {
  RETURN_IF_ERROR(NeedKeyType(key, v1::KEY_TYPE_RSA, "rsa_pss"));
  if (alg.hash() == v1::HASH_ALGORITHM_UNSPECIFIED ||
      alg.hash() == v1::HASH_ALGORITHM_MD5_SHA1) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.rsa_pss.hash: ", HashName(alg.hash()),
                     " cannot be used with RSA-PSS"));
  }
  v1::HashAlgorithm mgf1 = alg.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                               ? alg.hash()
                               : alg.mgf1_hash();
  const EVP_MD* mgf1_md = HashEvpMd(mgf1);
  if (mgf1_md == nullptr || mgf1 == v1::HASH_ALGORITHM_MD5_SHA1) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.rsa_pss.mgf1_hash: ", HashName(mgf1),
                     " cannot be used with MGF1"));
  }
  const int hlen = static_cast<int>(HashSize(alg.hash()));
  const int em_len = static_cast<int>((key.size_bits() - 1 + 7) / 8);
  const int max_salt = em_len - hlen - 2;
  int64_t salt = alg.has_salt_length() ? alg.salt_length() : hlen;
  if (salt > max_salt) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "algorithm.rsa_pss.salt_length %d is out of range for a %d-bit RSA "
        "key with %s (0..%d)",
        salt, key.size_bits(), HashName(alg.hash()), max_salt));
  }
  ASSIGN_OR_RETURN(std::string digest, DigestOf(request, alg.hash()));
  const EVP_MD* md = HashEvpMd(alg.hash());
  return PkeySign(pkey, digest, [&](EVP_PKEY_CTX* ctx) {
    return EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_signature_md(ctx, md) > 0 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf1_md) > 0 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, static_cast<int>(salt)) > 0;
  });
}

absl::StatusOr<std::string> SignEcdsa(const v1::Key& key, EVP_PKEY* pkey,
                                      const v1::EcdsaSignature& alg,
                                      const v1::SignRequest& request) {
  RETURN_IF_ERROR(NeedKeyType(key, v1::KEY_TYPE_EC, "ecdsa"));
  if (alg.hash() == v1::HASH_ALGORITHM_UNSPECIFIED ||
      alg.hash() == v1::HASH_ALGORITHM_MD5_SHA1) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.ecdsa.hash: ", HashName(alg.hash()),
                     " cannot be used with ECDSA"));
  }
  ASSIGN_OR_RETURN(std::string digest, DigestOf(request, alg.hash()));
  return PkeySign(pkey, digest, [](EVP_PKEY_CTX*) { return true; });
}

absl::StatusOr<std::string> SignEd25519(const v1::Key& key, EVP_PKEY* pkey,
                                        const v1::SignRequest& request) {
  RETURN_IF_ERROR(NeedKeyType(key, v1::KEY_TYPE_ED25519, "ed25519"));
  if (request.input_case() != v1::SignRequest::kMessage) {
    return absl::InvalidArgumentError(
        "ed25519 signs the message itself: send `message`, not `digest`");
  }
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, pkey) != 1) {
    return OpenSslError("EVP_DigestSignInit");
  }
  size_t len = 0;
  const auto* in =
      reinterpret_cast<const unsigned char*>(request.message().data());
  if (EVP_DigestSign(ctx.get(), nullptr, &len, in, request.message().size()) !=
      1) {
    return OpenSslError("EVP_DigestSign");
  }
  std::string out(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                     &len, in, request.message().size()) != 1) {
    return OpenSslError("EVP_DigestSign");
  }
  out.resize(len);
  return out;
}

absl::StatusOr<EvpPkeyPtr> GeneratePkey(const v1::GenerateKeyRequest& request,
                                        v1::Curve* curve) {
  EVP_PKEY* pkey = nullptr;
  switch (request.key_type()) {
    case v1::KEY_TYPE_RSA: {
      uint32_t bits = request.rsa_bits();
      if (bits != 2048 && bits != 3072 && bits != 4096) {
        return absl::InvalidArgumentError(absl::StrCat(
            "rsa_bits: ", bits, " is not supported (2048, 3072 or 4096)"));
      }
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{bits});
      *curve = v1::CURVE_UNSPECIFIED;
      break;
    }
    case v1::KEY_TYPE_EC: {
      const char* name = nullptr;
      switch (request.curve()) {
        case v1::CURVE_P256:
          name = "P-256";
          break;
        case v1::CURVE_P384:
          name = "P-384";
          break;
        case v1::CURVE_P521:
          name = "P-521";
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("curve: ", v1::Curve_Name(request.curve()),
                           " is not an EC curve (P-256, P-384 or P-521)"));
      }
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", name);
      *curve = request.curve();
      break;
    }
    case v1::KEY_TYPE_ED25519:
      pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      *curve = v1::CURVE_ED25519;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("key_type: ", v1::KeyType_Name(request.key_type()),
                       " is not supported by the fake backend"));
  }
  if (pkey == nullptr) return OpenSslError("EVP_PKEY_Q_keygen");
  return EvpPkeyPtr(pkey);
}

struct UriFree {
  void operator()(P11KitUri* uri) const { p11_kit_uri_free(uri); }
};

}  // namespace

FakeBackend::FakeBackend(FakeBackendOptions options)
    : options_(std::move(options)), serving_(options_.serving) {}

FakeBackend::~FakeBackend() = default;

absl::StatusOr<std::unique_ptr<FakeBackend>> FakeBackend::New(
    FakeBackendOptions options) {
  if (options.name.empty()) {
    return absl::InvalidArgumentError("fake backend: name is required");
  }
  if (options.token_label.size() > 32) {
    return absl::InvalidArgumentError(
        "fake backend: token labels have at most 32 bytes");
  }
  return std::unique_ptr<FakeBackend>(new FakeBackend(std::move(options)));
}

absl::Status FakeBackend::Enter(absl::string_view method,
                                const RequestContext& ctx) {
  std::function<void(absl::string_view)> hook;
  absl::Duration delay;
  absl::Status injected;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_[method];
    hook = hook_;
    if (auto it = delays_.find(method); it != delays_.end()) {
      delay = it->second;
    }
    if (auto it = faults_.find(method); it != faults_.end()) {
      injected = it->second.status;
      if (it->second.remaining > 0 && --it->second.remaining == 0) {
        faults_.erase(it);
      }
    }
  }
  if (hook) hook(method);
  if (shut_down_.load()) {
    return absl::UnavailableError(
        absl::StrCat("backend ", options_.name, " is shut down"));
  }
  if (!serving_.load()) {
    return absl::UnavailableError(
        absl::StrCat("backend ", options_.name, " is not ready"));
  }
  if (delay > absl::ZeroDuration()) {
    absl::Time until = absl::Now() + delay;
    if (ctx.deadline < until) {
      absl::SleepFor(
          std::max(ctx.deadline - absl::Now(), absl::ZeroDuration()));
      return absl::DeadlineExceededError(
          absl::StrCat("backend ", options_.name, ": ", method,
                       " did not finish before the deadline"));
    }
    absl::SleepFor(delay);
  }
  return injected;
}

absl::StatusOr<std::vector<std::shared_ptr<const FakeBackend::FakeKey>>>
FakeBackend::Match(absl::string_view text, bool* public_requested) const {
  *public_requested = false;
  // Never echo a URI that may carry a PIN.
  const bool has_pin = absl::StrContains(absl::AsciiStrToLower(text), "pin-");
  const std::string shown = has_pin ? std::string("<URI with a PIN attribute>")
                                    : absl::StrCat("\"", text, "\"");
  std::unique_ptr<P11KitUri, UriFree> uri(p11_kit_uri_new());
  int rc = p11_kit_uri_parse(std::string(text).c_str(), P11_KIT_URI_FOR_ANY,
                             uri.get());
  if (rc != P11_KIT_URI_OK) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed pkcs11 URI ", shown, ": ", p11_kit_uri_message(rc)));
  }
  if (p11_kit_uri_get_pin_value(uri.get()) != nullptr ||
      p11_kit_uri_get_pin_source(uri.get()) != nullptr) {
    return absl::InvalidArgumentError(
        "pkcs11 URI: pin-value and pin-source are not accepted (hsmd holds "
        "the PIN)");
  }
  if (p11_kit_uri_any_unrecognized(uri.get())) {
    return absl::InvalidArgumentError(
        absl::StrCat("pkcs11 URI ", shown, " has an unknown attribute"));
  }
  CK_TOKEN_INFO token = {};
  CopyPadded(token.label, sizeof(token.label), options_.token_label);
  CopyPadded(token.manufacturerID, sizeof(token.manufacturerID), kManufacturer);
  CopyPadded(token.model, sizeof(token.model), kModel);
  CopyPadded(token.serialNumber, sizeof(token.serialNumber), kSerial);
  std::vector<std::shared_ptr<const FakeKey>> out;
  CK_SLOT_ID slot = p11_kit_uri_get_slot_id(uri.get());
  if (!p11_kit_uri_match_token_info(uri.get(), &token) ||
      (slot != static_cast<CK_SLOT_ID>(-1) && slot != 0)) {
    return out;
  }
  if (CK_ATTRIBUTE* cls = p11_kit_uri_get_attribute(uri.get(), CKA_CLASS)) {
    CK_OBJECT_CLASS value = CKO_PRIVATE_KEY;
    if (cls->pValue != nullptr && cls->ulValueLen == sizeof(value)) {
      std::memcpy(&value, cls->pValue, sizeof(value));
    }
    if (value == CKO_PUBLIC_KEY) {
      *public_requested = true;
    } else if (value != CKO_PRIVATE_KEY) {
      return absl::InvalidArgumentError(
          absl::StrCat("pkcs11 URI ", shown,
                       ": type must be private or public to name a key"));
    }
  }
  CK_ATTRIBUTE* label = p11_kit_uri_get_attribute(uri.get(), CKA_LABEL);
  CK_ATTRIBUTE* id = p11_kit_uri_get_attribute(uri.get(), CKA_ID);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& key : keys_) {
    if (label != nullptr &&
        key->info.label() !=
            absl::string_view(static_cast<const char*>(label->pValue),
                              label->ulValueLen)) {
      continue;
    }
    if (id != nullptr &&
        key->info.id() !=
            absl::string_view(static_cast<const char*>(id->pValue),
                              id->ulValueLen)) {
      continue;
    }
    out.push_back(key);
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const FakeBackend::FakeKey>>
FakeBackend::Resolve(const v1::KeyRef& ref, bool for_private_operation) const {
  std::vector<std::shared_ptr<const FakeKey>> matches;
  std::string name;
  bool public_requested = false;
  switch (ref.ref_case()) {
    case v1::KeyRef::kUri: {
      ASSIGN_OR_RETURN(matches, Match(ref.uri(), &public_requested));
      name = ref.uri();
      break;
    }
    case v1::KeyRef::kKeyId: {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& key : keys_) {
        if (key->info.key_id() == ref.key_id()) matches.push_back(key);
      }
      name = absl::StrCat("key_id ", ref.key_id());
      break;
    }
    case v1::KeyRef::REF_NOT_SET:
      return absl::InvalidArgumentError("key: a uri or key_id is required");
  }
  if (matches.empty()) {
    return absl::NotFoundError(absl::StrCat("no key matches ", name));
  }
  if (matches.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " matches ", matches.size(),
                     " keys; add object= or id= to name one"));
  }
  if (for_private_operation && public_requested) {
    return absl::FailedPreconditionError(
        absl::StrCat(name,
                     " names a public key; private-key operations need "
                     "type=private"));
  }
  return matches.front();
}

absl::StatusOr<std::vector<v1::Key>> FakeBackend::ListKeys(
    const v1::ListKeysRequest& request, const RequestContext& ctx) {
  RETURN_IF_ERROR(Enter("ListKeys", ctx));
  std::vector<std::shared_ptr<const FakeKey>> keys;
  if (!request.uri_filter().empty()) {
    bool public_requested = false;
    ASSIGN_OR_RETURN(keys, Match(request.uri_filter(), &public_requested));
  } else {
    std::lock_guard<std::mutex> lock(mu_);
    keys = keys_;
  }
  std::vector<v1::Key> out;
  for (const auto& key : keys) {
    if (!request.label().empty() && key->info.label() != request.label()) {
      continue;
    }
    out.push_back(key->info);
  }
  return out;
}

absl::StatusOr<v1::Key> FakeBackend::GetKey(const v1::KeyRef& ref,
                                            const RequestContext& ctx) {
  RETURN_IF_ERROR(Enter("GetKey", ctx));
  ASSIGN_OR_RETURN(auto key, Resolve(ref, /*for_private_operation=*/false));
  return key->info;
}

absl::StatusOr<v1::SignResponse> FakeBackend::Sign(
    const v1::SignRequest& request, const RequestContext& ctx) {
  RETURN_IF_ERROR(Enter("Sign", ctx));
  in_flight_.fetch_add(1);
  absl::Cleanup done = [this] { in_flight_.fetch_sub(1); };
  ASSIGN_OR_RETURN(auto key, Resolve(request.key(), true));
  if (!Allows(key->info, v1::OPERATION_SIGN)) {
    return absl::FailedPreconditionError(
        absl::StrCat(KeyName(key->info), " does not allow signing"));
  }
  if (request.input_case() == v1::SignRequest::INPUT_NOT_SET) {
    return absl::InvalidArgumentError("input: message or digest is required");
  }
  const v1::SignatureAlgorithm& alg = request.algorithm();
  absl::StatusOr<std::string> signature;
  switch (alg.algorithm_case()) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      signature =
          SignRsaPkcs1(key->info, key->pkey.get(), alg.rsa_pkcs1(), request);
      break;
    case v1::SignatureAlgorithm::kRsaPss:
      signature =
          SignRsaPss(key->info, key->pkey.get(), alg.rsa_pss(), request);
      break;
    case v1::SignatureAlgorithm::kEcdsa:
      signature = SignEcdsa(key->info, key->pkey.get(), alg.ecdsa(), request);
      break;
    case v1::SignatureAlgorithm::kEd25519:
      signature = SignEd25519(key->info, key->pkey.get(), request);
      break;
    case v1::SignatureAlgorithm::kSm2:
      // The fake holds no SM2 keys (SM2 is served by SDF backends).
      return absl::InvalidArgumentError(absl::StrCat(
          "algorithm sm2 does not fit key type ",
          v1::KeyType_Name(key->info.key_type()), " of ", KeyName(key->info)));
    case v1::SignatureAlgorithm::ALGORITHM_NOT_SET:
      return absl::InvalidArgumentError("algorithm: required");
  }
  if (!signature.ok()) return signature.status();
  v1::SignResponse response;
  response.set_signature(*std::move(signature));
  response.set_key_id(key->info.key_id());
  return response;
}

absl::StatusOr<v1::DecryptResponse> FakeBackend::Decrypt(
    const v1::DecryptRequest& request, const RequestContext& ctx) {
  RETURN_IF_ERROR(Enter("Decrypt", ctx));
  ASSIGN_OR_RETURN(auto key, Resolve(request.key(), true));
  if (request.algorithm().has_sm2() || request.algorithm().has_sm4()) {
    // The fake holds only RSA/EC/Ed25519 keys (SM2/SM4 live on SDF backends).
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm ", request.algorithm().has_sm2() ? "sm2" : "sm4",
        " does not fit key type ", v1::KeyType_Name(key->info.key_type()),
        " of ", KeyName(key->info)));
  }
  const std::string algorithm =
      request.algorithm().has_rsa_oaep() ? "rsa_oaep" : "rsa_pkcs1";
  RETURN_IF_ERROR(NeedKeyType(key->info, v1::KEY_TYPE_RSA, algorithm));
  if (!Allows(key->info, v1::OPERATION_DECRYPT)) {
    return absl::FailedPreconditionError(
        absl::StrCat(KeyName(key->info), " does not allow decryption"));
  }
  if (static_cast<int>(request.ciphertext().size()) !=
      RsaModulusBytes(key->info)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ciphertext is %d bytes; a %d-bit RSA key needs exactly %d",
        request.ciphertext().size(), key->info.size_bits(),
        RsaModulusBytes(key->info)));
  }
  EvpPkeyCtxPtr pctx(
      EVP_PKEY_CTX_new_from_pkey(nullptr, key->pkey.get(), nullptr));
  if (pctx == nullptr || EVP_PKEY_decrypt_init(pctx.get()) <= 0) {
    return OpenSslError("EVP_PKEY_decrypt_init");
  }
  switch (request.algorithm().algorithm_case()) {
    case v1::DecryptionAlgorithm::kRsaPkcs1:
      if (EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_PADDING) <= 0) {
        return OpenSslError("set padding");
      }
      break;
    case v1::DecryptionAlgorithm::kRsaOaep: {
      const v1::RsaOaepDecryption& oaep = request.algorithm().rsa_oaep();
      const EVP_MD* md = HashEvpMd(oaep.hash());
      v1::HashAlgorithm mgf1 =
          oaep.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED ? oaep.hash()
                                                             : oaep.mgf1_hash();
      const EVP_MD* mgf1_md = HashEvpMd(mgf1);
      if (md == nullptr || oaep.hash() == v1::HASH_ALGORITHM_MD5_SHA1 ||
          mgf1_md == nullptr || mgf1 == v1::HASH_ALGORITHM_MD5_SHA1) {
        return absl::InvalidArgumentError(
            "algorithm.rsa_oaep: hash and mgf1_hash must be SHA-1 or SHA-2");
      }
      if (EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_OAEP_PADDING) <=
              0 ||
          EVP_PKEY_CTX_set_rsa_oaep_md(pctx.get(), md) <= 0 ||
          EVP_PKEY_CTX_set_rsa_mgf1_md(pctx.get(), mgf1_md) <= 0) {
        return OpenSslError("set OAEP parameters");
      }
      if (!oaep.label().empty()) {
        void* label = OPENSSL_memdup(oaep.label().data(), oaep.label().size());
        if (label == nullptr ||
            EVP_PKEY_CTX_set0_rsa_oaep_label(
                pctx.get(), label, static_cast<int>(oaep.label().size())) <=
                0) {
          OPENSSL_free(label);
          return OpenSslError("set OAEP label");
        }
      }
      break;
    }
    case v1::DecryptionAlgorithm::kSm2:
    case v1::DecryptionAlgorithm::kSm4:  // Rejected above.
    case v1::DecryptionAlgorithm::ALGORITHM_NOT_SET:
      return absl::InvalidArgumentError("algorithm: required");
  }
  const auto* in =
      reinterpret_cast<const unsigned char*>(request.ciphertext().data());
  size_t len = 0;
  if (EVP_PKEY_decrypt(pctx.get(), nullptr, &len, in,
                       request.ciphertext().size()) <= 0) {
    return OpenSslError("EVP_PKEY_decrypt");
  }
  std::string plaintext(len, '\0');
  if (EVP_PKEY_decrypt(pctx.get(),
                       reinterpret_cast<unsigned char*>(plaintext.data()), &len,
                       in, request.ciphertext().size()) <= 0) {
    ERR_clear_error();
    // No detail: a padding oracle must not learn why.
    return absl::InvalidArgumentError("decryption failed");
  }
  plaintext.resize(len);
  v1::DecryptResponse response;
  response.set_plaintext(std::move(plaintext));
  response.set_key_id(key->info.key_id());
  return response;
}

absl::StatusOr<v1::DeriveResponse> FakeBackend::Derive(
    const v1::DeriveRequest& request, const RequestContext& ctx) {
  RETURN_IF_ERROR(Enter("Derive", ctx));
  ASSIGN_OR_RETURN(auto key, Resolve(request.key(), true));
  if (request.algorithm_case() != v1::DeriveRequest::kEcdh) {
    return absl::InvalidArgumentError("algorithm is required (ecdh)");
  }
  RETURN_IF_ERROR(NeedKeyType(key->info, v1::KEY_TYPE_EC, "ecdh"));
  if (!Allows(key->info, v1::OPERATION_DERIVE)) {
    return absl::FailedPreconditionError(
        absl::StrCat(KeyName(key->info),
                     " does not allow key derivation (CKA_DERIVE is false)"));
  }
  ASSIGN_OR_RETURN(std::string point,
                   EcdhPeerPoint(request.ecdh().peer_public_key(),
                                 key->info.curve(), KeyName(key->info)));
  ASSIGN_OR_RETURN(std::string secret,
                   SoftwareEcdh(key->pkey.get(), point, key->info.curve()));
  v1::DeriveResponse response;
  response.set_shared_secret(std::move(secret));
  response.set_key_id(key->info.key_id());
  return response;
}

absl::StatusOr<std::string> FakeBackend::GenerateRandom(
    uint32_t length, const RequestContext& ctx) {
  RETURN_IF_ERROR(Enter("GenerateRandom", ctx));
  std::string out(length, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()),
                 static_cast<int>(length)) != 1) {
    return OpenSslError("RAND_bytes");
  }
  return out;
}

absl::StatusOr<v1::Key> FakeBackend::GenerateKey(
    const v1::GenerateKeyRequest& request, const RequestContext& ctx) {
  RETURN_IF_ERROR(Enter("GenerateKey", ctx));
  if (request.label().empty()) {
    return absl::InvalidArgumentError("label: required");
  }
  v1::Curve curve = v1::CURVE_UNSPECIFIED;
  ASSIGN_OR_RETURN(EvpPkeyPtr pkey, GeneratePkey(request, &curve));
  auto key = std::make_shared<FakeKey>();
  v1::Key& info = key->info;
  unsigned char* der = nullptr;
  int der_len = i2d_PUBKEY(pkey.get(), &der);
  if (der_len <= 0) return OpenSslError("i2d_PUBKEY");
  info.set_public_key_der(reinterpret_cast<char*>(der),
                          static_cast<size_t>(der_len));
  OPENSSL_free(der);
  unsigned char hash[32];
  SHA256(reinterpret_cast<const unsigned char*>(info.public_key_der().data()),
         info.public_key_der().size(), hash);
  info.set_key_id(absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(hash), 16)));
  info.set_label(request.label());
  info.set_id(request.id().empty()
                  ? std::string(reinterpret_cast<char*>(hash), 16)
                  : request.id());
  info.set_key_type(request.key_type());
  info.set_curve(curve);
  info.set_size_bits(
      request.key_type() == v1::KEY_TYPE_ED25519
          ? 255
          : static_cast<uint32_t>(EVP_PKEY_get_bits(pkey.get())));
  if (request.allowed_operations().empty()) {
    info.add_allowed_operations(v1::OPERATION_SIGN);
    if (request.key_type() == v1::KEY_TYPE_RSA) {
      info.add_allowed_operations(v1::OPERATION_DECRYPT);
    }
    if (request.key_type() == v1::KEY_TYPE_EC) {
      info.add_allowed_operations(v1::OPERATION_DERIVE);
    }
  } else {
    for (int op : request.allowed_operations()) {
      if (op == v1::OPERATION_DERIVE && request.key_type() != v1::KEY_TYPE_EC) {
        return absl::InvalidArgumentError(
            "allowed_operations: only EC keys can derive");
      }
      if (op == v1::OPERATION_DECRYPT &&
          request.key_type() != v1::KEY_TYPE_RSA) {
        return absl::InvalidArgumentError(
            "allowed_operations: only RSA keys can decrypt");
      }
      info.add_allowed_operations(static_cast<v1::Operation>(op));
    }
  }
  info.set_uri(
      absl::StrCat("pkcs11:token=", PercentEncode(options_.token_label, false),
                   ";object=", PercentEncode(info.label(), false),
                   ";id=", PercentEncode(info.id(), true), ";type=private"));
  info.set_backend(options_.name);
  info.set_token_label(options_.token_label);
  key->pkey = std::move(pkey);
  v1::Key result = info;
  std::lock_guard<std::mutex> lock(mu_);
  keys_.push_back(std::move(key));
  return result;
}

absl::StatusOr<uint32_t> FakeBackend::DeleteKey(const v1::KeyRef& ref,
                                                const RequestContext& ctx) {
  RETURN_IF_ERROR(Enter("DeleteKey", ctx));
  ASSIGN_OR_RETURN(auto key, Resolve(ref, /*for_private_operation=*/false));
  std::lock_guard<std::mutex> lock(mu_);
  keys_.erase(std::remove(keys_.begin(), keys_.end(), key), keys_.end());
  return 2;  // The private and the public key object.
}

v1::BackendStatus FakeBackend::GetStatus() const {
  v1::BackendStatus status;
  status.set_name(options_.name);
  status.set_kind(options_.kind);
  const bool shut_down = shut_down_.load();
  const bool serving = serving_.load() && !shut_down;
  status.set_state(serving     ? v1::BACKEND_STATE_READY
                   : shut_down ? v1::BACKEND_STATE_FAILED
                               : v1::BACKEND_STATE_STARTING);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!serving) {
      status.set_state_reason(shut_down ? "shut down" : state_reason_);
    }
  }
  status.set_module_path("(fake)");
  status.set_library_description("hsmd fake backend");
  status.set_token_label(options_.token_label);
  status.set_token_serial(kSerial);
  status.set_token_manufacturer(kManufacturer);
  status.set_token_model(kModel);
  status.set_logged_in(serving);
  status.set_sessions_in_use(in_flight_.load());
  status.set_sessions_total(options_.session_pool_size);
  return status;
}

bool FakeBackend::IsServing() const {
  return serving_.load() && !shut_down_.load();
}

void FakeBackend::Shutdown() { shut_down_.store(true); }

void FakeBackend::SetServing(bool serving, std::string reason) {
  std::lock_guard<std::mutex> lock(mu_);
  state_reason_ = std::move(reason);
  serving_.store(serving);
}

void FakeBackend::FailNext(absl::string_view method, absl::Status status,
                           int count) {
  std::lock_guard<std::mutex> lock(mu_);
  if (count == 0) {
    faults_.erase(method);
    return;
  }
  faults_[method] = Fault{std::move(status), count};
}

void FakeBackend::SetDelay(absl::string_view method, absl::Duration delay) {
  std::lock_guard<std::mutex> lock(mu_);
  delays_[method] = delay;
}

void FakeBackend::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.clear();
  delays_.clear();
}

void FakeBackend::SetCallHook(std::function<void(absl::string_view)> hook) {
  std::lock_guard<std::mutex> lock(mu_);
  hook_ = std::move(hook);
}

uint64_t FakeBackend::CallCount(absl::string_view method) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = calls_.find(method);
  return it == calls_.end() ? 0 : it->second;
}

bool FakeBackend::shut_down() const { return shut_down_.load(); }

}  // namespace hsmd::backend
