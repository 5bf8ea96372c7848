#include "bench/evp_variant.h"

#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/store.h>
#include <stdlib.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/crypto_check.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

constexpr size_t kMaxOutput = 1024;

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

class EvpRunner final : public OpRunner {
 public:
  EvpRunner(OSSL_LIB_CTX* libctx, Op op, EVP_PKEY* key, std::string ciphertext)
      : libctx_(libctx),
        op_(op),
        key_(key),
        ciphertext_(std::move(ciphertext)),
        digest_(InfoOf(op).digest[0] == '\0' ? nullptr : InfoOf(op).digest) {}

  absl::Status AddThread() {
    PerThread t;
    t.out.resize(kMaxOutput);
    if (key_ != nullptr) {
      t.md.reset(EVP_MD_CTX_new());
      t.pkey_ctx.reset(EVP_PKEY_CTX_new_from_pkey(libctx_, key_, nullptr));
      if (t.md == nullptr || t.pkey_ctx == nullptr) {
        return OpenSslError("creating EVP contexts");
      }
    }
    threads_.push_back(std::move(t));
    return absl::OkStatus();
  }

  absl::Status Run(int thread) override {
    PerThread& t = threads_[thread];
    auto* out = reinterpret_cast<unsigned char*>(t.out.data());
    size_t len = kMaxOutput;
    switch (op_) {
      case Op::kRandom32:
        if (RAND_bytes_ex(libctx_, out, kRandomBytes, 0) != 1) {
          return OpenSslError("RAND_bytes_ex");
        }
        t.out_len = kRandomBytes;
        return absl::OkStatus();
      case Op::kRsa2048OaepDecrypt:
        if (EVP_PKEY_decrypt_init(t.pkey_ctx.get()) != 1 ||
            EVP_PKEY_CTX_set_rsa_padding(t.pkey_ctx.get(),
                                         RSA_PKCS1_OAEP_PADDING) != 1 ||
            EVP_PKEY_decrypt(t.pkey_ctx.get(), out, &len, Bytes(ciphertext_),
                             ciphertext_.size()) != 1) {
          return OpenSslError("OAEP EVP_PKEY_decrypt");
        }
        t.out_len = len;
        return absl::OkStatus();
      default:
        break;
    }
    EVP_MD_CTX_reset(t.md.get());
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit_ex(t.md.get(), &pctx, digest_, libctx_, nullptr,
                              key_, nullptr) != 1) {
      return OpenSslError("EVP_DigestSignInit_ex");
    }
    if (op_ == Op::kRsa2048PssSign &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
      return OpenSslError("setting PSS parameters");
    }
    const absl::string_view message = BenchMessage();
    if (EVP_DigestSign(t.md.get(), out, &len, Bytes(message), message.size()) !=
        1) {
      return OpenSslError("EVP_DigestSign");
    }
    t.out_len = len;
    return absl::OkStatus();
  }

  absl::string_view output(int thread) const override {
    const PerThread& t = threads_[thread];
    return absl::string_view(t.out.data(), t.out_len);
  }

 private:
  struct PerThread {
    EvpMdCtxPtr md;
    EvpPkeyCtxPtr pkey_ctx;
    std::string out;
    size_t out_len = 0;
  };

  OSSL_LIB_CTX* const libctx_;
  const Op op_;
  EVP_PKEY* const key_;
  const std::string ciphertext_;
  const char* const digest_;
  std::vector<PerThread> threads_;
};

// The private key (by reference) at `uri`, through OSSL_STORE in `libctx`.
absl::StatusOr<EvpPkeyPtr> LoadStoreKey(OSSL_LIB_CTX* libctx,
                                        const std::string& uri) {
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(uri.c_str(), libctx, nullptr, nullptr, nullptr,
                         nullptr, nullptr, nullptr);
  if (store == nullptr) return OpenSslError(absl::StrCat("opening ", uri));
  EvpPkeyPtr key;
  while (key == nullptr && !OSSL_STORE_eof(store)) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info == nullptr) break;
    if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
      key.reset(OSSL_STORE_INFO_get1_PKEY(info));
    }
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  if (key == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("no private key at ", uri, ": ", OpenSslErrors()));
  }
  return key;
}

// A software key like the demo key `label`.
absl::StatusOr<EvpPkeyPtr> GenerateLike(const std::string& label) {
  EVP_PKEY* key = nullptr;
  if (label == "rsa-2048") {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
  } else if (label == "rsa-3072") {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{3072});
  } else if (label == "ec-p256") {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  } else if (label == "ec-p384") {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
  } else if (label == "ed25519") {
    key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("no software equivalent of key ", label));
  }
  if (key == nullptr) return OpenSslError(absl::StrCat("generating ", label));
  return EvpPkeyPtr(key);
}

std::vector<std::string> Labels() {
  std::vector<std::string> labels;
  for (const OpInfo& info : AllOps()) {
    const std::string label = info.key_label;
    if (label.empty()) continue;
    bool seen = false;
    for (const std::string& l : labels) seen |= l == label;
    if (!seen) labels.push_back(label);
  }
  return labels;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EvpVariant>> EvpVariant::NewHsmproxy(
    const std::string& module_path, const std::string& socket_path,
    const KeyDirectory& keys) {
  // OpenSSL 3.0 cannot pass parameters to a provider loaded without a
  // configuration file; hsmproxy reads its socket from the environment.
  if (setenv("HSMPROXY_SOCKET", socket_path.c_str(), 1) != 0) {
    return absl::InternalError("setenv HSMPROXY_SOCKET failed");
  }
  OSSL_LIB_CTX* libctx = OSSL_LIB_CTX_new();
  if (libctx == nullptr) return OpenSslError("OSSL_LIB_CTX_new");
  std::unique_ptr<EvpVariant> variant(new EvpVariant("hsmproxy", libctx));
  for (const char* name : {"default", module_path.c_str()}) {
    OSSL_PROVIDER* provider = OSSL_PROVIDER_load(libctx, name);
    if (provider == nullptr) {
      return OpenSslError(absl::StrCat("loading provider ", name));
    }
    variant->providers_.push_back(provider);
  }
  // Before the first random bytes are drawn from this context.
  if (RAND_set_DRBG_type(libctx, "HSMPROXY-RAND", "provider=hsmproxy", nullptr,
                         nullptr) != 1) {
    return OpenSslError("RAND_set_DRBG_type(HSMPROXY-RAND)");
  }
  for (const std::string& label : Labels()) {
    auto it = keys.find(label);
    if (it == keys.end()) {
      return absl::NotFoundError(
          absl::StrCat("hsmd does not list the demo key ", label));
    }
    ASSIGN_OR_RETURN(EvpPkeyPtr key, LoadStoreKey(libctx, it->second.uri));
    ASSIGN_OR_RETURN(EvpPkeyPtr pub, PublicKeyFromSpki(it->second.spki));
    variant->keys_[label] = std::move(key);
    variant->public_keys_[label] = std::move(pub);
  }
  return variant;
}

absl::StatusOr<std::unique_ptr<EvpVariant>> EvpVariant::NewSoftware() {
  std::unique_ptr<EvpVariant> variant(new EvpVariant("software", nullptr));
  for (const std::string& label : Labels()) {
    ASSIGN_OR_RETURN(EvpPkeyPtr key, GenerateLike(label));
    ASSIGN_OR_RETURN(std::string spki, SpkiOf(key.get()));
    ASSIGN_OR_RETURN(EvpPkeyPtr pub, PublicKeyFromSpki(spki));
    variant->keys_[label] = std::move(key);
    variant->public_keys_[label] = std::move(pub);
  }
  return variant;
}

EvpVariant::~EvpVariant() {
  keys_.clear();
  for (OSSL_PROVIDER* provider : providers_) OSSL_PROVIDER_unload(provider);
  if (libctx_ != nullptr) OSSL_LIB_CTX_free(libctx_);
}

absl::StatusOr<std::unique_ptr<OpRunner>> EvpVariant::Prepare(Op op,
                                                              int threads) {
  const std::string label = InfoOf(op).key_label;
  EVP_PKEY* key = nullptr;
  std::string ciphertext;
  if (!label.empty()) {
    auto it = keys_.find(label);
    if (it == keys_.end()) {
      return absl::NotFoundError(absl::StrCat("no key ", label));
    }
    key = it->second.get();
  }
  if (op == Op::kRsa2048OaepDecrypt) {
    ASSIGN_OR_RETURN(ciphertext, OaepCiphertext(public_keys_.at(label).get()));
  }
  auto runner = std::make_unique<EvpRunner>(libctx_, op, key, ciphertext);
  for (int t = 0; t < threads; ++t) RETURN_IF_ERROR(runner->AddThread());
  return runner;
}

absl::Status EvpVariant::Check(Op op, absl::string_view output) const {
  const std::string label = InfoOf(op).key_label;
  EVP_PKEY* key = nullptr;
  if (!label.empty()) key = public_keys_.at(label).get();
  return CheckOutput(op, key, output, SignatureForm::kEvp);
}

}  // namespace hsmd::bench
