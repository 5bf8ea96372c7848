#include "daemon/service/request_validation.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/backend/hash_algorithms.h"

namespace hsmd::service {
namespace {

using backend::HashName;
using backend::HashSize;

absl::Status Invalid(absl::string_view field, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

bool HasPinAttribute(absl::string_view uri) {
  std::string lower = absl::AsciiStrToLower(uri);
  return absl::StrContains(lower, "pin-value") ||
         absl::StrContains(lower, "pin-source");
}

absl::Status CheckUri(absl::string_view uri, absl::string_view field) {
  if (uri.size() > kMaxUriBytes) {
    return Invalid(field, absl::StrCat("is ", uri.size(),
                                       " bytes; the limit is ", kMaxUriBytes));
  }
  if (HasPinAttribute(uri)) {
    return Invalid(field,
                   "pin-value and pin-source are not accepted (hsmd holds the "
                   "PIN; remove them from the URI)");
  }
  return absl::OkStatus();
}

bool IsKeyId(absl::string_view id) {
  if (id.size() != 32) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status CheckSize(absl::string_view field, size_t size,
                       uint32_t max_bytes) {
  if (size > max_bytes) {
    return Invalid(field, absl::StrCat("is ", size,
                                       " bytes; the limit "
                                       "(limits.max_message_bytes) is ",
                                       max_bytes));
  }
  return absl::OkStatus();
}

// A hash that names a real digest (not UNSPECIFIED, not MD5-SHA1 unless
// allowed, not an unknown enum value).
absl::Status CheckHash(absl::string_view field, v1::HashAlgorithm hash,
                       bool allow_md5_sha1) {
  if (hash == v1::HASH_ALGORITHM_UNSPECIFIED) {
    return Invalid(field, "is required");
  }
  if (HashSize(hash) == 0) {
    return Invalid(
        field, absl::StrCat("unknown hash algorithm ", static_cast<int>(hash)));
  }
  if (hash == v1::HASH_ALGORITHM_MD5_SHA1 && !allow_md5_sha1) {
    return Invalid(field, "MD5-SHA1 is only valid for rsa_pkcs1");
  }
  return absl::OkStatus();
}

absl::Status CheckDigestLength(const v1::SignRequest& request,
                               v1::HashAlgorithm hash) {
  if (request.input_case() != v1::SignRequest::kDigest) return absl::OkStatus();
  size_t want = HashSize(hash);
  if (request.digest().size() != want) {
    return Invalid("digest", absl::StrFormat("is %d bytes; a %s digest is %d",
                                             request.digest().size(),
                                             HashName(hash), want));
  }
  return absl::OkStatus();
}

// SM4 in the HSM: the mode and its IV; `data` (the plaintext or
// ciphertext, named `data_field`) must be whole 16-byte blocks.
absl::Status CheckSm4(const v1::Sm4Cipher& sm4, absl::string_view field,
                      const std::string& data, absl::string_view data_field) {
  switch (sm4.mode()) {
    case v1::CIPHER_MODE_ECB:
      if (!sm4.iv().empty()) {
        return Invalid(absl::StrCat(field, ".iv"), "must be empty for ECB");
      }
      break;
    case v1::CIPHER_MODE_CBC:
      if (sm4.iv().size() != 16) {
        return Invalid(
            absl::StrCat(field, ".iv"),
            absl::StrCat("is ", sm4.iv().size(), " bytes; CBC needs 16"));
      }
      break;
    default:
      return Invalid(absl::StrCat(field, ".mode"), "is required (ECB or CBC)");
  }
  if (data.size() % 16 != 0) {
    return Invalid(data_field,
                   absl::StrCat("is ", data.size(),
                                " bytes; SM4 without padding needs a multiple "
                                "of 16 (pad it, e.g. PKCS#7)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateKeyRef(const v1::KeyRef& ref, absl::string_view field) {
  switch (ref.ref_case()) {
    case v1::KeyRef::kUri:
      if (ref.uri().empty()) {
        return Invalid(absl::StrCat(field, ".uri"), "must not be empty");
      }
      return CheckUri(ref.uri(), absl::StrCat(field, ".uri"));
    case v1::KeyRef::kKeyId:
      if (!IsKeyId(ref.key_id())) {
        return Invalid(absl::StrCat(field, ".key_id"),
                       "must be 32 lowercase hex digits (as ListKeys returns)");
      }
      return absl::OkStatus();
    case v1::KeyRef::REF_NOT_SET:
      break;
  }
  return Invalid(field, "a key reference (uri or key_id) is required");
}

absl::Status ValidateListKeys(const v1::ListKeysRequest& request) {
  if (absl::Status s = CheckUri(request.uri_filter(), "uri_filter"); !s.ok()) {
    return s;
  }
  if (request.label().size() > kMaxLabelBytes) {
    return Invalid("label",
                   absl::StrCat("is longer than ", kMaxLabelBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateGetKey(const v1::GetKeyRequest& request) {
  return ValidateKeyRef(request.key(), "key");
}

absl::Status ValidateSign(const v1::SignRequest& request,
                          const RequestLimits& limits) {
  if (absl::Status s = ValidateKeyRef(request.key(), "key"); !s.ok()) return s;
  const v1::SignatureAlgorithm& alg = request.algorithm();
  if (alg.algorithm_case() == v1::SignatureAlgorithm::ALGORITHM_NOT_SET) {
    return Invalid("algorithm",
                   "is required (rsa_pkcs1, rsa_pss, ecdsa, ed25519 or sm2)");
  }
  switch (request.input_case()) {
    case v1::SignRequest::kMessage:
      if (request.message().empty()) {
        return Invalid("message", "must not be empty");
      }
      if (absl::Status s = CheckSize("message", request.message().size(),
                                     limits.max_message_bytes);
          !s.ok()) {
        return s;
      }
      break;
    case v1::SignRequest::kDigest:
      if (request.digest().empty()) {
        return Invalid("digest", "must not be empty");
      }
      if (absl::Status s = CheckSize("digest", request.digest().size(),
                                     limits.max_message_bytes);
          !s.ok()) {
        return s;
      }
      break;
    case v1::SignRequest::INPUT_NOT_SET:
      return Invalid("input", "message or digest is required");
  }
  switch (alg.algorithm_case()) {
    case v1::SignatureAlgorithm::kRsaPkcs1: {
      v1::HashAlgorithm hash = alg.rsa_pkcs1().hash();
      if (hash == v1::HASH_ALGORITHM_UNSPECIFIED) {
        if (request.input_case() != v1::SignRequest::kDigest) {
          return Invalid("algorithm.rsa_pkcs1.hash",
                         "is required to sign a message (without a hash, "
                         "`digest` holds the DigestInfo to sign)");
        }
        return absl::OkStatus();
      }
      if (absl::Status s = CheckHash("algorithm.rsa_pkcs1.hash", hash, true);
          !s.ok()) {
        return s;
      }
      if (hash == v1::HASH_ALGORITHM_MD5_SHA1 &&
          request.input_case() != v1::SignRequest::kDigest) {
        return Invalid("algorithm.rsa_pkcs1.hash",
                       "MD5-SHA1 takes the 36-byte digest, not a message");
      }
      return CheckDigestLength(request, hash);
    }
    case v1::SignatureAlgorithm::kRsaPss: {
      const v1::RsaPssSignature& pss = alg.rsa_pss();
      if (absl::Status s =
              CheckHash("algorithm.rsa_pss.hash", pss.hash(), false);
          !s.ok()) {
        return s;
      }
      if (pss.mgf1_hash() != v1::HASH_ALGORITHM_UNSPECIFIED) {
        if (absl::Status s = CheckHash("algorithm.rsa_pss.mgf1_hash",
                                       pss.mgf1_hash(), false);
            !s.ok()) {
          return s;
        }
      }
      return CheckDigestLength(request, pss.hash());
    }
    case v1::SignatureAlgorithm::kEcdsa: {
      v1::HashAlgorithm hash = alg.ecdsa().hash();
      if (absl::Status s = CheckHash("algorithm.ecdsa.hash", hash, false);
          !s.ok()) {
        return s;
      }
      return CheckDigestLength(request, hash);
    }
    case v1::SignatureAlgorithm::kEd25519:
      if (request.input_case() != v1::SignRequest::kMessage) {
        return Invalid("digest",
                       "ed25519 signs the message itself; send `message`");
      }
      return absl::OkStatus();
    case v1::SignatureAlgorithm::kSm2:
      if (alg.sm2().distinguishing_id().size() > kMaxLabelBytes) {
        return Invalid(
            "algorithm.sm2.distinguishing_id",
            absl::StrCat("is longer than ", kMaxLabelBytes, " bytes"));
      }
      // A digest is e = SM3(Z || M).
      return CheckDigestLength(request, v1::HASH_ALGORITHM_SM3);
    case v1::SignatureAlgorithm::ALGORITHM_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

absl::Status ValidateDecrypt(const v1::DecryptRequest& request,
                             const RequestLimits& limits) {
  if (absl::Status s = ValidateKeyRef(request.key(), "key"); !s.ok()) return s;
  const v1::DecryptionAlgorithm& alg = request.algorithm();
  switch (alg.algorithm_case()) {
    case v1::DecryptionAlgorithm::kRsaPkcs1:
      break;
    case v1::DecryptionAlgorithm::kRsaOaep: {
      const v1::RsaOaepDecryption& oaep = alg.rsa_oaep();
      if (absl::Status s =
              CheckHash("algorithm.rsa_oaep.hash", oaep.hash(), false);
          !s.ok()) {
        return s;
      }
      if (oaep.mgf1_hash() != v1::HASH_ALGORITHM_UNSPECIFIED) {
        if (absl::Status s = CheckHash("algorithm.rsa_oaep.mgf1_hash",
                                       oaep.mgf1_hash(), false);
            !s.ok()) {
          return s;
        }
      }
      if (absl::Status s =
              CheckSize("algorithm.rsa_oaep.label", oaep.label().size(),
                        limits.max_message_bytes);
          !s.ok()) {
        return s;
      }
      break;
    }
    case v1::DecryptionAlgorithm::kSm2:
      break;
    case v1::DecryptionAlgorithm::kSm4:
      if (absl::Status s = CheckSm4(alg.sm4(), "algorithm.sm4",
                                    request.ciphertext(), "ciphertext");
          !s.ok()) {
        return s;
      }
      break;
    case v1::DecryptionAlgorithm::ALGORITHM_NOT_SET:
      return Invalid("algorithm",
                     "is required (rsa_pkcs1, rsa_oaep, sm2 or sm4)");
  }
  if (request.ciphertext().empty()) {
    return Invalid("ciphertext", "must not be empty");
  }
  return CheckSize("ciphertext", request.ciphertext().size(),
                   limits.max_message_bytes);
}

absl::Status ValidateEncrypt(const v1::EncryptRequest& request,
                             const RequestLimits& limits) {
  if (absl::Status s = ValidateKeyRef(request.key(), "key"); !s.ok()) return s;
  if (request.plaintext().empty()) {
    return Invalid("plaintext", "must not be empty");
  }
  if (absl::Status s = CheckSize("plaintext", request.plaintext().size(),
                                 limits.max_message_bytes);
      !s.ok()) {
    return s;
  }
  const v1::EncryptionAlgorithm& alg = request.algorithm();
  switch (alg.algorithm_case()) {
    case v1::EncryptionAlgorithm::kSm4:
      return CheckSm4(alg.sm4(), "algorithm.sm4", request.plaintext(),
                      "plaintext");
    case v1::EncryptionAlgorithm::ALGORITHM_NOT_SET:
      break;
  }
  return Invalid("algorithm",
                 "is required (sm4; public-key encryption needs no HSM)");
}

absl::Status ValidateDerive(const v1::DeriveRequest& request) {
  if (absl::Status s = ValidateKeyRef(request.key(), "key"); !s.ok()) return s;
  switch (request.algorithm_case()) {
    case v1::DeriveRequest::kEcdh:
      break;
    case v1::DeriveRequest::ALGORITHM_NOT_SET:
      return Invalid("algorithm", "is required (ecdh)");
  }
  const std::string& peer = request.ecdh().peer_public_key();
  if (peer.empty()) {
    return Invalid("ecdh.peer_public_key",
                   "must not be empty (DER SubjectPublicKeyInfo or EC point)");
  }
  if (absl::Status s = CheckSize("ecdh.peer_public_key", peer.size(),
                                 kMaxPeerPublicKeyBytes);
      !s.ok()) {
    return s;
  }
  // The curve check needs the key: the backend parses the rest.
  const unsigned char first = static_cast<unsigned char>(peer[0]);
  if (first != 0x30 && first != 0x02 && first != 0x03 && first != 0x04) {
    return Invalid("ecdh.peer_public_key",
                   "is neither a DER SubjectPublicKeyInfo (0x30...) nor an "
                   "SEC 1 EC point (0x04...)");
  }
  return absl::OkStatus();
}

absl::Status ValidateGenerateRandom(const v1::GenerateRandomRequest& request,
                                    const RequestLimits& limits) {
  if (request.length() < 1 || request.length() > limits.max_random_bytes) {
    return Invalid("length",
                   absl::StrCat(request.length(), " is out of range (1..",
                                limits.max_random_bytes, ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateGenerateKey(const v1::GenerateKeyRequest& request) {
  if (request.label().empty()) return Invalid("label", "is required");
  if (request.label().size() > kMaxLabelBytes) {
    return Invalid("label",
                   absl::StrCat("is longer than ", kMaxLabelBytes, " bytes"));
  }
  if (request.id().size() > kMaxIdBytes) {
    return Invalid("id",
                   absl::StrCat("is longer than ", kMaxIdBytes, " bytes"));
  }
  switch (request.key_type()) {
    case v1::KEY_TYPE_RSA:
      if (request.rsa_bits() != 2048 && request.rsa_bits() != 3072 &&
          request.rsa_bits() != 4096) {
        return Invalid("rsa_bits", absl::StrCat(request.rsa_bits(),
                                                " is not 2048, 3072 or 4096"));
      }
      if (request.curve() != v1::CURVE_UNSPECIFIED) {
        return Invalid("curve", "must be unset for RSA keys");
      }
      break;
    case v1::KEY_TYPE_EC:
      if (request.curve() != v1::CURVE_P256 &&
          request.curve() != v1::CURVE_P384 &&
          request.curve() != v1::CURVE_P521) {
        return Invalid("curve",
                       "EC keys need CURVE_P256, CURVE_P384 or "
                       "CURVE_P521");
      }
      break;
    case v1::KEY_TYPE_ED25519:
      if (request.curve() != v1::CURVE_UNSPECIFIED &&
          request.curve() != v1::CURVE_ED25519) {
        return Invalid("curve", "must be unset or CURVE_ED25519 for Ed25519");
      }
      break;
    case v1::KEY_TYPE_SM2:
      if (request.curve() != v1::CURVE_UNSPECIFIED &&
          request.curve() != v1::CURVE_SM2) {
        return Invalid("curve", "must be unset or CURVE_SM2 for SM2");
      }
      break;
    default:
      return Invalid("key_type", "is required (RSA, EC, ED25519 or SM2)");
  }
  if (request.key_type() != v1::KEY_TYPE_RSA && request.rsa_bits() != 0) {
    return Invalid("rsa_bits", "is only valid for RSA keys");
  }
  for (int op : request.allowed_operations()) {
    if (op == v1::OPERATION_SIGN) continue;
    if (op == v1::OPERATION_DECRYPT) {
      if (request.key_type() == v1::KEY_TYPE_EC ||
          request.key_type() == v1::KEY_TYPE_ED25519) {
        return Invalid("allowed_operations",
                       "DECRYPT is only possible with RSA (or SM2) keys");
      }
      continue;
    }
    if (op == v1::OPERATION_DERIVE) {
      if (request.key_type() != v1::KEY_TYPE_EC) {
        return Invalid("allowed_operations",
                       "DERIVE (ECDH) is only possible with EC keys");
      }
      continue;
    }
    return Invalid("allowed_operations",
                   absl::StrCat(op, " is not SIGN, DECRYPT or DERIVE"));
  }
  if (request.backend().size() > 64) {
    return Invalid("backend", "is not a backend name");
  }
  return absl::OkStatus();
}

absl::Status ValidateDeleteKey(const v1::DeleteKeyRequest& request) {
  return ValidateKeyRef(request.key(), "key");
}

std::string DescribeKeyRef(const v1::KeyRef& ref) {
  switch (ref.ref_case()) {
    case v1::KeyRef::kUri: {
      std::string uri = ref.uri().substr(0, 512);
      // Blank out pin attribute values (clients sometimes paste URIs that
      // carry a PIN; the request is refused, and the PIN must not reach the
      // log either).
      std::string lower = absl::AsciiStrToLower(uri);
      for (const std::string attr : {"pin-value=", "pin-source="}) {
        size_t pos = 0;
        while ((pos = lower.find(attr, pos)) != std::string::npos) {
          size_t start = pos + attr.size();
          size_t end = lower.find_first_of(";&", start);
          if (end == std::string::npos) end = lower.size();
          uri.replace(start, end - start, "REDACTED");
          lower.replace(start, end - start, "redacted");
          pos = start;
        }
      }
      if (ref.uri().size() > 512) uri += "...";
      return uri;
    }
    case v1::KeyRef::kKeyId:
      return absl::StrCat("key_id:", ref.key_id().substr(0, 64));
    case v1::KeyRef::REF_NOT_SET:
      break;
  }
  return "";
}

}  // namespace hsmd::service

namespace hsmd::service {
namespace {

std::string Hash(v1::HashAlgorithm hash) {
  return absl::AsciiStrToLower(backend::HashName(hash));
}

std::string Sm4Mechanism(const v1::Sm4Cipher& sm4) {
  switch (sm4.mode()) {
    case v1::CIPHER_MODE_ECB:
      return "sm4-ecb";
    case v1::CIPHER_MODE_CBC:
      return "sm4-cbc";
    default:
      return "sm4";
  }
}

}  // namespace

std::string DescribeMechanism(const v1::SignRequest& request) {
  const v1::SignatureAlgorithm& alg = request.algorithm();
  std::string out;
  switch (alg.algorithm_case()) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      out = alg.rsa_pkcs1().hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                ? "rsa-pkcs1-raw"
                : absl::StrCat("rsa-pkcs1-", Hash(alg.rsa_pkcs1().hash()));
      break;
    case v1::SignatureAlgorithm::kRsaPss: {
      const v1::RsaPssSignature& pss = alg.rsa_pss();
      out = absl::StrCat("rsa-pss-", Hash(pss.hash()), "-mgf1-",
                         Hash(pss.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                                  ? pss.hash()
                                  : pss.mgf1_hash()));
      if (pss.has_salt_length()) {
        absl::StrAppend(&out, "-salt-", pss.salt_length());
      }
      break;
    }
    case v1::SignatureAlgorithm::kEcdsa:
      out = absl::StrCat("ecdsa-", Hash(alg.ecdsa().hash()));
      break;
    case v1::SignatureAlgorithm::kEd25519:
      out = "ed25519";
      break;
    case v1::SignatureAlgorithm::kSm2:
      out = "sm2-sm3";
      break;
    case v1::SignatureAlgorithm::ALGORITHM_NOT_SET:
      return "";
  }
  if (request.input_case() == v1::SignRequest::kDigest) out += "+digest";
  return out;
}

std::string DescribeMechanism(const v1::DecryptRequest& request) {
  const v1::DecryptionAlgorithm& alg = request.algorithm();
  switch (alg.algorithm_case()) {
    case v1::DecryptionAlgorithm::kRsaPkcs1:
      return "rsa-pkcs1";
    case v1::DecryptionAlgorithm::kRsaOaep: {
      const v1::RsaOaepDecryption& oaep = alg.rsa_oaep();
      return absl::StrCat(
          "rsa-oaep-", Hash(oaep.hash()), "-mgf1-",
          Hash(oaep.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                   ? oaep.hash()
                   : oaep.mgf1_hash()));
    }
    case v1::DecryptionAlgorithm::kSm2:
      return "sm2";
    case v1::DecryptionAlgorithm::kSm4:
      return Sm4Mechanism(alg.sm4());
    case v1::DecryptionAlgorithm::ALGORITHM_NOT_SET:
      break;
  }
  return "";
}

std::string DescribeMechanism(const v1::EncryptRequest& request) {
  if (request.algorithm().has_sm4()) {
    return Sm4Mechanism(request.algorithm().sm4());
  }
  return "";
}

std::string DescribeMechanism(const v1::DeriveRequest& request) {
  return request.has_ecdh() ? "ecdh" : "";
}

}  // namespace hsmd::service
