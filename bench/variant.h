// What the benchmark measures: eight operations, each run by five variants
// (in-process PKCS#11, hsmproxy, client_lib over hsmd's fast path and over
// its gRPC server, software key) behind one interface, so the harness times
// every variant with the same loop.
#ifndef HSMD_BENCH_VARIANT_H_
#define HSMD_BENCH_VARIANT_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::bench {

enum class Op {
  kRsa2048Pkcs1Sign,
  kRsa2048PssSign,
  kRsa3072Pkcs1Sign,
  kEcdsaP256Sign,
  kEcdsaP384Sign,
  kEd25519Sign,
  kRsa2048OaepDecrypt,
  kRandom32,
};

struct OpInfo {
  Op op;
  // Stable identifier (JSON, --ops).
  const char* id;
  // For tables.
  const char* title;
  // Demo key label ("" for randomness).
  const char* key_label;
  // Digest for signatures ("" for Ed25519 and non-signatures).
  const char* digest;
};

const std::vector<OpInfo>& AllOps();
const OpInfo& InfoOf(Op op);
// `op`'s position in AllOps() (-1 for a value outside the enum).
int OpIndex(Op op);

// The fixed inputs: a 64-byte message to sign, and the plaintext that the
// OAEP ciphertext (SHA-1, MGF1-SHA-1, no label: the only OAEP parameters
// SoftHSM 2.6 decrypts natively) holds.
absl::string_view BenchMessage();
absl::string_view OaepPlaintext();
inline constexpr size_t kRandomBytes = 32;

// A demo key as hsmd lists it.
struct HsmKey {
  std::string label;
  std::string key_id;
  std::string uri;
  // DER SubjectPublicKeyInfo.
  std::string spki;
};
using KeyDirectory = std::map<std::string, HsmKey>;

// One operation prepared for up to N threads. Run(t) may be called
// concurrently for distinct t; each t is only ever used by one thread at a
// time.
class OpRunner {
 public:
  virtual ~OpRunner() = default;
  virtual absl::Status Run(int thread) = 0;
  // The result of thread t's last Run: signature, plaintext or random bytes.
  virtual absl::string_view output(int thread) const = 0;
};

class Variant {
 public:
  virtual ~Variant() = default;
  // "in-process", "hsmproxy", "client_lib", "client_lib_grpc", "software".
  virtual std::string name() const = 0;
  // Looks up the key and builds per-thread state; makes no measured call.
  virtual absl::StatusOr<std::unique_ptr<OpRunner>> Prepare(Op op,
                                                            int threads) = 0;
  // OK when `output` is a correct result of `op` (a signature that verifies
  // with the public key, the expected plaintext, random bytes).
  virtual absl::Status Check(Op op, absl::string_view output) const = 0;
};

}  // namespace hsmd::bench

#endif  // HSMD_BENCH_VARIANT_H_
