#include "proxy_provider/rand.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <algorithm>
#include <atomic>

#include "proxy_provider/algorithms.h"
#include "proxy_provider/provider_context.h"
#include "proxy_provider/random_pool.h"

namespace hsmd::proxy {
namespace {

// The HSM's generator is assumed to be at least this strong.
constexpr unsigned int kStrengthBits = 256;
// Larger requests are split by OpenSSL's callers.
constexpr size_t kMaxRequestBytes = RandomPool::kMaxFetchBytes;

struct RandContext {
  explicit RandContext(ProviderContext* p) : provider(p) {}
  ProviderContext* const provider;
  std::atomic<int> state{EVP_RAND_STATE_UNINITIALISED};
};

RandContext* Ctx(void* ctx) { return static_cast<RandContext*>(ctx); }

void* RandNewCtx(void* provctx, void* /*parent*/,
                 const OSSL_DISPATCH* /*parent_calls*/) {
  // A parent DRBG is never needed: the HSM is the entropy source.
  return new RandContext(static_cast<ProviderContext*>(provctx));
}

void RandFreeCtx(void* ctx) { delete Ctx(ctx); }

int RandInstantiate(void* ctx, unsigned int strength,
                    int /*prediction_resistance*/,
                    const unsigned char* /*pstr*/, size_t /*pstr_len*/,
                    const OSSL_PARAM /*params*/[]) {
  if (strength > kStrengthBits) return 0;
  Ctx(ctx)->state = EVP_RAND_STATE_READY;
  return 1;
}

int RandUninstantiate(void* ctx) {
  Ctx(ctx)->state = EVP_RAND_STATE_UNINITIALISED;
  return 1;
}

int Fill(RandContext* ctx, unsigned char* out, size_t length) {
  absl::Status status = ctx->provider->random_pool().Fill(out, length);
  if (!status.ok()) {
    HSMPROXY_RAISE(ctx->provider, status);
    return 0;
  }
  return 1;
}

int RandGenerate(void* ctx, unsigned char* out, size_t outlen,
                 unsigned int strength, int /*prediction_resistance*/,
                 const unsigned char* /*addin*/, size_t /*addin_len*/) {
  if (strength > kStrengthBits) return 0;
  return Fill(Ctx(ctx), out, outlen);
}

int RandReseed(void* /*ctx*/, int /*prediction_resistance*/,
               const unsigned char* /*ent*/, size_t /*ent_len*/,
               const unsigned char* /*addin*/, size_t /*addin_len*/) {
  // Every batch is fresh from the HSM; there is no state to reseed.
  return 1;
}

size_t RandGetSeed(void* ctx, unsigned char** buffer, int entropy,
                   size_t min_len, size_t max_len,
                   int /*prediction_resistance*/, const unsigned char* /*adin*/,
                   size_t /*adin_len*/) {
  size_t length = std::max(min_len, static_cast<size_t>((entropy + 7) / 8));
  if (length == 0 || length > max_len) return 0;
  auto* seed = static_cast<unsigned char*>(OPENSSL_secure_malloc(length));
  if (seed == nullptr) return 0;
  if (Fill(Ctx(ctx), seed, length) != 1) {
    OPENSSL_secure_clear_free(seed, length);
    return 0;
  }
  *buffer = seed;
  return length;
}

void RandClearSeed(void* /*ctx*/, unsigned char* buffer, size_t length) {
  OPENSSL_secure_clear_free(buffer, length);
}

// The pool has its own lock; OpenSSL's DRBG locking around a parent is not
// needed (and a lock held here could be inherited locked by a child).
int RandEnableLocking(void* /*ctx*/) { return 1; }
int RandLock(void* /*ctx*/) { return 1; }
void RandUnlock(void* /*ctx*/) {}

const OSSL_PARAM* RandGettableCtxParams(void* /*ctx*/, void* /*provctx*/) {
  static const OSSL_PARAM kGettable[] = {
      OSSL_PARAM_int(OSSL_RAND_PARAM_STATE, nullptr),
      OSSL_PARAM_uint(OSSL_RAND_PARAM_STRENGTH, nullptr),
      OSSL_PARAM_size_t(OSSL_RAND_PARAM_MAX_REQUEST, nullptr),
      OSSL_PARAM_END,
  };
  return kGettable;
}

int RandGetCtxParams(void* ctx, OSSL_PARAM params[]) {
  OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_RAND_PARAM_STATE);
  if (p != nullptr && OSSL_PARAM_set_int(p, Ctx(ctx)->state.load()) != 1) {
    return 0;
  }
  p = OSSL_PARAM_locate(params, OSSL_RAND_PARAM_STRENGTH);
  if (p != nullptr && OSSL_PARAM_set_uint(p, kStrengthBits) != 1) return 0;
  p = OSSL_PARAM_locate(params, OSSL_RAND_PARAM_MAX_REQUEST);
  if (p != nullptr && OSSL_PARAM_set_size_t(p, kMaxRequestBytes) != 1) {
    return 0;
  }
  return 1;
}

const OSSL_PARAM* RandSettableCtxParams(void* /*ctx*/, void* /*provctx*/) {
  static const OSSL_PARAM kSettable[] = {
      OSSL_PARAM_uint(OSSL_DRBG_PARAM_RESEED_REQUESTS, nullptr),
      OSSL_PARAM_uint64(OSSL_DRBG_PARAM_RESEED_TIME_INTERVAL, nullptr),
      OSSL_PARAM_END,
  };
  return kSettable;
}

int RandSetCtxParams(void* /*ctx*/, const OSSL_PARAM /*params*/[]) {
  // Reseed intervals that OpenSSL sets on its DRBGs mean nothing here.
  return 1;
}

int RandVerifyZeroization(void* /*ctx*/) { return 1; }

}  // namespace

const OSSL_DISPATCH kRandFunctions[] = {
    {OSSL_FUNC_RAND_NEWCTX, HSMPROXY_DISPATCH_FN(&RandNewCtx)},
    {OSSL_FUNC_RAND_FREECTX, HSMPROXY_DISPATCH_FN(&RandFreeCtx)},
    {OSSL_FUNC_RAND_INSTANTIATE, HSMPROXY_DISPATCH_FN(&RandInstantiate)},
    {OSSL_FUNC_RAND_UNINSTANTIATE, HSMPROXY_DISPATCH_FN(&RandUninstantiate)},
    {OSSL_FUNC_RAND_GENERATE, HSMPROXY_DISPATCH_FN(&RandGenerate)},
    {OSSL_FUNC_RAND_RESEED, HSMPROXY_DISPATCH_FN(&RandReseed)},
    {OSSL_FUNC_RAND_GET_SEED, HSMPROXY_DISPATCH_FN(&RandGetSeed)},
    {OSSL_FUNC_RAND_CLEAR_SEED, HSMPROXY_DISPATCH_FN(&RandClearSeed)},
    {OSSL_FUNC_RAND_ENABLE_LOCKING, HSMPROXY_DISPATCH_FN(&RandEnableLocking)},
    {OSSL_FUNC_RAND_LOCK, HSMPROXY_DISPATCH_FN(&RandLock)},
    {OSSL_FUNC_RAND_UNLOCK, HSMPROXY_DISPATCH_FN(&RandUnlock)},
    {OSSL_FUNC_RAND_GETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&RandGettableCtxParams)},
    {OSSL_FUNC_RAND_GET_CTX_PARAMS, HSMPROXY_DISPATCH_FN(&RandGetCtxParams)},
    {OSSL_FUNC_RAND_SETTABLE_CTX_PARAMS,
     HSMPROXY_DISPATCH_FN(&RandSettableCtxParams)},
    {OSSL_FUNC_RAND_SET_CTX_PARAMS, HSMPROXY_DISPATCH_FN(&RandSetCtxParams)},
    {OSSL_FUNC_RAND_VERIFY_ZEROIZATION,
     HSMPROXY_DISPATCH_FN(&RandVerifyZeroization)},
    {0, nullptr},
};

}  // namespace hsmd::proxy
