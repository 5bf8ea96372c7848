// An in-process stand-in for hsmd behind the client_lib Client interface,
// for provider tests that need no daemon: it holds software keys (labels as
// in `hsmd --demo`: rsa-2048, ec-p256, ec-p384, ed25519 on token "demo";
// and, as on an SDF device "soft0", sm2-sign (sdf:device=soft0;index=1;
// usage=sign), sm2-enc (...;usage=enc) and sm4 (...;usage=sm4)) and
// implements ListKeys, GetKey, Sign, Decrypt, Derive (ECDH with the EC
// keys; the peer as a DER SubjectPublicKeyInfo) and GenerateRandom with hsmd's
// semantics and error codes. Tests can make it "unavailable" and count calls.
#ifndef HSMD_TESTS_PROVIDER_FAKE_HSMD_H_
#define HSMD_TESTS_PROVIDER_FAKE_HSMD_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "client_lib/client.h"
#include "common/openssl_ptr.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::testing {

class FakeHsmd : public std::enable_shared_from_this<FakeHsmd> {
 public:
  // Generates the demo keys (token "demo").
  static absl::StatusOr<std::shared_ptr<FakeHsmd>> New();

  // A client talking to this fake.
  std::unique_ptr<client::Client> NewClient(
      const client::ClientOptions& options);

  // While set, every call fails with UNAVAILABLE, as client_lib reports a
  // refused connection.
  void set_unavailable(bool unavailable);

  // Number of calls of `method` ("Sign", "ListKeys", ...) so far.
  int calls(const std::string& method) const;

  // The key's description (as ListKeys returns it) and its private key.
  const v1::Key& key(const std::string& label) const;
  EVP_PKEY* private_key(const std::string& label) const;

  // Attaches a DER certificate to the key (returned as certificate_der).
  void set_certificate(const std::string& label, const std::string& der);

  // The last Sign request received.
  v1::SignRequest last_sign_request() const;

  absl::Status Call(absl::string_view method,
                    const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite* response,
                    const std::string& socket_path);

 private:
  struct Entry {
    v1::Key key;
    EvpPkeyPtr pkey;
  };

  FakeHsmd() = default;
  absl::Status AddKey(const std::string& label, v1::KeyType type,
                      EvpPkeyPtr pkey, v1::Curve curve);
  // A key on the SDF device "soft0" (pkey nullptr for SM4).
  absl::Status AddSdfKey(const std::string& label, v1::KeyType type,
                         EvpPkeyPtr pkey, int index, const std::string& usage,
                         v1::Operation operation);
  absl::StatusOr<const Entry*> Find(const v1::KeyRef& ref) const;
  absl::StatusOr<std::vector<const Entry*>> Match(
      const std::string& uri_filter) const;

  absl::StatusOr<v1::ListKeysResponse> ListKeys(const v1::ListKeysRequest& r);
  absl::StatusOr<v1::GetKeyResponse> GetKey(const v1::GetKeyRequest& r);
  absl::StatusOr<v1::SignResponse> Sign(const v1::SignRequest& r);
  absl::StatusOr<std::string> Sm2Sign(const Entry& entry,
                                      const v1::SignRequest& r);
  absl::StatusOr<std::string> Sm2Decrypt(const Entry& entry,
                                         const std::string& ciphertext);
  absl::StatusOr<v1::DecryptResponse> Decrypt(const v1::DecryptRequest& r);
  absl::StatusOr<v1::DeriveResponse> Derive(const v1::DeriveRequest& r);
  absl::StatusOr<v1::GenerateRandomResponse> GenerateRandom(
      const v1::GenerateRandomRequest& r);

  std::map<std::string, Entry> keys_;  // by label; fixed after New()
  mutable absl::Mutex mu_;
  bool unavailable_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> certificates_ ABSL_GUARDED_BY(mu_);
  v1::SignRequest last_sign_request_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hsmd::testing

#endif  // HSMD_TESTS_PROVIDER_FAKE_HSMD_H_
