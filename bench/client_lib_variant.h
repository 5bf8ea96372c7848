// Variant "client_lib": the same requests hsmproxy sends, made with
// client_lib directly, which splits the provider's cost from the transport's.
// Like hsmproxy, it hashes the message here and sends the digest (Ed25519:
// the message), names keys by key id, and reuses one Client per process;
// request and response messages are reused per thread.
//
// Variant "client_lib_grpc": the same, with ClientOptions::fast_path off, so
// the same hsmd serves it through its gRPC C++ server instead of its fast
// path; comparing the two isolates the daemon's transport.
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
  // `fast_path`: announce the connections for hsmd's fast path
  // ("client_lib") or not ("client_lib_grpc").
  static absl::StatusOr<std::unique_ptr<ClientLibVariant>> New(
      const std::string& socket_path, const KeyDirectory& keys,
      bool fast_path = true);

  std::string name() const override {
    return fast_path_ ? "client_lib" : "client_lib_grpc";
  }
  absl::StatusOr<std::unique_ptr<OpRunner>> Prepare(Op op,
                                                    int threads) override;
  absl::Status Check(Op op, absl::string_view output) const override;

 private:
  ClientLibVariant(std::unique_ptr<client::Client> client,
                   const KeyDirectory& keys, bool fast_path)
      : client_(std::move(client)), keys_(keys), fast_path_(fast_path) {}

  std::unique_ptr<client::Client> client_;
  const KeyDirectory keys_;
  const bool fast_path_;
  std::map<std::string, EvpPkeyPtr> public_keys_;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_CLIENT_LIB_VARIANT_H_
