#include "proxy_provider/sm2_signature.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"
#include "common/openssl_ptr.h"
#include "common/sm2.h"
#include "common/status_macros.h"
#include "proxy_provider/algorithms.h"
#include "proxy_provider/debug.h"
#include "proxy_provider/errors.h"
#include "proxy_provider/key.h"
#include "proxy_provider/mechanisms.h"
#include "proxy_provider/provider_context.h"
#include "proxy_provider/remote.h"
#include "proxy_provider/report.h"
#include "proxy_provider/signature_edge.h"
#include "proxy_provider/sm2.h"

namespace hsmd::proxy {
namespace {

using Op = SignatureOp;

std::string ToString(const unsigned char* data, size_t length) {
  return std::string(reinterpret_cast<const char*>(data), length);
}

// `params` without the entry named `key` (terminated), so the rest can go to
// the default provider, which would refuse or mishandle that entry.
std::vector<OSSL_PARAM> Without(const OSSL_PARAM* params, const char* key) {
  std::vector<OSSL_PARAM> rest;
  for (const OSSL_PARAM* p = params; p != nullptr && p->key != nullptr; ++p) {
    if (std::strcmp(p->key, key) != 0) rest.push_back(*p);
  }
  rest.push_back(OSSL_PARAM_construct_end());
  return rest;
}

// Copies the return sizes of a get_params call on Without(params, key) back
// into `params`.
void CopyReturnSizes(const std::vector<OSSL_PARAM>& rest, OSSL_PARAM* params,
                     const char* key) {
  size_t j = 0;
  for (OSSL_PARAM* p = params; p != nullptr && p->key != nullptr; ++p) {
    if (std::strcmp(p->key, key) == 0) continue;
    p->return_size = rest[j++].return_size;
  }
}

class Sm2SignatureContext {
 public:
  explicit Sm2SignatureContext(ProviderContext* provider)
      : provider_(provider) {}

  ProviderContext* provider() const { return provider_; }

  absl::Status Init(Op op, std::shared_ptr<Key> key, const char* mdname,
                    const OSSL_PARAM* params);
  // `sig` nullptr asks for the maximum size. `tbs` is e.
  absl::StatusOr<size_t> Sign(unsigned char* sig, size_t sigsize,
                              const unsigned char* tbs, size_t tbslen);
  absl::StatusOr<bool> Verify(const unsigned char* sig, size_t siglen,
                              const unsigned char* tbs, size_t tbslen);
  absl::Status DigestUpdate(const unsigned char* data, size_t length);
  absl::StatusOr<size_t> DigestSignFinal(unsigned char* sig, size_t sigsize);
  absl::StatusOr<bool> DigestVerifyFinal(const unsigned char* sig,
                                         size_t siglen);
  absl::Status SetParams(const OSSL_PARAM* params);
  absl::Status GetParams(OSSL_PARAM* params);
  absl::StatusOr<std::unique_ptr<Sm2SignatureContext>> Dup() const;

 private:
  // A software key: the default provider does everything, with its own
  // defaults.
  bool Local() const { return !key_->is_hsm(); }
  // The default-provider context that takes the caller's parameters.
  EVP_PKEY_CTX* shadow() const {
    return shadow_md_ != nullptr ? EVP_MD_CTX_get_pkey_ctx(shadow_md_.get())
                                 : shadow_.get();
  }
  absl::StatusOr<size_t> MaxSignatureSize() const;
  absl::Status FeedZ();
  absl::StatusOr<std::string> FinishE();
  absl::StatusOr<size_t> RemoteSignE(unsigned char* sig, size_t sigsize,
                                     const std::string& e);

  ProviderContext* const provider_;
  Op op_ = Op::kNone;
  std::shared_ptr<Key> key_;
  // Plain sign/verify with a software key; with an HSM key, verification of
  // e and the parameters (digest name and size).
  EvpPkeyCtxPtr shadow_;
  // Digest sign/verify with a software key.
  EvpMdCtxPtr shadow_md_;
  // Digest sign/verify with an HSM key: SM3 over Z || M.
  EvpMdCtxPtr digest_;
  // The distinguishing ID; unset means GM/T 0009's default.
  absl::optional<std::string> id_;
  bool z_fed_ = false;
};

absl::Status Sm2SignatureContext::Init(Op op, std::shared_ptr<Key> key,
                                       const char* mdname,
                                       const OSSL_PARAM* params) {
  // A NULL key re-initialises with the key from before.
  if (key == nullptr) key = key_;
  if (key == nullptr || key->pkey() == nullptr) {
    return absl::InvalidArgumentError("no key given");
  }
  if (key->kind() != KeyKind::kSm2) {
    return UnsupportedError(
        absl::StrCat("SM2 signatures need an SM2 key, not ", key->Describe()));
  }
  if (IsSigning(op) && !key->Has(OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) {
    return NoPrivateKeyError(absl::StrCat("cannot sign with ", key->Describe(),
                                          ": it has no private key"));
  }
  op_ = op;
  key_ = std::move(key);
  shadow_.reset();
  shadow_md_.reset();
  digest_.reset();
  id_.reset();
  z_fed_ = false;
  OSSL_LIB_CTX* libctx = provider_->libctx();

  if (Local() && IsDigestOp(op_)) {
    shadow_md_.reset(EVP_MD_CTX_new());
    if (shadow_md_ == nullptr) {
      return absl::ResourceExhaustedError("out of memory");
    }
    // Parameters follow below: OpenSSL 3.0's SM2 takes "distid" only once
    // its digest operation has started.
    int rc = op_ == Op::kDigestSign
                 ? EVP_DigestSignInit_ex(shadow_md_.get(), nullptr, mdname,
                                         libctx, kDefaultProviderQuery,
                                         key_->pkey(), nullptr)
                 : EVP_DigestVerifyInit_ex(shadow_md_.get(), nullptr, mdname,
                                           libctx, kDefaultProviderQuery,
                                           key_->pkey(), nullptr);
    if (rc != 1) return UnsupportedError("SM2 digest parameters rejected");
  } else {
    shadow_.reset(EVP_PKEY_CTX_new_from_pkey(libctx, key_->pkey(),
                                             kDefaultProviderQuery));
    if (shadow_ == nullptr) {
      return absl::InternalError("could not create a default-provider context");
    }
    int rc = (op_ == Op::kSign && Local())
                 ? EVP_PKEY_sign_init_ex(shadow_.get(), nullptr)
                 : EVP_PKEY_verify_init_ex(shadow_.get(), nullptr);
    if (rc != 1) {
      return UnsupportedError("the key cannot be used for SM2 signatures");
    }
    if (IsDigestOp(op_)) {
      if (mdname != nullptr && mdname[0] != '\0') {
        ASSIGN_OR_RETURN(Digest digest, LookupDigest(libctx, mdname));
        if (!EVP_MD_is_a(digest.md.get(), "SM3")) {
          return UnsupportedError(
              absl::StrCat("SM2 signatures use SM3, not ", digest.name));
        }
      }
      EvpMdPtr sm3(EVP_MD_fetch(libctx, "SM3", kDefaultProviderQuery));
      digest_.reset(EVP_MD_CTX_new());
      if (sm3 == nullptr || digest_ == nullptr ||
          EVP_DigestInit_ex2(digest_.get(), sm3.get(), nullptr) != 1) {
        return absl::InternalError("could not start SM3");
      }
    }
  }
  RETURN_IF_ERROR(SetParams(params));
  HSMPROXY_DEBUG_LOG("SM2 ", IsSigning(op_) ? "sign" : "verify",
                     IsDigestOp(op_) ? " (SM3 digest)" : "", " init with ",
                     key_->Describe());
  return absl::OkStatus();
}

absl::StatusOr<size_t> Sm2SignatureContext::MaxSignatureSize() const {
  int size = EVP_PKEY_get_size(key_->pkey());
  if (size <= 0) return absl::InternalError("unknown signature size");
  return static_cast<size_t>(size);
}

absl::Status Sm2SignatureContext::FeedZ() {
  if (z_fed_) return absl::OkStatus();
  ASSIGN_OR_RETURN(
      std::string z,
      Sm2Z(key_->pkey(),
           id_.has_value() ? absl::string_view(*id_) : kSm2DefaultId,
           provider_->libctx(), kDefaultProviderQuery));
  if (EVP_DigestUpdate(digest_.get(), z.data(), z.size()) != 1) {
    return absl::InternalError("SM3 update failed");
  }
  z_fed_ = true;
  return absl::OkStatus();
}

absl::StatusOr<std::string> Sm2SignatureContext::FinishE() {
  RETURN_IF_ERROR(FeedZ());
  unsigned char e[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(digest_.get(), e, &length) != 1) {
    return absl::InternalError("SM3 final failed");
  }
  return ToString(e, length);
}

absl::StatusOr<size_t> Sm2SignatureContext::RemoteSignE(unsigned char* sig,
                                                        size_t sigsize,
                                                        const std::string& e) {
  if (e.size() != kSm3DigestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("SM2 signs e, a ", kSm3DigestBytes,
                     "-byte SM3 digest; got ", e.size(), " bytes"));
  }
  v1::SignatureAlgorithm algorithm;
  // With digest input hsmd needs no ID: Z is already in e.
  algorithm.mutable_sm2();
  ASSIGN_OR_RETURN(std::string signature,
                   RemoteSign(*provider_, key_->hsm(), algorithm,
                              /*is_digest=*/true, e));
  if (signature.size() > sigsize) {
    return BufferTooSmallError(signature.size(), sigsize);
  }
  std::memcpy(sig, signature.data(), signature.size());
  return signature.size();
}

absl::StatusOr<size_t> Sm2SignatureContext::Sign(unsigned char* sig,
                                                 size_t sigsize,
                                                 const unsigned char* tbs,
                                                 size_t tbslen) {
  if (op_ != Op::kSign) {
    return absl::FailedPreconditionError("not initialised for signing");
  }
  if (Local()) {
    size_t length = sigsize;
    if (EVP_PKEY_sign(shadow_.get(), sig, &length, tbs, tbslen) != 1) {
      return UnsupportedError("SM2 signing failed");
    }
    return length;
  }
  ASSIGN_OR_RETURN(size_t max_size, MaxSignatureSize());
  if (sig == nullptr) return max_size;
  if (sigsize < max_size) return BufferTooSmallError(max_size, sigsize);
  return RemoteSignE(sig, sigsize, ToString(tbs, tbslen));
}

absl::StatusOr<bool> Sm2SignatureContext::Verify(const unsigned char* sig,
                                                 size_t siglen,
                                                 const unsigned char* tbs,
                                                 size_t tbslen) {
  if (op_ != Op::kVerify) {
    return absl::FailedPreconditionError("not initialised for verification");
  }
  int rc = EVP_PKEY_verify(shadow_.get(), sig, siglen, tbs, tbslen);
  if (rc < 0) return UnsupportedError("SM2 verification failed");
  return rc == 1;
}

absl::Status Sm2SignatureContext::DigestUpdate(const unsigned char* data,
                                               size_t length) {
  if (shadow_md_ != nullptr) {
    int rc = op_ == Op::kDigestSign
                 ? EVP_DigestSignUpdate(shadow_md_.get(), data, length)
                 : EVP_DigestVerifyUpdate(shadow_md_.get(), data, length);
    if (rc != 1) return UnsupportedError("SM2 digest update failed");
    return absl::OkStatus();
  }
  if (digest_ == nullptr) {
    return absl::FailedPreconditionError("not initialised for digest signing");
  }
  RETURN_IF_ERROR(FeedZ());
  if (EVP_DigestUpdate(digest_.get(), data, length) != 1) {
    return absl::InternalError("SM3 update failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> Sm2SignatureContext::DigestSignFinal(unsigned char* sig,
                                                            size_t sigsize) {
  if (op_ != Op::kDigestSign) {
    return absl::FailedPreconditionError("not initialised for digest signing");
  }
  if (shadow_md_ != nullptr) {
    size_t length = sigsize;
    if (EVP_DigestSignFinal(shadow_md_.get(), sig, &length) != 1) {
      return UnsupportedError("SM2 signing failed");
    }
    return length;
  }
  // Size queries and short buffers leave the hash state untouched.
  ASSIGN_OR_RETURN(size_t max_size, MaxSignatureSize());
  if (sig == nullptr) return max_size;
  if (sigsize < max_size) return BufferTooSmallError(max_size, sigsize);
  ASSIGN_OR_RETURN(std::string e, FinishE());
  return RemoteSignE(sig, sigsize, e);
}

absl::StatusOr<bool> Sm2SignatureContext::DigestVerifyFinal(
    const unsigned char* sig, size_t siglen) {
  if (op_ != Op::kDigestVerify) {
    return absl::FailedPreconditionError(
        "not initialised for digest verification");
  }
  int rc = 0;
  if (shadow_md_ != nullptr) {
    rc = EVP_DigestVerifyFinal(shadow_md_.get(), sig, siglen);
  } else {
    ASSIGN_OR_RETURN(std::string e, FinishE());
    rc = EVP_PKEY_verify(shadow_.get(), sig, siglen,
                         reinterpret_cast<const unsigned char*>(e.data()),
                         e.size());
  }
  if (rc < 0) return UnsupportedError("SM2 verification failed");
  return rc == 1;
}

absl::Status Sm2SignatureContext::SetParams(const OSSL_PARAM* params) {
  if (params == nullptr || params[0].key == nullptr) return absl::OkStatus();
  EVP_PKEY_CTX* ctx = shadow();
  if (ctx == nullptr) {
    return absl::FailedPreconditionError("signature context not initialised");
  }
  if (Local()) {
    if (EVP_PKEY_CTX_set_params(ctx, params) != 1) {
      return UnsupportedError("SM2 signature parameters rejected");
    }
    return absl::OkStatus();
  }
  const OSSL_PARAM* p =
      OSSL_PARAM_locate_const(params, OSSL_PKEY_PARAM_DIST_ID);
  if (p != nullptr) {
    if (!IsDigestOp(op_)) {
      return UnsupportedError(
          "the SM2 distinguishing ID applies to digest signing "
          "(EVP_DigestSign, `pkeyutl -rawin`); plain signing takes e, in "
          "which the ID is already hashed");
    }
    if (z_fed_) {
      return WithReason(
          absl::FailedPreconditionError(
              "the SM2 distinguishing ID must be set before any data"),
          Reason::kInvalidArgument);
    }
    const void* data = nullptr;
    size_t length = 0;
    if (p->data_size != 0 &&
        OSSL_PARAM_get_octet_string_ptr(p, &data, &length) != 1) {
      return WithReason(absl::InvalidArgumentError(
                            "the SM2 distinguishing ID must be an octet "
                            "string"),
                        Reason::kInvalidArgument);
    }
    if (length > kSm2MaxIdBytes) {
      return WithReason(absl::InvalidArgumentError(absl::StrCat(
                            "the SM2 distinguishing ID has ", length,
                            " bytes; at most ", kSm2MaxIdBytes, " fit ENTL")),
                        Reason::kInvalidArgument);
    }
    // An empty value is the empty ID (OpenSSL 3.0's own default).
    id_ = length == 0 ? std::string()
                      : std::string(static_cast<const char*>(data), length);
  }
  std::vector<OSSL_PARAM> rest = Without(params, OSSL_PKEY_PARAM_DIST_ID);
  if (rest.size() > 1 && EVP_PKEY_CTX_set_params(ctx, rest.data()) != 1) {
    return UnsupportedError("SM2 signature parameters rejected");
  }
  return absl::OkStatus();
}

absl::Status Sm2SignatureContext::GetParams(OSSL_PARAM* params) {
  EVP_PKEY_CTX* ctx = shadow();
  if (ctx == nullptr) {
    return absl::FailedPreconditionError("signature context not initialised");
  }
  if (Local()) {
    if (EVP_PKEY_CTX_get_params(ctx, params) != 1) {
      return UnsupportedError("could not read SM2 signature parameters");
    }
    return absl::OkStatus();
  }
  // The default provider knows the algorithm identifier only in its own
  // digest operation; ours is always SM2-with-SM3.
  OSSL_PARAM* aid =
      OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
  if (aid != nullptr) {
    ASSIGN_OR_RETURN(std::string der, Sm2WithSm3AlgorithmId());
    if (OSSL_PARAM_set_octet_string(aid, der.data(), der.size()) != 1) {
      return BufferTooSmallError(der.size(), aid->data_size);
    }
  }
  std::vector<OSSL_PARAM> rest =
      Without(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
  if (rest.size() > 1) {
    if (EVP_PKEY_CTX_get_params(ctx, rest.data()) != 1) {
      return UnsupportedError("could not read SM2 signature parameters");
    }
    CopyReturnSizes(rest, params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Sm2SignatureContext>> Sm2SignatureContext::Dup()
    const {
  auto copy = std::make_unique<Sm2SignatureContext>(provider_);
  copy->op_ = op_;
  copy->key_ = key_;
  copy->id_ = id_;
  copy->z_fed_ = z_fed_;
  if (shadow_ != nullptr) {
    copy->shadow_.reset(EVP_PKEY_CTX_dup(shadow_.get()));
    if (copy->shadow_ == nullptr) {
      return absl::InternalError("could not copy the signature context");
    }
  }
  for (auto [from, to] : {std::make_pair(&shadow_md_, &copy->shadow_md_),
                          std::make_pair(&digest_, &copy->digest_)}) {
    if (*from == nullptr) continue;
    to->reset(EVP_MD_CTX_new());
    if (*to == nullptr || EVP_MD_CTX_copy_ex(to->get(), from->get()) != 1) {
      return absl::InternalError("could not copy the digest state");
    }
  }
  return copy;
}

// ---------------------------------------------------------------------------
// The C edge.

using Edge = SignatureEdge<Sm2SignatureContext>;

void* SigNewCtx(void* provctx, const char* /*propq*/) {
  return new Sm2SignatureContext(static_cast<ProviderContext*>(provctx));
}

const OSSL_PARAM* SigGettableCtxParams(void* /*ctx*/, void* provctx) {
  return EVP_SIGNATURE_gettable_ctx_params(
      static_cast<ProviderContext*>(provctx)->default_sm2_signature());
}

const OSSL_PARAM* SigSettableCtxParams(void* /*ctx*/, void* provctx) {
  return EVP_SIGNATURE_settable_ctx_params(
      static_cast<ProviderContext*>(provctx)->default_sm2_signature());
}

}  // namespace

const OSSL_DISPATCH kSm2SignatureFunctions[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, HSMPROXY_DISPATCH_FN(&SigNewCtx)},
    {OSSL_FUNC_SIGNATURE_FREECTX, HSMPROXY_DISPATCH_FN(&Edge::FreeCtx)},
    {OSSL_FUNC_SIGNATURE_DUPCTX, HSMPROXY_DISPATCH_FN(&Edge::DupCtx)},
    {OSSL_FUNC_SIGNATURE_SIGN_INIT, HSMPROXY_DISPATCH_FN(&Edge::SignInit)},
    {OSSL_FUNC_SIGNATURE_SIGN, HSMPROXY_DISPATCH_FN(&Edge::Sign)},
    {OSSL_FUNC_SIGNATURE_VERIFY_INIT, HSMPROXY_DISPATCH_FN(&Edge::VerifyInit)},
    {OSSL_FUNC_SIGNATURE_VERIFY, HSMPROXY_DISPATCH_FN(&Edge::Verify)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT,
     HSMPROXY_DISPATCH_FN(&Edge::DigestSignInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE,
     HSMPROXY_DISPATCH_FN(&Edge::DigestUpdate)},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL,
     HSMPROXY_DISPATCH_FN(&Edge::DigestSignFinal)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT,
     HSMPROXY_DISPATCH_FN(&Edge::DigestVerifyInit)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE,
     HSMPROXY_DISPATCH_FN(&Edge::DigestUpdate)},
    {OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL,
     HSMPROXY_DISPATCH_FN(&Edge::DigestVerifyFinal)},
    {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&Edge::GetCtxParams)},
    {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&SigGettableCtxParams)},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&Edge::SetCtxParams)},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&SigSettableCtxParams)},
    {0, nullptr},
};

}  // namespace hsmd::proxy
