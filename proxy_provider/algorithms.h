// Algorithm names and properties hsmproxy registers with OpenSSL.
//
// Key type and signature names are exactly the default provider's, so
// EVP_PKEY_is_a(pkey, "RSA") and libssl's certificate-type logic treat HSM
// keys like any other key. Every algorithm carries "provider=hsmproxy"; the
// keymgmt only ever holds HSM keys that came from our store or decoder, plus
// software keys OpenSSL hands it when it picks hsmproxy's keymgmt for an
// ordinary key (see keymgmt.h), which the default provider then serves.
#ifndef HSMD_PROXY_PROVIDER_ALGORITHMS_H_
#define HSMD_PROXY_PROVIDER_ALGORITHMS_H_

namespace hsmd::proxy {

// The key types hsmproxy manages.
enum class KeyKind { kRsa, kRsaPss, kEc, kEd25519, kSm2 };

inline constexpr KeyKind kAllKeyKinds[] = {KeyKind::kRsa, KeyKind::kRsaPss,
                                           KeyKind::kEc, KeyKind::kEd25519,
                                           KeyKind::kSm2};
inline constexpr int kKeyKindCount =
    sizeof(kAllKeyKinds) / sizeof(kAllKeyKinds[0]);

inline constexpr char kProviderName[] = "hsmproxy";
inline constexpr char kProviderVersion[] = "1.0.0";
inline constexpr char kProperties[] = "provider=hsmproxy";

// Key management (and the key types the store/decoder report).
inline constexpr char kRsaKeyNames[] = "RSA:rsaEncryption:1.2.840.113549.1.1.1";
inline constexpr char kRsaPssKeyNames[] =
    "RSA-PSS:RSASSA-PSS:1.2.840.113549.1.1.10";
inline constexpr char kEcKeyNames[] = "EC:id-ecPublicKey:1.2.840.10045.2.1";
inline constexpr char kEd25519KeyNames[] = "ED25519:1.3.101.112";
// SM2 keys are EC keys on the SM2 curve; OpenSSL 3 gives them their own key
// type (EVP_PKEY_is_a(pkey, "SM2")), default digest SM3.
inline constexpr char kSm2KeyNames[] = "SM2:1.2.156.10197.1.301";

// The primary name of each key type, as OSSL_OBJECT_PARAM_DATA_TYPE.
inline constexpr char kRsaName[] = "RSA";
inline constexpr char kRsaPssName[] = "RSA-PSS";
inline constexpr char kEcName[] = "EC";
inline constexpr char kEd25519Name[] = "ED25519";
inline constexpr char kSm2Name[] = "SM2";

// The primary name of a key kind (kRsaName, ...).
inline const char* KeyKindName(KeyKind kind) {
  switch (kind) {
    case KeyKind::kRsa:
      return kRsaName;
    case KeyKind::kRsaPss:
      return kRsaPssName;
    case KeyKind::kEc:
      return kEcName;
    case KeyKind::kEd25519:
      return kEd25519Name;
    case KeyKind::kSm2:
      return kSm2Name;
  }
  return kRsaName;
}

// Signature algorithms.
inline constexpr char kRsaSignatureNames[] =
    "RSA:rsaEncryption:1.2.840.113549.1.1.1";
inline constexpr char kEcdsaSignatureNames[] = "ECDSA";
inline constexpr char kEd25519SignatureNames[] = "ED25519:1.3.101.112";
inline constexpr char kSm2SignatureNames[] = "SM2:1.2.156.10197.1.301";

// Asymmetric ciphers.
inline constexpr char kRsaCipherNames[] =
    "RSA:rsaEncryption:1.2.840.113549.1.1.1";
inline constexpr char kSm2CipherNames[] = "SM2:1.2.156.10197.1.301";

// Key exchange (EC keys; OpenSSL's name for ECDH).
inline constexpr char kEcdhKeyExchangeNames[] = "ECDH";

// OSSL_STORE schemes: RFC 7512 URIs, and hsmd's SDF key URIs
// (`sdf:device=NAME;index=N;usage=sign|enc`).
inline constexpr char kStoreScheme[] = "pkcs11";
inline constexpr char kSdfStoreScheme[] = "sdf";

// RAND: usable as the seed source (RAND_set_seed_source_type, or `seed =` in
// the [random] config section) and as a DRBG.
inline constexpr char kRandName[] = "HSMPROXY-RAND";

// Decoders for the "PKCS#11 PROVIDER URI" PEM file: PEM -> DER (structure
// kUriStructure), then DER -> key reference per key type.
inline constexpr char kUriStructure[] = "hsmproxy-uri";
inline constexpr char kPemToDerDecoderName[] = "DER";
inline constexpr char kPemDecoderProperties[] = "provider=hsmproxy,input=pem";
inline constexpr char kDerDecoderProperties[] =
    "provider=hsmproxy,input=der,structure=hsmproxy-uri";

// Where internal work (public-key operations, hashing, software keys) runs:
// the default provider in hsmproxy's own library context.
inline constexpr char kDefaultProviderQuery[] = "provider=default";

}  // namespace hsmd::proxy

// An OSSL_DISPATCH entry's function pointer. void (*)(void) is the one
// function type GCC lets any function pointer convert to without warning.
#define HSMPROXY_DISPATCH_FN(f) reinterpret_cast<void (*)(void)>(f)

#endif  // HSMD_PROXY_PROVIDER_ALGORITHMS_H_
