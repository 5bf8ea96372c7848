#include "bench/process.h"

#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::bench {
namespace {

using ::testing::HasSubstr;

TEST(ProcessTest, MessagesRoundTripOverAPipe) {
  absl::StatusOr<Pipe> p = MakePipe();
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(WriteMessage(p->write_fd, "hello").ok());
  ASSERT_TRUE(WriteMessage(p->write_fd, "").ok());
  absl::StatusOr<std::string> a =
      ReadMessage(p->read_fd, absl::Now() + absl::Seconds(5));
  absl::StatusOr<std::string> b =
      ReadMessage(p->read_fd, absl::Now() + absl::Seconds(5));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, "hello");
  EXPECT_EQ(*b, "");
  // Nothing more: the deadline ends the wait.
  EXPECT_EQ(ReadMessage(p->read_fd, absl::Now() + absl::Milliseconds(50))
                .status()
                .code(),
            absl::StatusCode::kDeadlineExceeded);
  CloseFd(p->write_fd);
  EXPECT_EQ(
      ReadMessage(p->read_fd, absl::Now() + absl::Seconds(5)).status().code(),
      absl::StatusCode::kUnavailable);
  CloseFd(p->read_fd);
}

// A reader waiting without a deadline must block, not spin (idle benchmark
// workers wait like this while other variants are measured).
TEST(ProcessTest, WaitingWithoutDeadlineUsesNoCpu) {
  absl::StatusOr<Pipe> p = MakePipe();
  ASSERT_TRUE(p.ok());
  int64_t reader_cpu_ns = 0;
  absl::StatusOr<std::string> got;
  std::thread reader([&] {
    timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    got = ReadMessage(p->read_fd, absl::InfiniteFuture());
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    reader_cpu_ns =
        (b.tv_sec - a.tv_sec) * 1'000'000'000 + b.tv_nsec - a.tv_nsec;
  });
  absl::SleepFor(absl::Milliseconds(300));
  ASSERT_TRUE(WriteMessage(p->write_fd, "late").ok());
  reader.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "late");
  // Spinning would burn about the whole 300 ms.
  EXPECT_LT(reader_cpu_ns, 100'000'000);
  CloseFd(p->read_fd);
  CloseFd(p->write_fd);
}

TEST(ProcessTest, ResultsKeepCodeAndMessage) {
  EXPECT_EQ(*DecodeResult(EncodeResult(std::string("value"))), "value");
  absl::StatusOr<std::string> error =
      DecodeResult(EncodeResult(absl::NotFoundError("no: such key")));
  EXPECT_EQ(error.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(error.status().message(), "no: such key");
  EXPECT_FALSE(DecodeResult("garbage").ok());
}

TEST(ProcessTest, RunInChildReturnsTheChildsResult) {
  const pid_t parent = getpid();
  absl::StatusOr<std::string> r = RunInChild(
      [parent]() -> absl::StatusOr<std::string> {
        return getpid() != parent ? "child" : "parent";
      },
      absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, "child");
  absl::StatusOr<std::string> e = RunInChild(
      []() -> absl::StatusOr<std::string> {
        return absl::InternalError("it broke");
      },
      absl::Seconds(30));
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(e.status().message(), "it broke");
}

TEST(ProcessTest, RunInChildKillsAHungChild) {
  absl::StatusOr<std::string> r = RunInChild(
      []() -> absl::StatusOr<std::string> {
        pause();
        return "unreachable";
      },
      absl::Milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(r.status().message(), HasSubstr("signal 9"));
}

TEST(ProcessTest, RunCapturesStdoutAndReportsFailures) {
  Command echo;
  echo.argv = {"/bin/sh", "-c", "echo \"$BENCH_TEST_VAR\"; echo oops >&2"};
  echo.env = {{"BENCH_TEST_VAR", "value"}};
  absl::StatusOr<std::string> out = RunProgram(echo, absl::Seconds(30));
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "value\n");

  Command fail;
  fail.argv = {"/bin/sh", "-c", "echo broken >&2; exit 3"};
  absl::StatusOr<std::string> failed = RunProgram(fail, absl::Seconds(30));
  EXPECT_THAT(failed.status().message(), HasSubstr("exit 3"));
  EXPECT_THAT(failed.status().message(), HasSubstr("broken"));

  Command slow;
  slow.argv = {"/bin/sleep", "30"};
  EXPECT_EQ(RunProgram(slow, absl::Milliseconds(100)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(ProcessTest, ProcStatistics) {
  EXPECT_GE(CountThreads(), 1);
  EXPECT_GT(ResidentKib(), 0);
  absl::StatusOr<int64_t> run = ProcessRunNanos(getpid());
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_GT(*run, 0);
  const int64_t now = MonotonicNanos();
  SleepUntil(now + 2'000'000);
  EXPECT_GE(MonotonicNanos(), now + 2'000'000);
}

// hsmd's fast path ends a thread with each connection: the CPU time of a
// thread that has exited must still be counted.
TEST(ProcessTest, RunTimeKeepsExitedThreads) {
  absl::StatusOr<int64_t> before = ProcessRunNanos(getpid());
  ASSERT_TRUE(before.ok()) << before.status();
  int64_t burned = 0;
  std::thread burner([&burned] {
    timespec ts;
    do {
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      burned = int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    } while (burned < 20'000'000);
  });
  burner.join();
  absl::StatusOr<int64_t> after = ProcessRunNanos(getpid());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_GE(*after - *before, burned);
}

TEST(ProcessTest, RunTimeOfAMissingProcessIsAnError) {
  // Reaped at once: its pid no longer names a process.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  absl::StatusOr<int64_t> run = ProcessRunNanos(pid);
  EXPECT_EQ(run.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(run.status().message()),
              HasSubstr(absl::StrCat("process ", pid)));
}

}  // namespace
}  // namespace hsmd::bench
