#include "tools/hsmctl/local_crypto.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client_lib/client.h"
#include "common/sm2.h"
#include "common/status_macros.h"
#include "tools/hsmctl/exit_codes.h"

namespace hsmd::hsmctl {
namespace {

// The newest OpenSSL error as text, clearing the queue so a later failure
// does not report a stale reason.
std::string TakeOpenSslError() {
  unsigned long code = ERR_get_error();
  std::string text;
  if (code != 0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    text = buffer;
  }
  ERR_clear_error();
  return text.empty() ? "unknown OpenSSL error" : text;
}

absl::Status OpenSslFailure(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", TakeOpenSslError()));
}

std::string BioContents(BIO* bio) {
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  return length > 0 ? std::string(data, static_cast<size_t>(length)) : "";
}

absl::StatusOr<EvpMdPtr> FetchDigest(v1::HashAlgorithm hash) {
  const std::string name = OpenSslDigestName(hash);
  EvpMdPtr md(EVP_MD_fetch(nullptr, name.c_str(), nullptr));
  if (md == nullptr) {
    return UsageError(absl::StrCat("OpenSSL here has no ", HashName(hash),
                                   " digest: ", TakeOpenSslError()));
  }
  return md;
}

const char* KeyKindName(const EVP_PKEY* key) {
  // SM2 keys decoded from a SubjectPublicKeyInfo have no legacy id.
  if (IsSm2Key(key)) return "an SM2 key";
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
      return "an RSA key";
    case EVP_PKEY_EC:
      return "an EC key";
    case EVP_PKEY_ED25519:
      return "an Ed25519 key";
    default:
      return "this key type";
  }
}

absl::Status CheckKeyFits(const v1::SignatureAlgorithm& alg, EVP_PKEY* key) {
  const int id = IsSm2Key(key) ? EVP_PKEY_SM2 : EVP_PKEY_get_base_id(key);
  bool fits = false;
  switch (alg.algorithm_case()) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      fits = id == EVP_PKEY_RSA;
      break;
    case v1::SignatureAlgorithm::kRsaPss:
      fits = id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS;
      break;
    case v1::SignatureAlgorithm::kEcdsa:
      fits = id == EVP_PKEY_EC;
      break;
    case v1::SignatureAlgorithm::kEd25519:
      fits = id == EVP_PKEY_ED25519;
      break;
    case v1::SignatureAlgorithm::kSm2:
      fits = id == EVP_PKEY_SM2;
      break;
    case v1::SignatureAlgorithm::ALGORITHM_NOT_SET:
      break;
  }
  if (!fits) {
    return UsageError(absl::StrCat(DescribeSignatureAlgorithm(alg),
                                   " cannot be used with ", KeyKindName(key)));
  }
  return absl::OkStatus();
}

int PssSaltLength(const SaltLength& salt) {
  switch (salt.kind) {
    case SaltLength::kExplicit:
      return static_cast<int>(salt.bytes);
    case SaltLength::kMax:
      return RSA_PSS_SALTLEN_MAX;
    case SaltLength::kAuto:
      return RSA_PSS_SALTLEN_AUTO;
    case SaltLength::kDigest:
      break;
  }
  return RSA_PSS_SALTLEN_DIGEST;
}

absl::StatusOr<bool> VerifyEd25519(EVP_PKEY* key, absl::string_view message,
                                   absl::string_view signature) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1) {
    return OpenSslFailure("cannot set up Ed25519 verification");
  }
  int rc = EVP_DigestVerify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
      signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
      message.size());
  ERR_clear_error();
  return rc == 1;
}

// SM2 verification the way `openssl pkeyutl -verify -rawin -digest sm3`
// does it: OpenSSL computes Z from the ID and e itself, so this checks
// hsmctl's own Z (used when signing) independently.
absl::StatusOr<bool> VerifySm2(EVP_PKEY* key, const SignOptions& options,
                               absl::string_view input,
                               absl::string_view signature) {
  const auto* sig = reinterpret_cast<const unsigned char*>(signature.data());
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  int rc = 0;
  if (options.digest_input) {
    // The input is e: verify it as is.
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
    if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) != 1) {
      return OpenSslFailure("cannot set up SM2 verification");
    }
    rc = EVP_PKEY_verify(ctx.get(), sig, signature.size(), in, input.size());
  } else {
    EvpMdCtxPtr ctx(EVP_MD_CTX_new());
    // Owned by `ctx`. The ID may be set until the first input is hashed.
    EVP_PKEY_CTX* pctx = nullptr;
    if (ctx == nullptr ||
        EVP_DigestVerifyInit_ex(ctx.get(), &pctx, "SM3", nullptr, nullptr, key,
                                nullptr) != 1 ||
        EVP_PKEY_CTX_set1_id(pctx, options.sm2_id.data(),
                             options.sm2_id.size()) != 1) {
      return OpenSslFailure("cannot set up SM2 verification with SM3");
    }
    rc = EVP_DigestVerify(ctx.get(), sig, signature.size(), in, input.size());
  }
  // A malformed signature is just a non-match.
  ERR_clear_error();
  return rc == 1;
}

}  // namespace

absl::StatusOr<EvpPkeyPtr> ParsePublicKeyDer(absl::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (key == nullptr) {
    return OpenSslFailure(
        "the key's public_key_der is not a valid DER "
        "SubjectPublicKeyInfo");
  }
  return key;
}

absl::StatusOr<EvpPkeyPtr> PublicKeyOf(const v1::Key& key) {
  if (key.public_key_der().empty()) {
    return UsageError(absl::StrCat(key.uri(), " is ", DescribeKeyType(key),
                                   ", a key without a public half"));
  }
  return ParsePublicKeyDer(key.public_key_der());
}

absl::StatusOr<std::string> PublicKeyDerFromFile(absl::string_view what,
                                                 absl::string_view data) {
  EvpPkeyPtr key;
  if (absl::StartsWith(data, "-----BEGIN")) {
    BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    if (bio != nullptr) {
      key.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
    }
  } else {
    const unsigned char* p =
        reinterpret_cast<const unsigned char*>(data.data());
    key.reset(d2i_PUBKEY(nullptr, &p, static_cast<long>(data.size())));
  }
  ERR_clear_error();
  if (key == nullptr) {
    return UsageError(absl::StrCat(
        what,
        ": not a public key (PEM \"-----BEGIN PUBLIC KEY-----\" or DER "
        "SubjectPublicKeyInfo, as `openssl pkey -pubout` writes)"));
  }
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key.get(), &der);
  if (length <= 0) return OpenSslFailure("cannot DER-encode the public key");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> PublicKeyDerToPem(absl::string_view der) {
  ASSIGN_OR_RETURN(EvpPkeyPtr key, ParsePublicKeyDer(der));
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) {
    return OpenSslFailure("cannot PEM-encode the public key");
  }
  return BioContents(bio.get());
}

absl::StatusOr<CertificateSummary> SummarizeCertificate(absl::string_view der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509Ptr cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (cert == nullptr) {
    return OpenSslFailure(
        "the key's certificate_der is not a valid X.509 "
        "certificate");
  }
  CertificateSummary summary;
  auto print = [](auto&& fn) -> absl::StatusOr<std::string> {
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (bio == nullptr || fn(bio.get()) <= 0) {
      return OpenSslFailure("cannot print the certificate");
    }
    return BioContents(bio.get());
  };
  ASSIGN_OR_RETURN(summary.subject, print([&](BIO* b) {
                     return X509_NAME_print_ex(
                         b, X509_get_subject_name(cert.get()), 0,
                         XN_FLAG_RFC2253);
                   }));
  ASSIGN_OR_RETURN(summary.issuer, print([&](BIO* b) {
                     return X509_NAME_print_ex(b,
                                               X509_get_issuer_name(cert.get()),
                                               0, XN_FLAG_RFC2253);
                   }));
  ASSIGN_OR_RETURN(summary.not_before, print([&](BIO* b) {
                     return ASN1_TIME_print(b, X509_get0_notBefore(cert.get()));
                   }));
  ASSIGN_OR_RETURN(summary.not_after, print([&](BIO* b) {
                     return ASN1_TIME_print(b, X509_get0_notAfter(cert.get()));
                   }));
  ASSIGN_OR_RETURN(summary.pem, print([&](BIO* b) {
                     return PEM_write_bio_X509(b, cert.get());
                   }));
  return summary;
}

absl::Status CheckDigestInput(const SignOptions& options,
                              absl::string_view input) {
  if (!options.digest_input) return absl::OkStatus();
  v1::HashAlgorithm hash = v1::HASH_ALGORITHM_UNSPECIFIED;
  switch (options.algorithm.algorithm_case()) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      hash = options.algorithm.rsa_pkcs1().hash();
      break;
    case v1::SignatureAlgorithm::kRsaPss:
      hash = options.algorithm.rsa_pss().hash();
      break;
    case v1::SignatureAlgorithm::kEcdsa:
      hash = options.algorithm.ecdsa().hash();
      break;
    case v1::SignatureAlgorithm::kSm2:
      if (input.size() != client::kSm3DigestBytes) {
        return UsageError(absl::StrCat("--digest-input: the input is ",
                                       input.size(),
                                       " bytes but sm2 takes e = SM3(Z || M), ",
                                       client::kSm3DigestBytes, " bytes"));
      }
      return absl::OkStatus();
    default:
      break;
  }
  if (hash == v1::HASH_ALGORITHM_UNSPECIFIED) {
    if (input.empty()) return UsageError("the input DigestInfo is empty");
    return absl::OkStatus();
  }
  if (input.size() != HashSize(hash)) {
    return UsageError(
        absl::StrCat("--digest-input: the input is ", input.size(),
                     " bytes but a ", HashName(hash), " digest is ",
                     HashSize(hash), " (pick the matching --hash)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> VerifySignature(EVP_PKEY* public_key,
                                     const SignOptions& options,
                                     absl::string_view input,
                                     absl::string_view signature) {
  const v1::SignatureAlgorithm& alg = options.algorithm;
  RETURN_IF_ERROR(CheckKeyFits(alg, public_key));
  RETURN_IF_ERROR(CheckDigestInput(options, input));
  if (alg.has_ed25519()) return VerifyEd25519(public_key, input, signature);
  if (alg.has_sm2()) return VerifySm2(public_key, options, input, signature);

  v1::HashAlgorithm hash = v1::HASH_ALGORITHM_UNSPECIFIED;
  if (alg.has_rsa_pkcs1()) hash = alg.rsa_pkcs1().hash();
  if (alg.has_rsa_pss()) hash = alg.rsa_pss().hash();
  if (alg.has_ecdsa()) hash = alg.ecdsa().hash();

  EvpMdPtr md;
  std::string digest;
  if (hash != v1::HASH_ALGORITHM_UNSPECIFIED) {
    ASSIGN_OR_RETURN(md, FetchDigest(hash));
    if (options.digest_input) {
      digest = std::string(input);
    } else {
      unsigned char out[EVP_MAX_MD_SIZE];
      unsigned int out_len = 0;
      if (EVP_Digest(input.data(), input.size(), out, &out_len, md.get(),
                     nullptr) != 1) {
        return OpenSslFailure("cannot hash the input");
      }
      digest.assign(reinterpret_cast<char*>(out), out_len);
    }
  } else {
    // Raw rsa-pkcs1: the input is the complete DigestInfo.
    digest = std::string(input);
  }

  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, public_key, nullptr));
  if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) != 1) {
    return OpenSslFailure("cannot set up verification");
  }
  if (alg.has_rsa_pkcs1() &&
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) {
    return OpenSslFailure("cannot select PKCS#1 v1.5 padding");
  }
  if (alg.has_rsa_pss()) {
    const v1::RsaPssSignature& pss = alg.rsa_pss();
    v1::HashAlgorithm mgf1 = pss.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                                 ? pss.hash()
                                 : pss.mgf1_hash();
    ASSIGN_OR_RETURN(EvpMdPtr mgf1_md, FetchDigest(mgf1));
    SaltLength salt = options.salt;
    if (salt.kind == SaltLength::kDigest && pss.has_salt_length()) {
      salt.kind = SaltLength::kExplicit;
      salt.bytes = pss.salt_length();
    }
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx.get(), md.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1_md.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), PssSaltLength(salt)) != 1) {
      return UsageError(absl::StrCat("rsa-pss parameters rejected by OpenSSL: ",
                                     TakeOpenSslError()));
    }
  } else if (md != nullptr &&
             EVP_PKEY_CTX_set_signature_md(ctx.get(), md.get()) != 1) {
    return UsageError(absl::StrCat(
        HashName(hash), " cannot be used with this key: ", TakeOpenSslError()));
  }
  int rc = EVP_PKEY_verify(
      ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
      signature.size(), reinterpret_cast<const unsigned char*>(digest.data()),
      digest.size());
  // A malformed signature (wrong length, bad DER) is just a non-match.
  ERR_clear_error();
  return rc == 1;
}

absl::StatusOr<std::string> EncryptWithPublicKey(
    EVP_PKEY* public_key, const v1::DecryptionAlgorithm& alg,
    absl::string_view plaintext) {
  if (alg.has_sm4()) {
    return UsageError("sm4 is a symmetric cipher: it has no public key");
  }
  if (alg.has_sm2()) {
    if (!IsSm2Key(public_key)) {
      return UsageError(absl::StrCat("SM2 encryption cannot be used with ",
                                     KeyKindName(public_key)));
    }
    if (plaintext.empty()) {
      return UsageError("the plaintext is empty; SM2 encrypts 1 byte or more");
    }
  } else if (EVP_PKEY_get_base_id(public_key) != EVP_PKEY_RSA ||
             IsSm2Key(public_key)) {
    return UsageError(absl::StrCat("RSA encryption cannot be used with ",
                                   KeyKindName(public_key)));
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, public_key, nullptr));
  if (ctx == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1) {
    return OpenSslFailure("cannot set up encryption");
  }
  if (alg.has_sm2()) {
    // OpenSSL's SM2 output is the DER SEQUENCE { x, y, hash, ciphertext }
    // (C1 || C3 || C2) that `openssl pkeyutl -encrypt` writes and hsmd's
    // Sm2Decryption takes.
  } else if (alg.has_rsa_oaep()) {
    const v1::RsaOaepDecryption& oaep = alg.rsa_oaep();
    v1::HashAlgorithm mgf1 = oaep.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                                 ? oaep.hash()
                                 : oaep.mgf1_hash();
    ASSIGN_OR_RETURN(EvpMdPtr md, FetchDigest(oaep.hash()));
    ASSIGN_OR_RETURN(EvpMdPtr mgf1_md, FetchDigest(mgf1));
    if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), md.get()) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1_md.get()) != 1) {
      return UsageError(
          absl::StrCat("rsa-oaep parameters rejected: ", TakeOpenSslError()));
    }
    if (!oaep.label().empty()) {
      // OpenSSL takes ownership of an OPENSSL_malloc'd label.
      void* label = OPENSSL_memdup(oaep.label().data(), oaep.label().size());
      if (label == nullptr ||
          EVP_PKEY_CTX_set0_rsa_oaep_label(
              ctx.get(), label, static_cast<int>(oaep.label().size())) != 1) {
        OPENSSL_free(label);
        return OpenSslFailure("cannot set the OAEP label");
      }
    }
  } else if (EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1) {
    return OpenSslFailure("cannot select PKCS#1 v1.5 padding");
  }
  const auto* in = reinterpret_cast<const unsigned char*>(plaintext.data());
  size_t out_len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &out_len, in, plaintext.size()) !=
      1) {
    return OpenSslFailure("cannot size the ciphertext");
  }
  std::string out(out_len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                       &out_len, in, plaintext.size()) != 1) {
    // The usual cause: the plaintext is too long for the key and padding.
    return UsageError(
        absl::StrCat("cannot encrypt ", plaintext.size(),
                     " bytes with this key and padding: ", TakeOpenSslError()));
  }
  out.resize(out_len);
  return out;
}

}  // namespace hsmd::hsmctl
