#include "proxy_provider/mechanisms.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "proxy_provider/algorithms.h"
#include "proxy_provider/errors.h"

namespace hsmd::proxy {

absl::StatusOr<Digest> LookupDigest(OSSL_LIB_CTX* libctx,
                                    absl::string_view name) {
  std::string name_string(name);
  ERR_set_mark();
  EvpMdPtr md(EVP_MD_fetch(libctx, name_string.c_str(), kDefaultProviderQuery));
  ERR_pop_to_mark();
  if (md == nullptr) {
    return UnsupportedError(absl::StrCat("unknown digest \"", name, "\""));
  }
  Digest digest;
  digest.size = static_cast<size_t>(EVP_MD_get_size(md.get()));
  digest.name = EVP_MD_get0_name(md.get());
  static constexpr struct {
    const char* name;
    v1::HashAlgorithm hash;
  } kHashes[] = {
      {"SHA1", v1::HASH_ALGORITHM_SHA1},
      {"SHA224", v1::HASH_ALGORITHM_SHA224},
      {"SHA256", v1::HASH_ALGORITHM_SHA256},
      {"SHA384", v1::HASH_ALGORITHM_SHA384},
      {"SHA512", v1::HASH_ALGORITHM_SHA512},
      {"MD5-SHA1", v1::HASH_ALGORITHM_MD5_SHA1},
      {"SM3", v1::HASH_ALGORITHM_SM3},
  };
  for (const auto& entry : kHashes) {
    if (EVP_MD_is_a(md.get(), entry.name)) {
      digest.hash = entry.hash;
      break;
    }
  }
  digest.md = std::move(md);
  return digest;
}

absl::StatusOr<v1::HashAlgorithm> HashForDigestLength(size_t length) {
  switch (length) {
    case 20:
      return v1::HASH_ALGORITHM_SHA1;
    case 28:
      return v1::HASH_ALGORITHM_SHA224;
    case 32:
      return v1::HASH_ALGORITHM_SHA256;
    case 48:
      return v1::HASH_ALGORITHM_SHA384;
    case 64:
      return v1::HASH_ALGORITHM_SHA512;
    default:
      return UnsupportedError(absl::StrCat(
          "cannot sign a ", length,
          "-byte digest: set the digest, or give a SHA-1/SHA-2 digest (20, "
          "28, 32, 48 or 64 bytes)"));
  }
}

absl::StatusOr<uint32_t> PssSaltLength(int setting, int modulus_bits,
                                       size_t digest_size) {
  // RFC 8017 9.1.1: emLen = ceil((modBits - 1) / 8), salt <= emLen - hLen - 2.
  if (modulus_bits < 2) return absl::InvalidArgumentError("bad RSA key size");
  size_t em_len = (static_cast<size_t>(modulus_bits) - 1 + 7) / 8;
  if (em_len < digest_size + 2) {
    return UnsupportedError(absl::StrCat("a ", modulus_bits,
                                         "-bit RSA key is too small for PSS "
                                         "with a ",
                                         digest_size, "-byte digest"));
  }
  size_t max = em_len - digest_size - 2;
  size_t salt = 0;
  switch (setting) {
    case -1:  // RSA_PSS_SALTLEN_DIGEST
      salt = digest_size;
      break;
    case -2:  // RSA_PSS_SALTLEN_AUTO: when signing, the maximum
    case -3:  // RSA_PSS_SALTLEN_MAX
      salt = max;
      break;
    case -4:  // RSA_PSS_SALTLEN_AUTO_DIGEST_MAX (OpenSSL 3.1+)
      salt = std::min(digest_size, max);
      break;
    default:
      if (setting < 0) {
        return UnsupportedError(
            absl::StrCat("unknown PSS salt length setting ", setting));
      }
      salt = static_cast<size_t>(setting);
  }
  if (salt > max) {
    return UnsupportedError(absl::StrCat(
        "PSS salt length ", salt, " is too long for a ", modulus_bits,
        "-bit key with a ", digest_size, "-byte digest (at most ", max, ")"));
  }
  return static_cast<uint32_t>(salt);
}

absl::StatusOr<std::string> EncodeDigestInfo(const EVP_MD* md,
                                             absl::string_view digest) {
  int nid = EVP_MD_get_type(md);
  if (nid == NID_undef) {
    return UnsupportedError(absl::StrCat("digest ", EVP_MD_get0_name(md),
                                         " has no OID for PKCS#1 v1.5"));
  }
  if (digest.size() != static_cast<size_t>(EVP_MD_get_size(md))) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ", EVP_MD_get0_name(md), " digest has ",
                     EVP_MD_get_size(md), " bytes, got ", digest.size()));
  }
  X509_SIG* sig = X509_SIG_new();
  if (sig == nullptr) return absl::ResourceExhaustedError("out of memory");
  X509_ALGOR* algor = nullptr;
  ASN1_OCTET_STRING* octets = nullptr;
  X509_SIG_getm(sig, &algor, &octets);
  std::string out;
  if (X509_ALGOR_set0(algor, OBJ_nid2obj(nid), V_ASN1_NULL, nullptr) == 1 &&
      ASN1_OCTET_STRING_set(
          octets, reinterpret_cast<const unsigned char*>(digest.data()),
          static_cast<int>(digest.size())) == 1) {
    unsigned char* der = nullptr;
    int length = i2d_X509_SIG(sig, &der);
    if (length > 0) {
      out.assign(reinterpret_cast<char*>(der), static_cast<size_t>(length));
      OPENSSL_free(der);
    }
  }
  X509_SIG_free(sig);
  if (out.empty()) return absl::InternalError("could not encode DigestInfo");
  return out;
}

}  // namespace hsmd::proxy
