#include "proxy_provider/sm2.h"

#include <openssl/objects.h>
#include <openssl/x509.h>

#include "common/openssl_ptr.h"

namespace hsmd::proxy {
namespace {

using X509AlgorPtr = OpenSslPtr<X509_ALGOR, X509_ALGOR_free>;

}  // namespace

absl::StatusOr<std::string> Sm2WithSm3AlgorithmId() {
  X509AlgorPtr algor(X509_ALGOR_new());
  if (algor == nullptr ||
      X509_ALGOR_set0(algor.get(), OBJ_nid2obj(NID_SM2_with_SM3), V_ASN1_UNDEF,
                      nullptr) != 1) {
    return absl::InternalError("could not build the SM2-with-SM3 identifier");
  }
  unsigned char* der = nullptr;
  int length = i2d_X509_ALGOR(algor.get(), &der);
  if (length <= 0) {
    return absl::InternalError("could not encode the SM2-with-SM3 identifier");
  }
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

}  // namespace hsmd::proxy
