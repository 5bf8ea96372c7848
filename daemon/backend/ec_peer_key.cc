#include "daemon/backend/ec_peer_key.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <memory>

#include "absl/strings/str_cat.h"

namespace hsmd::backend {
namespace {

using EcGroupPtr = OpenSslPtr<EC_GROUP, EC_GROUP_free>;
using EcPointPtr = OpenSslPtr<EC_POINT, EC_POINT_free>;
using BnCtxPtr = OpenSslPtr<BN_CTX, BN_CTX_free>;
using ParamBldPtr = OpenSslPtr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using ParamsPtr = OpenSslPtr<OSSL_PARAM, OSSL_PARAM_free>;

int CurveNid(v1::Curve curve) {
  switch (curve) {
    case v1::CURVE_P256:
      return NID_X9_62_prime256v1;
    case v1::CURVE_P384:
      return NID_secp384r1;
    case v1::CURVE_P521:
      return NID_secp521r1;
    default:
      return NID_undef;
  }
}

std::string CurveLabel(v1::Curve curve) {
  switch (curve) {
    case v1::CURVE_P256:
      return "P-256";
    case v1::CURVE_P384:
      return "P-384";
    case v1::CURVE_P521:
      return "P-521";
    default:
      return v1::Curve_Name(curve);
  }
}

absl::Status Invalid(absl::string_view what) {
  ERR_clear_error();
  return absl::InvalidArgumentError(absl::StrCat("peer_public_key: ", what));
}

// The point inside a DER SubjectPublicKeyInfo, after checking its curve.
absl::StatusOr<std::string> PointFromSpki(absl::string_view der,
                                          v1::Curve curve,
                                          absl::string_view key_name) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EvpPkeyPtr pkey(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (pkey == nullptr) {
    return Invalid(
        "is neither a DER SubjectPublicKeyInfo nor an EC point (or the "
        "point is not on its curve)");
  }
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return Invalid("has trailing bytes after the SubjectPublicKeyInfo");
  }
  if (EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_EC) {
    return Invalid(absl::StrCat("is a ",
                                OBJ_nid2sn(EVP_PKEY_get_base_id(pkey.get())),
                                " key; ECDH needs an EC public key"));
  }
  char group[80] = {0};
  size_t group_len = 0;
  if (EVP_PKEY_get_utf8_string_param(pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                     group, sizeof(group), &group_len) != 1) {
    return Invalid(
        "uses explicit curve parameters; only named curves are supported");
  }
  const int nid = OBJ_txt2nid(group);
  if (nid != CurveNid(curve)) {
    return Invalid(absl::StrCat("is on curve ", group, "; ", key_name,
                                " is on ", CurveLabel(curve)));
  }
  unsigned char point[160];
  size_t point_len = 0;
  if (EVP_PKEY_get_octet_string_param(pkey.get(),
                                      OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
                                      sizeof(point), &point_len) != 1) {
    return Invalid("holds no readable EC point");
  }
  return std::string(reinterpret_cast<char*>(point), point_len);
}

}  // namespace

size_t EcFieldBytes(v1::Curve curve) {
  switch (curve) {
    case v1::CURVE_P256:
      return 32;
    case v1::CURVE_P384:
      return 48;
    case v1::CURVE_P521:
      return 66;
    default:
      return 0;
  }
}

absl::StatusOr<std::string> EcdhPeerPoint(absl::string_view peer,
                                          v1::Curve curve,
                                          absl::string_view key_name) {
  const int nid = CurveNid(curve);
  if (nid == NID_undef) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_name, " is on curve ", CurveLabel(curve),
                     "; ECDH is supported on P-256, P-384 and P-521"));
  }
  if (peer.empty()) return Invalid("is empty");
  std::string encoded;
  switch (static_cast<unsigned char>(peer[0])) {
    case 0x30: {  // SEQUENCE: a SubjectPublicKeyInfo.
      absl::StatusOr<std::string> point = PointFromSpki(peer, curve, key_name);
      if (!point.ok()) return point.status();
      encoded = *std::move(point);
      break;
    }
    case 0x02:
    case 0x03:
    case 0x04:
      encoded = std::string(peer);
      break;
    default:
      return Invalid(
          "is neither a DER SubjectPublicKeyInfo (0x30...) nor an SEC 1 EC "
          "point (0x04...)");
  }
  EcGroupPtr group(EC_GROUP_new_by_curve_name(nid));
  EcPointPtr point(group == nullptr ? nullptr : EC_POINT_new(group.get()));
  BnCtxPtr bn_ctx(BN_CTX_new());
  if (point == nullptr || bn_ctx == nullptr) {
    ERR_clear_error();
    return absl::ResourceExhaustedError("out of memory parsing an EC point");
  }
  if (EC_POINT_oct2point(group.get(), point.get(),
                         reinterpret_cast<const unsigned char*>(encoded.data()),
                         encoded.size(), bn_ctx.get()) != 1) {
    return Invalid(absl::StrCat("is not a point on ", CurveLabel(curve),
                                " (wrong length, or off the curve)"));
  }
  // oct2point checks this too; the check is cheap and the guarantee matters
  // (an off-curve point leaks bits of the private key).
  if (EC_POINT_is_at_infinity(group.get(), point.get()) == 1 ||
      EC_POINT_is_on_curve(group.get(), point.get(), bn_ctx.get()) != 1) {
    return Invalid(absl::StrCat("is not a valid point on ", CurveLabel(curve)));
  }
  const size_t field = EcFieldBytes(curve);
  std::string out(2 * field + 1, '\0');
  if (EC_POINT_point2oct(group.get(), point.get(),
                         POINT_CONVERSION_UNCOMPRESSED,
                         reinterpret_cast<unsigned char*>(out.data()),
                         out.size(), bn_ctx.get()) != out.size()) {
    ERR_clear_error();
    return absl::InternalError("encoding the peer's EC point failed");
  }
  return out;
}

absl::StatusOr<EvpPkeyPtr> EcPublicKeyFromPoint(absl::string_view point,
                                                v1::Curve curve) {
  const int nid = CurveNid(curve);
  ParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (nid == NID_undef || bld == nullptr ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME,
                                      OBJ_nid2sn(nid), 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                       point.data(), point.size()) != 1) {
    ERR_clear_error();
    return absl::InternalError("building EC public key parameters failed");
  }
  ParamsPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* pkey = nullptr;
  if (params == nullptr || ctx == nullptr ||
      EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) !=
          1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "peer_public_key: not a valid point on ", CurveLabel(curve)));
  }
  return EvpPkeyPtr(pkey);
}

absl::StatusOr<std::string> SoftwareEcdh(EVP_PKEY* private_key,
                                         absl::string_view peer_point,
                                         v1::Curve curve) {
  absl::StatusOr<EvpPkeyPtr> peer = EcPublicKeyFromPoint(peer_point, curve);
  if (!peer.ok()) return peer.status();
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, private_key, nullptr));
  size_t len = 0;
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer->get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "ECDH with this peer_public_key failed (key and peer must be on the "
        "same curve)");
  }
  std::string secret(len, '\0');
  if (EVP_PKEY_derive(ctx.get(),
                      reinterpret_cast<unsigned char*>(secret.data()),
                      &len) != 1) {
    ERR_clear_error();
    return absl::InternalError("EVP_PKEY_derive failed");
  }
  secret.resize(len);
  return secret;
}

}  // namespace hsmd::backend
