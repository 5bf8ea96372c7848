#include "tools/hsmctl/algorithms.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client_lib/client.h"
#include "common/status_macros.h"
#include "tools/hsmctl/args.h"

namespace hsmd::hsmctl {
namespace {

struct HashInfo {
  v1::HashAlgorithm hash;
  const char* name;  // hsmctl's name
  size_t size;
  const char* openssl_name;
};

constexpr HashInfo kHashes[] = {
    {v1::HASH_ALGORITHM_SHA1, "sha1", 20, "SHA1"},
    {v1::HASH_ALGORITHM_SHA224, "sha224", 28, "SHA224"},
    {v1::HASH_ALGORITHM_SHA256, "sha256", 32, "SHA256"},
    {v1::HASH_ALGORITHM_SHA384, "sha384", 48, "SHA384"},
    {v1::HASH_ALGORITHM_SHA512, "sha512", 64, "SHA512"},
    {v1::HASH_ALGORITHM_MD5_SHA1, "md5-sha1", 36, "MD5-SHA1"},
    {v1::HASH_ALGORITHM_SM3, "sm3", 32, "SM3"},
};

const HashInfo* FindHash(v1::HashAlgorithm hash) {
  for (const HashInfo& info : kHashes) {
    if (info.hash == hash) return &info;
  }
  return nullptr;
}

// Lowercase, '_' as '-', so "RSA_PSS" and "rsa-pss" are the same name.
std::string Normalize(absl::string_view name) {
  return absl::StrReplaceAll(absl::AsciiStrToLower(name), {{"_", "-"}});
}

enum class Scheme { kRsaPkcs1, kRsaPss, kEcdsa, kEd25519, kSm2 };

struct SchemeName {
  const char* name;
  Scheme scheme;
};

constexpr SchemeName kSchemes[] = {
    {"rsa-pkcs1", Scheme::kRsaPkcs1},
    {"pkcs1", Scheme::kRsaPkcs1},
    {"rsa-pkcs1v15", Scheme::kRsaPkcs1},
    {"rsassa-pkcs1-v1-5", Scheme::kRsaPkcs1},
    {"rsa-pss", Scheme::kRsaPss},
    {"pss", Scheme::kRsaPss},
    {"rsassa-pss", Scheme::kRsaPss},
    {"ecdsa", Scheme::kEcdsa},
    {"ed25519", Scheme::kEd25519},
    {"eddsa", Scheme::kEd25519},
    {"sm2", Scheme::kSm2},
};

constexpr absl::string_view kSchemeHelp =
    "rsa-pkcs1, rsa-pss, ecdsa, ed25519, sm2 (optionally with a hash suffix, "
    "e.g. rsa-pkcs1-sha256, ecdsa-sha384, sm2-sm3)";

absl::optional<Scheme> FindScheme(absl::string_view name) {
  for (const SchemeName& s : kSchemes) {
    if (name == s.name) return s.scheme;
  }
  return absl::nullopt;
}

// Splits "ecdsa-sha256" / "ecdsa-with-sha256" into scheme and hash.
absl::StatusOr<std::pair<Scheme, absl::optional<v1::HashAlgorithm>>>
ParseSchemeName(absl::string_view alg) {
  std::string name = Normalize(alg);
  if (absl::optional<Scheme> scheme = FindScheme(name)) {
    return std::make_pair(*scheme, absl::optional<v1::HashAlgorithm>());
  }
  for (const HashInfo& info : kHashes) {
    for (absl::string_view sep : {"-with-", "-"}) {
      std::string suffix = absl::StrCat(sep, info.name);
      if (!absl::EndsWith(name, suffix)) continue;
      absl::string_view base =
          absl::string_view(name).substr(0, name.size() - suffix.size());
      absl::optional<Scheme> scheme = FindScheme(base);
      if (scheme.has_value() && *scheme != Scheme::kEd25519) {
        return std::make_pair(*scheme,
                              absl::optional<v1::HashAlgorithm>(info.hash));
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--alg: unknown signature algorithm '", alg, "'; use ", kSchemeHelp));
}

absl::StatusOr<SaltLength> ParseSaltLength(absl::string_view text) {
  std::string name = Normalize(text);
  SaltLength salt;
  if (name == "digest") {
    salt.kind = SaltLength::kDigest;
  } else if (name == "max") {
    salt.kind = SaltLength::kMax;
  } else if (name == "auto") {
    salt.kind = SaltLength::kAuto;
  } else {
    absl::StatusOr<uint32_t> bytes = ParseUint("--salt-len", text, 0, 1024);
    if (!bytes.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--salt-len: '", text, "' is not a byte count, digest, max or auto"));
    }
    salt.kind = SaltLength::kExplicit;
    salt.bytes = *bytes;
  }
  return salt;
}

// The hash named by the algorithm suffix and/or --hash (which must agree).
absl::StatusOr<absl::optional<v1::HashAlgorithm>> CombinedHash(
    absl::optional<v1::HashAlgorithm> from_alg,
    const absl::optional<std::string>& flag) {
  if (!flag.has_value()) return from_alg;
  ASSIGN_OR_RETURN(v1::HashAlgorithm hash, ParseHash("--hash", *flag));
  if (from_alg.has_value() && *from_alg != hash) {
    return absl::InvalidArgumentError(
        absl::StrCat("--hash ", HashName(hash),
                     " conflicts with the algorithm's ", HashName(*from_alg)));
  }
  return absl::optional<v1::HashAlgorithm>(hash);
}

// The SM2 distinguishing ID from --id / --id-hex, or the GM/T 0009 default.
absl::Status ParseSm2Id(const SignFlags& flags, SignOptions& options) {
  if (flags.id.has_value() && flags.id_hex.has_value()) {
    return absl::InvalidArgumentError("give --id or --id-hex, not both");
  }
  const bool given = flags.id.has_value() || flags.id_hex.has_value();
  if (given && flags.digest_input) {
    return absl::InvalidArgumentError(
        "--id cannot be combined with --digest-input: the input is then "
        "e = SM3(Z || M), and Z already contains the ID");
  }
  if (flags.id.has_value()) {
    options.sm2_id = *flags.id;
  } else if (flags.id_hex.has_value()) {
    ASSIGN_OR_RETURN(options.sm2_id, ParseHex("--id-hex", *flags.id_hex));
  } else {
    options.sm2_id = std::string(client::kSm2DefaultId);
  }
  if (given && options.sm2_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the SM2 distinguishing ID is empty; leave out --id for the default ",
        client::kSm2DefaultId));
  }
  if (options.sm2_id.size() > client::kSm2MaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the SM2 distinguishing ID is ", options.sm2_id.size(),
                     " bytes; at most ", client::kSm2MaxIdBytes,
                     " fit its 16-bit length in bits"));
  }
  return absl::OkStatus();
}

absl::Status RequireRealHash(absl::string_view scheme, v1::HashAlgorithm hash) {
  if (hash == v1::HASH_ALGORITHM_UNSPECIFIED ||
      hash == v1::HASH_ALGORITHM_MD5_SHA1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--hash ", HashName(hash), " cannot be used with ", scheme));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::HashAlgorithm> ParseHash(absl::string_view what,
                                            absl::string_view name) {
  std::string n = Normalize(name);
  if (n == "none" || n == "raw") return v1::HASH_ALGORITHM_UNSPECIFIED;
  for (const HashInfo& info : kHashes) {
    // "sha-256" is a common spelling too.
    if (n == info.name ||
        absl::StrReplaceAll(n, {{"sha-", "sha"}}) == info.name) {
      return info.hash;
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": unknown hash '", name,
      "'; use sha1, sha224, sha256, sha384, sha512, md5-sha1, sm3 or none"));
}

std::string HashName(v1::HashAlgorithm hash) {
  const HashInfo* info = FindHash(hash);
  return info != nullptr ? info->name : "none";
}

size_t HashSize(v1::HashAlgorithm hash) {
  const HashInfo* info = FindHash(hash);
  return info != nullptr ? info->size : 0;
}

std::string OpenSslDigestName(v1::HashAlgorithm hash) {
  const HashInfo* info = FindHash(hash);
  return info != nullptr ? info->openssl_name : "";
}

absl::StatusOr<SignOptions> ParseSignOptions(const SignFlags& flags) {
  ASSIGN_OR_RETURN(auto parsed, ParseSchemeName(flags.alg));
  const Scheme scheme = parsed.first;
  ASSIGN_OR_RETURN(absl::optional<v1::HashAlgorithm> hash,
                   CombinedHash(parsed.second, flags.hash));
  SignOptions options;
  options.digest_input = flags.digest_input;
  if (scheme != Scheme::kRsaPss && flags.salt_len.has_value()) {
    return absl::InvalidArgumentError("--salt-len applies only to rsa-pss");
  }
  if (scheme != Scheme::kRsaPss && flags.mgf1.has_value()) {
    return absl::InvalidArgumentError("--mgf1 applies only to rsa-pss");
  }
  if (scheme != Scheme::kSm2 &&
      (flags.id.has_value() || flags.id_hex.has_value())) {
    return absl::InvalidArgumentError(
        "--id and --id-hex (the SM2 distinguishing ID) apply only to sm2");
  }
  switch (scheme) {
    case Scheme::kRsaPkcs1: {
      v1::HashAlgorithm h = hash.value_or(v1::HASH_ALGORITHM_SHA256);
      if (h == v1::HASH_ALGORITHM_UNSPECIFIED && !flags.digest_input) {
        return absl::InvalidArgumentError(
            "rsa-pkcs1 with --hash none signs a raw DigestInfo: add "
            "--digest-input");
      }
      if (h == v1::HASH_ALGORITHM_MD5_SHA1 && !flags.digest_input) {
        return absl::InvalidArgumentError(
            "--hash md5-sha1 takes a precomputed digest: add --digest-input");
      }
      options.algorithm.mutable_rsa_pkcs1()->set_hash(h);
      break;
    }
    case Scheme::kRsaPss: {
      v1::HashAlgorithm h = hash.value_or(v1::HASH_ALGORITHM_SHA256);
      RETURN_IF_ERROR(RequireRealHash("rsa-pss", h));
      v1::RsaPssSignature* pss = options.algorithm.mutable_rsa_pss();
      pss->set_hash(h);
      if (flags.mgf1.has_value()) {
        ASSIGN_OR_RETURN(v1::HashAlgorithm mgf1,
                         ParseHash("--mgf1", *flags.mgf1));
        RETURN_IF_ERROR(RequireRealHash("MGF1", mgf1));
        pss->set_mgf1_hash(mgf1);
      } else {
        pss->set_mgf1_hash(h);
      }
      if (flags.salt_len.has_value()) {
        ASSIGN_OR_RETURN(options.salt, ParseSaltLength(*flags.salt_len));
      }
      if (options.salt.kind == SaltLength::kExplicit) {
        pss->set_salt_length(options.salt.bytes);
      } else if (options.salt.kind == SaltLength::kDigest) {
        pss->set_salt_length(static_cast<uint32_t>(HashSize(h)));
      }
      break;
    }
    case Scheme::kEcdsa: {
      v1::HashAlgorithm h = hash.value_or(v1::HASH_ALGORITHM_SHA256);
      RETURN_IF_ERROR(RequireRealHash("ecdsa", h));
      options.algorithm.mutable_ecdsa()->set_hash(h);
      break;
    }
    case Scheme::kEd25519:
      if (hash.has_value()) {
        return absl::InvalidArgumentError(
            "ed25519 signs the message itself: --hash is not allowed");
      }
      if (flags.digest_input) {
        return absl::InvalidArgumentError(
            "ed25519 signs the message itself: --digest-input is not allowed");
      }
      options.algorithm.mutable_ed25519();
      break;
    case Scheme::kSm2:
      RETURN_IF_ERROR(ParseSm2Id(flags, options));
      if (hash.has_value() && *hash != v1::HASH_ALGORITHM_SM3) {
        return absl::InvalidArgumentError(
            absl::StrCat("sm2 signs with sm3 only, not ", HashName(*hash)));
      }
      // The distinguishing ID is not sent: hsmctl computes e = SM3(Z || M)
      // itself and sends only e.
      options.algorithm.mutable_sm2();
      break;
  }
  return options;
}

absl::StatusOr<uint32_t> MaxPssSaltLength(uint32_t modulus_bits,
                                          v1::HashAlgorithm hash) {
  const int64_t em_len = (static_cast<int64_t>(modulus_bits) - 1 + 7) / 8;
  const int64_t max = em_len - static_cast<int64_t>(HashSize(hash)) - 2;
  if (modulus_bits == 0 || max < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", modulus_bits, "-bit RSA key is too small for rsa-pss with ",
        HashName(hash)));
  }
  return static_cast<uint32_t>(max);
}

std::string DescribeSignatureAlgorithm(const v1::SignatureAlgorithm& alg) {
  switch (alg.algorithm_case()) {
    case v1::SignatureAlgorithm::kRsaPkcs1:
      return absl::StrCat("rsa-pkcs1 ", HashName(alg.rsa_pkcs1().hash()));
    case v1::SignatureAlgorithm::kRsaPss: {
      const v1::RsaPssSignature& pss = alg.rsa_pss();
      std::string text = absl::StrCat(
          "rsa-pss ", HashName(pss.hash()), " (mgf1 ",
          HashName(pss.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                       ? pss.hash()
                       : pss.mgf1_hash()));
      if (pss.has_salt_length()) {
        absl::StrAppend(&text, ", salt ", pss.salt_length());
      }
      return absl::StrCat(text, ")");
    }
    case v1::SignatureAlgorithm::kEcdsa:
      return absl::StrCat("ecdsa ", HashName(alg.ecdsa().hash()));
    case v1::SignatureAlgorithm::kEd25519:
      return "ed25519";
    case v1::SignatureAlgorithm::kSm2:
      return "sm2 sm3";
    case v1::SignatureAlgorithm::ALGORITHM_NOT_SET:
      break;
  }
  return "(no algorithm)";
}

absl::StatusOr<CipherOptions> ParseCipherOptions(const CipherFlags& flags) {
  std::string name = Normalize(flags.alg);
  CipherOptions options;
  v1::DecryptionAlgorithm& alg = options.algorithm;
  absl::optional<v1::HashAlgorithm> alg_hash;
  bool oaep = false;
  if (name == "rsa-pkcs1" || name == "pkcs1" || name == "rsaes-pkcs1-v1-5") {
    oaep = false;
  } else if (name == "rsa-oaep" || name == "oaep" || name == "rsaes-oaep") {
    oaep = true;
  } else if (name == "sm2") {
    alg.mutable_sm2();
  } else if (name == "sm4-ecb") {
    alg.mutable_sm4()->set_mode(v1::CIPHER_MODE_ECB);
  } else if (name == "sm4-cbc") {
    alg.mutable_sm4()->set_mode(v1::CIPHER_MODE_CBC);
  } else if (name == "sm4") {
    return absl::InvalidArgumentError(
        "--alg sm4 needs a mode: sm4-ecb or sm4-cbc");
  } else {
    for (const HashInfo& info : kHashes) {
      for (absl::string_view base : {"rsa-oaep-", "oaep-"}) {
        if (name == absl::StrCat(base, info.name)) {
          oaep = true;
          alg_hash = info.hash;
        }
      }
    }
    if (!alg_hash.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--alg: unknown encryption algorithm '", flags.alg,
          "'; use rsa-pkcs1, rsa-oaep (optionally rsa-oaep-sha256 etc.), sm2, "
          "sm4-ecb or sm4-cbc"));
    }
  }
  if (!alg.has_sm4() &&
      (flags.iv_hex.has_value() || flags.padding.has_value())) {
    return absl::InvalidArgumentError(
        "--iv and --padding apply only to sm4-ecb / sm4-cbc");
  }
  if (!oaep) {
    if (flags.hash.has_value() || flags.mgf1.has_value() ||
        flags.label_hex.has_value()) {
      return absl::InvalidArgumentError(
          "--hash, --mgf1 and --label apply only to rsa-oaep");
    }
    if (alg.has_sm4()) {
      v1::Sm4Cipher& sm4 = *alg.mutable_sm4();
      if (flags.iv_hex.has_value()) {
        if (sm4.mode() == v1::CIPHER_MODE_ECB) {
          return absl::InvalidArgumentError("sm4-ecb takes no --iv");
        }
        ASSIGN_OR_RETURN(std::string iv, ParseHex("--iv", *flags.iv_hex));
        if (iv.size() != client::kSm4BlockBytes) {
          return absl::InvalidArgumentError(
              absl::StrCat("--iv is ", iv.size(), " bytes; the SM4-CBC IV is ",
                           client::kSm4BlockBytes, " bytes (",
                           2 * client::kSm4BlockBytes, " hex digits)"));
        }
        sm4.set_iv(std::move(iv));
      }
      if (flags.padding.has_value()) {
        const std::string padding = Normalize(*flags.padding);
        if (padding == "pkcs7" || padding == "pkcs5") {
          options.padding = Sm4Padding::kPkcs7;
        } else if (padding == "none") {
          options.padding = Sm4Padding::kNone;
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("--padding: unknown padding '", *flags.padding,
                           "'; use pkcs7 or none"));
        }
      }
    } else if (!alg.has_sm2()) {
      alg.mutable_rsa_pkcs1();
    }
    return options;
  }
  ASSIGN_OR_RETURN(absl::optional<v1::HashAlgorithm> hash,
                   CombinedHash(alg_hash, flags.hash));
  v1::RsaOaepDecryption* params = alg.mutable_rsa_oaep();
  params->set_hash(hash.value_or(v1::HASH_ALGORITHM_SHA1));
  RETURN_IF_ERROR(RequireRealHash("rsa-oaep", params->hash()));
  params->set_mgf1_hash(params->hash());
  if (flags.mgf1.has_value()) {
    ASSIGN_OR_RETURN(v1::HashAlgorithm mgf1, ParseHash("--mgf1", *flags.mgf1));
    RETURN_IF_ERROR(RequireRealHash("MGF1", mgf1));
    params->set_mgf1_hash(mgf1);
  }
  if (flags.label_hex.has_value()) {
    ASSIGN_OR_RETURN(std::string label, ParseHex("--label", *flags.label_hex));
    params->set_label(std::move(label));
  }
  return options;
}

absl::StatusOr<v1::DecryptionAlgorithm> ParseCipherAlgorithm(
    const CipherFlags& flags) {
  ASSIGN_OR_RETURN(CipherOptions options, ParseCipherOptions(flags));
  return std::move(options.algorithm);
}

std::string DescribeCipherAlgorithm(const v1::DecryptionAlgorithm& alg) {
  switch (alg.algorithm_case()) {
    case v1::DecryptionAlgorithm::kRsaPkcs1:
      return "rsa-pkcs1";
    case v1::DecryptionAlgorithm::kRsaOaep: {
      const v1::RsaOaepDecryption& oaep = alg.rsa_oaep();
      return absl::StrCat(
          "rsa-oaep ", HashName(oaep.hash()), " (mgf1 ",
          HashName(oaep.mgf1_hash() == v1::HASH_ALGORITHM_UNSPECIFIED
                       ? oaep.hash()
                       : oaep.mgf1_hash()),
          ")");
    }
    case v1::DecryptionAlgorithm::kSm2:
      return "sm2";
    case v1::DecryptionAlgorithm::kSm4:
      return alg.sm4().mode() == v1::CIPHER_MODE_CBC ? "sm4-cbc" : "sm4-ecb";
    case v1::DecryptionAlgorithm::ALGORITHM_NOT_SET:
      break;
  }
  return "(no algorithm)";
}

absl::StatusOr<v1::KeyType> ParseKeyType(absl::string_view name) {
  std::string n = Normalize(name);
  if (n == "rsa") return v1::KEY_TYPE_RSA;
  if (n == "ec" || n == "ecdsa") return v1::KEY_TYPE_EC;
  if (n == "ed25519" || n == "eddsa") return v1::KEY_TYPE_ED25519;
  return absl::InvalidArgumentError(absl::StrCat(
      "--type: unknown key type '", name, "'; use rsa, ec or ed25519"));
}

absl::StatusOr<v1::Curve> ParseCurve(absl::string_view name) {
  std::string n = Normalize(name);
  if (n == "p256" || n == "p-256" || n == "prime256v1" || n == "secp256r1") {
    return v1::CURVE_P256;
  }
  if (n == "p384" || n == "p-384" || n == "secp384r1") return v1::CURVE_P384;
  if (n == "p521" || n == "p-521" || n == "secp521r1") return v1::CURVE_P521;
  return absl::InvalidArgumentError(absl::StrCat(
      "--curve: unknown curve '", name, "'; use p256, p384 or p521"));
}

absl::StatusOr<std::vector<v1::Operation>> ParseOperations(
    absl::string_view list) {
  std::vector<v1::Operation> ops;
  for (absl::string_view item : absl::StrSplit(list, ',', absl::SkipEmpty())) {
    std::string n = Normalize(absl::StripAsciiWhitespace(item));
    v1::Operation op;
    if (n == "sign") {
      op = v1::OPERATION_SIGN;
    } else if (n == "decrypt") {
      op = v1::OPERATION_DECRYPT;
    } else if (n == "derive") {
      op = v1::OPERATION_DERIVE;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--ops: unknown operation '", item,
                       "'; use sign, decrypt (RSA) and/or derive (EC)"));
    }
    if (std::find(ops.begin(), ops.end(), op) == ops.end()) ops.push_back(op);
  }
  if (ops.empty()) {
    return absl::InvalidArgumentError(
        "--ops: empty list; use sign, decrypt (RSA) and/or derive (EC)");
  }
  return ops;
}

std::string KeyTypeName(v1::KeyType type) {
  switch (type) {
    case v1::KEY_TYPE_RSA:
      return "RSA";
    case v1::KEY_TYPE_EC:
      return "EC";
    case v1::KEY_TYPE_ED25519:
      return "Ed25519";
    case v1::KEY_TYPE_SM2:
      return "SM2";
    case v1::KEY_TYPE_SM4:
      return "SM4";
    default:
      return "unknown";
  }
}

std::string CurveName(v1::Curve curve) {
  switch (curve) {
    case v1::CURVE_P256:
      return "P-256";
    case v1::CURVE_P384:
      return "P-384";
    case v1::CURVE_P521:
      return "P-521";
    case v1::CURVE_ED25519:
      return "Ed25519";
    case v1::CURVE_SM2:
      return "SM2";
    default:
      return "";
  }
}

std::string OperationName(v1::Operation op) {
  switch (op) {
    case v1::OPERATION_SIGN:
      return "sign";
    case v1::OPERATION_DECRYPT:
      return "decrypt";
    case v1::OPERATION_ENCRYPT:
      return "encrypt";
    case v1::OPERATION_DERIVE:
      return "derive";
    default:
      return "unknown";
  }
}

std::string DescribeKeyType(const v1::Key& key) {
  switch (key.key_type()) {
    case v1::KEY_TYPE_RSA:
      return absl::StrCat("RSA-", key.size_bits());
    case v1::KEY_TYPE_EC: {
      std::string curve = CurveName(key.curve());
      return curve.empty() ? absl::StrCat("EC-", key.size_bits())
                           : absl::StrCat("EC ", curve);
    }
    case v1::KEY_TYPE_ED25519:
      return "Ed25519";
    case v1::KEY_TYPE_SM2:
      return "SM2";
    case v1::KEY_TYPE_SM4:
      return key.size_bits() == 0 ? "SM4"
                                  : absl::StrCat("SM4-", key.size_bits());
    default:
      return "unknown";
  }
}

std::string DescribeOperations(const v1::Key& key) {
  std::vector<std::string> names;
  for (int op : key.allowed_operations()) {
    names.push_back(OperationName(static_cast<v1::Operation>(op)));
  }
  return names.empty() ? "-" : absl::StrJoin(names, ",");
}

bool AllowsOperation(const v1::Key& key, v1::Operation op) {
  return std::find(key.allowed_operations().begin(),
                   key.allowed_operations().end(),
                   op) != key.allowed_operations().end();
}

}  // namespace hsmd::hsmctl
