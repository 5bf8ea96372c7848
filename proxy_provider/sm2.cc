#include "proxy_provider/sm2.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "proxy_provider/algorithms.h"

namespace hsmd::proxy {
namespace {

using EcGroupPtr = OpenSslPtr<EC_GROUP, EC_GROUP_free>;
using EcPointPtr = OpenSslPtr<EC_POINT, EC_POINT_free>;
using BnCtxPtr = OpenSslPtr<BN_CTX, BN_CTX_free>;
using X509AlgorPtr = OpenSslPtr<X509_ALGOR, X509_ALGOR_free>;

// Appends `bn` as a big-endian string of exactly `bytes` bytes.
bool AppendPadded(const BIGNUM* bn, size_t bytes, std::string& out) {
  std::string buffer(bytes, '\0');
  if (BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(buffer.data()),
                   static_cast<int>(bytes)) != static_cast<int>(bytes)) {
    return false;
  }
  out += buffer;
  return true;
}

absl::StatusOr<std::string> Sm2ZOrError(OSSL_LIB_CTX* libctx,
                                        const EVP_PKEY* public_key,
                                        absl::string_view id) {
  if (id.size() > kSm2MaxIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the SM2 distinguishing ID has ", id.size(),
                     " bytes; at most ", kSm2MaxIdBytes, " fit ENTL"));
  }
  char group_name[80] = "";
  size_t group_name_length = 0;
  if (EVP_PKEY_get_utf8_string_param(public_key, OSSL_PKEY_PARAM_GROUP_NAME,
                                     group_name, sizeof(group_name),
                                     &group_name_length) != 1) {
    return absl::InvalidArgumentError("the SM2 key names no curve");
  }
  int nid = OBJ_txt2nid(group_name);
  EcGroupPtr group(nid == NID_undef ? nullptr
                                    : EC_GROUP_new_by_curve_name_ex(
                                          libctx, kDefaultProviderQuery, nid));
  if (group == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown curve \"", group_name, "\" on an SM2 key"));
  }
  BnCtxPtr bn_ctx(BN_CTX_new_ex(libctx));
  BignumPtr p(BN_new()), a(BN_new()), b(BN_new()), xg(BN_new()), yg(BN_new());
  if (bn_ctx == nullptr || p == nullptr || a == nullptr || b == nullptr ||
      xg == nullptr || yg == nullptr) {
    return absl::ResourceExhaustedError("out of memory");
  }
  if (EC_GROUP_get_curve(group.get(), p.get(), a.get(), b.get(),
                         bn_ctx.get()) != 1 ||
      EC_POINT_get_affine_coordinates(group.get(),
                                      EC_GROUP_get0_generator(group.get()),
                                      xg.get(), yg.get(), bn_ctx.get()) != 1) {
    return absl::InternalError("could not read the SM2 curve parameters");
  }
  BIGNUM* raw_x = nullptr;
  BIGNUM* raw_y = nullptr;
  bool have_point =
      EVP_PKEY_get_bn_param(public_key, OSSL_PKEY_PARAM_EC_PUB_X, &raw_x) ==
          1 &&
      EVP_PKEY_get_bn_param(public_key, OSSL_PKEY_PARAM_EC_PUB_Y, &raw_y) == 1;
  BignumPtr xa(raw_x), ya(raw_y);
  if (!have_point) {
    return absl::InvalidArgumentError("the SM2 key has no public point");
  }
  size_t field_bytes =
      (static_cast<size_t>(EC_GROUP_get_degree(group.get())) + 7) / 8;

  std::string input;
  size_t entl = id.size() * 8;
  input.push_back(static_cast<char>((entl >> 8) & 0xff));
  input.push_back(static_cast<char>(entl & 0xff));
  input.append(id.data(), id.size());
  for (const BIGNUM* bn :
       {a.get(), b.get(), xg.get(), yg.get(), xa.get(), ya.get()}) {
    if (!AppendPadded(bn, field_bytes, input)) {
      return absl::InternalError("an SM2 value does not fit the field size");
    }
  }
  EvpMdPtr sm3(EVP_MD_fetch(libctx, "SM3", kDefaultProviderQuery));
  unsigned char z[EVP_MAX_MD_SIZE];
  unsigned int z_length = 0;
  if (sm3 == nullptr || EVP_Digest(input.data(), input.size(), z, &z_length,
                                   sm3.get(), nullptr) != 1) {
    return absl::InternalError("SM3 is not available");
  }
  return std::string(reinterpret_cast<char*>(z), z_length);
}

}  // namespace

absl::StatusOr<std::string> Sm2Z(OSSL_LIB_CTX* libctx,
                                 const EVP_PKEY* public_key,
                                 absl::string_view id) {
  // Failed probes leave OpenSSL errors behind; the status says what failed.
  ERR_set_mark();
  absl::StatusOr<std::string> z = Sm2ZOrError(libctx, public_key, id);
  ERR_pop_to_mark();
  return z;
}

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
