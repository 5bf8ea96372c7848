// SM2 pieces hsmproxy needs besides Z and e (common/sm2.h): the
// certificate signature algorithm identifier.
#ifndef HSMD_PROXY_PROVIDER_SM2_H_
#define HSMD_PROXY_PROVIDER_SM2_H_

#include <string>

#include "absl/status/statusor.h"

namespace hsmd::proxy {

// DER AlgorithmIdentifier of SM2-with-SM3 (OID 1.2.156.10197.1.501, no
// parameters), as OpenSSL's default provider writes it into certificates.
absl::StatusOr<std::string> Sm2WithSm3AlgorithmId();

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_SM2_H_
