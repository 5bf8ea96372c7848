// client_lib against a real gRPC C++ server (testing/test_server, a separate
// process): wire compatibility, errors, deadlines, limits, daemon restarts,
// threads and fork(). This process never links gRPC, as in real use.
#include "client_lib/client.h"

#include <dirent.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client_lib/testing/scripted_http2_server.h"
#include "client_lib/testing/test_server_process.h"
#include "client_lib/testing/test_server_script.h"
#include "common/error_detail.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::client {
namespace {

using ::hsmd::client::testing::PatternByte;
using ::testing::HasSubstr;

constexpr size_t kMiB = 1024 * 1024;
// Exit codes of forked children (0 is success).
constexpr int kChildCallFailed = 10;
constexpr int kChildWrongResult = 11;
constexpr int kChildWrongState = 12;

std::string Sha256(absl::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(digest), length);
}

std::string Pattern(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = PatternByte(i);
  return out;
}

v1::SignRequest SignRequest(absl::string_view uri, absl::string_view message) {
  v1::SignRequest request;
  request.mutable_key()->set_uri(std::string(uri));
  request.mutable_algorithm()->mutable_ecdsa()->set_hash(
      v1::HASH_ALGORITHM_SHA256);
  request.set_message(std::string(message));
  return request;
}

// A sign call whose result the test can check; returns a child exit code.
int SignAndCheck(Client& client, absl::string_view message) {
  absl::StatusOr<v1::SignResponse> response =
      client.Sign(SignRequest("pkcs11:object=k", message));
  if (!response.ok()) {
    std::fprintf(stderr, "[pid %d] Sign failed: %s\n", getpid(),
                 response.status().ToString().c_str());
    return kChildCallFailed;
  }
  if (response->signature() != Sha256(message)) {
    std::fprintf(stderr, "[pid %d] wrong signature\n", getpid());
    return kChildWrongResult;
  }
  return 0;
}

int RandomAndCheck(Client& client, uint32_t length) {
  v1::GenerateRandomRequest request;
  request.set_length(length);
  absl::StatusOr<v1::GenerateRandomResponse> response =
      client.GenerateRandom(request);
  if (!response.ok()) {
    std::fprintf(stderr, "[pid %d] GenerateRandom failed: %s\n", getpid(),
                 response.status().ToString().c_str());
    return kChildCallFailed;
  }
  return response->data() == Pattern(length) ? 0 : kChildWrongResult;
}

// Open sockets of this process (the test creates none besides the client's).
int CountSocketFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  while (dirent* entry = readdir(dir)) {
    char target[64];
    const std::string link = absl::StrCat("/proc/self/fd/", entry->d_name);
    const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
    if (n > 0 && absl::string_view(target, n).substr(0, 7) == "socket:") {
      ++count;
    }
  }
  closedir(dir);
  return count;
}

// Waits for a child; the child's own alarm() guarantees it ends.
int WaitForChild(pid_t pid) {
  int status = 0;
  pid_t reaped;
  do {
    reaped = waitpid(pid, &status, 0);
  } while (reaped < 0 && errno == EINTR);
  if (reaped != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);  // e.g. 142: the watchdog (SIGALRM) fired.
}

// Forks; the child runs `body` under a 20 s watchdog and _exit()s with its
// result. Returns the child's exit code.
int RunInChild(const std::function<int()>& body) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    alarm(20);
    _exit(body());
  }
  return WaitForChild(pid);
}

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    baseline_sockets_ = CountSocketFds();
    absl::StatusOr<std::string> path = testing::MakeTempSocketPath();
    ASSERT_TRUE(path.ok()) << path.status();
    socket_path_ = *path;
    StartServer();
    client_ = NewClient();
    ASSERT_NE(client_, nullptr);
  }

  void TearDown() override {
    client_.reset();
    server_.reset();
    unlink(socket_path_.c_str());
    rmdir(socket_path_.substr(0, socket_path_.rfind('/')).c_str());
  }

  void StartServer() {
    absl::StatusOr<std::unique_ptr<testing::TestServerProcess>> server =
        testing::TestServerProcess::Start(socket_path_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::unique_ptr<Client> NewClient(
      const std::function<void(ClientOptions&)>& adjust = nullptr) {
    ClientOptions options;
    options.socket_path = socket_path_;
    options.default_timeout = absl::Seconds(10);
    if (adjust) adjust(options);
    absl::StatusOr<std::unique_ptr<Client>> client = Client::New(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  uint32_t ServerPid() {
    absl::StatusOr<v1::GetStatusResponse> status =
        client_->GetStatus(v1::GetStatusRequest());
    EXPECT_TRUE(status.ok()) << status.status();
    return status.ok() ? status->pid() : 0;
  }

  int baseline_sockets_ = 0;
  std::string socket_path_;
  std::unique_ptr<testing::TestServerProcess> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientTest, KeyServiceWrappers) {
  absl::StatusOr<v1::ListKeysResponse> keys =
      client_->ListKeys(v1::ListKeysRequest());
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->keys_size(), testing::kListedKeys);
  EXPECT_EQ(keys->keys(1).label(), "key-1");
  v1::ListKeysRequest filtered;
  filtered.set_label("key-2");
  keys = client_->ListKeys(filtered);
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->keys_size(), 1);
  EXPECT_EQ(keys->keys(0).key_id(), "id2");

  v1::GetKeyRequest get;
  get.mutable_key()->set_uri("pkcs11:object=rsa");
  absl::StatusOr<v1::GetKeyResponse> key = client_->GetKey(get);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->key().uri(), "pkcs11:object=rsa");
  EXPECT_EQ(key->key().key_type(), v1::KEY_TYPE_RSA);

  absl::StatusOr<v1::SignResponse> signature =
      client_->Sign(SignRequest("pkcs11:object=ec", "to be signed"));
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_EQ(signature->signature(), Sha256("to be signed"));
  EXPECT_EQ(signature->key_id(), "pkcs11:object=ec");

  v1::SignRequest digest_request = SignRequest("pkcs11:object=ec", "");
  digest_request.set_digest("precomputed");
  signature = client_->Sign(digest_request);
  ASSERT_TRUE(signature.ok()) << signature.status();
  EXPECT_EQ(signature->signature(), Sha256("precomputed"));

  v1::DecryptRequest decrypt;
  decrypt.mutable_key()->set_key_id("abc");
  decrypt.set_ciphertext("0123456789");
  absl::StatusOr<v1::DecryptResponse> plaintext = client_->Decrypt(decrypt);
  ASSERT_TRUE(plaintext.ok()) << plaintext.status();
  EXPECT_EQ(plaintext->plaintext(), "9876543210");
  EXPECT_EQ(plaintext->key_id(), "abc");

  EXPECT_EQ(RandomAndCheck(*client_, 32), 0);
  EXPECT_EQ(RandomAndCheck(*client_, 1), 0);
}

TEST_F(ClientTest, AdminServiceWrappers) {
  v1::GenerateKeyRequest generate;
  generate.set_label("new-key");
  generate.set_key_type(v1::KEY_TYPE_RSA);
  generate.set_rsa_bits(3072);
  absl::StatusOr<v1::GenerateKeyResponse> generated =
      client_->GenerateKey(generate);
  ASSERT_TRUE(generated.ok()) << generated.status();
  EXPECT_EQ(generated->key().label(), "new-key");
  EXPECT_EQ(generated->key().size_bits(), 3072u);

  v1::DeleteKeyRequest remove;
  remove.mutable_key()->set_uri("pkcs11:object=new-key");
  absl::StatusOr<v1::DeleteKeyResponse> deleted = client_->DeleteKey(remove);
  ASSERT_TRUE(deleted.ok()) << deleted.status();
  EXPECT_EQ(deleted->objects_deleted(), 3u);

  absl::StatusOr<v1::GetStatusResponse> status =
      client_->GetStatus(v1::GetStatusRequest());
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->version(), testing::kServerVersion);
  EXPECT_EQ(status->pid(), static_cast<uint32_t>(server_->pid()));

  absl::StatusOr<v1::GetStatsResponse> stats =
      client_->GetStats(v1::GetStatsRequest());
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->operations_size(), 1);
  EXPECT_EQ(stats->operations(0).count(), 4u);  // Including this call.

  // Every call above went over one pooled connection.
  EXPECT_EQ(client_->stats().connections_opened, 1u);
}

TEST_F(ClientTest, UnknownMethodIsUnimplemented) {
  v1::GetStatusResponse response;
  absl::Status status = client_->Call("/hsmd.v1.KeyService/NoSuchMethod",
                                      v1::GetStatusRequest(), &response);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnimplemented) << status;
  EXPECT_EQ(RandomAndCheck(*client_, 8), 0);
}

TEST_F(ClientTest, InvalidCallArguments) {
  v1::GetStatusResponse response;
  EXPECT_EQ(client_->Call("no-slash", v1::GetStatusRequest(), &response).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_
                ->Call("/hsmd.v1.AdminService/GetStatus",
                       v1::GetStatusRequest(), nullptr)
                .code(),
            absl::StatusCode::kInvalidArgument);
  CallOptions zero;
  zero.timeout = absl::ZeroDuration();
  EXPECT_EQ(client_->GetStatus(v1::GetStatusRequest(), zero).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(ClientTest, NewRejectsBadOptions) {
  const auto code_of = [](const ClientOptions& options) {
    return Client::New(options).status().code();
  };
  ClientOptions options;
  options.socket_path = "";
  EXPECT_EQ(code_of(options), absl::StatusCode::kInvalidArgument);
  options.socket_path = "/tmp/" + std::string(120, 'x');
  absl::Status too_long = Client::New(options).status();
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.message(), HasSubstr("limited to 107"));
  options = ClientOptions();
  options.default_timeout = absl::ZeroDuration();
  EXPECT_EQ(code_of(options), absl::StatusCode::kInvalidArgument);
  options = ClientOptions();
  options.connect_timeout = -absl::Seconds(1);
  EXPECT_EQ(code_of(options), absl::StatusCode::kInvalidArgument);
  options = ClientOptions();
  options.max_response_bytes = 0;
  EXPECT_EQ(code_of(options), absl::StatusCode::kInvalidArgument);
  options = ClientOptions();
  options.max_idle_connections = -1;
  EXPECT_EQ(code_of(options), absl::StatusCode::kInvalidArgument);
}

TEST_F(ClientTest, LargeRequestAndResponse) {
  std::string message(3 * kMiB, '\0');
  for (size_t i = 0; i < message.size(); ++i) {
    message[i] = static_cast<char>(i * 7);
  }
  EXPECT_EQ(SignAndCheck(*client_, message), 0);

  absl::StatusOr<v1::SignResponse> big = client_->Sign(
      SignRequest(absl::StrCat(testing::kBigKeyPrefix, 3 * kMiB), "x"));
  ASSERT_TRUE(big.ok()) << big.status();
  EXPECT_EQ(big->signature(), Pattern(3 * kMiB));

  EXPECT_EQ(RandomAndCheck(*client_, 3 * kMiB), 0);
  EXPECT_EQ(RandomAndCheck(*client_, 16), 0);
  EXPECT_EQ(client_->stats().connections_opened, 1u);
}

TEST_F(ClientTest, ResponseOverClientLimitIsResourceExhausted) {
  std::unique_ptr<Client> small = NewClient(
      [](ClientOptions& options) { options.max_response_bytes = kMiB; });
  v1::GenerateRandomRequest request;
  request.set_length(2 * kMiB);
  absl::StatusOr<v1::GenerateRandomResponse> response =
      small->GenerateRandom(request);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(response.status().message(), HasSubstr("max_response_bytes"));
  // Still works, on the same connection.
  EXPECT_EQ(RandomAndCheck(*small, 32), 0);
  EXPECT_EQ(RandomAndCheck(*small, kMiB - 100), 0);
  EXPECT_EQ(small->stats().connections_opened, 1u);

  // The default limit is 4 MiB.
  request.set_length(5 * kMiB);
  EXPECT_EQ(client_->GenerateRandom(request).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RandomAndCheck(*client_, 32), 0);
}

TEST_F(ClientTest, RequestOverServerLimitIsRejectedAndClientRecovers) {
  absl::StatusOr<v1::SignResponse> response = client_->Sign(
      SignRequest("pkcs11:object=k",
                  std::string(testing::kServerMaxMessageBytes + 1, 'z')));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kResourceExhausted)
      << response.status();
  EXPECT_EQ(SignAndCheck(*client_, "after"), 0);
}

TEST_F(ClientTest, ServerErrorWithDetailRoundTrips) {
  absl::StatusOr<v1::SignResponse> response =
      client_->Sign(SignRequest(testing::kErrorKey, "m"));
  ASSERT_FALSE(response.ok());
  const absl::Status& status = response.status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  // Non-ASCII, '%' and newline survive gRPC's percent-encoding.
  EXPECT_EQ(status.message(), testing::kErrorMessage);
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_kind(), "pkcs11");
  EXPECT_EQ(detail->backend_code_name(), testing::kErrorDetailCodeName);
  EXPECT_EQ(detail->backend_code(), testing::kErrorDetailCode);
  EXPECT_EQ(detail->backend_function(), testing::kErrorDetailFunction);
  EXPECT_EQ(detail->key(), testing::kErrorKey);
  EXPECT_EQ(DescribeBackendCode(status),
            "CKR_KEY_FUNCTION_NOT_PERMITTED (0x68)");

  v1::GetKeyRequest missing;
  missing.mutable_key()->set_uri(std::string(testing::kMissingKey));
  absl::Status not_found = client_->GetKey(missing).status();
  EXPECT_EQ(not_found.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(not_found.message(), "no key matches test:missing");
  EXPECT_FALSE(GetErrorDetail(not_found).has_value());
  // Errors do not cost the connection.
  EXPECT_EQ(client_->stats().connections_opened, 1u);
}

v1::KeyRef UriRef(absl::string_view uri) {
  v1::KeyRef ref;
  ref.set_uri(std::string(uri));
  return ref;
}

TEST_F(ClientTest, Sm2RequestsCarryTheirParameters) {
  const v1::KeyRef key = UriRef("sdf:device=card0;index=1;usage=sign");
  const std::string e(kSm3DigestBytes, 'e');
  absl::StatusOr<v1::SignRequest> digest = Sm2SignDigestRequest(key, e);
  ASSERT_TRUE(digest.ok()) << digest.status();
  absl::StatusOr<v1::SignResponse> signed_digest = client_->Sign(*digest);
  ASSERT_TRUE(signed_digest.ok()) << signed_digest.status();
  EXPECT_EQ(signed_digest->key_id(), "sm2:digest");
  EXPECT_EQ(signed_digest->signature(), Sha256(e));

  absl::StatusOr<v1::SignRequest> message =
      Sm2SignMessageRequest(key, "a message", "alice@example.com");
  ASSERT_TRUE(message.ok()) << message.status();
  absl::StatusOr<v1::SignResponse> signed_message = client_->Sign(*message);
  ASSERT_TRUE(signed_message.ok()) << signed_message.status();
  EXPECT_EQ(signed_message->key_id(), "sm2:message:alice@example.com");
  EXPECT_EQ(signed_message->signature(), Sha256("a message"));
  // The default ID travels as the empty string (hsmd fills in the default).
  message = Sm2SignMessageRequest(key, "m");
  ASSERT_TRUE(message.ok());
  signed_message = client_->Sign(*message);
  ASSERT_TRUE(signed_message.ok()) << signed_message.status();
  EXPECT_EQ(signed_message->key_id(), "sm2:message:");
  // The largest ID ENTL can express still fits.
  EXPECT_TRUE(
      Sm2SignMessageRequest(key, "m", std::string(kSm2MaxIdBytes, 'i')).ok());

  absl::StatusOr<v1::DecryptRequest> decrypt = Sm2DecryptRequest(
      UriRef("sdf:device=card0;index=1;usage=enc"), "ciphertext");
  ASSERT_TRUE(decrypt.ok()) << decrypt.status();
  absl::StatusOr<v1::DecryptResponse> plaintext = client_->Decrypt(*decrypt);
  ASSERT_TRUE(plaintext.ok()) << plaintext.status();
  EXPECT_EQ(plaintext->plaintext(), "txetrehpic");
  EXPECT_EQ(plaintext->key_id(), testing::kSm2CipherName);
}

TEST_F(ClientTest, Sm2RequestBuildersRejectBadInput) {
  const v1::KeyRef key = UriRef("sdf:device=card0;index=1;usage=sign");
  absl::Status status =
      Sm2SignDigestRequest(key, std::string(31, 'e')).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "the SM2 digest e is 31 bytes; SM3 gives 32");
  EXPECT_EQ(Sm2SignDigestRequest(key, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  status = Sm2SignMessageRequest(key, "m", std::string(kSm2MaxIdBytes + 1, 'i'))
               .status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("8192 bytes; at most 8191"));
  status = Sm2DecryptRequest(key, "").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "the SM2 ciphertext is empty");
}

TEST_F(ClientTest, Sm4EncryptAndDecrypt) {
  const v1::KeyRef key = UriRef("sdf:device=card0;index=2;usage=sm4");
  const std::string iv = "0123456789abcdef";
  const std::string data = Pattern(2 * kSm4BlockBytes);
  std::string reversed = data;
  std::reverse(reversed.begin(), reversed.end());

  absl::StatusOr<v1::EncryptRequest> cbc =
      Sm4EncryptRequest(key, v1::CIPHER_MODE_CBC, iv, data);
  ASSERT_TRUE(cbc.ok()) << cbc.status();
  absl::StatusOr<v1::EncryptResponse> encrypted = client_->Encrypt(*cbc);
  ASSERT_TRUE(encrypted.ok()) << encrypted.status();
  EXPECT_EQ(encrypted->ciphertext(), reversed);
  EXPECT_EQ(
      encrypted->key_id(),
      absl::StrCat(testing::kSm4CbcPrefix, "30313233343536373839616263646566"));

  absl::StatusOr<v1::EncryptRequest> ecb =
      Sm4EncryptRequest(key, v1::CIPHER_MODE_ECB, "", data);
  ASSERT_TRUE(ecb.ok()) << ecb.status();
  encrypted = client_->Encrypt(*ecb);
  ASSERT_TRUE(encrypted.ok()) << encrypted.status();
  EXPECT_EQ(encrypted->key_id(), testing::kSm4EcbPrefix);

  absl::StatusOr<v1::DecryptRequest> decrypt =
      Sm4DecryptRequest(key, v1::CIPHER_MODE_CBC, iv, reversed);
  ASSERT_TRUE(decrypt.ok()) << decrypt.status();
  absl::StatusOr<v1::DecryptResponse> decrypted = client_->Decrypt(*decrypt);
  ASSERT_TRUE(decrypted.ok()) << decrypted.status();
  EXPECT_EQ(decrypted->plaintext(), data);
  EXPECT_EQ(
      decrypted->key_id(),
      absl::StrCat(testing::kSm4CbcPrefix, "30313233343536373839616263646566"));
  decrypt = Sm4DecryptRequest(key, v1::CIPHER_MODE_ECB, "", reversed);
  ASSERT_TRUE(decrypt.ok()) << decrypt.status();
  decrypted = client_->Decrypt(*decrypt);
  ASSERT_TRUE(decrypted.ok()) << decrypted.status();
  EXPECT_EQ(decrypted->key_id(), testing::kSm4EcbPrefix);

  // A server error on Encrypt keeps code, message and backend detail.
  ecb = Sm4EncryptRequest(UriRef(testing::kErrorKey), v1::CIPHER_MODE_ECB, "",
                          data);
  ASSERT_TRUE(ecb.ok());
  encrypted = client_->Encrypt(*ecb);
  ASSERT_FALSE(encrypted.ok());
  EXPECT_EQ(encrypted.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(encrypted.status().message(), testing::kErrorMessage);
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(encrypted.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_kind(), "sdf");
  EXPECT_EQ(detail->backend_function(), "SDF_Encrypt");
  EXPECT_EQ(client_->stats().connections_opened, 1u);
}

TEST_F(ClientTest, Derive) {
  v1::DeriveRequest request;
  request.mutable_key()->set_uri("pkcs11:object=ec-p256");
  request.mutable_ecdh()->set_peer_public_key(
      std::string("\x04peer\0point", 12));
  absl::StatusOr<v1::DeriveResponse> derived = client_->Derive(request);
  ASSERT_TRUE(derived.ok()) << derived.status();
  EXPECT_EQ(derived->shared_secret(),
            Sha256(std::string("\x04peer\0point", 12)));
  EXPECT_EQ(derived->key_id(), "pkcs11:object=ec-p256");

  // A server error keeps code, message and backend detail.
  request.mutable_key()->set_uri(std::string(testing::kErrorKey));
  derived = client_->Derive(request);
  ASSERT_FALSE(derived.ok());
  EXPECT_EQ(derived.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(derived.status().message(), testing::kErrorMessage);
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(derived.status());
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_function(), "C_DeriveKey");
}

TEST_F(ClientTest, Sm4RequestBuildersRejectBadInput) {
  const v1::KeyRef key = UriRef("sdf:device=card0;index=2;usage=sm4");
  const std::string block(kSm4BlockBytes, 'b');
  const std::string iv(kSm4BlockBytes, 'i');
  struct Case {
    v1::CipherMode mode;
    std::string iv;
    std::string data;
    std::string message;
  };
  const std::vector<Case> cases = {
      {v1::CIPHER_MODE_ECB, iv, block, "SM4-ECB takes no IV (16 bytes given)"},
      {v1::CIPHER_MODE_CBC, "", block,
       "the SM4-CBC IV is 0 bytes; it must be 16"},
      {v1::CIPHER_MODE_CBC, std::string(17, 'i'), block,
       "the SM4-CBC IV is 17 bytes; it must be 16"},
      {v1::CIPHER_MODE_UNSPECIFIED, "", block,
       "SM4 needs a cipher mode: CIPHER_MODE_ECB or CIPHER_MODE_CBC"},
      {v1::CIPHER_MODE_ECB, "", "", "is 0 bytes; it must be a non-zero"},
      {v1::CIPHER_MODE_CBC, iv, std::string(17, 'x'),
       "is 17 bytes; it must be a non-zero multiple of 16"},
  };
  for (const Case& c : cases) {
    absl::Status status = Sm4EncryptRequest(key, c.mode, c.iv, c.data).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
    status = Sm4DecryptRequest(key, c.mode, c.iv, c.data).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
  EXPECT_THAT(Sm4EncryptRequest(key, v1::CIPHER_MODE_ECB, "", "short")
                  .status()
                  .message(),
              HasSubstr("the SM4 plaintext is 5 bytes"));
  EXPECT_THAT(Sm4DecryptRequest(key, v1::CIPHER_MODE_ECB, "", "short")
                  .status()
                  .message(),
              HasSubstr("the SM4 ciphertext is 5 bytes"));
}

TEST_F(ClientTest, ClientDeadlineAgainstSlowMethod) {
  CallOptions options;
  options.timeout = absl::Milliseconds(200);
  absl::StatusOr<v1::SignResponse> response = client_->Sign(
      SignRequest(absl::StrCat(testing::kSleepKeyPrefix, 10000), "m"), options);
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded)
      << response.status();
  EXPECT_EQ(SignAndCheck(*client_, "next call works"), 0);
}

TEST_F(ClientTest, ServerSeesTheDeadline) {
  CallOptions options;
  options.timeout = absl::Seconds(20);
  absl::StatusOr<v1::SignResponse> response =
      client_->Sign(SignRequest(testing::kDeadlineKey, ""), options);
  ASSERT_TRUE(response.ok()) << response.status();
  int64_t remaining_ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(response->key_id(), &remaining_ms))
      << response->key_id();
  EXPECT_GT(remaining_ms, 0);
  EXPECT_LE(remaining_ms, 20000);

  // Without a per-call timeout the client's default (10 s here) is sent.
  response = client_->Sign(SignRequest(testing::kDeadlineKey, ""));
  ASSERT_TRUE(response.ok()) << response.status();
  ASSERT_TRUE(absl::SimpleAtoi(response->key_id(), &remaining_ms));
  EXPECT_GT(remaining_ms, 0);
  EXPECT_LE(remaining_ms, 10000);
}

TEST_F(ClientTest, ConnectionRefusedNamesTheSocket) {
  ASSERT_TRUE(server_->Kill().ok());
  // The killed server leaves its socket file behind: nobody listens on it.
  absl::Status status = client_->GetStatus(v1::GetStatusRequest()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), absl::StrCat("hsmd unavailable at ", socket_path_,
                                           ": connection refused"));
}

TEST_F(ClientTest, MissingSocketNamesTheSocket) {
  ASSERT_TRUE(server_->Kill().ok());
  ASSERT_EQ(unlink(socket_path_.c_str()), 0);
  absl::Status status = client_->GetStatus(v1::GetStatusRequest()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), absl::StrCat("hsmd unavailable at ", socket_path_,
                                           ": no such file or directory"));
}

TEST_F(ClientTest, PermissionDeniedNamesTheSocket) {
  constexpr int kCannotDropRoot = 77;
  ASSERT_EQ(chmod(socket_path_.c_str(), 0), 0);
  // Root ignores the socket's mode: try as "nobody" in a child (the socket
  // directory is 0700, so the lookup is denied as well).
  const int rc = RunInChild([&] {
    if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) {
      return kCannotDropRoot;
    }
    absl::Status status = client_->GetStatus(v1::GetStatusRequest()).status();
    const std::string expected = absl::StrCat(
        "hsmd unavailable at ", socket_path_, ": permission denied");
    if (status.code() != absl::StatusCode::kUnavailable ||
        status.message() != expected) {
      std::fprintf(stderr, "unexpected status: %s\n",
                   status.ToString().c_str());
      return kChildWrongResult;
    }
    return 0;
  });
  if (rc == kCannotDropRoot) GTEST_SKIP() << "cannot switch to uid 65534";
  EXPECT_EQ(rc, 0);
}

TEST_F(ClientTest, ServerRestartBetweenCalls) {
  uint32_t previous_pid = ServerPid();
  for (int restart = 1; restart <= 3; ++restart) {
    ASSERT_TRUE(server_->Kill().ok());
    EXPECT_EQ(client_->GetStatus(v1::GetStatusRequest()).status().code(),
              absl::StatusCode::kUnavailable);
    StartServer();
    // The pooled connection died with the old server; the client notices
    // and reconnects by itself.
    const uint32_t pid = ServerPid();
    EXPECT_NE(pid, 0u);
    EXPECT_NE(pid, previous_pid);
    previous_pid = pid;
    EXPECT_EQ(SignAndCheck(*client_, "after restart"), 0);
    EXPECT_EQ(client_->stats().connections_opened,
              static_cast<uint64_t>(restart + 1));
  }
}

TEST_F(ClientTest, ServerKilledMidCall) {
  absl::Status status;
  std::thread caller([&] {
    CallOptions options;
    options.timeout = absl::Seconds(30);
    status = client_
                 ->Sign(SignRequest(
                            absl::StrCat(testing::kSleepKeyPrefix, 20000), "m"),
                        options)
                 .status();
  });
  // Give the request time to arrive; if it has not, the outcome is the same.
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE(server_->Kill().ok());
  caller.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr(socket_path_));
  StartServer();
  EXPECT_EQ(SignAndCheck(*client_, "after the crash"), 0);
}

TEST_F(ClientTest, ConcurrentCallsFromEightThreads) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([this, t, &failures] {
      for (int i = 0; i < 200; ++i) {
        const int rc =
            i % 2 == 0 ? SignAndCheck(*client_,
                                      absl::StrCat("thread ", t, " call ", i))
                       : RandomAndCheck(*client_, 1 + (t * 200 + i) % 3000);
        if (rc != 0) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  // At most one connection per thread was ever open at once.
  EXPECT_GE(client_->stats().connections_opened, 1u);
}

TEST_F(ClientTest, ForkChildCallsWhileParentKeepsCalling) {
  ASSERT_EQ(SignAndCheck(*client_, "parent before"), 0);
  for (int i = 0; i < 500; ++i) {
    ASSERT_EQ(RandomAndCheck(*client_, 16 + i % 64), 0) << "iteration " << i;
    const int rc = RunInChild([&] {
      const std::string message = absl::StrCat("child ", i);
      int result = SignAndCheck(*client_, message);
      if (result == 0 && i % 2 == 1) result = SignAndCheck(*client_, message);
      // Only the child's own connection is open: the inherited one was
      // closed (the parent keeps its copy).
      if (result == 0 && CountSocketFds() != baseline_sockets_ + 1) {
        result = kChildWrongState;
      }
      return result;
    });
    ASSERT_EQ(rc, 0) << "child of iteration " << i;
  }
  ASSERT_EQ(SignAndCheck(*client_, "parent after"), 0);
  // The parent's connection carried all its calls, undisturbed by 500
  // children (a child writing on it would have desynchronised its HTTP/2
  // session).
  EXPECT_EQ(client_->stats().connections_opened, 1u);
}

TEST_F(ClientTest, ChildNeverUsesTheParentsConnection) {
  ASSERT_EQ(SignAndCheck(*client_, "parent"), 0);
  ASSERT_EQ(client_->stats().connections_opened, 1u);
  const int rc = RunInChild([&] {
    // A fresh process view: nothing opened yet in this pid.
    if (client_->stats().connections_opened != 0) return kChildWrongState;
    for (int i = 0; i < 3; ++i) {
      if (const int r = SignAndCheck(*client_, "child"); r != 0) return r;
    }
    return client_->stats().connections_opened == 1 ? 0 : kChildWrongState;
  });
  ASSERT_EQ(rc, 0);
  ASSERT_EQ(SignAndCheck(*client_, "parent again"), 0);
  EXPECT_EQ(client_->stats().connections_opened, 1u);
}

TEST_F(ClientTest, DoubleFork) {
  ASSERT_EQ(SignAndCheck(*client_, "parent"), 0);
  const int rc = RunInChild([&] {
    if (const int r = SignAndCheck(*client_, "child"); r != 0) return r;
    const int grandchild = RunInChild([&] {
      int r = SignAndCheck(*client_, "grandchild");
      if (r == 0) r = RandomAndCheck(*client_, 100);
      return r;
    });
    if (grandchild != 0) {
      std::fprintf(stderr, "grandchild exited with %d\n", grandchild);
      return grandchild;
    }
    return SignAndCheck(*client_, "child after grandchild");
  });
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(SignAndCheck(*client_, "parent after"), 0);
}

TEST_F(ClientTest, ForkWhileFourThreadsAreMidCall) {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::atomic<int> calls{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        // Half the calls sleep in the server, so forks land mid-call.
        const std::string uri = i % 2 == 0
                                    ? "pkcs11:object=k"
                                    : absl::StrCat(testing::kSleepKeyPrefix, 2);
        const std::string message = absl::StrCat(t, "/", i);
        absl::StatusOr<v1::SignResponse> response =
            client_->Sign(SignRequest(uri, message));
        if (!response.ok() || response->signature() != Sha256(message)) {
          ++failures;
        }
        ++calls;
      }
    });
  }
  while (calls < 20) absl::SleepFor(absl::Milliseconds(1));
  for (int i = 0; i < 40; ++i) {
    const int rc = RunInChild([&] {
      int result = SignAndCheck(*client_, "child of a busy parent");
      if (result == 0) result = RandomAndCheck(*client_, 64);
      // The connections the parent's threads were using are closed here too.
      if (result == 0 && CountSocketFds() != baseline_sockets_ + 1) {
        result = kChildWrongState;
      }
      return result;
    });
    EXPECT_EQ(rc, 0) << "child " << i;
  }
  stop = true;
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

// A client held in a static, as a provider holds it: a child that leaves
// with exit() runs its destructor, which must neither hang nor touch the
// parent's connection.
Client* StaticClient(const std::string& socket_path) {
  static std::unique_ptr<Client> client;
  if (client == nullptr) {
    ClientOptions options;
    options.socket_path = socket_path;
    client = Client::New(options).value();
  }
  return client.get();
}

TEST_F(ClientTest, ChildExitsWithoutUsingTheClient) {
  Client* client = StaticClient(socket_path_);
  ASSERT_EQ(SignAndCheck(*client, "parent"), 0);
  EXPECT_EQ(RunInChild([] {
              std::exit(0);
              return 1;
            }),
            0);
  // A child that used the client, then exit()s.
  EXPECT_EQ(RunInChild([client] {
              if (SignAndCheck(*client, "child") != 0) std::exit(1);
              std::exit(0);
              return 1;
            }),
            0);
  EXPECT_EQ(SignAndCheck(*client, "parent after"), 0);
  EXPECT_EQ(client->stats().connections_opened, 1u);
}

// Retry rules, against the raw-frame fake of hsmd (real gRPC servers do not
// refuse streams or half-close on demand).
class ClientRetryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> path = testing::MakeTempSocketPath();
    ASSERT_TRUE(path.ok()) << path.status();
    socket_path_ = *path;
  }

  void TearDown() override {
    client_.reset();
    server_.reset();
    rmdir(socket_path_.substr(0, socket_path_.rfind('/')).c_str());
  }

  void Serve(testing::ScriptedHttp2Server::Script script) {
    absl::StatusOr<std::unique_ptr<testing::ScriptedHttp2Server>> server =
        testing::ScriptedHttp2Server::Listen(socket_path_, std::move(script),
                                             {});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ClientOptions options;
    options.socket_path = socket_path_;
    options.default_timeout = absl::Seconds(10);
    absl::StatusOr<std::unique_ptr<Client>> client = Client::New(options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  static std::string StatusResponse(absl::string_view version) {
    v1::GetStatusResponse response;
    response.set_version(std::string(version));
    return response.SerializeAsString();
  }

  absl::StatusOr<v1::GetStatusResponse> GetStatus() {
    return client_->GetStatus(v1::GetStatusRequest());
  }

  std::string socket_path_;
  std::unique_ptr<testing::ScriptedHttp2Server> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(ClientRetryTest, GoawayRefusalIsRetriedOnANewConnection) {
  Serve([](const testing::ScriptedRequest& request) {
    if (request.connection == 0) {
      return testing::ScriptedReply{
          testing::Http2Frame(
              testing::kFrameGoaway, 0, 0,
              testing::BigEndian32(0) + testing::BigEndian32(0)),
          /*close_after=*/true};
    }
    return testing::ScriptedReply{
        testing::OkGrpcResponse(request.stream, StatusResponse("retried"))};
  });
  absl::StatusOr<v1::GetStatusResponse> status = GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->version(), "retried");
  EXPECT_EQ(client_->stats().calls_retried, 1u);
  EXPECT_EQ(client_->stats().connections_opened, 2u);
}

TEST_F(ClientRetryTest, RefusedStreamIsRetriedOnce) {
  Serve([](const testing::ScriptedRequest& request) {
    return testing::ScriptedReply{testing::Http2Frame(
        testing::kFrameRstStream, 0, request.stream, testing::BigEndian32(7))};
  });
  absl::Status status = GetStatus().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("REFUSED_STREAM"));
  EXPECT_EQ(server_->requests().size(), 2u);
  EXPECT_EQ(client_->stats().calls_retried, 1u);
}

TEST_F(ClientRetryTest, NoRetryOnceTheRequestMayHaveBeenProcessed) {
  Serve([](const testing::ScriptedRequest& request) {
    return testing::ScriptedReply{
        testing::HeadersFrame(request.stream, testing::GrpcResponseHeaders(),
                              false),
        /*close_after=*/true};
  });
  absl::Status status = GetStatus().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), absl::StrCat("hsmd unavailable at ", socket_path_,
                                           ": connection closed by hsmd"));
  EXPECT_EQ(server_->requests().size(), 1u);
  EXPECT_EQ(client_->stats().calls_retried, 0u);
}

TEST_F(ClientRetryTest, PooledConnectionClosedWhileIdleIsReplaced) {
  Serve([](const testing::ScriptedRequest& request) {
    return testing::ScriptedReply{
        testing::OkGrpcResponse(request.stream, StatusResponse("ok")),
        /*close_after=*/true};
  });
  absl::StatusOr<v1::GetStatusResponse> first = GetStatus();
  ASSERT_TRUE(first.ok()) << first.status();
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (server_->connections_done() < 1 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::StatusOr<v1::GetStatusResponse> status = GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  // Noticed before sending: no retry was needed.
  EXPECT_EQ(client_->stats().calls_retried, 0u);
  EXPECT_EQ(client_->stats().connections_opened, 2u);
}

TEST_F(ClientRetryTest, WriteFailureOnPooledConnectionIsRetried) {
  Serve([](const testing::ScriptedRequest& request) {
    testing::ScriptedReply reply{
        testing::OkGrpcResponse(request.stream, StatusResponse("ok"))};
    // After its second answer (when the client has no control frames left
    // to send) the first connection stops reading without closing: the
    // client's next write on it fails with EPIPE before any byte leaves.
    reply.stop_reading_after = request.connection == 0 && request.stream == 3;
    return reply;
  });
  ASSERT_TRUE(GetStatus().ok());
  ASSERT_TRUE(GetStatus().ok());
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (server_->connections_done() < 1 && absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::StatusOr<v1::GetStatusResponse> status = GetStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(client_->stats().calls_retried, 1u);
  EXPECT_EQ(client_->stats().connections_opened, 2u);
  EXPECT_EQ(server_->requests().size(), 3u);
}

}  // namespace
}  // namespace hsmd::client

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Watchdog for the whole binary: a hang fails instead of blocking.
  alarm(55);
  return RUN_ALL_TESTS();
}
