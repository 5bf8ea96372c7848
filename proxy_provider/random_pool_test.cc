#include "proxy_provider/random_pool.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace hsmd::proxy {
namespace {

// Returns a counter pattern so tests can tell which bytes came from where.
class CountingSource {
 public:
  absl::StatusOr<std::string> Fetch(size_t length) {
    calls_++;
    std::string out(length, '\0');
    for (char& c : out) c = static_cast<char>(next_++);
    return out;
  }
  int calls() const { return calls_; }

 private:
  std::atomic<int> calls_{0};
  std::atomic<unsigned> next_{0};
};

TEST(RandomPoolTest, ServesSmallRequestsFromOneBatch) {
  CountingSource source;
  RandomPool pool([&](size_t n) { return source.Fetch(n); });
  std::string all;
  constexpr int kCalls = RandomPool::kDefaultBatchBytes / 32;
  for (int i = 0; i < kCalls; ++i) {
    unsigned char out[32];
    ASSERT_TRUE(pool.Fill(out, sizeof(out)).ok());
    all.append(reinterpret_cast<char*>(out), sizeof(out));
  }
  EXPECT_EQ(source.calls(), 1);  // kCalls * 32 = one batch
  for (size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(static_cast<unsigned char>(all[i]), i % 256) << i;
  }
  unsigned char one;
  ASSERT_TRUE(pool.Fill(&one, 1).ok());
  EXPECT_EQ(source.calls(), 2);
}

TEST(RandomPoolTest, LargeRequestsAndErrors) {
  CountingSource source;
  bool fail = false;
  RandomPool pool([&](size_t n) -> absl::StatusOr<std::string> {
    if (fail) return absl::UnavailableError("hsmd unavailable at x");
    return source.Fetch(n);
  });
  std::vector<unsigned char> big(200000);
  ASSERT_TRUE(pool.Fill(big.data(), big.size()).ok());
  EXPECT_GE(source.calls(), 4);  // at most 64 KiB per fetch
  fail = true;
  std::vector<unsigned char> more(RandomPool::kDefaultBatchBytes + 1);
  absl::Status status = pool.Fill(more.data(), more.size());
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
}

TEST(RandomPoolTest, ShortFetchIsAnError) {
  RandomPool pool([](size_t) -> absl::StatusOr<std::string> {
    return std::string("short");
  });
  unsigned char out[32];
  EXPECT_FALSE(pool.Fill(out, sizeof(out)).ok());
}

TEST(RandomPoolTest, ThreadsGetDistinctBytes) {
  CountingSource source;
  RandomPool pool([&](size_t n) { return source.Fetch(n); }, 64);
  std::vector<std::thread> threads;
  std::vector<std::vector<unsigned char>> outputs(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        unsigned char b[1];
        ASSERT_TRUE(pool.Fill(b, 1).ok());
        outputs[t].push_back(b[0]);
      }
    });
  }
  for (auto& t : threads) t.join();
  size_t total = 0;
  for (auto& o : outputs) total += o.size();
  EXPECT_EQ(total, 800u);
}

// A forked child must not hand out the bytes its parent buffered.
TEST(RandomPoolTest, ChildDoesNotReuseParentBuffer) {
  CountingSource source;
  RandomPool pool([&](size_t n) { return source.Fetch(n); });
  unsigned char first[16];
  ASSERT_TRUE(pool.Fill(first, sizeof(first)).ok());  // buffer holds more
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(10);
    unsigned char child[16];
    bool ok = pool.Fill(child, sizeof(child)).ok() &&
              pool.fetches_in_this_process() == 1;
    if (write(fds[1], child, sizeof(child)) != 16) _exit(2);
    _exit(ok ? 0 : 1);
  }
  close(fds[1]);
  unsigned char child[16];
  ASSERT_EQ(read(fds[0], child, sizeof(child)), 16);
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  unsigned char parent[16];
  ASSERT_TRUE(pool.Fill(parent, sizeof(parent)).ok());
  // The parent continues its buffer (bytes 16..31); the child fetched anew.
  EXPECT_EQ(parent[0], 16);
  EXPECT_NE(std::string(reinterpret_cast<char*>(child), 16),
            std::string(reinterpret_cast<char*>(parent), 16));
}

}  // namespace
}  // namespace hsmd::proxy
