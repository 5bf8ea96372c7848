#include "proxy_provider/provider_context.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include <cstdarg>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"
#include "proxy_provider/debug.h"
#include "proxy_provider/errors.h"

namespace hsmd::proxy {
namespace {

// Parses a positive millisecond count from the config.
absl::StatusOr<absl::Duration> ParseMillis(const char* name,
                                           const char* value) {
  int64_t ms = 0;
  if (!absl::SimpleAtoi(value, &ms) || ms <= 0 || ms > 3600 * 1000) {
    return WithReason(
        absl::InvalidArgumentError(absl::StrCat(
            "provider config: ", name, " = \"", value,
            "\" is not a number of milliseconds between 1 and 3600000")),
        Reason::kBadConfig);
  }
  return absl::Milliseconds(ms);
}

bool IsTrue(const char* value) {
  std::string v(value);
  return v == "1" || v == "yes" || v == "true" || v == "on";
}

// Raises with the core's functions, which take a va_list.
void CallVsetError(OSSL_FUNC_core_vset_error_fn* vset_error,
                   const OSSL_CORE_HANDLE* handle, uint32_t reason,
                   const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vset_error(handle, reason, fmt, args);
  va_end(args);
}

}  // namespace

ProviderContext::ProviderContext(const OSSL_CORE_HANDLE* handle,
                                 ClientFactory factory)
    : handle_(handle), factory_(std::move(factory)) {}

absl::StatusOr<std::unique_ptr<ProviderContext>> ProviderContext::New(
    const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
    ClientFactory factory) {
  std::unique_ptr<ProviderContext> ctx(
      new ProviderContext(handle, std::move(factory)));
  RETURN_IF_ERROR(ctx->Init(in));
  return ctx;
}

absl::Status ProviderContext::Init(const OSSL_DISPATCH* in) {
  OSSL_FUNC_core_get_params_fn* get_params = nullptr;
  for (const OSSL_DISPATCH* f = in; f != nullptr && f->function_id != 0; ++f) {
    switch (f->function_id) {
      case OSSL_FUNC_CORE_GET_PARAMS:
        get_params = OSSL_FUNC_core_get_params(f);
        break;
      case OSSL_FUNC_CORE_NEW_ERROR:
        new_error_ = OSSL_FUNC_core_new_error(f);
        break;
      case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
        set_error_debug_ = OSSL_FUNC_core_set_error_debug(f);
        break;
      case OSSL_FUNC_CORE_VSET_ERROR:
        vset_error_ = OSSL_FUNC_core_vset_error(f);
        break;
      default:
        break;
    }
  }
  RETURN_IF_ERROR(ReadConfig(get_params));
  SetDebugEnabled(config_.debug);

  // A library context with the core's BIO functions (the decoder reads
  // OSSL_CORE_BIOs through it) and only the default provider.
  libctx_ = OSSL_LIB_CTX_new_from_dispatch(handle_, in);
  if (libctx_ == nullptr) {
    return absl::InternalError("could not create hsmproxy's library context");
  }
  default_provider_ = OSSL_PROVIDER_load(libctx_, "default");
  if (default_provider_ == nullptr) {
    return absl::InternalError(
        "could not load the default provider into hsmproxy's library "
        "context");
  }
  // Some distributions build OpenSSL without SM2: hsmproxy then serves the
  // other key types and leaves SM2 out.
  ERR_set_mark();
  for (KeyKind kind : kAllKeyKinds) {
    keymgmt_[static_cast<int>(kind)] =
        EVP_KEYMGMT_fetch(libctx_, KeyKindName(kind), kDefaultProviderQuery);
  }
  sm2_signature_ = EVP_SIGNATURE_fetch(libctx_, "SM2", kDefaultProviderQuery);
  sm2_cipher_ = EVP_ASYM_CIPHER_fetch(libctx_, "SM2", kDefaultProviderQuery);
  EvpMdPtr sm3(EVP_MD_fetch(libctx_, "SM3", kDefaultProviderQuery));
  ERR_pop_to_mark();
  sm2_available_ = default_keymgmt(KeyKind::kSm2) != nullptr &&
                   sm2_signature_ != nullptr && sm2_cipher_ != nullptr &&
                   sm3 != nullptr;
  for (KeyKind kind : kAllKeyKinds) {
    if (default_keymgmt(kind) == nullptr && kind != KeyKind::kSm2) {
      return absl::InternalError(absl::StrCat("the default provider has no ",
                                              KeyKindName(kind), " keymgmt"));
    }
  }
  rsa_signature_ = EVP_SIGNATURE_fetch(libctx_, "RSA", kDefaultProviderQuery);
  ecdsa_signature_ =
      EVP_SIGNATURE_fetch(libctx_, "ECDSA", kDefaultProviderQuery);
  ed25519_signature_ =
      EVP_SIGNATURE_fetch(libctx_, "ED25519", kDefaultProviderQuery);
  rsa_cipher_ = EVP_ASYM_CIPHER_fetch(libctx_, "RSA", kDefaultProviderQuery);
  ecdh_exchange_ = EVP_KEYEXCH_fetch(libctx_, "ECDH", kDefaultProviderQuery);
  if (rsa_signature_ == nullptr || ecdsa_signature_ == nullptr ||
      ed25519_signature_ == nullptr || rsa_cipher_ == nullptr ||
      ecdh_exchange_ == nullptr) {
    return absl::InternalError(
        "the default provider lacks RSA, ECDSA or Ed25519 signatures, RSA "
        "encryption or ECDH");
  }

  random_pool_ = std::make_unique<RandomPool>(
      [this](size_t length) -> absl::StatusOr<std::string> {
        ASSIGN_OR_RETURN(client::Client * c, client());
        v1::GenerateRandomRequest request;
        request.set_length(static_cast<uint32_t>(length));
        ASSIGN_OR_RETURN(v1::GenerateRandomResponse response,
                         c->GenerateRandom(request, call_options()));
        HSMPROXY_DEBUG_LOG("fetched ", length, " random bytes from hsmd");
        return std::move(*response.mutable_data());
      });

  HSMPROXY_DEBUG_LOG("initialised: socket ", config_.socket_path, ", timeout ",
                     absl::FormatDuration(config_.timeout),
                     ", connect timeout ",
                     absl::FormatDuration(config_.connect_timeout),
                     sm2_available_ ? "" : "; no SM2 in this OpenSSL");
  return absl::OkStatus();
}

absl::Status ProviderContext::ReadConfig(
    OSSL_FUNC_core_get_params_fn* get_params) {
  if (get_params != nullptr) {
    char* socket = nullptr;
    char* timeout = nullptr;
    char* connect_timeout = nullptr;
    char* debug = nullptr;
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_ptr("socket", &socket, 0),
        OSSL_PARAM_utf8_ptr("timeout_ms", &timeout, 0),
        OSSL_PARAM_utf8_ptr("connect_timeout_ms", &connect_timeout, 0),
        OSSL_PARAM_utf8_ptr("debug", &debug, 0),
        OSSL_PARAM_END,
    };
    if (!get_params(handle_, params)) {
      return WithReason(
          absl::InternalError("could not read the provider configuration"),
          Reason::kBadConfig);
    }
    if (socket != nullptr && socket[0] != '\0') config_.socket_path = socket;
    if (timeout != nullptr) {
      ASSIGN_OR_RETURN(config_.timeout, ParseMillis("timeout_ms", timeout));
    }
    if (connect_timeout != nullptr) {
      ASSIGN_OR_RETURN(config_.connect_timeout,
                       ParseMillis("connect_timeout_ms", connect_timeout));
    }
    if (debug != nullptr) config_.debug = IsTrue(debug);
  }
  const char* env_socket = std::getenv("HSMPROXY_SOCKET");
  if (env_socket != nullptr && env_socket[0] != '\0') {
    config_.socket_path = env_socket;
  }
  if (DebugRequestedByEnvironment()) config_.debug = true;
  return absl::OkStatus();
}

ProviderContext::~ProviderContext() {
  // The client knows whether its connections belong to this process; a
  // forked child deleting it never touches the parent's connections.
  delete client_.exchange(nullptr);
  random_pool_.reset();
  for (std::atomic<CachedDigest*>& slot : digests_) {
    CachedDigest* entry = slot.exchange(nullptr);
    if (entry == nullptr) continue;
    EVP_MD_free(entry->md);
    delete entry;
  }
  for (EVP_KEYMGMT*& km : keymgmt_) {
    EVP_KEYMGMT_free(km);
    km = nullptr;
  }
  EVP_SIGNATURE_free(rsa_signature_);
  EVP_SIGNATURE_free(ecdsa_signature_);
  EVP_KEYEXCH_free(ecdh_exchange_);
  EVP_SIGNATURE_free(ed25519_signature_);
  EVP_SIGNATURE_free(sm2_signature_);
  EVP_ASYM_CIPHER_free(rsa_cipher_);
  EVP_ASYM_CIPHER_free(sm2_cipher_);
  if (default_provider_ != nullptr) OSSL_PROVIDER_unload(default_provider_);
  OSSL_LIB_CTX_free(libctx_);
}

absl::StatusOr<Digest> ProviderContext::LookupDigest(
    absl::string_view name) const {
  auto copy = [](const CachedDigest& entry) {
    Digest digest;
    EVP_MD_up_ref(entry.md);
    digest.md.reset(entry.md);
    digest.hash = entry.hash;
    digest.size = entry.size;
    digest.name = entry.name;
    return digest;
  };
  size_t free_slot = kDigestCacheSize;
  for (size_t i = 0; i < kDigestCacheSize; ++i) {
    const CachedDigest* entry = digests_[i].load(std::memory_order_acquire);
    if (entry == nullptr) {
      free_slot = i;
      break;
    }
    if (entry->lookup_name == name) return copy(*entry);
  }
  ASSIGN_OR_RETURN(Digest digest, proxy::LookupDigest(libctx_, name));
  if (free_slot == kDigestCacheSize) return digest;
  auto entry = std::make_unique<CachedDigest>(CachedDigest{
      std::string(name), digest.md.get(), digest.hash, digest.size,
      digest.name});
  EVP_MD_up_ref(entry->md);
  // Another thread may publish the same name first; a duplicate entry is
  // harmless, so just try the following slots.
  for (size_t i = free_slot; i < kDigestCacheSize; ++i) {
    CachedDigest* expected = nullptr;
    if (digests_[i].compare_exchange_strong(expected, entry.get(),
                                            std::memory_order_acq_rel)) {
      entry.release();
      return digest;
    }
  }
  EVP_MD_free(entry->md);
  return digest;
}

absl::StatusOr<client::Client*> ProviderContext::client() {
  client::Client* existing = client_.load(std::memory_order_acquire);
  if (existing != nullptr) return existing;
  client::ClientOptions options;
  options.socket_path = config_.socket_path;
  options.default_timeout = config_.timeout;
  options.connect_timeout = config_.connect_timeout;
  absl::StatusOr<std::unique_ptr<client::Client>> made = factory_(options);
  if (!made.ok()) {
    return WithReason(
        absl::Status(
            made.status().code(),
            absl::StrCat("cannot create the hsmd client for ",
                         config_.socket_path, ": ", made.status().message())),
        Reason::kBadConfig);
  }
  client::Client* fresh = made->get();
  if (client_.compare_exchange_strong(existing, fresh,
                                      std::memory_order_acq_rel)) {
    made->release();
    HSMPROXY_DEBUG_LOG("created hsmd client for ", config_.socket_path);
    return fresh;
  }
  // Another thread won the race; ours is dropped.
  return existing;
}

client::CallOptions ProviderContext::call_options() const {
  client::CallOptions options;
  options.timeout = config_.timeout;
  return options;
}

EVP_KEYMGMT* ProviderContext::default_keymgmt(KeyKind kind) const {
  return keymgmt_[static_cast<int>(kind)];
}

void ProviderContext::RaiseError(const absl::Status& status, const char* file,
                                 int line, const char* func) const {
  if (status.ok()) return;
  Reason reason = ReasonOf(status);
  std::string text = ErrorText(status);
  HSMPROXY_DEBUG_LOG("error: ", ReasonText(reason), ": ", text, " (", func,
                     ")");
  if (new_error_ == nullptr || vset_error_ == nullptr) return;
  new_error_(handle_);
  if (set_error_debug_ != nullptr) {
    set_error_debug_(handle_, file, line, func);
  }
  CallVsetError(vset_error_, handle_, static_cast<uint32_t>(reason), "%s",
                text.c_str());
}

}  // namespace hsmd::proxy
