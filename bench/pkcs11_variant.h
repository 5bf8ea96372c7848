// Variant "in-process": the demo token driven directly through PKCS#11 from
// the benchmark process (the ceiling on this machine). Mechanisms are the
// ones hsmd uses: the message is hashed in software, then CKM_RSA_PKCS over
// a DigestInfo, CKM_RSA_PKCS_PSS, CKM_ECDSA over the digest, CKM_EDDSA over
// the message, CKM_RSA_PKCS_OAEP (SHA-1), C_GenerateRandom. ECDSA results
// stay r || s (PKCS#11's form); the DER conversion an EVP caller needs is not
// charged to this variant.
#ifndef HSMD_BENCH_PKCS11_VARIANT_H_
#define HSMD_BENCH_PKCS11_VARIANT_H_

#include <map>
#include <memory>
#include <string>

#include "bench/pkcs11_direct.h"
#include "bench/variant.h"
#include "common/openssl_ptr.h"
#include "common/secret.h"

namespace hsmd::bench {

class Pkcs11Variant final : public Variant {
 public:
  struct Config {
    std::string module_path;
    std::string token_label;
    // Both outlive the variant.
    const SecretString* pin = nullptr;
    const KeyDirectory* keys = nullptr;
    // One session per thread.
    int sessions = 1;
  };

  // Loads the module, C_Initialize, opens the sessions and logs in.
  static absl::StatusOr<std::unique_ptr<Pkcs11Variant>> New(
      const Config& config);
  // In a forked child of the process that created `inherited`: what an
  // in-process application has to do after fork() (C_Finalize of the
  // inherited state, then C_Initialize, sessions and login again).
  static absl::StatusOr<std::unique_ptr<Pkcs11Variant>> ReopenAfterFork(
      Pkcs11Variant& inherited);

  std::string name() const override { return "in-process"; }
  absl::StatusOr<std::unique_ptr<OpRunner>> Prepare(Op op,
                                                    int threads) override;
  absl::Status Check(Op op, absl::string_view output) const override;

 private:
  Pkcs11Variant(Config config, CK_FUNCTION_LIST* fns)
      : config_(std::move(config)), fns_(fns) {}
  // C_Initialize, sessions and login.
  absl::Status Open();

  const Config config_;
  CK_FUNCTION_LIST* const fns_;
  std::unique_ptr<Pkcs11Token> token_;
  std::map<std::string, EvpPkeyPtr> public_keys_;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_PKCS11_VARIANT_H_
