#include "bench/socket_floor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "bench/crypto_check.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

// Request: the operation's index in AllOps(), then the 64-byte input (the
// same bytes every variant signs, sent so the transfer is paid for).
// Response: a 4-byte length in host order, then the result; or kFailed, a
// 4-byte length and the error text.
constexpr size_t kInputBytes = 64;
constexpr size_t kRequestBytes = 1 + kInputBytes;
constexpr uint32_t kFailed = 0xffffffff;

absl::Status Errno(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

bool ReadFull(int fd, void* buf, size_t len) {
  auto* p = static_cast<char*>(buf);
  while (len > 0) {
    const ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

bool WriteFull(int fd, const void* buf, size_t len) {
  auto* p = static_cast<const char*>(buf);
  while (len > 0) {
    const ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

absl::StatusOr<sockaddr_un> AddressOf(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path too long: ", path));
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// Which of the server's sessions (runner thread slots) connections hold;
// a slot is free again when its connection closes (forked children each
// connect once and leave).
class Slots {
 public:
  explicit Slots(int count) : used_(count, false) {}
  // -1 when all are taken.
  int Take() {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < used_.size(); ++i) {
      if (!used_[i]) {
        used_[i] = true;
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  void Release(int slot) {
    std::lock_guard<std::mutex> lock(mu_);
    used_[slot] = false;
  }

 private:
  std::mutex mu_;
  std::vector<bool> used_;
};

// One connection: requests in, results out, until the client hangs up.
void Serve(int fd, int slot,
           const std::map<int, std::unique_ptr<OpRunner>>& runners,
           Slots& slots) {
  char request[kRequestBytes];
  while (ReadFull(fd, request, sizeof(request))) {
    auto it = runners.find(static_cast<unsigned char>(request[0]));
    absl::Status status = it == runners.end()
                              ? absl::InvalidArgumentError("unknown operation")
                              : it->second->Run(slot);
    // A failure sends kFailed, then the error text as a result.
    const std::string error = status.ok() ? "" : status.ToString();
    const absl::string_view result =
        status.ok() ? it->second->output(slot) : absl::string_view(error);
    const uint32_t len = static_cast<uint32_t>(result.size());
    uint32_t header[2] = {status.ok() ? len : kFailed, len};
    iovec iov[2] = {{header, status.ok() ? sizeof(uint32_t) : sizeof(header)},
                    {const_cast<char*>(result.data()), result.size()}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    // Results are a few hundred bytes: one sendmsg takes them whole.
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) !=
        static_cast<ssize_t>(iov[0].iov_len + iov[1].iov_len)) {
      break;
    }
  }
  close(fd);
  slots.Release(slot);
}

// The server process's body; never returns.
[[noreturn]] void RunServer(const Pkcs11Variant::Config& config,
                            const std::vector<Op>& ops,
                            const std::string& socket_path, int ready_fd) {
  const auto fail = [ready_fd](const absl::Status& status) {
    const std::string text(status.ToString());
    (void)!write(ready_fd, text.data(), text.size());
    _exit(1);
  };
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  absl::StatusOr<std::unique_ptr<Pkcs11Variant>> variant =
      Pkcs11Variant::New(config);
  if (!variant.ok()) fail(variant.status());
  std::map<int, std::unique_ptr<OpRunner>> runners;
  for (Op op : ops) {
    absl::StatusOr<std::unique_ptr<OpRunner>> runner =
        (*variant)->Prepare(op, config.sessions);
    if (!runner.ok()) fail(runner.status());
    runners[OpIndex(op)] = std::move(*runner);
  }
  absl::StatusOr<sockaddr_un> addr = AddressOf(socket_path);
  if (!addr.ok()) fail(addr.status());
  const int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(socket_path.c_str());
  if (listener < 0 ||
      bind(listener, reinterpret_cast<const sockaddr*>(&*addr),
           sizeof(*addr)) != 0 ||
      listen(listener, 64) != 0) {
    fail(Errno(absl::StrCat("listening on ", socket_path)));
  }
  (void)!write(ready_fd, "", 1);
  close(ready_fd);
  Slots slots(config.sessions);
  while (true) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    const int slot = slots.Take();
    if (slot < 0) {
      // More connections than sessions: refuse (the client sees EOF).
      close(fd);
      continue;
    }
    std::thread(Serve, fd, slot, std::cref(runners), std::ref(slots)).detach();
  }
}

class SocketFloorRunner final : public OpRunner {
 public:
  SocketFloorRunner(SocketFloorVariant* variant, Op op)
      : variant_(variant), op_(op) {}

  absl::Status AddThread() {
    const int thread = static_cast<int>(outputs_.size());
    RETURN_IF_ERROR(variant_->Connection(thread).status());
    outputs_.emplace_back();
    return absl::OkStatus();
  }

  absl::Status Run(int thread) override {
    ASSIGN_OR_RETURN(const int fd, variant_->Connection(thread));
    char request[kRequestBytes];
    request[0] = static_cast<char>(OpIndex(op_));
    const absl::string_view input = BenchMessage();
    std::memcpy(request + 1, input.data(), std::min(input.size(), kInputBytes));
    if (!WriteFull(fd, request, sizeof(request))) {
      return Errno("socket_floor: send");
    }
    uint32_t len = 0;
    if (!ReadFull(fd, &len, sizeof(len))) {
      return absl::UnavailableError("socket_floor: server closed");
    }
    const bool failed = len == kFailed;
    if (failed && !ReadFull(fd, &len, sizeof(len))) {
      return absl::UnavailableError("socket_floor: server closed");
    }
    std::string& out = outputs_[thread];
    out.resize(len);
    if (!ReadFull(fd, out.data(), len)) {
      return absl::UnavailableError("socket_floor: server closed");
    }
    if (failed) {
      return absl::InternalError(absl::StrCat("socket_floor server: ", out));
    }
    return absl::OkStatus();
  }

  absl::string_view output(int thread) const override {
    return outputs_[thread];
  }

 private:
  SocketFloorVariant* const variant_;
  const Op op_;
  std::vector<std::string> outputs_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SocketFloorServer>> SocketFloorServer::Start(
    const Pkcs11Variant::Config& config, const std::vector<Op>& ops,
    std::string socket_path) {
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return Errno("pipe2");
  const pid_t pid = fork();
  if (pid < 0) return Errno("fork");
  if (pid == 0) {
    close(ready[0]);
    RunServer(config, ops, socket_path, ready[1]);
  }
  close(ready[1]);
  auto server = std::unique_ptr<SocketFloorServer>(
      new SocketFloorServer(pid, std::move(socket_path)));
  // One byte (a NUL) when ready, else the error text, then EOF.
  std::string reply;
  char buf[512];
  ssize_t n;
  while ((n = read(ready[0], buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    reply.append(buf, static_cast<size_t>(n));
    if (reply == std::string(1, '\0')) break;
  }
  close(ready[0]);
  if (reply != std::string(1, '\0')) {
    return absl::InternalError(
        absl::StrCat("socket_floor server failed to start: ",
                     reply.empty() ? "it exited without a word" : reply));
  }
  return server;
}

SocketFloorServer::~SocketFloorServer() {
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  unlink(socket_path_.c_str());
}

absl::StatusOr<std::unique_ptr<SocketFloorVariant>> SocketFloorVariant::New(
    std::string socket_path, const KeyDirectory& keys) {
  return std::unique_ptr<SocketFloorVariant>(
      new SocketFloorVariant(std::move(socket_path), keys));
}

SocketFloorVariant::~SocketFloorVariant() {
  for (int fd : fds_) {
    if (fd >= 0) close(fd);
  }
}

absl::StatusOr<int> SocketFloorVariant::Connection(int thread) {
  if (thread < static_cast<int>(fds_.size()) && fds_[thread] >= 0) {
    return fds_[thread];
  }
  if (thread >= static_cast<int>(fds_.size())) fds_.resize(thread + 1, -1);
  ASSIGN_OR_RETURN(const sockaddr_un addr, AddressOf(socket_path_));
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    const absl::Status status =
        Errno(absl::StrCat("connecting to ", socket_path_));
    close(fd);
    return status;
  }
  fds_[thread] = fd;
  return fd;
}

absl::StatusOr<std::unique_ptr<OpRunner>> SocketFloorVariant::Prepare(
    Op op, int threads) {
  auto runner = std::make_unique<SocketFloorRunner>(this, op);
  for (int t = 0; t < threads; ++t) RETURN_IF_ERROR(runner->AddThread());
  return runner;
}

absl::Status SocketFloorVariant::Check(Op op, absl::string_view output) const {
  EvpPkeyPtr key;
  if (op != Op::kRandom32) {
    auto it = keys_.find(InfoOf(op).key_label);
    if (it == keys_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no key labelled ", InfoOf(op).key_label));
    }
    ASSIGN_OR_RETURN(key, PublicKeyFromSpki(it->second.spki));
  }
  // The server runs the in-process code, so results are in PKCS#11's form.
  return CheckOutput(op, key.get(), output, SignatureForm::kPkcs11);
}

}  // namespace hsmd::bench
