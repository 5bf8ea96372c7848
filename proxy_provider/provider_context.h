// The provider context: everything one loaded instance of hsmproxy owns.
//
// - The configuration: `socket`, `timeout_ms`, `connect_timeout_ms`, `debug`
//   from the provider's openssl.cnf section (via the core's get_params), with
//   HSMPROXY_SOCKET / HSMPROXY_DEBUG in the environment taking precedence.
// - A private library context holding only the default provider. Public-key
//   operations, hashing and software keys run there, so hsmproxy never calls
//   back into the application's library context (and never into itself).
// - The hsmd client, created on first use. The client handles fork (pid
//   change) and daemon restarts itself; creating it takes no lock, so a child
//   forked at any moment never waits on an inherited one.
// - The core's error functions, to raise errors on OpenSSL's queue.
#ifndef HSMD_PROXY_PROVIDER_PROVIDER_CONTEXT_H_
#define HSMD_PROXY_PROVIDER_PROVIDER_CONTEXT_H_

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client_lib/client.h"
#include "absl/strings/string_view.h"
#include "proxy_provider/algorithms.h"
#include "proxy_provider/mechanisms.h"
#include "proxy_provider/random_pool.h"

namespace hsmd::proxy {

struct ProviderConfig {
  std::string socket_path = std::string(client::kDefaultSocketPath);
  // Deadline of each hsmd call.
  absl::Duration timeout = absl::Seconds(10);
  // Bound on connecting to hsmd.
  absl::Duration connect_timeout = absl::Seconds(2);
  bool debug = false;
};

// Makes the hsmd client (tests substitute a fake).
using ClientFactory =
    std::function<absl::StatusOr<std::unique_ptr<client::Client>>(
        const client::ClientOptions&)>;

class ProviderContext {
 public:
  // `in` is the core's dispatch table given to OSSL_provider_init.
  static absl::StatusOr<std::unique_ptr<ProviderContext>> New(
      const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
      ClientFactory factory);

  ~ProviderContext();
  ProviderContext(const ProviderContext&) = delete;
  ProviderContext& operator=(const ProviderContext&) = delete;

  const ProviderConfig& config() const { return config_; }

  // hsmproxy's private library context (default provider only).
  OSSL_LIB_CTX* libctx() const { return libctx_; }

  // The hsmd client of this provider instance, created on first use.
  absl::StatusOr<client::Client*> client();

  // Options for each call (the configured deadline).
  client::CallOptions call_options() const;

  RandomPool& random_pool() { return *random_pool_; }

  // LookupDigest(libctx(), name), remembered per name: a TLS server makes
  // one EVP_DigestSignInit per handshake, and fetching the digest (the name
  // map walk, EVP_MD_is_a per hsmd hash) was about a quarter of the
  // provider's own cost per signature. Lock-free, so a child forked while
  // another thread was here never waits.
  absl::StatusOr<Digest> LookupDigest(absl::string_view name) const;

  // Whether this OpenSSL has SM2 and SM3 (some distributions leave them
  // out); without them hsmproxy registers no SM2 algorithms.
  bool sm2_available() const { return sm2_available_; }

  // The default provider's implementations in libctx(), for parameter tables
  // and for the software-key paths (the SM2 ones only if sm2_available()).
  EVP_KEYMGMT* default_keymgmt(KeyKind kind) const;
  EVP_SIGNATURE* default_rsa_signature() const { return rsa_signature_; }
  EVP_SIGNATURE* default_ecdsa_signature() const { return ecdsa_signature_; }
  EVP_SIGNATURE* default_ed25519_signature() const {
    return ed25519_signature_;
  }
  EVP_SIGNATURE* default_sm2_signature() const { return sm2_signature_; }
  EVP_ASYM_CIPHER* default_rsa_cipher() const { return rsa_cipher_; }
  EVP_ASYM_CIPHER* default_sm2_cipher() const { return sm2_cipher_; }
  EVP_KEYEXCH* default_ecdh_exchange() const { return ecdh_exchange_; }

  // Puts `status` (non-OK) on OpenSSL's error queue: reason from
  // ReasonOf(status), data from ErrorText(status).
  void RaiseError(const absl::Status& status, const char* file, int line,
                  const char* func) const;

 private:
  ProviderContext(const OSSL_CORE_HANDLE* handle, ClientFactory factory);

  absl::Status Init(const OSSL_DISPATCH* in);
  absl::Status ReadConfig(OSSL_FUNC_core_get_params_fn* get_params);

  const OSSL_CORE_HANDLE* const handle_;
  const ClientFactory factory_;
  ProviderConfig config_;

  OSSL_FUNC_core_new_error_fn* new_error_ = nullptr;
  OSSL_FUNC_core_set_error_debug_fn* set_error_debug_ = nullptr;
  OSSL_FUNC_core_vset_error_fn* vset_error_ = nullptr;

  OSSL_LIB_CTX* libctx_ = nullptr;
  OSSL_PROVIDER* default_provider_ = nullptr;
  EVP_KEYMGMT* keymgmt_[kKeyKindCount] = {};
  EVP_SIGNATURE* rsa_signature_ = nullptr;
  EVP_SIGNATURE* ecdsa_signature_ = nullptr;
  EVP_KEYEXCH* ecdh_exchange_ = nullptr;
  EVP_SIGNATURE* ed25519_signature_ = nullptr;
  EVP_SIGNATURE* sm2_signature_ = nullptr;
  EVP_ASYM_CIPHER* rsa_cipher_ = nullptr;
  EVP_ASYM_CIPHER* sm2_cipher_ = nullptr;
  bool sm2_available_ = false;

  // Digests fetched so far: immutable once published, freed with the
  // context. A full table only means later names are fetched every time.
  struct CachedDigest {
    std::string lookup_name;  // As the caller spelled it.
    EVP_MD* md;               // One reference, owned.
    v1::HashAlgorithm hash;
    size_t size;
    std::string name;
  };
  static constexpr size_t kDigestCacheSize = 32;
  mutable std::atomic<CachedDigest*> digests_[kDigestCacheSize] = {};

  std::atomic<client::Client*> client_{nullptr};
  std::unique_ptr<RandomPool> random_pool_;
};

}  // namespace hsmd::proxy

// Raises `status` through `ctx` (a ProviderContext*), recording the caller.
#define HSMPROXY_RAISE(ctx, status) \
  (ctx)->RaiseError((status), __FILE__, __LINE__, __func__)

#endif  // HSMD_PROXY_PROVIDER_PROVIDER_CONTEXT_H_
