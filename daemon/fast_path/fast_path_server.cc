#include "daemon/fast_path/fast_path_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>
#include <thread>
#include <utility>

#include "daemon/fast_path/classify.h"
#include "daemon/logging.h"

namespace hsmd::fast_path {

FastPathServer::FastPathServer(MethodTable methods, InFlightCalls* in_flight,
                               GrpcHandOff grpc_hand_off,
                               ServerOptions options)
    : methods_(std::move(methods)),
      in_flight_(in_flight),
      grpc_hand_off_(std::move(grpc_hand_off)),
      options_(options) {}

void FastPathServer::Adopt(int fd, std::shared_ptr<const PeerIdentity> peer) {
  bool at_cap = false;
  std::shared_ptr<Worker> parked;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      close(fd);
      return;
    }
    if (fds_.size() >= options_.max_connections) {
      // At the cap, gRPC serves the connection without a thread of ours.
      ++grpc_total_;
      at_cap = true;
    } else {
      fds_.insert(fd);
      if (!idle_.empty()) {
        // A thread that served a connection before takes this one: no
        // thread start on the new connection's first call.
        parked = idle_.back();
        idle_.pop_back();
        parked->fd = fd;
        parked->peer = std::move(peer);
      } else {
        ++threads_;
      }
    }
  }
  if (parked != nullptr) {
    // After unlocking: the woken thread needs mu_ at once. `parked` keeps
    // the worker alive even if its thread took the connection on a
    // spurious wake-up and is gone already.
    parked->wake.notify_one();
    return;
  }
  if (at_cap) {
    grpc_hand_off_(fd);
    return;
  }
  try {
    std::thread([this, fd, peer = std::move(peer)]() mutable {
      WorkerLoop(fd, std::move(peer));
    }).detach();
  } catch (const std::system_error& e) {
    log::Warning("cannot start a connection thread; gRPC serves it",
                 {{"error", e.what()}});
    {
      std::lock_guard<std::mutex> lock(mu_);
      --threads_;
    }
    HandToGrpc(fd);
  }
}

void FastPathServer::WorkerLoop(int fd,
                                std::shared_ptr<const PeerIdentity> peer) {
  auto self = std::make_shared<Worker>();
  Worker& worker = *self;
  for (;;) {
    Run(fd, std::move(peer));
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_ || idle_.size() >= options_.max_idle_threads) break;
    idle_.push_back(self);
    const bool assigned = worker.wake.wait_for(
        lock, absl::ToChronoNanoseconds(options_.idle_thread_timeout),
        [&] { return worker.fd >= 0 || worker.exit; });
    if (!assigned) {
      // Timed out: nobody can hand this worker a connection any more.
      idle_.erase(std::find(idle_.begin(), idle_.end(), self));
      break;
    }
    if (worker.exit) break;
    fd = worker.fd;
    peer = std::move(worker.peer);
    worker.fd = -1;
  }
  std::lock_guard<std::mutex> lock(mu_);
  --threads_;
  threads_done_.notify_all();
}

void FastPathServer::HandToGrpc(int fd) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) {
      fds_.erase(fd);
      close(fd);
      threads_done_.notify_all();
      return;
    }
    ++grpc_total_;
  }
  // Outside the lock (adding a channel takes a while); the fd stays
  // registered until then, so Close waits for the hand-off to finish.
  grpc_hand_off_(fd);
  Forget(fd, /*close_fd=*/false);
}

void FastPathServer::Run(int fd, std::shared_ptr<const PeerIdentity> peer) {
  const Transport transport =
      ClassifyConnection(fd, options_.classify_timeout);
  if (transport == Transport::kGrpc) {
    HandToGrpc(fd);
    return;
  }
  if (transport == Transport::kClosed) {
    Forget(fd, /*close_fd=*/true);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++fast_path_total_;
  }
  // The acceptor made the socket non-blocking for gRPC; this thread blocks
  // in recv/send instead of polling.
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  const uint64_t connection_id = peer == nullptr ? 0 : peer->connection_id;
  Connection connection(fd, std::move(peer), &methods_, in_flight_,
                        options_.connection);
  const absl::Status status = connection.Serve();
  if (!status.ok() && !absl::IsUnavailable(status)) {
    log::Info("fast-path connection ended",
              {{"connection", connection_id},
               {"calls", connection.calls()},
               {"reason", status.message()}});
  }
  Forget(fd, /*close_fd=*/true);
}

void FastPathServer::Forget(int fd, bool close_fd) {
  std::lock_guard<std::mutex> lock(mu_);
  fds_.erase(fd);
  if (close_fd) close(fd);
  threads_done_.notify_all();
}

bool FastPathServer::Close(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  closed_ = true;
  for (const std::shared_ptr<Worker>& worker : idle_) {
    worker->exit = true;
    worker->wake.notify_one();
  }
  idle_.clear();
  // Wakes threads blocked in recv (EOF) or send (EPIPE) and the
  // classifiers' poll; a thread in a backend call sees it when it returns.
  for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  return threads_done_.wait_until(
      lock, absl::ToChronoTime(deadline),
      [this] { return fds_.empty() && threads_ == 0; });
}

uint64_t FastPathServer::fast_path_connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fast_path_total_;
}

uint64_t FastPathServer::grpc_connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return grpc_total_;
}

size_t FastPathServer::threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return threads_;
}

size_t FastPathServer::parked_threads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size();
}

}  // namespace hsmd::fast_path
