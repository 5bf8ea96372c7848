#include "common/sm2.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>

#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"

namespace hsmd {
namespace {

// The SM2 curve's field elements are 256 bits.
constexpr int kFieldBytes = 32;

using EcGroupPtr = OpenSslPtr<EC_GROUP, EC_GROUP_free>;
using BnCtxPtr = OpenSslPtr<BN_CTX, BN_CTX_free>;

// Appends `n` as a kFieldBytes big-endian string.
bool AppendField(const BIGNUM* n, std::string& out) {
  unsigned char field[kFieldBytes];
  if (BN_bn2binpad(n, field, kFieldBytes) != kFieldBytes) return false;
  out.append(reinterpret_cast<const char*>(field), kFieldBytes);
  return true;
}

absl::StatusOr<std::string> Sm3(absl::string_view a, absl::string_view b,
                                OSSL_LIB_CTX* libctx, const char* propq) {
  EvpMdPtr sm3(EVP_MD_fetch(libctx, "SM3", propq));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (sm3 == nullptr || ctx == nullptr ||
      EVP_DigestInit_ex(ctx.get(), sm3.get(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), b.data(), b.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out, &length) != 1) {
    return absl::InternalError("SM3 is not available");
  }
  return std::string(reinterpret_cast<char*>(out), length);
}

absl::StatusOr<std::string> Sm2ZUnmarked(const EVP_PKEY* key,
                                         absl::string_view id,
                                         OSSL_LIB_CTX* libctx,
                                         const char* propq) {
  if (!IsSm2Key(key)) {
    return absl::InvalidArgumentError("the key is not an SM2 key");
  }
  if (id.size() > kSm2MaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the SM2 distinguishing ID is ", id.size(), " bytes; at most ",
        kSm2MaxIdBytes, " fit its 16-bit length in bits"));
  }
  BIGNUM* raw_x = nullptr;
  BIGNUM* raw_y = nullptr;
  const bool have_point =
      EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &raw_x) == 1 &&
      EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &raw_y) == 1;
  BignumPtr x_a(raw_x);
  BignumPtr y_a(raw_y);
  if (!have_point) {
    return absl::InvalidArgumentError("the SM2 key has no public point");
  }
  EcGroupPtr group(EC_GROUP_new_by_curve_name_ex(libctx, propq, NID_sm2));
  BnCtxPtr bn_ctx(BN_CTX_new_ex(libctx));
  BignumPtr p(BN_new()), a(BN_new()), b(BN_new()), x_g(BN_new()), y_g(BN_new());
  if (group == nullptr || bn_ctx == nullptr || p == nullptr || a == nullptr ||
      b == nullptr || x_g == nullptr || y_g == nullptr ||
      EC_GROUP_get_curve(group.get(), p.get(), a.get(), b.get(),
                         bn_ctx.get()) != 1 ||
      EC_POINT_get_affine_coordinates(
          group.get(), EC_GROUP_get0_generator(group.get()), x_g.get(),
          y_g.get(), bn_ctx.get()) != 1) {
    return absl::InternalError("cannot read the SM2 curve parameters");
  }
  const size_t entl = id.size() * 8;
  std::string input;
  input.reserve(2 + id.size() + 6 * kFieldBytes);
  input.push_back(static_cast<char>((entl >> 8) & 0xff));
  input.push_back(static_cast<char>(entl & 0xff));
  input.append(id.data(), id.size());
  for (const BIGNUM* n :
       {a.get(), b.get(), x_g.get(), y_g.get(), x_a.get(), y_a.get()}) {
    if (!AppendField(n, input)) {
      return absl::InvalidArgumentError(
          "an SM2 coordinate does not fit in 32 bytes");
    }
  }
  return Sm3(input, "", libctx, propq);
}

}  // namespace

bool IsSm2Key(const EVP_PKEY* key) {
  return key != nullptr && EVP_PKEY_is_a(key, "SM2") == 1;
}

absl::StatusOr<std::string> Sm2Z(const EVP_PKEY* key, absl::string_view id,
                                 OSSL_LIB_CTX* libctx, const char* propq) {
  // Failed probes leave OpenSSL errors behind; the status says what failed.
  ERR_set_mark();
  absl::StatusOr<std::string> z = Sm2ZUnmarked(key, id, libctx, propq);
  ERR_pop_to_mark();
  return z;
}

absl::StatusOr<std::string> Sm2Digest(const EVP_PKEY* key, absl::string_view id,
                                      absl::string_view message,
                                      OSSL_LIB_CTX* libctx, const char* propq) {
  absl::StatusOr<std::string> z = Sm2Z(key, id, libctx, propq);
  if (!z.ok()) return z.status();
  ERR_set_mark();
  absl::StatusOr<std::string> e = Sm3(*z, message, libctx, propq);
  ERR_pop_to_mark();
  return e;
}

}  // namespace hsmd
