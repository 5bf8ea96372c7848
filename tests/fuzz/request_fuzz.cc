// Fuzzes the daemon's request path below gRPC: the first input byte picks a
// request type, the rest is parsed as that serialized hsmd.v1 message, which
// then goes through request validation and, when valid, into the fake
// backend (real OpenSSL keys: RSA, P-256, Ed25519, SM2, SM4) exactly as the
// KeyService dispatches it.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/fake/fake_backend.h"
#include "daemon/service/request_validation.h"
#include "hsmd/v1/hsmd.pb.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/quiet_protobuf.h"

namespace {

namespace v1 = ::hsmd::v1;
using ::hsmd::backend::FakeBackend;
using ::hsmd::backend::RequestContext;
using ::hsmd::service::RequestLimits;

// Small limits so that over-limit inputs are reachable by mutation.
constexpr RequestLimits kLimits = {.max_message_bytes = 2048,
                                   .max_random_bytes = 1024};
// DescribeKeyRef truncates URIs to this many bytes.
constexpr size_t kMaxDescribedUriBytes = 512;

enum Selector : uint8_t {
  kSign = 0,
  kDecrypt,
  kGenerateRandom,
  kListKeys,
  kGetKey,
  kDerive,
  kEncrypt,
  kGenerateKey,
  kDeleteKey,
  kSelectorCount
};

// Keys with fixed CKA_IDs and labels, so seeds can name them by URI
// (pkcs11:token=fuzz;object=rsa or ;id=%01).
FakeBackend& Backend() {
  static FakeBackend* backend = [] {
    absl::StatusOr<std::unique_ptr<FakeBackend>> made =
        FakeBackend::New({.name = "fake", .token_label = "fuzz"});
    FUZZ_CHECK(made.ok(), made.status().ToString());
    struct Spec {
      const char* label;
      char id;
      v1::KeyType type;
      v1::Curve curve;
    };
    const Spec kSpecs[] = {
        {"rsa", 1, v1::KEY_TYPE_RSA, v1::CURVE_UNSPECIFIED},
        {"ec", 2, v1::KEY_TYPE_EC, v1::CURVE_P256},
        {"ed", 3, v1::KEY_TYPE_ED25519, v1::CURVE_ED25519},
        {"sm2", 4, v1::KEY_TYPE_SM2, v1::CURVE_SM2},
        {"sm4", 5, v1::KEY_TYPE_SM4, v1::CURVE_UNSPECIFIED},
    };
    for (const Spec& spec : kSpecs) {
      v1::GenerateKeyRequest request;
      request.set_label(spec.label);
      request.set_id(std::string(1, spec.id));
      request.set_key_type(spec.type);
      request.set_rsa_bits(2048);
      request.set_curve(spec.curve);
      if (spec.type == v1::KEY_TYPE_SM2) {
        request.add_allowed_operations(v1::OPERATION_SIGN);
      }
      absl::StatusOr<v1::Key> key = (*made)->GenerateKey(request, {});
      // A fake without SM2/SM4 support still fuzzes the other keys.
      if (!key.ok() && spec.type != v1::KEY_TYPE_SM2 &&
          spec.type != v1::KEY_TYPE_SM4) {
        FUZZ_CHECK(false, key.status().ToString());
      }
    }
    return made->release();
  }();
  return *backend;
}

void CheckRejection(const absl::Status& status) {
  FUZZ_CHECK(
      status.code() == absl::StatusCode::kInvalidArgument,
      "validation must fail with INVALID_ARGUMENT: " + status.ToString());
  FUZZ_CHECK(!status.message().empty(), "rejection without a message");
}

void CheckKeyRef(const v1::KeyRef& ref) {
  std::string described = ::hsmd::service::DescribeKeyRef(ref);
  if (ref.has_uri()) {
    FUZZ_CHECK(described.size() <= kMaxDescribedUriBytes, described);
    if (absl::StrContains(ref.uri(), "pin-value=")) {
      FUZZ_CHECK(absl::StrContains(described, "REDACTED") ||
                     described.size() < ref.uri().size(),
                 "pin-value not redacted");
    }
  }
}

// Backend errors are fine (unknown key, wrong algorithm, bad padding); they
// must carry a message.
void CheckBackendStatus(const absl::Status& status) {
  if (!status.ok()) FUZZ_CHECK(!status.message().empty(), status.ToString());
}

void FuzzSign(absl::string_view bytes) {
  v1::SignRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  CheckKeyRef(request.key());
  (void)::hsmd::service::DescribeMechanism(request);
  absl::Status valid = ::hsmd::service::ValidateSign(request, kLimits);
  if (!valid.ok()) return CheckRejection(valid);
  absl::StatusOr<v1::SignResponse> response =
      Backend().Sign(request, RequestContext{});
  CheckBackendStatus(response.status());
  if (response.ok()) FUZZ_CHECK(!response->signature().empty(), "empty sig");
}

void FuzzDecrypt(absl::string_view bytes) {
  v1::DecryptRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  CheckKeyRef(request.key());
  (void)::hsmd::service::DescribeMechanism(request);
  absl::Status valid = ::hsmd::service::ValidateDecrypt(request, kLimits);
  if (!valid.ok()) return CheckRejection(valid);
  absl::StatusOr<v1::DecryptResponse> response =
      Backend().Decrypt(request, RequestContext{});
  CheckBackendStatus(response.status());
  if (response.ok()) {
    FUZZ_CHECK(response->plaintext().size() <= request.ciphertext().size(),
               "plaintext longer than ciphertext");
  }
}

void FuzzGenerateRandom(absl::string_view bytes) {
  v1::GenerateRandomRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  absl::Status valid =
      ::hsmd::service::ValidateGenerateRandom(request, kLimits);
  if (!valid.ok()) return CheckRejection(valid);
  FUZZ_CHECK(
      request.length() >= 1 && request.length() <= kLimits.max_random_bytes,
      "validation let through length " + std::to_string(request.length()));
  absl::StatusOr<std::string> random =
      Backend().GenerateRandom(request.length(), RequestContext{});
  FUZZ_CHECK(random.ok(), random.status().ToString());
  FUZZ_CHECK(random->size() == request.length(), "wrong random length");
}

void FuzzListKeys(absl::string_view bytes) {
  v1::ListKeysRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  absl::Status valid = ::hsmd::service::ValidateListKeys(request);
  if (!valid.ok()) return CheckRejection(valid);
  absl::StatusOr<std::vector<v1::Key>> keys =
      Backend().ListKeys(request, RequestContext{});
  CheckBackendStatus(keys.status());
  if (keys.ok() && !request.label().empty()) {
    for (const v1::Key& key : *keys) {
      FUZZ_CHECK(key.label() == request.label(), "label filter ignored");
    }
  }
}

void FuzzGetKey(absl::string_view bytes) {
  v1::GetKeyRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  CheckKeyRef(request.key());
  absl::Status valid = ::hsmd::service::ValidateGetKey(request);
  if (!valid.ok()) return CheckRejection(valid);
  absl::StatusOr<v1::Key> key =
      Backend().GetKey(request.key(), RequestContext{});
  CheckBackendStatus(key.status());
}

void FuzzDerive(absl::string_view bytes) {
  v1::DeriveRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  CheckKeyRef(request.key());
  (void)::hsmd::service::DescribeMechanism(request);
  absl::Status valid = ::hsmd::service::ValidateDerive(request);
  if (!valid.ok()) return CheckRejection(valid);
  absl::StatusOr<v1::DeriveResponse> response =
      Backend().Derive(request, RequestContext{});
  CheckBackendStatus(response.status());
  if (response.ok()) {
    // Only the P-256 key derives: the secret is its 32-byte x-coordinate.
    FUZZ_CHECK(response->shared_secret().size() == 32,
               "ECDH secret of the wrong size");
  }
}

void FuzzEncrypt(absl::string_view bytes) {
  v1::EncryptRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  CheckKeyRef(request.key());
  (void)::hsmd::service::DescribeMechanism(request);
  absl::Status valid = ::hsmd::service::ValidateEncrypt(request, kLimits);
  if (!valid.ok()) return CheckRejection(valid);
  absl::StatusOr<v1::EncryptResponse> response =
      Backend().Encrypt(request, RequestContext{});
  CheckBackendStatus(response.status());
}

// Admin requests go to a backend of their own: deleting the fixed keys of
// Backend() would starve the other selectors.
FakeBackend& AdminBackend() {
  static FakeBackend* backend = [] {
    absl::StatusOr<std::unique_ptr<FakeBackend>> made =
        FakeBackend::New({.name = "admin", .token_label = "fuzz-admin"});
    FUZZ_CHECK(made.ok(), made.status().ToString());
    return made->release();
  }();
  return *backend;
}

void FuzzGenerateKey(absl::string_view bytes) {
  v1::GenerateKeyRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  absl::Status valid = ::hsmd::service::ValidateGenerateKey(request);
  if (!valid.ok()) return CheckRejection(valid);
  // RSA key generation takes tens of milliseconds: validation is what the
  // mutations exercise there; the other types go through the backend.
  if (request.key_type() == v1::KEY_TYPE_RSA) return;
  absl::StatusOr<v1::Key> key =
      AdminBackend().GenerateKey(request, RequestContext{});
  CheckBackendStatus(key.status());
  if (!key.ok()) return;
  FUZZ_CHECK(key->label() == request.label(), "label not kept");
  FUZZ_CHECK(!key->key_id().empty(), "generated key without key_id");
  // And away again, so the backend stays small over a long run.
  v1::KeyRef ref;
  ref.set_key_id(key->key_id());
  absl::StatusOr<uint32_t> deleted =
      AdminBackend().DeleteKey(ref, RequestContext{});
  FUZZ_CHECK(
      deleted.ok() && *deleted >= 1,
      "a generated key could not be deleted: " + deleted.status().ToString());
}

void FuzzDeleteKey(absl::string_view bytes) {
  v1::DeleteKeyRequest request;
  if (!request.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return;
  }
  CheckKeyRef(request.key());
  absl::Status valid = ::hsmd::service::ValidateDeleteKey(request);
  if (!valid.ok()) return CheckRejection(valid);
  absl::StatusOr<uint32_t> deleted =
      AdminBackend().DeleteKey(request.key(), RequestContext{});
  CheckBackendStatus(deleted.status());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hsmd::fuzz::QuietProtobufLogs();
  if (size == 0) return 0;
  absl::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % kSelectorCount) {
    case kSign:
      FuzzSign(bytes);
      break;
    case kDecrypt:
      FuzzDecrypt(bytes);
      break;
    case kGenerateRandom:
      FuzzGenerateRandom(bytes);
      break;
    case kListKeys:
      FuzzListKeys(bytes);
      break;
    case kDerive:
      FuzzDerive(bytes);
      break;
    case kEncrypt:
      FuzzEncrypt(bytes);
      break;
    case kGenerateKey:
      FuzzGenerateKey(bytes);
      break;
    case kDeleteKey:
      FuzzDeleteKey(bytes);
      break;
    default:
      FuzzGetKey(bytes);
      break;
  }
  return 0;
}
