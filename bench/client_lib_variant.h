// Variant "client_lib": the same requests hsmproxy sends, made with
// client_lib directly, which splits the provider's cost from the transport's.
// Like hsmproxy, it hashes the message here and sends the digest (Ed25519:
// the message), names keys by key id, and reuses one Client per process;
// request and response messages are reused per thread.
#ifndef HSMD_BENCH_CLIENT_LIB_VARIANT_H_
#define HSMD_BENCH_CLIENT_LIB_VARIANT_H_

#include <map>
#include <memory>
#include <string>

#include "bench/variant.h"
#include "client_lib/client.h"
#include "common/openssl_ptr.h"

namespace hsmd::bench {

class ClientLibVariant final : public Variant {
 public:
  static absl::StatusOr<std::unique_ptr<ClientLibVariant>> New(
      const std::string& socket_path, const KeyDirectory& keys);

  std::string name() const override { return "client_lib"; }
  absl::StatusOr<std::unique_ptr<OpRunner>> Prepare(Op op,
                                                    int threads) override;
  absl::Status Check(Op op, absl::string_view output) const override;

 private:
  ClientLibVariant(std::unique_ptr<client::Client> client,
                   const KeyDirectory& keys)
      : client_(std::move(client)), keys_(keys) {}

  std::unique_ptr<client::Client> client_;
  const KeyDirectory keys_;
  std::map<std::string, EvpPkeyPtr> public_keys_;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_CLIENT_LIB_VARIANT_H_
