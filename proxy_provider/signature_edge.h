// The C edge shared by hsmproxy's SIGNATURE implementations (signature.cc:
// RSA, ECDSA, Ed25519; sm2_signature.cc: SM2): OpenSSL calls these entry
// points with void* contexts, they call the operation context and turn its
// absl results into OpenSSL's conventions (report.h). A context class
// provides Init(SignatureOp, key, mdname, params), Sign, Verify,
// DigestUpdate, DigestSignFinal, DigestVerifyFinal, GetParams, SetParams,
// Dup and provider(); what only one family has (verify-recover, one-shot
// digest signing) stays in its file.
#ifndef HSMD_PROXY_PROVIDER_SIGNATURE_EDGE_H_
#define HSMD_PROXY_PROVIDER_SIGNATURE_EDGE_H_

#include <openssl/core.h>

#include <cstddef>
#include <memory>

#include "absl/status/statusor.h"
#include "proxy_provider/key.h"
#include "proxy_provider/report.h"

namespace hsmd::proxy {

// What a signature context was initialised for.
enum class SignatureOp {
  kNone,
  kSign,
  kVerify,
  kVerifyRecover,
  kDigestSign,
  kDigestVerify,
};

inline bool IsSigning(SignatureOp op) {
  return op == SignatureOp::kSign || op == SignatureOp::kDigestSign;
}
inline bool IsDigestOp(SignatureOp op) {
  return op == SignatureOp::kDigestSign || op == SignatureOp::kDigestVerify;
}

template <typename Context>
struct SignatureEdge {
  static Context* Ctx(void* ctx) { return static_cast<Context*>(ctx); }

  static void FreeCtx(void* ctx) { delete Ctx(ctx); }

  static void* DupCtx(void* ctx) {
    absl::StatusOr<std::unique_ptr<Context>> copy = Ctx(ctx)->Dup();
    if (!copy.ok()) {
      HSMPROXY_RAISE(Ctx(ctx)->provider(), copy.status());
      return nullptr;
    }
    return copy->release();
  }

  static int SignInit(void* ctx, void* provkey, const OSSL_PARAM params[]) {
    return Init(ctx, SignatureOp::kSign, nullptr, provkey, params);
  }

  static int Sign(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize,
                  const unsigned char* tbs, size_t tbslen) {
    return ReportSize(Ctx(ctx), Ctx(ctx)->Sign(sig, sigsize, tbs, tbslen),
                      siglen);
  }

  static int VerifyInit(void* ctx, void* provkey, const OSSL_PARAM params[]) {
    return Init(ctx, SignatureOp::kVerify, nullptr, provkey, params);
  }

  static int Verify(void* ctx, const unsigned char* sig, size_t siglen,
                    const unsigned char* tbs, size_t tbslen) {
    return ReportVerify(Ctx(ctx), Ctx(ctx)->Verify(sig, siglen, tbs, tbslen));
  }

  static int DigestSignInit(void* ctx, const char* mdname, void* provkey,
                            const OSSL_PARAM params[]) {
    return Init(ctx, SignatureOp::kDigestSign, mdname, provkey, params);
  }

  static int DigestVerifyInit(void* ctx, const char* mdname, void* provkey,
                              const OSSL_PARAM params[]) {
    return Init(ctx, SignatureOp::kDigestVerify, mdname, provkey, params);
  }

  static int DigestUpdate(void* ctx, const unsigned char* data,
                          size_t datalen) {
    return Report(Ctx(ctx), Ctx(ctx)->DigestUpdate(data, datalen));
  }

  static int DigestSignFinal(void* ctx, unsigned char* sig, size_t* siglen,
                             size_t sigsize) {
    return ReportSize(Ctx(ctx), Ctx(ctx)->DigestSignFinal(sig, sigsize),
                      siglen);
  }

  static int DigestVerifyFinal(void* ctx, const unsigned char* sig,
                               size_t siglen) {
    return ReportVerify(Ctx(ctx), Ctx(ctx)->DigestVerifyFinal(sig, siglen));
  }

  static int GetCtxParams(void* ctx, OSSL_PARAM params[]) {
    return Report(Ctx(ctx), Ctx(ctx)->GetParams(params));
  }

  static int SetCtxParams(void* ctx, const OSSL_PARAM params[]) {
    return Report(Ctx(ctx), Ctx(ctx)->SetParams(params));
  }

  static int Init(void* ctx, SignatureOp op, const char* mdname, void* provkey,
                  const OSSL_PARAM params[]) {
    return Report(Ctx(ctx),
                  Ctx(ctx)->Init(op, KeyFromKeydata(provkey), mdname, params));
  }
};

}  // namespace hsmd::proxy

#endif  // HSMD_PROXY_PROVIDER_SIGNATURE_EDGE_H_
