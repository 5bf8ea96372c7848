#include "client_lib/client.h"

#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "client_lib/grpc_framing.h"
#include "client_lib/http2_connection.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

namespace hsmd::client {
namespace {

constexpr int kMaxTrackedFds = 256;
// HTTP/2 windows are at most 2^31 - 1 bytes; keep room for framing.
constexpr size_t kMaxResponseLimit = (size_t{1} << 31) - 1 - 64 * 1024;

// An inherited Generation is abandoned on purpose (see Generation); tell
// LeakSanitizer so a forked child that exit()s is not reported.
void MarkIntentionalLeak(const void* object) {
#if defined(__SANITIZE_ADDRESS__)
  __lsan_ignore_object(object);
#else
  (void)object;
#endif
}

// Everything one process uses. After fork() the child never touches its
// parent's Generation (its mutex may be held by a thread that does not exist
// in the child, its connections' HTTP/2 state belongs to the parent): the
// child's first call installs a new Generation and closes its copies of the
// inherited descriptors, found through `fds` without taking any lock.
struct Generation {
  explicit Generation(pid_t owner) : pid(owner) {
    for (std::atomic<int>& fd : fds) fd.store(-1, std::memory_order_relaxed);
  }

  // Records a connection's descriptor. A descriptor that finds no free slot
  // (more than kMaxTrackedFds open at once) merely stays open in a forked
  // child until it exits.
  void TrackFd(int fd) {
    for (std::atomic<int>& slot : fds) {
      int expected = -1;
      if (slot.load(std::memory_order_relaxed) == -1 &&
          slot.compare_exchange_strong(expected, fd,
                                       std::memory_order_acq_rel)) {
        return;
      }
    }
  }

  // Must run before the descriptor is closed: a child forked in between then
  // merely keeps a copy open, whereas the other order could make a child
  // close an unrelated descriptor that reused the number.
  void UntrackFd(int fd) {
    for (std::atomic<int>& slot : fds) {
      int expected = fd;
      if (slot.load(std::memory_order_relaxed) == fd &&
          slot.compare_exchange_strong(expected, -1,
                                       std::memory_order_acq_rel)) {
        return;
      }
    }
  }

  // In a process that inherited this Generation: close() our copies of its
  // descriptors (the parent's stay open) and nothing else.
  void CloseInheritedFds() {
    for (std::atomic<int>& slot : fds) {
      const int fd = slot.exchange(-1, std::memory_order_acq_rel);
      if (fd >= 0) close(fd);
    }
  }

  const pid_t pid;
  // A std::mutex (pthread) rather than absl::Mutex: Debian's Abseil is not
  // built for ThreadSanitizer, which then cannot see absl::Mutex ordering.
  std::mutex mu;
  std::vector<std::unique_ptr<Http2Connection>> idle ABSL_GUARDED_BY(mu);
  std::atomic<int> fds[kMaxTrackedFds];
  std::atomic<uint64_t> connections_opened{0};
  std::atomic<uint64_t> calls_retried{0};
};

class ClientImpl final : public Client {
 public:
  explicit ClientImpl(ClientOptions options)
      : options_(std::move(options)), generation_(new Generation(getpid())) {}

  ~ClientImpl() override {
    Generation* generation = generation_.load(std::memory_order_acquire);
    if (generation->pid == getpid()) {
      // Ours: close the idle connections properly (no call may be running
      // while the client is destroyed).
      delete generation;
    } else {
      // Inherited and never used here: see Generation.
      generation->CloseInheritedFds();
      MarkIntentionalLeak(generation);
    }
  }

  const ClientOptions& options() const override { return options_; }

  ClientStats stats() const override {
    Generation* generation = generation_.load(std::memory_order_acquire);
    if (generation->pid != getpid()) return {};
    ClientStats stats;
    stats.connections_opened = generation->connections_opened.load();
    stats.calls_retried = generation->calls_retried.load();
    return stats;
  }

  absl::Status Call(absl::string_view method,
                    const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite* response,
                    const CallOptions& call_options) override;

 private:
  struct Lease {
    std::unique_ptr<Http2Connection> connection;
    // Taken from the pool (it carried earlier calls).
    bool reused;
  };

  Generation* CurrentGeneration();
  absl::StatusOr<Lease> Acquire(Generation* generation,
                                const Deadline& deadline);
  void Release(Generation* generation,
               std::unique_ptr<Http2Connection> connection);
  static void Discard(Generation* generation,
                      std::unique_ptr<Http2Connection> connection);

  const ClientOptions options_;
  std::atomic<Generation*> generation_;
};

Generation* ClientImpl::CurrentGeneration() {
  // getpid() before any lock: in a forked child every inherited lock is
  // suspect.
  const pid_t pid = getpid();
  Generation* current = generation_.load(std::memory_order_acquire);
  while (current->pid != pid) {
    auto* fresh = new Generation(pid);
    if (generation_.compare_exchange_strong(current, fresh,
                                            std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
      current->CloseInheritedFds();
      MarkIntentionalLeak(current);
      return fresh;
    }
    // Another thread of this process installed one first; `current` now
    // holds it.
    delete fresh;
  }
  return current;
}

absl::StatusOr<ClientImpl::Lease> ClientImpl::Acquire(
    Generation* generation, const Deadline& deadline) {
  for (;;) {
    std::unique_ptr<Http2Connection> connection;
    {
      std::lock_guard<std::mutex> lock(generation->mu);
      if (generation->idle.empty()) break;
      connection = std::move(generation->idle.back());
      generation->idle.pop_back();
    }
    // Drops connections the daemon closed (or sent GOAWAY on) while idle,
    // e.g. across a daemon restart, before any request is written to them.
    if (connection->CheckIdle()) return Lease{std::move(connection), true};
    Discard(generation, std::move(connection));
  }
  absl::StatusOr<std::unique_ptr<Http2Connection>> connection =
      Http2Connection::Connect(options_.socket_path,
                               deadline.CappedAt(options_.connect_timeout),
                               options_.max_response_bytes,
                               options_.fast_path);
  if (!connection.ok()) {
    if (deadline.Expired()) {
      return absl::DeadlineExceededError(
          absl::StrCat("deadline of ", absl::FormatDuration(deadline.timeout()),
                       " expired connecting to hsmd at ", options_.socket_path,
                       " (", connection.status().message(), ")"));
    }
    return connection.status();
  }
  generation->TrackFd((*connection)->fd());
  generation->connections_opened.fetch_add(1, std::memory_order_relaxed);
  return Lease{*std::move(connection), false};
}

void ClientImpl::Release(Generation* generation,
                         std::unique_ptr<Http2Connection> connection) {
  if (connection->usable()) {
    connection->TrimBuffers();
    std::lock_guard<std::mutex> lock(generation->mu);
    if (generation->idle.size() <
        static_cast<size_t>(options_.max_idle_connections)) {
      generation->idle.push_back(std::move(connection));
      return;
    }
  }
  Discard(generation, std::move(connection));
}

void ClientImpl::Discard(Generation* generation,
                         std::unique_ptr<Http2Connection> connection) {
  if (connection == nullptr) return;
  generation->UntrackFd(connection->fd());
  connection.reset();
}

absl::Status ClientImpl::Call(absl::string_view method,
                              const google::protobuf::MessageLite& request,
                              google::protobuf::MessageLite* response,
                              const CallOptions& call_options) {
  if (response == nullptr) {
    return absl::InvalidArgumentError("Call: response must not be null");
  }
  if (method.size() < 2 || method[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("Call: method '", method,
                     "' is not of the form /package.Service/Method"));
  }
  const absl::Duration timeout = call_options.timeout.has_value()
                                     ? *call_options.timeout
                                     : options_.default_timeout;
  if (timeout <= absl::ZeroDuration()) {
    return absl::DeadlineExceededError(
        absl::StrCat("timeout of ", absl::FormatDuration(timeout), " for ",
                     method, " leaves no time to call hsmd"));
  }
  const Deadline deadline = Deadline::After(timeout);
  const size_t size = request.ByteSizeLong();
  if (size > kMaxGrpcMessageBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request for ", method, " is ", size,
                     " bytes; gRPC messages are limited to 4 GiB"));
  }

  Generation* generation = CurrentGeneration();
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<Lease> lease = Acquire(generation, deadline);
    if (!lease.ok()) return lease.status();
    Http2Connection& connection = *lease->connection;

    std::string& framed = connection.request_buffer();
    framed.resize(kGrpcFrameHeaderBytes + size);
    WriteGrpcFrameHeader(static_cast<uint32_t>(size), framed.data());
    request.SerializeWithCachedSizesToArray(
        reinterpret_cast<uint8_t*>(framed.data() + kGrpcFrameHeaderBytes));

    absl::string_view message;
    Http2Connection::Failure failure;
    absl::Status status =
        connection.Call(method, framed, deadline, &message, &failure);
    // `message` lives in the connection: parse before it goes back.
    if (status.ok() && !response->ParseFromArray(
                           message.data(), static_cast<int>(message.size()))) {
      status = absl::InternalError(absl::StrCat("hsmd sent a response to ",
                                                method, " that is not a valid ",
                                                response->GetTypeName()));
    }
    const bool reused = lease->reused;
    Release(generation, std::move(lease->connection));
    if (status.ok() || attempt > 0 || !absl::IsUnavailable(status)) {
      return status;
    }
    // Retry only when the request was certainly not processed: the server
    // refused the stream, or a pooled connection turned out to be closed
    // before anything was written to it. A fresh connection that fails the
    // same way means the daemon is down; do not hammer it.
    const bool retry =
        failure == Http2Connection::Failure::kRefused ||
        (failure == Http2Connection::Failure::kNotSent && reused);
    if (!retry) return status;
    generation->calls_retried.fetch_add(1, std::memory_order_relaxed);
  }
}

template <typename Response, typename Request>
absl::StatusOr<Response> TypedCall(Client& client, absl::string_view method,
                                   const Request& request,
                                   const CallOptions& options) {
  Response response;
  absl::Status status = client.Call(method, request, &response, options);
  if (!status.ok()) return status;
  return response;
}

// The checks shared by SM4 encryption and decryption.
absl::Status CheckSm4(absl::string_view what, v1::CipherMode mode,
                      absl::string_view iv, size_t data_size) {
  switch (mode) {
    case v1::CIPHER_MODE_ECB:
      if (!iv.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("SM4-ECB takes no IV (", iv.size(), " bytes given)"));
      }
      break;
    case v1::CIPHER_MODE_CBC:
      if (iv.size() != kSm4BlockBytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("the SM4-CBC IV is ", iv.size(), " bytes; it must be ",
                         kSm4BlockBytes));
      }
      break;
    default:
      return absl::InvalidArgumentError(
          "SM4 needs a cipher mode: CIPHER_MODE_ECB or CIPHER_MODE_CBC");
  }
  if (data_size == 0 || data_size % kSm4BlockBytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the SM4 ", what, " is ", data_size,
        " bytes; it must be a non-zero multiple of ", kSm4BlockBytes,
        " (hsmd does not pad: pad first, e.g. PKCS#7)"));
  }
  return absl::OkStatus();
}

v1::Sm4Cipher Sm4Parameters(v1::CipherMode mode, absl::string_view iv) {
  v1::Sm4Cipher sm4;
  sm4.set_mode(mode);
  sm4.set_iv(std::string(iv));
  return sm4;
}

}  // namespace

absl::StatusOr<v1::SignRequest> Sm2SignDigestRequest(v1::KeyRef key,
                                                     std::string e) {
  if (e.size() != kSm3DigestBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the SM2 digest e is ", e.size(), " bytes; SM3 gives ",
                     kSm3DigestBytes));
  }
  v1::SignRequest request;
  *request.mutable_key() = std::move(key);
  request.mutable_algorithm()->mutable_sm2();
  request.set_digest(std::move(e));
  return request;
}

absl::StatusOr<v1::SignRequest> Sm2SignMessageRequest(
    v1::KeyRef key, std::string message, absl::string_view distinguishing_id) {
  if (distinguishing_id.size() > kSm2MaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the SM2 distinguishing ID is ", distinguishing_id.size(),
        " bytes; at most ", kSm2MaxIdBytes, " fit its 16-bit length in bits"));
  }
  v1::SignRequest request;
  *request.mutable_key() = std::move(key);
  request.mutable_algorithm()->mutable_sm2()->set_distinguishing_id(
      std::string(distinguishing_id));
  request.set_message(std::move(message));
  return request;
}

absl::StatusOr<v1::DecryptRequest> Sm2DecryptRequest(v1::KeyRef key,
                                                     std::string ciphertext) {
  if (ciphertext.empty()) {
    return absl::InvalidArgumentError("the SM2 ciphertext is empty");
  }
  v1::DecryptRequest request;
  *request.mutable_key() = std::move(key);
  request.mutable_algorithm()->mutable_sm2();
  request.set_ciphertext(std::move(ciphertext));
  return request;
}

absl::StatusOr<v1::EncryptRequest> Sm4EncryptRequest(v1::KeyRef key,
                                                     v1::CipherMode mode,
                                                     absl::string_view iv,
                                                     std::string plaintext) {
  absl::Status status = CheckSm4("plaintext", mode, iv, plaintext.size());
  if (!status.ok()) return status;
  v1::EncryptRequest request;
  *request.mutable_key() = std::move(key);
  *request.mutable_algorithm()->mutable_sm4() = Sm4Parameters(mode, iv);
  request.set_plaintext(std::move(plaintext));
  return request;
}

absl::StatusOr<v1::DecryptRequest> Sm4DecryptRequest(v1::KeyRef key,
                                                     v1::CipherMode mode,
                                                     absl::string_view iv,
                                                     std::string ciphertext) {
  absl::Status status = CheckSm4("ciphertext", mode, iv, ciphertext.size());
  if (!status.ok()) return status;
  v1::DecryptRequest request;
  *request.mutable_key() = std::move(key);
  *request.mutable_algorithm()->mutable_sm4() = Sm4Parameters(mode, iv);
  request.set_ciphertext(std::move(ciphertext));
  return request;
}

absl::StatusOr<std::unique_ptr<Client>> Client::New(ClientOptions options) {
  if (options.socket_path.empty()) {
    return absl::InvalidArgumentError("ClientOptions.socket_path is empty");
  }
  if (options.socket_path.size() >= sizeof(sockaddr_un::sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ClientOptions.socket_path ", options.socket_path, " is ",
        options.socket_path.size(), " bytes; Unix socket paths are limited to ",
        sizeof(sockaddr_un::sun_path) - 1));
  }
  if (options.default_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ClientOptions.default_timeout must be positive");
  }
  if (options.connect_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ClientOptions.connect_timeout must be positive");
  }
  if (options.max_response_bytes == 0 ||
      options.max_response_bytes > kMaxResponseLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("ClientOptions.max_response_bytes must be between 1 and ",
                     kMaxResponseLimit));
  }
  if (options.max_idle_connections < 0) {
    return absl::InvalidArgumentError(
        "ClientOptions.max_idle_connections must not be negative");
  }
  return std::unique_ptr<Client>(new ClientImpl(std::move(options)));
}

absl::StatusOr<v1::ListKeysResponse> Client::ListKeys(
    const v1::ListKeysRequest& request, const CallOptions& options) {
  return TypedCall<v1::ListKeysResponse>(*this, "/hsmd.v1.KeyService/ListKeys",
                                         request, options);
}

absl::StatusOr<v1::GetKeyResponse> Client::GetKey(
    const v1::GetKeyRequest& request, const CallOptions& options) {
  return TypedCall<v1::GetKeyResponse>(*this, "/hsmd.v1.KeyService/GetKey",
                                       request, options);
}

absl::StatusOr<v1::SignResponse> Client::Sign(const v1::SignRequest& request,
                                              const CallOptions& options) {
  return TypedCall<v1::SignResponse>(*this, "/hsmd.v1.KeyService/Sign", request,
                                     options);
}

absl::StatusOr<v1::DecryptResponse> Client::Decrypt(
    const v1::DecryptRequest& request, const CallOptions& options) {
  return TypedCall<v1::DecryptResponse>(*this, "/hsmd.v1.KeyService/Decrypt",
                                        request, options);
}

absl::StatusOr<v1::EncryptResponse> Client::Encrypt(
    const v1::EncryptRequest& request, const CallOptions& options) {
  return TypedCall<v1::EncryptResponse>(*this, "/hsmd.v1.KeyService/Encrypt",
                                        request, options);
}

absl::StatusOr<v1::DeriveResponse> Client::Derive(
    const v1::DeriveRequest& request, const CallOptions& options) {
  return TypedCall<v1::DeriveResponse>(*this, "/hsmd.v1.KeyService/Derive",
                                       request, options);
}

absl::StatusOr<v1::GenerateRandomResponse> Client::GenerateRandom(
    const v1::GenerateRandomRequest& request, const CallOptions& options) {
  return TypedCall<v1::GenerateRandomResponse>(
      *this, "/hsmd.v1.KeyService/GenerateRandom", request, options);
}

absl::StatusOr<v1::GenerateKeyResponse> Client::GenerateKey(
    const v1::GenerateKeyRequest& request, const CallOptions& options) {
  return TypedCall<v1::GenerateKeyResponse>(
      *this, "/hsmd.v1.AdminService/GenerateKey", request, options);
}

absl::StatusOr<v1::DeleteKeyResponse> Client::DeleteKey(
    const v1::DeleteKeyRequest& request, const CallOptions& options) {
  return TypedCall<v1::DeleteKeyResponse>(
      *this, "/hsmd.v1.AdminService/DeleteKey", request, options);
}

absl::StatusOr<v1::GetStatusResponse> Client::GetStatus(
    const v1::GetStatusRequest& request, const CallOptions& options) {
  return TypedCall<v1::GetStatusResponse>(
      *this, "/hsmd.v1.AdminService/GetStatus", request, options);
}

absl::StatusOr<v1::GetStatsResponse> Client::GetStats(
    const v1::GetStatsRequest& request, const CallOptions& options) {
  return TypedCall<v1::GetStatsResponse>(
      *this, "/hsmd.v1.AdminService/GetStats", request, options);
}

}  // namespace hsmd::client
