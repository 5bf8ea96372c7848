// Latency of small client_lib calls against test_server (a real gRPC C++
// server), next to a raw 64-byte Unix-socket round trip with an echo process
// as the floor. Prints percentiles in microseconds and the CPU time the
// calling thread spent per call (the client's own cost, without the
// server's).
//
//   bazel run -c opt //client_lib:client_bench [-- CALLS]
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client_lib/client.h"
#include "client_lib/testing/test_server_process.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::client {
namespace {

// CPU time (user + system) this thread has used, in microseconds.
double ThreadCpuMicros() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

void Report(const char* name, std::vector<double>& micros, double cpu_micros) {
  std::sort(micros.begin(), micros.end());
  double sum = 0;
  for (double m : micros) sum += m;
  const auto at = [&](double q) {
    return micros[static_cast<size_t>(q * (micros.size() - 1))];
  };
  std::printf(
      "%-28s n=%zu mean=%.1f p50=%.1f p90=%.1f p99=%.1f us; "
      "caller CPU %.1f us/call\n",
      name, micros.size(), sum / micros.size(), at(0.5), at(0.9), at(0.99),
      cpu_micros / micros.size());
}

// A 64-byte request/response over a socketpair with a forked echo process.
std::vector<double> RawRoundTrips(int calls, double* cpu_micros) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::abort();
  const pid_t child = fork();
  if (child == 0) {
    close(fds[0]);
    char buf[64];
    for (;;) {
      ssize_t got = 0;
      while (got < 64) {
        const ssize_t n = read(fds[1], buf + got, 64 - got);
        if (n <= 0) _exit(0);
        got += n;
      }
      if (write(fds[1], buf, 64) != 64) _exit(1);
    }
  }
  close(fds[1]);
  std::vector<double> micros;
  char buf[64] = {};
  const double cpu_start = ThreadCpuMicros();
  for (int i = 0; i < calls; ++i) {
    const absl::Time start = absl::Now();
    if (write(fds[0], buf, 64) != 64) std::abort();
    ssize_t got = 0;
    while (got < 64) {
      const ssize_t n = read(fds[0], buf + got, 64 - got);
      if (n <= 0) std::abort();
      got += n;
    }
    micros.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
  }
  *cpu_micros = ThreadCpuMicros() - cpu_start;
  close(fds[0]);
  waitpid(child, nullptr, 0);
  return micros;
}

int Main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 20000;
  absl::StatusOr<std::string> socket_path = testing::MakeTempSocketPath();
  if (!socket_path.ok()) {
    std::fprintf(stderr, "%s\n", socket_path.status().ToString().c_str());
    return 1;
  }
  auto server = testing::TestServerProcess::Start(*socket_path);
  if (!server.ok()) {
    std::fprintf(stderr, "%s\n", server.status().ToString().c_str());
    return 1;
  }
  ClientOptions options;
  options.socket_path = *socket_path;
  auto client = Client::New(options);
  if (!client.ok()) return 1;

  v1::GenerateRandomRequest request;
  request.set_length(32);
  std::vector<double> micros;
  double cpu_start = 0;
  for (int i = 0; i < calls + 1000; ++i) {
    if (i == 1000) cpu_start = ThreadCpuMicros();
    const absl::Time start = absl::Now();
    auto response = (*client)->GenerateRandom(request);
    const absl::Duration took = absl::Now() - start;
    if (!response.ok() || response->data().size() != 32) {
      std::fprintf(stderr, "call failed: %s\n",
                   response.status().ToString().c_str());
      return 1;
    }
    if (i >= 1000) micros.push_back(absl::ToDoubleMicroseconds(took));
  }
  Report("client GenerateRandom(32)", micros, ThreadCpuMicros() - cpu_start);
  double raw_cpu = 0;
  std::vector<double> raw = RawRoundTrips(calls, &raw_cpu);
  Report("raw 64-byte socket RTT", raw, raw_cpu);
  client->reset();
  server->reset();
  unlink(socket_path->c_str());
  rmdir(socket_path->substr(0, socket_path->rfind('/')).c_str());
  return 0;
}

}  // namespace
}  // namespace hsmd::client

int main(int argc, char** argv) { return hsmd::client::Main(argc, argv); }
