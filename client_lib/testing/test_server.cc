// A real gRPC C++ (sync) server for hsmd.v1 with the scripted behaviour of
// test_server_script.h, so client_lib tests prove wire compatibility with
// gRPC itself. Runs as a separate process: the test never links gRPC.
//
// Usage: test_server SOCKET_PATH
// Prints "READY" on stdout once serving; runs until killed.
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client_lib/testing/test_server_script.h"
#include "common/error_detail.h"
#include "grpcpp/grpcpp.h"
#include "hsmd/v1/hsmd.grpc.pb.h"

namespace hsmd::client::testing {
namespace {

std::atomic<uint64_t> requests_served{0};

std::string Pattern(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = PatternByte(i);
  return out;
}

std::string Sha256(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), length);
}

// See test_server_script.h.
std::string DescribeSm4(const v1::Sm4Cipher& sm4) {
  absl::string_view prefix = sm4.mode() == v1::CIPHER_MODE_ECB ? kSm4EcbPrefix
                             : sm4.mode() == v1::CIPHER_MODE_CBC
                                 ? kSm4CbcPrefix
                                 : kSm4OtherPrefix;
  return absl::StrCat(prefix, absl::BytesToHexString(sm4.iv()));
}

grpc::Status ToGrpc(const absl::Status& status) {
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()),
                      StatusToRpcStatusProto(status));
}

// kErrorKey's error, as coming from a backend's `function`.
grpc::Status ScriptedError(const std::string& backend_kind,
                           const std::string& function,
                           const std::string& key) {
  absl::Status status = absl::FailedPreconditionError(kErrorMessage);
  v1::ErrorDetail detail;
  detail.set_backend_kind(backend_kind);
  detail.set_backend_code_name(std::string(kErrorDetailCodeName));
  detail.set_backend_code(kErrorDetailCode);
  detail.set_backend_function(function);
  detail.set_key(key);
  SetErrorDetail(status, detail);
  return ToGrpc(status);
}

class KeyServiceImpl final : public v1::KeyService::Service {
 public:
  grpc::Status ListKeys(grpc::ServerContext* /*context*/,
                        const v1::ListKeysRequest* request,
                        v1::ListKeysResponse* response) override {
    ++requests_served;
    for (int i = 0; i < kListedKeys; ++i) {
      const std::string label = absl::StrCat("key-", i);
      if (!request->label().empty() && request->label() != label) continue;
      v1::Key* key = response->add_keys();
      key->set_label(label);
      key->set_key_id(absl::StrCat("id", i));
      key->set_key_type(v1::KEY_TYPE_EC);
    }
    return grpc::Status::OK;
  }

  grpc::Status GetKey(grpc::ServerContext* /*context*/,
                      const v1::GetKeyRequest* request,
                      v1::GetKeyResponse* response) override {
    ++requests_served;
    if (request->key().uri() == kMissingKey) {
      return ToGrpc(absl::NotFoundError(
          absl::StrCat("no key matches ", request->key().uri())));
    }
    response->mutable_key()->set_uri(request->key().uri());
    response->mutable_key()->set_key_type(v1::KEY_TYPE_RSA);
    return grpc::Status::OK;
  }

  grpc::Status Sign(grpc::ServerContext* context,
                    const v1::SignRequest* request,
                    v1::SignResponse* response) override {
    ++requests_served;
    const std::string& uri = request->key().uri();
    if (uri == kErrorKey) {
      return ScriptedError("pkcs11", std::string(kErrorDetailFunction), uri);
    }
    if (uri == kDeadlineKey) {
      const auto deadline = context->deadline();
      if (deadline == std::chrono::system_clock::time_point::max()) {
        response->set_key_id("none");
      } else {
        const auto remaining =
            std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::system_clock::now());
        response->set_key_id(absl::StrCat(remaining.count()));
      }
      return grpc::Status::OK;
    }
    size_t number = 0;
    if (absl::StartsWith(uri, kBigKeyPrefix) &&
        absl::SimpleAtoi(uri.substr(kBigKeyPrefix.size()), &number)) {
      response->set_signature(Pattern(number));
      return grpc::Status::OK;
    }
    if (absl::StartsWith(uri, kSleepKeyPrefix) &&
        absl::SimpleAtoi(uri.substr(kSleepKeyPrefix.size()), &number)) {
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(number);
      while (std::chrono::steady_clock::now() < until &&
             !context->IsCancelled()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      if (context->IsCancelled()) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
    }
    response->set_signature(
        Sha256(request->has_digest() ? request->digest() : request->message()));
    if (request->algorithm().has_sm2()) {
      response->set_key_id(
          request->has_digest()
              ? "sm2:digest"
              : absl::StrCat("sm2:message:",
                             request->algorithm().sm2().distinguishing_id()));
    } else {
      response->set_key_id(uri);
    }
    return grpc::Status::OK;
  }

  grpc::Status Decrypt(grpc::ServerContext* /*context*/,
                       const v1::DecryptRequest* request,
                       v1::DecryptResponse* response) override {
    ++requests_served;
    std::string plaintext = request->ciphertext();
    std::reverse(plaintext.begin(), plaintext.end());
    response->set_plaintext(std::move(plaintext));
    if (request->algorithm().has_sm2()) {
      response->set_key_id(std::string(kSm2CipherName));
    } else if (request->algorithm().has_sm4()) {
      response->set_key_id(DescribeSm4(request->algorithm().sm4()));
    } else {
      response->set_key_id(request->key().key_id());
    }
    return grpc::Status::OK;
  }

  grpc::Status Encrypt(grpc::ServerContext* /*context*/,
                       const v1::EncryptRequest* request,
                       v1::EncryptResponse* response) override {
    ++requests_served;
    if (request->key().uri() == kErrorKey) {
      return ScriptedError("sdf", "SDF_Encrypt", request->key().uri());
    }
    std::string ciphertext = request->plaintext();
    std::reverse(ciphertext.begin(), ciphertext.end());
    response->set_ciphertext(std::move(ciphertext));
    response->set_key_id(DescribeSm4(request->algorithm().sm4()));
    return grpc::Status::OK;
  }

  // The "secret" is SHA-256 of the peer key, so clients can check what
  // reached the server.
  grpc::Status Derive(grpc::ServerContext* /*context*/,
                      const v1::DeriveRequest* request,
                      v1::DeriveResponse* response) override {
    ++requests_served;
    if (request->key().uri() == kErrorKey) {
      return ScriptedError("pkcs11", "C_DeriveKey", request->key().uri());
    }
    response->set_shared_secret(Sha256(request->ecdh().peer_public_key()));
    response->set_key_id(request->key().uri());
    return grpc::Status::OK;
  }

  grpc::Status GenerateRandom(grpc::ServerContext* /*context*/,
                              const v1::GenerateRandomRequest* request,
                              v1::GenerateRandomResponse* response) override {
    ++requests_served;
    response->set_data(Pattern(request->length()));
    return grpc::Status::OK;
  }
};

class AdminServiceImpl final : public v1::AdminService::Service {
 public:
  grpc::Status GenerateKey(grpc::ServerContext* /*context*/,
                           const v1::GenerateKeyRequest* request,
                           v1::GenerateKeyResponse* response) override {
    ++requests_served;
    v1::Key* key = response->mutable_key();
    key->set_label(request->label());
    key->set_key_type(request->key_type());
    key->set_size_bits(request->rsa_bits());
    return grpc::Status::OK;
  }

  grpc::Status DeleteKey(grpc::ServerContext* /*context*/,
                         const v1::DeleteKeyRequest* /*request*/,
                         v1::DeleteKeyResponse* response) override {
    ++requests_served;
    response->set_objects_deleted(3);
    return grpc::Status::OK;
  }

  grpc::Status GetStatus(grpc::ServerContext* /*context*/,
                         const v1::GetStatusRequest* /*request*/,
                         v1::GetStatusResponse* response) override {
    ++requests_served;
    response->set_version(std::string(kServerVersion));
    response->set_pid(static_cast<uint32_t>(getpid()));
    return grpc::Status::OK;
  }

  grpc::Status GetStats(grpc::ServerContext* /*context*/,
                        const v1::GetStatsRequest* /*request*/,
                        v1::GetStatsResponse* response) override {
    const uint64_t served = ++requests_served;
    v1::OperationStats* stats = response->add_operations();
    stats->set_operation("all");
    stats->set_count(served);
    return grpc::Status::OK;
  }
};

int Main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  const std::string socket_path = argv[1];
  unlink(socket_path.c_str());  // A stale socket from a killed server.
  KeyServiceImpl key_service;
  AdminServiceImpl admin_service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", socket_path),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(&key_service);
  builder.RegisterService(&admin_service);
  builder.SetMaxReceiveMessageSize(kServerMaxMessageBytes);
  builder.SetMaxSendMessageSize(kServerMaxMessageBytes);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "test_server: cannot listen on %s\n",
                 socket_path.c_str());
    return 1;
  }
  std::printf("READY\n");
  std::fflush(stdout);
  server->Wait();
  return 0;
}

}  // namespace
}  // namespace hsmd::client::testing

int main(int argc, char** argv) {
  return hsmd::client::testing::Main(argc, argv);
}
