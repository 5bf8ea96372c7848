// Variants "hsmproxy" and "software": one EVP code path (what an
// application writes), two kinds of key.
//
// - hsmproxy: a library context holding the default provider and
//   hsmproxy.so, keys loaded from their pkcs11: URIs through OSSL_STORE,
//   randomness from HSMPROXY-RAND installed as the context's DRBG.
// - software: the default library context with freshly generated keys of the
//   same types and sizes (the demo keys are not extractable, so "the same
//   key material" means the same algorithm and size), OpenSSL's own DRBG.
//
// Each operation initialises its EVP context per call, as a TLS server does
// per handshake: EVP_DigestSignInit_ex + EVP_DigestSign, or
// EVP_PKEY_decrypt_init + EVP_PKEY_decrypt, or RAND_bytes_ex.
#ifndef HSMD_BENCH_EVP_VARIANT_H_
#define HSMD_BENCH_EVP_VARIANT_H_

#include <openssl/evp.h>

#include <map>
#include <memory>
#include <string>

#include "bench/variant.h"
#include "common/openssl_ptr.h"

namespace hsmd::bench {

class EvpVariant final : public Variant {
 public:
  // hsmproxy.so at `module_path`, talking to hsmd at `socket_path`.
  static absl::StatusOr<std::unique_ptr<EvpVariant>> NewHsmproxy(
      const std::string& module_path, const std::string& socket_path,
      const KeyDirectory& keys);
  static absl::StatusOr<std::unique_ptr<EvpVariant>> NewSoftware();
  ~EvpVariant() override;

  std::string name() const override { return name_; }
  absl::StatusOr<std::unique_ptr<OpRunner>> Prepare(Op op,
                                                    int threads) override;
  absl::Status Check(Op op, absl::string_view output) const override;

 private:
  EvpVariant(std::string name, OSSL_LIB_CTX* libctx)
      : name_(std::move(name)), libctx_(libctx) {}

  const std::string name_;
  // Owned unless null (the default context).
  OSSL_LIB_CTX* const libctx_;
  std::vector<OSSL_PROVIDER*> providers_;
  // By demo label: the key used, and its public half (default context).
  std::map<std::string, EvpPkeyPtr> keys_;
  std::map<std::string, EvpPkeyPtr> public_keys_;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_EVP_VARIANT_H_
