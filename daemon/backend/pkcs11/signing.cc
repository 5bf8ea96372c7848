#include "daemon/backend/pkcs11/signing.h"

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"
#include "daemon/backend/pkcs11/ck_rv.h"
#include "daemon/backend/pkcs11/spki.h"

namespace hsmd::backend::pkcs11 {
namespace {

// DigestInfo prefixes (RFC 8017 section 9.2, note 1).
constexpr char kSha1Prefix[] =
    "\x30\x21\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00\x04\x14";
constexpr char kSha224Prefix[] =
    "\x30\x2d\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x04\x05\x00\x04"
    "\x1c";
constexpr char kSha256Prefix[] =
    "\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04"
    "\x20";
constexpr char kSha384Prefix[] =
    "\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02\x05\x00\x04"
    "\x30";
constexpr char kSha512Prefix[] =
    "\x30\x51\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x03\x05\x00\x04"
    "\x40";

const HashInfo kHashes[] = {
    {v1::HASH_ALGORITHM_SHA1, "SHA1", 20, CKM_SHA_1, CKG_MGF1_SHA1,
     absl::string_view(kSha1Prefix, sizeof(kSha1Prefix) - 1)},
    {v1::HASH_ALGORITHM_SHA224, "SHA224", 28, CKM_SHA224, CKG_MGF1_SHA224,
     absl::string_view(kSha224Prefix, sizeof(kSha224Prefix) - 1)},
    {v1::HASH_ALGORITHM_SHA256, "SHA256", 32, CKM_SHA256, CKG_MGF1_SHA256,
     absl::string_view(kSha256Prefix, sizeof(kSha256Prefix) - 1)},
    {v1::HASH_ALGORITHM_SHA384, "SHA384", 48, CKM_SHA384, CKG_MGF1_SHA384,
     absl::string_view(kSha384Prefix, sizeof(kSha384Prefix) - 1)},
    {v1::HASH_ALGORITHM_SHA512, "SHA512", 64, CKM_SHA512, CKG_MGF1_SHA512,
     absl::string_view(kSha512Prefix, sizeof(kSha512Prefix) - 1)},
};

constexpr size_t kMd5Sha1Length = 36;

std::string AlgorithmName(v1::SignatureAlgorithm::AlgorithmCase c) {
  switch (c) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      return "rsa_pkcs1";
    case v1::SignatureAlgorithm::kRsaPss:
      return "rsa_pss";
    case v1::SignatureAlgorithm::kEcdsa:
      return "ecdsa";
    case v1::SignatureAlgorithm::kEd25519:
      return "ed25519";
    default:
      return "unset";
  }
}

bool HasOperation(const v1::Key& key, v1::Operation operation) {
  for (int op : key.allowed_operations()) {
    if (op == operation) return true;
  }
  return false;
}

std::string DescribeKey(const v1::Key& key) {
  return key.label().empty() ? absl::StrCat("key ", key.key_id())
                             : absl::StrCat("key \"", key.label(), "\"");
}

absl::StatusOr<EvpMdPtr> FetchMd(const HashInfo& hash) {
  EvpMdPtr md(EVP_MD_fetch(nullptr, hash.name, nullptr));
  if (md == nullptr) {
    ERR_clear_error();
    return absl::InternalError(
        absl::StrCat("OpenSSL has no ", hash.name, " implementation"));
  }
  return md;
}

absl::StatusOr<std::string> Digest(const HashInfo& hash,
                                   absl::string_view message) {
  ASSIGN_OR_RETURN(EvpMdPtr md, FetchMd(hash));
  std::string out(EVP_MAX_MD_SIZE, '\0');
  unsigned int length = 0;
  if (EVP_Digest(message.data(), message.size(),
                 reinterpret_cast<unsigned char*>(out.data()), &length,
                 md.get(), nullptr) != 1) {
    ERR_clear_error();
    return absl::InternalError(
        absl::StrCat("computing ", hash.name, " failed"));
  }
  out.resize(length);
  return out;
}

// A hash that must be one of SHA-1..SHA-512.
absl::StatusOr<const HashInfo*> RequireHash(v1::HashAlgorithm hash,
                                            absl::string_view what) {
  if (hash == v1::HASH_ALGORITHM_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is missing"));
  }
  const HashInfo* info = FindHash(hash);
  if (info == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " ", HashName(hash),
        " is not supported here (SHA1, SHA224, SHA256, SHA384, SHA512)"));
  }
  return info;
}

// The digest to sign: the given one (length checked) or the message's.
absl::StatusOr<std::string> DigestToSign(const v1::SignRequest& request,
                                         const HashInfo& hash) {
  if (request.input_case() == v1::SignRequest::kDigest) {
    if (request.digest().size() != hash.length) {
      return absl::InvalidArgumentError(
          absl::StrCat("digest is ", request.digest().size(), " bytes; ",
                       hash.name, " digests are ", hash.length));
    }
    return request.digest();
  }
  return Digest(hash, request.message());
}

absl::StatusOr<std::string> SoftwarePssEncode(const v1::Key& key,
                                              absl::string_view digest,
                                              const HashInfo& hash,
                                              const HashInfo& mgf1,
                                              uint32_t salt_length) {
  ASSIGN_OR_RETURN(EvpPkeyPtr pkey, ParseSpki(key.public_key_der()));
  // OpenSSL 3.0 offers PSS encoding only through the (deprecated) low-level
  // RSA API; the private key is in the HSM, so the provider API cannot be
  // used for this half of the operation.
  const RSA* rsa = EVP_PKEY_get0_RSA(pkey.get());
  ASSIGN_OR_RETURN(EvpMdPtr md, FetchMd(hash));
  ASSIGN_OR_RETURN(EvpMdPtr mgf1_md, FetchMd(mgf1));
  std::string em(static_cast<size_t>(RSA_size(rsa)), '\0');
  if (rsa == nullptr ||
      RSA_padding_add_PKCS1_PSS_mgf1(
          const_cast<RSA*>(rsa), reinterpret_cast<unsigned char*>(em.data()),
          reinterpret_cast<const unsigned char*>(digest.data()), md.get(),
          mgf1_md.get(), static_cast<int>(salt_length)) != 1) {
    ERR_clear_error();
    return absl::InternalError("PSS encoding failed");
  }
  return em;
}

absl::StatusOr<SignPlan> PlanRsaPkcs1(const v1::Key& key,
                                      const v1::SignRequest& request,
                                      size_t k) {
  SignPlan plan;
  plan.mechanism_type = CKM_RSA_PKCS;
  plan.signature_length = k;
  v1::HashAlgorithm hash = request.algorithm().rsa_pkcs1().hash();
  if (hash == v1::HASH_ALGORITHM_UNSPECIFIED) {
    if (request.input_case() != v1::SignRequest::kDigest) {
      return absl::InvalidArgumentError(
          "rsa_pkcs1 without a hash signs raw data given as digest (e.g. a "
          "DER DigestInfo); message input needs a hash");
    }
    plan.data = request.digest();
  } else if (hash == v1::HASH_ALGORITHM_MD5_SHA1) {
    if (request.input_case() != v1::SignRequest::kDigest) {
      return absl::InvalidArgumentError(
          "hash MD5_SHA1 takes a 36-byte digest, not a message");
    }
    if (request.digest().size() != kMd5Sha1Length) {
      return absl::InvalidArgumentError(
          absl::StrCat("digest is ", request.digest().size(),
                       " bytes; MD5_SHA1 digests are 36"));
    }
    plan.data = request.digest();
  } else {
    ASSIGN_OR_RETURN(const HashInfo* info, RequireHash(hash, "rsa_pkcs1 hash"));
    ASSIGN_OR_RETURN(std::string digest, DigestToSign(request, *info));
    plan.data = absl::StrCat(info->digest_info_prefix, digest);
  }
  if (plan.data.size() + 11 > k) {
    return absl::InvalidArgumentError(absl::StrCat(
        "rsa_pkcs1 input is ", plan.data.size(), " bytes; a ", key.size_bits(),
        "-bit key takes at most ", k > 11 ? k - 11 : 0));
  }
  return plan;
}

absl::StatusOr<SignPlan> PlanRsaPss(const v1::Key& key,
                                    const v1::SignRequest& request, size_t k,
                                    const ModuleQuirks& quirks,
                                    bool software_pss) {
  const v1::RsaPssSignature& pss = request.algorithm().rsa_pss();
  ASSIGN_OR_RETURN(const HashInfo* hash,
                   RequireHash(pss.hash(), "rsa_pss hash"));
  const HashInfo* mgf1 = hash;
  if (pss.mgf1_hash() != v1::HASH_ALGORITHM_UNSPECIFIED) {
    ASSIGN_OR_RETURN(mgf1, RequireHash(pss.mgf1_hash(), "rsa_pss mgf1_hash"));
  }
  uint32_t salt = pss.has_salt_length() ? pss.salt_length()
                                        : static_cast<uint32_t>(hash->length);
  // emLen = ceil((modBits - 1) / 8); salt must fit beside the hash.
  size_t em_len = (key.size_bits() - 1 + 7) / 8;
  size_t max_salt = em_len >= hash->length + 2 ? em_len - hash->length - 2 : 0;
  if (salt > max_salt) {
    return absl::InvalidArgumentError(absl::StrCat(
        "salt_length ", salt, " is too large for a ", key.size_bits(),
        "-bit key with ", hash->name, " (at most ", max_salt, ")"));
  }
  ASSIGN_OR_RETURN(std::string digest, DigestToSign(request, *hash));
  SignPlan plan;
  plan.signature_length = k;
  if (software_pss ||
      (quirks.pss_mgf1_must_match_hash && mgf1->hash != hash->hash)) {
    ASSIGN_OR_RETURN(plan.data,
                     SoftwarePssEncode(key, digest, *hash, *mgf1, salt));
    plan.mechanism_type = CKM_RSA_X_509;
    return plan;
  }
  plan.mechanism_type = CKM_RSA_PKCS_PSS;
  plan.has_pss_params = true;
  plan.pss_params.hashAlg = hash->ck_hash;
  plan.pss_params.mgf = mgf1->ck_mgf1;
  plan.pss_params.sLen = salt;
  plan.data = std::move(digest);
  plan.software_fallback_possible = true;
  return plan;
}

absl::StatusOr<SignPlan> PlanEcdsa(const v1::Key& key,
                                   const v1::SignRequest& request) {
  ASSIGN_OR_RETURN(
      const HashInfo* hash,
      RequireHash(request.algorithm().ecdsa().hash(), "ecdsa hash"));
  SignPlan plan;
  plan.mechanism_type = CKM_ECDSA;
  ASSIGN_OR_RETURN(plan.data, DigestToSign(request, *hash));
  plan.signature_length = 2 * ((CurveBits(key.curve()) + 7) / 8);
  plan.der_encode_ecdsa = true;
  return plan;
}

absl::StatusOr<SignPlan> PlanEd25519(const v1::SignRequest& request) {
  if (request.input_case() != v1::SignRequest::kMessage) {
    return absl::InvalidArgumentError(
        "ed25519 signs the message itself; digest input is not supported");
  }
  SignPlan plan;
  plan.mechanism_type = CKM_EDDSA;
  plan.data = request.message();
  plan.signature_length = 64;
  return plan;
}

// C_Sign / C_Decrypt style call: a buffer of the expected size, grown once
// if the module asks for more.
template <typename Call>
absl::StatusOr<std::string> CallWithBuffer(size_t expected, Call call,
                                           absl::string_view function) {
  std::string out(expected == 0 ? 1 : expected, '\0');
  CK_ULONG length = out.size();
  CK_RV rv = call(reinterpret_cast<CK_BYTE*>(out.data()), &length);
  if (rv == CKR_BUFFER_TOO_SMALL && length > out.size() &&
      length <= 1024 * 1024) {
    out.resize(length);
    rv = call(reinterpret_cast<CK_BYTE*>(out.data()), &length);
  }
  if (rv != CKR_OK) return Pkcs11Error(rv, function);
  out.resize(length);
  return out;
}

}  // namespace

const HashInfo* FindHash(v1::HashAlgorithm hash) {
  for (const HashInfo& info : kHashes) {
    if (info.hash == hash) return &info;
  }
  return nullptr;
}

std::string HashName(v1::HashAlgorithm hash) {
  if (const HashInfo* info = FindHash(hash)) return info->name;
  switch (hash) {
    case v1::HASH_ALGORITHM_MD5_SHA1:
      return "MD5_SHA1";
    case v1::HASH_ALGORITHM_SM3:
      return "SM3";
    case v1::HASH_ALGORITHM_UNSPECIFIED:
      return "UNSPECIFIED";
    default:
      return absl::StrCat("hash#", static_cast<int>(hash));
  }
}

std::string KeyTypeName(v1::KeyType type) {
  switch (type) {
    case v1::KEY_TYPE_RSA:
      return "RSA";
    case v1::KEY_TYPE_EC:
      return "EC";
    case v1::KEY_TYPE_ED25519:
      return "ED25519";
    case v1::KEY_TYPE_SM2:
      return "SM2";
    default:
      return "UNSPECIFIED";
  }
}

CK_MECHANISM SignPlan::mechanism() {
  CK_MECHANISM mechanism{mechanism_type, nullptr, 0};
  if (has_pss_params) {
    mechanism.pParameter = &pss_params;
    mechanism.ulParameterLen = sizeof(pss_params);
  }
  return mechanism;
}

CK_MECHANISM DecryptPlan::mechanism() {
  CK_MECHANISM mechanism{mechanism_type, nullptr, 0};
  if (has_oaep_params) {
    oaep_params.pSourceData = label.empty() ? nullptr : label.data();
    oaep_params.ulSourceDataLen = label.size();
    mechanism.pParameter = &oaep_params;
    mechanism.ulParameterLen = sizeof(oaep_params);
  }
  return mechanism;
}

absl::StatusOr<SignPlan> PlanSign(const v1::Key& key,
                                  const v1::SignRequest& request,
                                  const ModuleQuirks& quirks,
                                  bool software_pss) {
  const auto algorithm = request.algorithm().algorithm_case();
  if (algorithm == v1::SignatureAlgorithm::ALGORITHM_NOT_SET) {
    return absl::InvalidArgumentError(
        "signature algorithm is missing (rsa_pkcs1, rsa_pss, ecdsa or "
        "ed25519)");
  }
  v1::KeyType wanted = v1::KEY_TYPE_UNSPECIFIED;
  switch (algorithm) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
    case v1::SignatureAlgorithm::kRsaPss:
      wanted = v1::KEY_TYPE_RSA;
      break;
    case v1::SignatureAlgorithm::kEcdsa:
      wanted = v1::KEY_TYPE_EC;
      break;
    case v1::SignatureAlgorithm::kEd25519:
      wanted = v1::KEY_TYPE_ED25519;
      break;
    default:
      break;
  }
  if (key.key_type() != wanted) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm ", AlgorithmName(algorithm),
                     " does not fit key type ", KeyTypeName(key.key_type())));
  }
  if (!HasOperation(key, v1::OPERATION_SIGN)) {
    return absl::FailedPreconditionError(absl::StrCat(
        DescribeKey(key), " does not allow signing (CKA_SIGN is false)"));
  }
  switch (request.input_case()) {
    case v1::SignRequest::kMessage:
      if (request.message().empty()) {
        return absl::InvalidArgumentError("message is empty");
      }
      break;
    case v1::SignRequest::kDigest:
      if (request.digest().empty()) {
        return absl::InvalidArgumentError("digest is empty");
      }
      break;
    default:
      return absl::InvalidArgumentError(
          "input is missing: set message or digest");
  }
  const size_t k = (key.size_bits() + 7) / 8;
  switch (algorithm) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      return PlanRsaPkcs1(key, request, k);
    case v1::SignatureAlgorithm::kRsaPss:
      return PlanRsaPss(key, request, k, quirks, software_pss);
    case v1::SignatureAlgorithm::kEcdsa:
      return PlanEcdsa(key, request);
    default:
      return PlanEd25519(request);
  }
}

absl::StatusOr<std::string> RunSign(CK_FUNCTION_LIST* fns,
                                    CK_SESSION_HANDLE session,
                                    CK_OBJECT_HANDLE key_handle,
                                    SignPlan& plan) {
  CK_MECHANISM mechanism = plan.mechanism();
  CK_RV rv = fns->C_SignInit(session, &mechanism, key_handle);
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_SignInit");
  ASSIGN_OR_RETURN(
      std::string signature,
      CallWithBuffer(
          plan.signature_length,
          [&](CK_BYTE* out, CK_ULONG* length) {
            return fns->C_Sign(
                session,
                reinterpret_cast<CK_BYTE*>(const_cast<char*>(plan.data.data())),
                plan.data.size(), out, length);
          },
          "C_Sign"));
  if (plan.der_encode_ecdsa) return EcdsaRawToDer(signature);
  return signature;
}

absl::StatusOr<DecryptPlan> PlanDecrypt(const v1::Key& key,
                                        const v1::DecryptRequest& request,
                                        const ModuleQuirks& quirks,
                                        bool software_oaep) {
  const auto algorithm = request.algorithm().algorithm_case();
  if (algorithm == v1::DecryptionAlgorithm::ALGORITHM_NOT_SET) {
    return absl::InvalidArgumentError(
        "decryption algorithm is missing (rsa_pkcs1 or rsa_oaep)");
  }
  const char* name = algorithm == v1::DecryptionAlgorithm::kRsaPkcs1
                         ? "rsa_pkcs1"
                         : "rsa_oaep";
  if (key.key_type() != v1::KEY_TYPE_RSA) {
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm ", name, " does not fit key type ",
                     KeyTypeName(key.key_type())));
  }
  if (!HasOperation(key, v1::OPERATION_DECRYPT)) {
    return absl::FailedPreconditionError(absl::StrCat(
        DescribeKey(key), " does not allow decryption (CKA_DECRYPT is false)"));
  }
  const size_t k = (key.size_bits() + 7) / 8;
  if (request.ciphertext().empty()) {
    return absl::InvalidArgumentError("ciphertext is empty");
  }
  if (request.ciphertext().size() != k) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ciphertext is ", request.ciphertext().size(), " bytes; a ",
        key.size_bits(), "-bit key needs exactly ", k));
  }
  DecryptPlan plan;
  plan.ciphertext = request.ciphertext();
  plan.modulus_bytes = k;
  if (algorithm == v1::DecryptionAlgorithm::kRsaPkcs1) {
    plan.mechanism_type = CKM_RSA_PKCS;
    return plan;
  }
  const v1::RsaOaepDecryption& oaep = request.algorithm().rsa_oaep();
  ASSIGN_OR_RETURN(plan.hash, RequireHash(oaep.hash(), "rsa_oaep hash"));
  plan.mgf1_hash = plan.hash;
  if (oaep.mgf1_hash() != v1::HASH_ALGORITHM_UNSPECIFIED) {
    ASSIGN_OR_RETURN(plan.mgf1_hash,
                     RequireHash(oaep.mgf1_hash(), "rsa_oaep mgf1_hash"));
  }
  if (2 * plan.hash->length + 2 > k) {
    return absl::InvalidArgumentError(
        absl::StrCat("rsa_oaep with ", plan.hash->name, " does not fit a ",
                     key.size_bits(), "-bit key"));
  }
  plan.label = oaep.label();
  const bool native_ok =
      !quirks.oaep_sha1_only_ignores_label ||
      (plan.hash->hash == v1::HASH_ALGORITHM_SHA1 &&
       plan.mgf1_hash->hash == v1::HASH_ALGORITHM_SHA1 && plan.label.empty());
  if (software_oaep || !native_ok) {
    plan.mechanism_type = CKM_RSA_X_509;
    plan.software_oaep = true;
    return plan;
  }
  plan.mechanism_type = CKM_RSA_PKCS_OAEP;
  plan.has_oaep_params = true;
  plan.oaep_params.hashAlg = plan.hash->ck_hash;
  plan.oaep_params.mgf = plan.mgf1_hash->ck_mgf1;
  plan.oaep_params.source = CKZ_DATA_SPECIFIED;
  plan.software_fallback_possible = true;
  return plan;
}

absl::StatusOr<std::string> RunDecrypt(CK_FUNCTION_LIST* fns,
                                       CK_SESSION_HANDLE session,
                                       CK_OBJECT_HANDLE key_handle,
                                       DecryptPlan& plan) {
  CK_MECHANISM mechanism = plan.mechanism();
  CK_RV rv = fns->C_DecryptInit(session, &mechanism, key_handle);
  if (rv != CKR_OK) return Pkcs11Error(rv, "C_DecryptInit");
  absl::StatusOr<std::string> raw = CallWithBuffer(
      plan.modulus_bytes,
      [&](CK_BYTE* out, CK_ULONG* length) {
        return fns->C_Decrypt(session,
                              reinterpret_cast<CK_BYTE*>(
                                  const_cast<char*>(plan.ciphertext.data())),
                              plan.ciphertext.size(), out, length);
      },
      "C_Decrypt");
  const absl::Status decryption_failed =
      absl::InvalidArgumentError("decryption failed");
  if (!raw.ok()) {
    std::optional<CK_RV> code = GetCkRv(raw.status());
    // Session and device trouble says nothing about the ciphertext; every
    // other failure looks the same to the caller.
    if (code.has_value() && (IsBrokenSession(*code) || IsStaleHandle(*code) ||
                             *code == CKR_USER_NOT_LOGGED_IN)) {
      return raw.status();
    }
    return decryption_failed;
  }
  if (!plan.software_oaep) return raw;

  // Raw RSA output is the k-byte encoded message; some modules drop its
  // leading zero bytes.
  std::string em = *std::move(raw);
  if (em.size() > plan.modulus_bytes) return decryption_failed;
  em.insert(0, plan.modulus_bytes - em.size(), '\0');
  EvpMdPtr md(EVP_MD_fetch(nullptr, plan.hash->name, nullptr));
  EvpMdPtr mgf1(EVP_MD_fetch(nullptr, plan.mgf1_hash->name, nullptr));
  if (md == nullptr || mgf1 == nullptr) {
    ERR_clear_error();
    return absl::InternalError("OpenSSL lacks the OAEP digests");
  }
  std::string plaintext(plan.modulus_bytes, '\0');
  int length = RSA_padding_check_PKCS1_OAEP_mgf1(
      reinterpret_cast<unsigned char*>(plaintext.data()),
      static_cast<int>(plaintext.size()),
      reinterpret_cast<const unsigned char*>(em.data()),
      static_cast<int>(em.size()), static_cast<int>(plan.modulus_bytes),
      reinterpret_cast<const unsigned char*>(plan.label.data()),
      static_cast<int>(plan.label.size()), md.get(), mgf1.get());
  OPENSSL_cleanse(em.data(), em.size());
  ERR_clear_error();
  if (length < 0) return decryption_failed;
  plaintext.resize(static_cast<size_t>(length));
  return plaintext;
}

bool IsParameterRejection(CK_RV rv) {
  return rv == CKR_MECHANISM_PARAM_INVALID || rv == CKR_ARGUMENTS_BAD ||
         rv == CKR_MECHANISM_INVALID;
}

absl::StatusOr<std::string> EcdsaRawToDer(absl::string_view raw) {
  if (raw.empty() || raw.size() % 2 != 0) {
    return absl::InternalError(absl::StrCat(
        "the HSM returned an ECDSA signature of odd length ", raw.size()));
  }
  const size_t half = raw.size() / 2;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(raw.data());
  BignumPtr r(BN_bin2bn(p, static_cast<int>(half), nullptr));
  BignumPtr s(BN_bin2bn(p + half, static_cast<int>(half), nullptr));
  EcdsaSigPtr sig(ECDSA_SIG_new());
  if (r == nullptr || s == nullptr || sig == nullptr ||
      ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError("building the ECDSA signature failed");
  }
  // ECDSA_SIG_set0 took ownership.
  r.release();
  s.release();
  int length = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (length <= 0) return absl::InternalError("encoding ECDSA signature");
  std::string der(static_cast<size_t>(length), '\0');
  unsigned char* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_ECDSA_SIG(sig.get(), &out);
  return der;
}

}  // namespace hsmd::backend::pkcs11
