#include "daemon/backend/sdf/operations.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/backend/sdf/sdr.h"

namespace hsmd::backend::sdf {
namespace {

unsigned char* Bytes(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}

// SDF prototypes take non-const input pointers; they do not write to them.
unsigned char* In(absl::string_view s) {
  return reinterpret_cast<unsigned char*>(const_cast<char*>(s.data()));
}

const char* SignAlgorithmName(v1::SignatureAlgorithm::AlgorithmCase c) {
  switch (c) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      return "rsa_pkcs1";
    case v1::SignatureAlgorithm::kRsaPss:
      return "rsa_pss";
    case v1::SignatureAlgorithm::kEcdsa:
      return "ecdsa";
    case v1::SignatureAlgorithm::kEd25519:
      return "ed25519";
    case v1::SignatureAlgorithm::kSm2:
      return "sm2";
    default:
      return "unset";
  }
}

const char* DecryptAlgorithmName(v1::DecryptionAlgorithm::AlgorithmCase c) {
  switch (c) {
    case v1::DecryptionAlgorithm::kRsaPkcs1:
      return "rsa_pkcs1";
    case v1::DecryptionAlgorithm::kRsaOaep:
      return "rsa_oaep";
    case v1::DecryptionAlgorithm::kSm2:
      return "sm2";
    case v1::DecryptionAlgorithm::kSm4:
      return "sm4";
    default:
      return "unset";
  }
}

absl::Status DoesNotFit(absl::string_view algorithm, const KeyEntry& key) {
  return absl::InvalidArgumentError(
      absl::StrCat("algorithm ", algorithm, " does not fit key type ",
                   KeyTypeName(key.key.key_type()), " (", key.key.uri(), ")"));
}

absl::Status NotAllowed(const KeyEntry& key, absl::string_view what,
                        absl::string_view use_instead) {
  return absl::FailedPreconditionError(
      absl::StrCat(key.key.uri(), " does not allow ", what, " (it is the ",
                   UsageName(key.usage), " key at index ", key.index,
                   "; use usage=", use_instead, ")"));
}

absl::StatusOr<std::string> Sm3(absl::string_view a, absl::string_view b) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  std::string out(EVP_MAX_MD_SIZE, '\0');
  unsigned int len = 0;
  if (ctx == nullptr || EVP_DigestInit_ex(ctx.get(), EVP_sm3(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), b.data(), b.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), Bytes(out), &len) != 1 ||
      len != kSm3DigestBytes) {
    return absl::InternalError("SM3 is not available from OpenSSL");
  }
  out.resize(len);
  return out;
}

}  // namespace

absl::string_view KeyTypeName(v1::KeyType type) {
  switch (type) {
    case v1::KEY_TYPE_SM2:
      return "SM2";
    case v1::KEY_TYPE_SM4:
      return "SM4";
    case v1::KEY_TYPE_RSA:
      return "RSA";
    case v1::KEY_TYPE_EC:
      return "EC";
    case v1::KEY_TYPE_ED25519:
      return "Ed25519";
    default:
      return "unspecified";
  }
}

absl::StatusOr<std::string> PlanSign(const KeyEntry& key,
                                     const v1::SignRequest& request) {
  const auto algorithm = request.algorithm().algorithm_case();
  if (algorithm == v1::SignatureAlgorithm::ALGORITHM_NOT_SET) {
    return absl::InvalidArgumentError(
        "signature algorithm is missing (SDF keys sign with sm2)");
  }
  if (algorithm != v1::SignatureAlgorithm::kSm2 ||
      key.key.key_type() != v1::KEY_TYPE_SM2) {
    return DoesNotFit(SignAlgorithmName(algorithm), key);
  }
  if (key.usage != KeyUsage::kSign) return NotAllowed(key, "signing", "sign");
  switch (request.input_case()) {
    case v1::SignRequest::kDigest:
      if (request.digest().size() != kSm3DigestBytes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "digest is ", request.digest().size(),
            " bytes; an SM2 digest e = SM3(Z || M) is 32 (or send the "
            "message and the distinguishing ID)"));
      }
      return request.digest();
    case v1::SignRequest::kMessage:
      break;
    default:
      return absl::InvalidArgumentError(
          "input is missing: set message or digest");
  }
  if (request.message().empty()) {
    return absl::InvalidArgumentError("message is empty");
  }
  const std::string& id = request.algorithm().sm2().distinguishing_id();
  if (id.size() > kSm2MaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("sm2 distinguishing_id is ", id.size(), " bytes; at most ",
                     kSm2MaxIdBytes, " fit ENTL"));
  }
  absl::StatusOr<std::string> z = softsdf::Sm2Z(
      key.public_key,
      id.empty() ? absl::string_view(kSm2DefaultId) : absl::string_view(id));
  if (!z.ok()) {
    return absl::InternalError(absl::StrCat("computing Z for ", key.key.uri(),
                                            ": ", z.status().message()));
  }
  return Sm3(*z, request.message());
}

absl::StatusOr<std::string> InternalSign(const SdfFunctions& fns, void* session,
                                         uint32_t index, absl::string_view e) {
  ECCSignature signature;
  std::memset(&signature, 0, sizeof(signature));
  const int rc = fns.InternalSign_ECC(
      session, index, In(e), static_cast<unsigned int>(e.size()), &signature);
  if (rc != SDR_OK) {
    return SdfError(rc, "SDF_InternalSign_ECC",
                    absl::StrCat("signing with key index ", index));
  }
  absl::StatusOr<std::string> der = softsdf::SignatureToDer(signature);
  if (!der.ok()) {
    return absl::InternalError(
        absl::StrCat("the device returned a malformed signature (key index ",
                     index, "): ", der.status().message()));
  }
  return der;
}

absl::Status CheckDecrypt(const KeyEntry& key,
                          const v1::DecryptRequest& request) {
  const auto algorithm = request.algorithm().algorithm_case();
  if (algorithm == v1::DecryptionAlgorithm::ALGORITHM_NOT_SET) {
    return absl::InvalidArgumentError(
        "decryption algorithm is missing (sm2 or sm4 for SDF keys)");
  }
  const bool fits = (algorithm == v1::DecryptionAlgorithm::kSm2 &&
                     key.key.key_type() == v1::KEY_TYPE_SM2) ||
                    (algorithm == v1::DecryptionAlgorithm::kSm4 &&
                     key.key.key_type() == v1::KEY_TYPE_SM4);
  if (!fits) return DoesNotFit(DecryptAlgorithmName(algorithm), key);
  if (key.usage == KeyUsage::kSign) {
    return NotAllowed(key, "decryption", "enc");
  }
  if (request.ciphertext().empty()) {
    return absl::InvalidArgumentError("ciphertext is empty");
  }
  return absl::OkStatus();
}

absl::StatusOr<softsdf::EccCipherBuffer> ParseSm2Ciphertext(
    absl::string_view ciphertext) {
  absl::StatusOr<softsdf::EccCipherBuffer> cipher =
      softsdf::CipherFromDer(ciphertext);
  if (!cipher.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ciphertext: ", cipher.status().message(),
        " (expected OpenSSL's SM2 ciphertext: DER SEQUENCE { x, y, hash, "
        "ciphertext })"));
  }
  return cipher;
}

absl::StatusOr<std::string> InternalDecrypt(const SdfFunctions& fns,
                                            const Library& library,
                                            void* session, uint32_t index,
                                            uint32_t alg_id,
                                            softsdf::EccCipherBuffer& cipher) {
  if (fns.InternalDecrypt_ECC == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat(library.Missing("SDF_InternalDecrypt_ECC"),
                     ": SM2 decryption is not available"));
  }
  const unsigned int length = cipher.get()->L;
  std::string plaintext(length, '\0');
  unsigned int out_length = 0;
  const int rc = fns.InternalDecrypt_ECC(session, index, alg_id, cipher.get(),
                                         Bytes(plaintext), &out_length);
  if (rc != SDR_OK) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return SdfError(rc, "SDF_InternalDecrypt_ECC",
                    absl::StrCat("decrypting with key index ", index));
  }
  if (out_length > length) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return absl::InternalError(absl::StrCat(
        "SDF_InternalDecrypt_ECC reported ", out_length,
        " plaintext bytes for a ", length, "-byte ciphertext body"));
  }
  plaintext.resize(out_length);
  return plaintext;
}

absl::StatusOr<Sm4Plan> PlanSm4(const KeyEntry& key,
                                const v1::Sm4Cipher& cipher,
                                absl::string_view data, bool encrypt) {
  if (key.key.key_type() != v1::KEY_TYPE_SM4) return DoesNotFit("sm4", key);
  Sm4Plan plan;
  plan.encrypt = encrypt;
  const absl::string_view what = encrypt ? "plaintext" : "ciphertext";
  switch (cipher.mode()) {
    case v1::CIPHER_MODE_ECB:
      if (!cipher.iv().empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sm4 iv is ", cipher.iv().size(), " bytes; ECB takes none"));
      }
      break;
    case v1::CIPHER_MODE_CBC:
      if (cipher.iv().size() != kSm4BlockSize) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sm4 iv is ", cipher.iv().size(), " bytes; CBC needs 16"));
      }
      plan.cbc = true;
      plan.iv = cipher.iv();
      break;
    default:
      return absl::InvalidArgumentError(
          "sm4 mode is missing or unknown (CIPHER_MODE_ECB or "
          "CIPHER_MODE_CBC)");
  }
  if (data.empty())
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (data.size() % kSm4BlockSize != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", data.size(),
        " bytes; SM4 without padding needs a multiple of 16 (pad it, e.g. "
        "PKCS#7)"));
  }
  return plan;
}

absl::StatusOr<std::string> RunSm4(const SdfFunctions& fns, void* session,
                                   void* key_handle, uint32_t alg_id,
                                   const Sm4Plan& plan, absl::string_view data,
                                   size_t chunk) {
  chunk = std::max(kSm4BlockSize, chunk - chunk % kSm4BlockSize);
  std::string out(data.size(), '\0');
  std::string iv = plan.iv;
  for (size_t offset = 0; offset < data.size(); offset += chunk) {
    const size_t n = std::min(chunk, data.size() - offset);
    // A copy: vendors differ in whether (and how) they update it.
    unsigned char iv_buffer[kSm4BlockSize] = {0};
    if (plan.cbc) std::memcpy(iv_buffer, iv.data(), kSm4BlockSize);
    unsigned int out_length = 0;
    unsigned char* in = In(data.substr(offset, n));
    unsigned char* dst = Bytes(out) + offset;
    const int rc =
        plan.encrypt
            ? fns.Encrypt(session, key_handle, alg_id, iv_buffer, in,
                          static_cast<unsigned int>(n), dst, &out_length)
            : fns.Decrypt(session, key_handle, alg_id, iv_buffer, in,
                          static_cast<unsigned int>(n), dst, &out_length);
    if (rc != SDR_OK) {
      OPENSSL_cleanse(out.data(), out.size());
      return SdfError(rc, plan.encrypt ? "SDF_Encrypt" : "SDF_Decrypt");
    }
    if (out_length != n) {
      OPENSSL_cleanse(out.data(), out.size());
      return absl::InternalError(
          absl::StrCat(plan.encrypt ? "SDF_Encrypt" : "SDF_Decrypt",
                       " returned ", out_length, " bytes for ", n,
                       " (SM4 without padding keeps the "
                       "length)"));
    }
    if (plan.cbc) {
      // The next piece chains from the last ciphertext block.
      const char* last = plan.encrypt
                             ? out.data() + offset + n - kSm4BlockSize
                             : data.data() + offset + n - kSm4BlockSize;
      iv.assign(last, kSm4BlockSize);
    }
  }
  return out;
}

absl::StatusOr<std::string> GenerateRandom(const SdfFunctions& fns,
                                           void* session, uint32_t length,
                                           size_t chunk) {
  chunk = std::max<size_t>(chunk, 1);
  std::string out(length, '\0');
  for (size_t offset = 0; offset < out.size(); offset += chunk) {
    const size_t n = std::min(chunk, out.size() - offset);
    const int rc = fns.GenerateRandom(session, static_cast<unsigned int>(n),
                                      Bytes(out) + offset);
    if (rc != SDR_OK) return SdfError(rc, "SDF_GenerateRandom");
  }
  return out;
}

}  // namespace hsmd::backend::sdf
