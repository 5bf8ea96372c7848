// DECODERs for the "PKCS#11 PROVIDER URI" key file (see uri_pem.h), so
// `openssl pkey -in key.pem`, PEM_read_bio_PrivateKey and
// SSL_CTX_use_PrivateKey_file load HSM keys from it:
//
// - "DER" (input=pem): takes the PEM block with that label and passes its
//   DER on, tagged with the structure "hsmproxy-uri";
// - one decoder per key type (RSA, RSA-PSS, EC, ED25519, SM2; input=der,
//   structure=hsmproxy-uri): parses the DER, resolves the URI through hsmd
//   like the store, and passes the private key on by reference when it is
//   of the decoder's type.
//
// Anything else is left alone without an error, so other key files decode
// exactly as before. A URI file whose key cannot be found, or while hsmd is
// down, fails with that error instead of a generic "unsupported".
#ifndef HSMD_PROXY_PROVIDER_DECODER_H_
#define HSMD_PROXY_PROVIDER_DECODER_H_

#include <openssl/core.h>

namespace hsmd::proxy {

extern const OSSL_DISPATCH kPemToDerDecoderFunctions[];
extern const OSSL_DISPATCH kRsaUriDecoderFunctions[];
extern const OSSL_DISPATCH kRsaPssUriDecoderFunctions[];
extern const OSSL_DISPATCH kEcUriDecoderFunctions[];
extern const OSSL_DISPATCH kEd25519UriDecoderFunctions[];
extern const OSSL_DISPATCH kSm2UriDecoderFunctions[];

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_DECODER_H_
