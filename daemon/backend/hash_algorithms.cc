#include "daemon/backend/hash_algorithms.h"

namespace hsmd::backend {

absl::string_view HashName(v1::HashAlgorithm hash) {
  switch (hash) {
    case v1::HASH_ALGORITHM_SHA1:
      return "SHA-1";
    case v1::HASH_ALGORITHM_SHA224:
      return "SHA-224";
    case v1::HASH_ALGORITHM_SHA256:
      return "SHA-256";
    case v1::HASH_ALGORITHM_SHA384:
      return "SHA-384";
    case v1::HASH_ALGORITHM_SHA512:
      return "SHA-512";
    case v1::HASH_ALGORITHM_MD5_SHA1:
      return "MD5-SHA1";
    case v1::HASH_ALGORITHM_SM3:
      return "SM3";
    default:
      return "unspecified";
  }
}

size_t HashSize(v1::HashAlgorithm hash) {
  switch (hash) {
    case v1::HASH_ALGORITHM_SHA1:
      return 20;
    case v1::HASH_ALGORITHM_SHA224:
      return 28;
    case v1::HASH_ALGORITHM_SHA256:
      return 32;
    case v1::HASH_ALGORITHM_SHA384:
      return 48;
    case v1::HASH_ALGORITHM_SHA512:
      return 64;
    case v1::HASH_ALGORITHM_MD5_SHA1:
      return 36;
    case v1::HASH_ALGORITHM_SM3:
      return 32;
    default:
      return 0;
  }
}

const EVP_MD* HashEvpMd(v1::HashAlgorithm hash) {
  switch (hash) {
    case v1::HASH_ALGORITHM_SHA1:
      return EVP_sha1();
    case v1::HASH_ALGORITHM_SHA224:
      return EVP_sha224();
    case v1::HASH_ALGORITHM_SHA256:
      return EVP_sha256();
    case v1::HASH_ALGORITHM_SHA384:
      return EVP_sha384();
    case v1::HASH_ALGORITHM_SHA512:
      return EVP_sha512();
    case v1::HASH_ALGORITHM_MD5_SHA1:
      return EVP_md5_sha1();
    default:
      return nullptr;
  }
}

}  // namespace hsmd::backend
