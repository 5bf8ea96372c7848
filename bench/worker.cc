#include "bench/worker.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "bench/process.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

template <typename T>
void Put(std::string& out, const T& value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

template <typename T>
bool Get(absl::string_view& in, T* value) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(value, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

std::string EncodeRound(const RoundResult& r) {
  std::string out;
  Put(out, r.ops);
  Put(out, r.elapsed_ns);
  Put(out, r.cpu_ns);
  out += r.latency.Serialize();
  return out;
}

absl::StatusOr<RoundResult> DecodeRound(absl::string_view in) {
  RoundResult r;
  if (!Get(in, &r.ops) || !Get(in, &r.elapsed_ns) || !Get(in, &r.cpu_ns)) {
    return absl::InternalError("malformed round result");
  }
  ASSIGN_OR_RETURN(r.latency, LatencyHistogram::Parse(in));
  return r;
}

struct Prepared {
  std::unique_ptr<Variant> variant;
  std::vector<std::unique_ptr<OpRunner>> runners;  // By AllOps() index.
};

absl::StatusOr<Prepared> Prepare(const VariantFactory& factory,
                                 int max_threads) {
  Prepared p;
  ASSIGN_OR_RETURN(p.variant, factory());
  for (const OpInfo& info : AllOps()) {
    absl::StatusOr<std::unique_ptr<OpRunner>> runner =
        p.variant->Prepare(info.op, max_threads);
    if (!runner.ok()) {
      return absl::Status(
          runner.status().code(),
          absl::StrCat(info.title, ": ", runner.status().message()));
    }
    for (int t = 0; t < max_threads; ++t) {
      absl::Status status = (*runner)->Run(t);
      if (status.ok()) status = p.variant->Check(info.op, (*runner)->output(t));
      if (!status.ok()) {
        return absl::Status(
            status.code(),
            absl::StrCat(info.title, " (thread ", t, "): ", status.message()));
      }
    }
    p.runners.push_back(*std::move(runner));
  }
  return p;
}

[[noreturn]] void WorkerMain(const std::string& name, VariantFactory factory,
                             int max_threads, int in, int out) {
  // The coordinator's death closes `in`: leave then.
  absl::StatusOr<Prepared> prepared =
      absl::FailedPreconditionError("not initialised");
  for (;;) {
    absl::StatusOr<std::string> message =
        ReadMessage(in, absl::InfiniteFuture());
    if (!message.ok() || message->empty() || (*message)[0] == 'Q') _exit(0);
    absl::StatusOr<std::string> reply;
    if ((*message)[0] == 'I') {
      prepared = Prepare(factory, max_threads);
      reply = prepared.ok()
                  ? absl::StatusOr<std::string>("")
                  : absl::Status(
                        prepared.status().code(),
                        absl::StrCat(name, ": ", prepared.status().message()));
    } else if ((*message)[0] == 'R') {
      RoundSpec spec;
      absl::string_view body(*message);
      body.remove_prefix(1);
      if (!Get(body, &spec)) {
        reply = absl::InternalError("malformed round command");
      } else if (!prepared.ok()) {
        reply = prepared.status();
      } else if (spec.threads < 1 || spec.threads > max_threads ||
                 OpIndex(spec.op) < 0) {
        reply = absl::InvalidArgumentError("bad round command");
      } else {
        absl::StatusOr<RoundResult> result =
            RunRound(*prepared->runners[OpIndex(spec.op)], spec);
        if (result.ok()) {
          reply = EncodeRound(*result);
        } else {
          reply = absl::Status(result.status().code(),
                               absl::StrCat(name, ": ", InfoOf(spec.op).title,
                                            ": ", result.status().message()));
        }
      }
    } else {
      reply = absl::InternalError("unknown command");
    }
    if (!WriteMessage(out, EncodeResult(reply)).ok()) _exit(1);
  }
}

}  // namespace

absl::StatusOr<RoundResult> RunRound(OpRunner& runner, const RoundSpec& spec) {
  struct ThreadState {
    LatencyHistogram latency;
    uint64_t ops = 0;
    int64_t first_start = 0;
    int64_t last_end = 0;
    absl::Status status;
  };
  std::vector<ThreadState> states(spec.threads);
  const int64_t cpu_before = ProcessCpuNanos();
  std::vector<std::thread> threads;
  for (int t = 0; t < spec.threads; ++t) {
    threads.emplace_back([&runner, &spec, &state = states[t], t] {
      SleepUntil(spec.start);
      int64_t now = MonotonicNanos();
      state.first_start = now;
      state.last_end = now;
      while (now < spec.end &&
             (spec.max_ops_per_thread == 0 ||
              static_cast<int64_t>(state.ops) < spec.max_ops_per_thread)) {
        absl::Status status = runner.Run(t);
        const int64_t after = MonotonicNanos();
        if (!status.ok()) {
          state.status = std::move(status);
          break;
        }
        state.latency.Record(static_cast<uint64_t>(after - now));
        ++state.ops;
        state.last_end = after;
        now = after;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  RoundResult result;
  result.cpu_ns = ProcessCpuNanos() - cpu_before;
  int64_t first = INT64_MAX;
  int64_t last = 0;
  for (ThreadState& state : states) {
    if (!state.status.ok()) return state.status;
    result.latency.Merge(state.latency);
    result.ops += state.ops;
    first = std::min(first, state.first_start);
    last = std::max(last, state.last_end);
  }
  result.elapsed_ns = last - first;
  return result;
}

absl::StatusOr<std::unique_ptr<Worker>> Worker::Spawn(std::string name,
                                                      VariantFactory factory,
                                                      int max_threads) {
  ASSIGN_OR_RETURN(Pipe down, MakePipe());
  ASSIGN_OR_RETURN(Pipe up, MakePipe());
  const pid_t pid = fork();
  if (pid < 0) {
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Keep only our own pipe ends, so that no worker holds another's open
    // (each must see EOF when the coordinator goes away).
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != down.read_fd && fd != up.write_fd) close(fd);
    }
    WorkerMain(name, std::move(factory), max_threads, down.read_fd,
               up.write_fd);
  }
  close(down.read_fd);
  close(up.write_fd);
  return std::unique_ptr<Worker>(
      new Worker(std::move(name), pid, down.write_fd, up.read_fd));
}

Worker::~Worker() {
  (void)WriteMessage(to_child_, "Q");
  CloseFd(to_child_);
  CloseFd(from_child_);
  StopChild(pid_, 0, absl::Seconds(10));
}

absl::Status Worker::Init(absl::Duration timeout) {
  RETURN_IF_ERROR(WriteMessage(to_child_, "I"));
  ASSIGN_OR_RETURN(std::string message,
                   ReadMessage(from_child_, absl::Now() + timeout));
  return DecodeResult(message).status();
}

absl::Status Worker::StartRound(const RoundSpec& spec) {
  std::string message = "R";
  Put(message, spec);
  return WriteMessage(to_child_, message);
}

absl::StatusOr<RoundResult> Worker::FinishRound(absl::Duration timeout) {
  absl::StatusOr<std::string> message =
      ReadMessage(from_child_, absl::Now() + timeout);
  if (!message.ok()) {
    return absl::Status(message.status().code(),
                        absl::StrCat(name_, ": ", message.status().message()));
  }
  ASSIGN_OR_RETURN(std::string body, DecodeResult(*message));
  return DecodeRound(body);
}

}  // namespace hsmd::bench
