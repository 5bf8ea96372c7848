#include "tools/hsmctl/sm2.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "client_lib/client.h"
#include "common/openssl_ptr.h"

namespace hsmd::hsmctl {
namespace {

// The SM2 curve's field elements are 256 bits.
constexpr int kFieldBytes = 32;

using EcGroupPtr = OpenSslPtr<EC_GROUP, EC_GROUP_free>;
using EcPointPtr = OpenSslPtr<EC_POINT, EC_POINT_free>;
using BnCtxPtr = OpenSslPtr<BN_CTX, BN_CTX_free>;

absl::Status OpenSslFailure(absl::string_view what) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  char reason[256] = "unknown OpenSSL error";
  if (code != 0) ERR_error_string_n(code, reason, sizeof(reason));
  return absl::InternalError(absl::StrCat(what, ": ", reason));
}

// `n` as a kFieldBytes big-endian string.
absl::StatusOr<std::string> FieldBytes(const BIGNUM* n) {
  std::string out(kFieldBytes, '\0');
  if (BN_bn2binpad(n, reinterpret_cast<unsigned char*>(out.data()),
                   kFieldBytes) != kFieldBytes) {
    return absl::InvalidArgumentError(
        "an SM2 coordinate does not fit in 32 bytes");
  }
  return out;
}

absl::StatusOr<std::string> Sm3(absl::string_view a, absl::string_view b) {
  EvpMdPtr sm3(EVP_MD_fetch(nullptr, "SM3", nullptr));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (sm3 == nullptr || ctx == nullptr ||
      EVP_DigestInit_ex(ctx.get(), sm3.get(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), b.data(), b.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out, &length) != 1) {
    return OpenSslFailure("SM3 is not available");
  }
  return std::string(reinterpret_cast<char*>(out), length);
}

}  // namespace

bool IsSm2Key(const EVP_PKEY* key) {
  return key != nullptr && EVP_PKEY_is_a(key, "SM2") == 1;
}

absl::StatusOr<std::string> Sm2Z(const EVP_PKEY* public_key,
                                 absl::string_view id) {
  if (!IsSm2Key(public_key)) {
    return absl::InvalidArgumentError("the key is not an SM2 key");
  }
  if (id.size() > client::kSm2MaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the SM2 distinguishing ID is ", id.size(), " bytes; at most ",
        client::kSm2MaxIdBytes, " fit its 16-bit length in bits"));
  }
  BIGNUM* raw_x = nullptr;
  BIGNUM* raw_y = nullptr;
  const int got_x =
      EVP_PKEY_get_bn_param(public_key, OSSL_PKEY_PARAM_EC_PUB_X, &raw_x);
  const int got_y =
      EVP_PKEY_get_bn_param(public_key, OSSL_PKEY_PARAM_EC_PUB_Y, &raw_y);
  BignumPtr x_a(raw_x);
  BignumPtr y_a(raw_y);
  if (got_x != 1 || got_y != 1) {
    return OpenSslFailure("the SM2 key has no public point");
  }
  EcGroupPtr group(EC_GROUP_new_by_curve_name(NID_sm2));
  BnCtxPtr bn_ctx(BN_CTX_new());
  BignumPtr p(BN_new());
  BignumPtr a(BN_new());
  BignumPtr b(BN_new());
  BignumPtr x_g(BN_new());
  BignumPtr y_g(BN_new());
  if (group == nullptr || bn_ctx == nullptr || p == nullptr || a == nullptr ||
      b == nullptr || x_g == nullptr || y_g == nullptr ||
      EC_GROUP_get_curve(group.get(), p.get(), a.get(), b.get(),
                         bn_ctx.get()) != 1 ||
      EC_POINT_get_affine_coordinates(
          group.get(), EC_GROUP_get0_generator(group.get()), x_g.get(),
          y_g.get(), bn_ctx.get()) != 1) {
    return OpenSslFailure("cannot read the SM2 curve parameters");
  }
  const size_t entl = id.size() * 8;
  std::string input;
  input.push_back(static_cast<char>((entl >> 8) & 0xff));
  input.push_back(static_cast<char>(entl & 0xff));
  input.append(id.data(), id.size());
  for (const BIGNUM* n :
       {a.get(), b.get(), x_g.get(), y_g.get(), x_a.get(), y_a.get()}) {
    absl::StatusOr<std::string> bytes = FieldBytes(n);
    if (!bytes.ok()) return bytes.status();
    input += *bytes;
  }
  return Sm3(input, "");
}

absl::StatusOr<std::string> Sm2Digest(const EVP_PKEY* public_key,
                                      absl::string_view id,
                                      absl::string_view message) {
  absl::StatusOr<std::string> z = Sm2Z(public_key, id);
  if (!z.ok()) return z.status();
  return Sm3(*z, message);
}

}  // namespace hsmd::hsmctl
