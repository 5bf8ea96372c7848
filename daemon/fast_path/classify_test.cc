#include "daemon/fast_path/classify.h"

#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "common/fast_path.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace hsmd::fast_path {
namespace {

const std::string kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

std::string Settings(const std::vector<std::pair<uint16_t, uint32_t>>& entries,
                     uint8_t flags = 0) {
  std::string frame;
  const size_t length = entries.size() * 6;
  frame.push_back(static_cast<char>(length >> 16));
  frame.push_back(static_cast<char>(length >> 8));
  frame.push_back(static_cast<char>(length));
  frame.push_back(4);  // SETTINGS
  frame.push_back(static_cast<char>(flags));
  frame.append(4, '\0');
  for (const auto& [id, value] : entries) {
    frame.push_back(static_cast<char>(id >> 8));
    frame.push_back(static_cast<char>(id));
    for (int shift = 24; shift >= 0; shift -= 8) {
      frame.push_back(static_cast<char>(value >> shift));
    }
  }
  return frame;
}

TEST(ClassifyOpeningTest, ClientLibOpeningGoesToTheFastPath) {
  const std::string opening =
      kPreface + Settings({{2, 0}, {4, 1 << 20},
                           {kFastPathSettingId, kFastPathSettingValue}}) +
      "more frames";
  EXPECT_EQ(ClassifyOpening(opening), Verdict::kFastPath);
}

TEST(ClassifyOpeningTest, OtherClientsGoToGrpc) {
  EXPECT_EQ(ClassifyOpening(kPreface + Settings({{2, 0}, {4, 65535}})),
            Verdict::kGrpc);
  EXPECT_EQ(ClassifyOpening(kPreface + Settings({})), Verdict::kGrpc);
  // Another revision of the marker.
  EXPECT_EQ(ClassifyOpening(kPreface + Settings({{kFastPathSettingId, 2}})),
            Verdict::kGrpc);
  // Not HTTP/2 at all, a SETTINGS ACK, another frame type.
  EXPECT_EQ(ClassifyOpening("GET / HTTP/1.1\r\n\r\n"), Verdict::kGrpc);
  EXPECT_EQ(ClassifyOpening(kPreface + Settings({}, /*flags=*/1)),
            Verdict::kGrpc);
  std::string ping = kPreface + Settings({});
  ping[kPreface.size() + 3] = 6;
  EXPECT_EQ(ClassifyOpening(ping), Verdict::kGrpc);
}

TEST(ClassifyOpeningTest, WaitsForTheWholeSettingsFrame) {
  const std::string opening =
      kPreface + Settings({{2, 0}, {kFastPathSettingId, 1}});
  for (size_t n = 0; n < opening.size(); ++n) {
    EXPECT_EQ(ClassifyOpening(opening.substr(0, n)), Verdict::kNeedMore)
        << n;
  }
  EXPECT_EQ(ClassifyOpening(opening), Verdict::kFastPath);
}

TEST(ClassifyOpeningTest, OversizedOrMisalignedSettingsGoToGrpc) {
  std::vector<std::pair<uint16_t, uint32_t>> many(17, {2, 0});
  many.back() = {kFastPathSettingId, 1};
  EXPECT_EQ(ClassifyOpening(kPreface + Settings(many)), Verdict::kGrpc);
  std::string odd = kPreface + Settings({{kFastPathSettingId, 1}});
  odd[kPreface.size() + 2] = 5;  // length 5: not a multiple of 6
  EXPECT_EQ(ClassifyOpening(odd), Verdict::kGrpc);
}

class ClassifyConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds_), 0);
  }
  void TearDown() override {
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  void Send(const std::string& bytes) {
    ASSERT_EQ(write(fds_[1], bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }
  int fds_[2] = {-1, -1};
};

TEST_F(ClassifyConnectionTest, PeeksWithoutConsuming) {
  const std::string opening =
      kPreface + Settings({{kFastPathSettingId, 1}});
  Send(opening);
  EXPECT_EQ(ClassifyConnection(fds_[0], absl::Seconds(5)),
            Transport::kFastPath);
  std::string read_back(opening.size(), '\0');
  ASSERT_EQ(read(fds_[0], read_back.data(), read_back.size()),
            static_cast<ssize_t>(opening.size()));
  EXPECT_EQ(read_back, opening);
}

TEST_F(ClassifyConnectionTest, SplitOpeningIsAwaited) {
  const std::string opening =
      kPreface + Settings({{2, 0}, {kFastPathSettingId, 1}});
  Send(opening.substr(0, 30));
  std::thread rest([&] {
    absl::SleepFor(absl::Milliseconds(50));
    Send(opening.substr(30));
  });
  EXPECT_EQ(ClassifyConnection(fds_[0], absl::Seconds(5)),
            Transport::kFastPath);
  rest.join();
}

TEST_F(ClassifyConnectionTest, SilentClientGoesToGrpcAtTheTimeout) {
  EXPECT_EQ(ClassifyConnection(fds_[0], absl::Milliseconds(50)),
            Transport::kGrpc);
}

TEST_F(ClassifyConnectionTest, HangUpIsClosed) {
  close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(ClassifyConnection(fds_[0], absl::Seconds(5)), Transport::kClosed);
}

TEST_F(ClassifyConnectionTest, HangUpMidOpeningIsClosed) {
  Send(kPreface.substr(0, 10));
  close(fds_[1]);
  fds_[1] = -1;
  EXPECT_EQ(ClassifyConnection(fds_[0], absl::Seconds(5)), Transport::kClosed);
}

}  // namespace
}  // namespace hsmd::fast_path
