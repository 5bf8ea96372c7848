#include "bench/tls_load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bench/crypto_check.h"
#include "bench/process.h"
#include "common/openssl_ptr.h"

namespace hsmd::bench {
namespace {

using SslCtxPtr = OpenSslPtr<SSL_CTX, SSL_CTX_free>;
using SslPtr = OpenSslPtr<SSL, SSL_free>;

constexpr char kRequest[] =
    "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

absl::StatusOr<SslCtxPtr> NewClientContext() {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr ||
      SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION) != 1) {
    return OpenSslError("client SSL_CTX");
  }
  // Every connection is a full handshake.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
  // The certificate chain is not what is measured; the server's
  // CertificateVerify signature is still checked, as TLS 1.3 requires.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  return ctx;
}

// One connection; the response (to EOF).
absl::StatusOr<std::string> OneConnection(SSL_CTX* ctx, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("connect to 127.0.0.1:", port, " failed"));
  }
  SslPtr ssl(SSL_new(ctx));
  if (ssl == nullptr || SSL_set_fd(ssl.get(), fd) != 1) {
    close(fd);
    return OpenSslError("SSL_new");
  }
  std::string response;
  absl::Status status = absl::OkStatus();
  if (SSL_connect(ssl.get()) != 1) {
    status = OpenSslError("TLS handshake");
  } else if (SSL_write(ssl.get(), kRequest, sizeof(kRequest) - 1) <= 0) {
    status = OpenSslError("SSL_write");
  } else {
    char buf[4096];
    for (;;) {
      const int n = SSL_read(ssl.get(), buf, sizeof(buf));
      if (n <= 0) break;
      response.append(buf, n);
    }
    if (!absl::StartsWith(response, "HTTP/1.1 200")) {
      status = absl::InternalError(
          absl::StrCat("unexpected response: ", response.substr(0, 80)));
    }
  }
  ERR_clear_error();
  ssl.reset();
  close(fd);
  if (!status.ok()) return status;
  return response;
}

}  // namespace

absl::StatusOr<std::string> TlsGet(int port) {
  absl::StatusOr<SslCtxPtr> ctx = NewClientContext();
  if (!ctx.ok()) return ctx.status();
  return OneConnection(ctx->get(), port);
}

absl::StatusOr<TlsLoadResult> RunTlsLoad(int port, int threads,
                                         absl::Duration duration) {
  absl::StatusOr<SslCtxPtr> ctx = NewClientContext();
  if (!ctx.ok()) return ctx.status();
  struct State {
    LatencyHistogram latency;
    uint64_t ok = 0;
    uint64_t errors = 0;
    int64_t last_end = 0;
    std::string first_error;
  };
  std::vector<State> states(threads);
  const int64_t start = MonotonicNanos() + 2'000'000;
  const int64_t end = start + absl::ToInt64Nanoseconds(duration);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      State& state = states[t];
      SleepUntil(start);
      int64_t now = MonotonicNanos();
      state.last_end = now;
      while (now < end) {
        absl::StatusOr<std::string> response = OneConnection(ctx->get(), port);
        const int64_t after = MonotonicNanos();
        if (response.ok()) {
          ++state.ok;
          state.latency.Record(static_cast<uint64_t>(after - now));
        } else {
          ++state.errors;
          if (state.first_error.empty()) {
            state.first_error = response.status().ToString();
          }
        }
        state.last_end = after;
        now = after;
      }
    });
  }
  for (std::thread& t : pool) t.join();
  TlsLoadResult result;
  int64_t last = start;
  std::string first_error;
  for (State& state : states) {
    result.handshakes += state.ok;
    result.errors += state.errors;
    result.latency.Merge(state.latency);
    last = std::max(last, state.last_end);
    if (first_error.empty()) first_error = state.first_error;
  }
  result.seconds = (last - start) / 1e9;
  if (result.handshakes == 0 || result.errors * 100 > result.handshakes) {
    return absl::InternalError(absl::StrCat(
        "TLS load on port ", port, ": ", result.handshakes, " handshakes, ",
        result.errors, " errors; first: ", first_error));
  }
  return result;
}

}  // namespace hsmd::bench
