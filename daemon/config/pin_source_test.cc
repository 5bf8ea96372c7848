#include "daemon/config/pin_source.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class PinSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = absl::StrCat(::testing::TempDir(), "/pinXXXXXX");
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }

  std::string Write(const std::string& name, const std::string& content,
                    mode_t mode) {
    std::string path = absl::StrCat(dir_, "/", name);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(write(fd, content.data(), content.size()),
              static_cast<ssize_t>(content.size()));
    close(fd);
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }

  std::string dir_;
};

TEST_F(PinSourceTest, ReadsPinAndStripsOneNewline) {
  absl::StatusOr<SecretString> pin =
      ReadPinFile(Write("a.pin", "1234\n", 0600));
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(pin->view(), "1234");

  pin = ReadPinFile(Write("b.pin", "ab cd\r\n", 0400));
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(pin->view(), "ab cd");

  // Only one newline is stripped: the rest belongs to the PIN.
  pin = ReadPinFile(Write("c.pin", "x\n\n", 0600));
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(pin->view(), "x\n");

  pin = ReadPinFile(Write("d.pin", "nonewline", 0600));
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(pin->view(), "nonewline");
}

TEST_F(PinSourceTest, RefusesGroupOrOtherAccessNamingPathAndMode) {
  for (mode_t mode : {0640, 0604, 0620, 0602, 0644, 0660}) {
    std::string path = Write("open.pin", "1234\n", mode);
    absl::StatusOr<SecretString> pin = ReadPinFile(path);
    ASSERT_FALSE(pin.ok()) << std::oct << mode;
    EXPECT_EQ(pin.status().code(), absl::StatusCode::kFailedPrecondition);
    char mode_text[8];
    snprintf(mode_text, sizeof(mode_text), "%04o", mode);
    EXPECT_THAT(
        std::string(pin.status().message()),
        AllOf(HasSubstr(path), HasSubstr(mode_text), Not(HasSubstr("1234"))));
  }
}

TEST_F(PinSourceTest, RefusesEmptyMissingAndNonRegular) {
  absl::StatusOr<SecretString> pin = ReadPinFile(Write("e.pin", "\n", 0600));
  EXPECT_EQ(pin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pin.status().message()), HasSubstr("is empty"));

  pin = ReadPinFile(Write("f.pin", "", 0600));
  EXPECT_EQ(pin.status().code(), absl::StatusCode::kInvalidArgument);

  pin = ReadPinFile(absl::StrCat(dir_, "/missing.pin"));
  EXPECT_EQ(pin.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(pin.status().message()), HasSubstr("missing.pin"));

  std::string sub = absl::StrCat(dir_, "/sub");
  ASSERT_EQ(mkdir(sub.c_str(), 0700), 0);
  pin = ReadPinFile(sub);
  EXPECT_EQ(pin.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(pin.status().message()),
              HasSubstr("not a regular file"));

  pin = ReadPinFile(Write("big.pin", std::string(5000, 'x'), 0600));
  EXPECT_EQ(pin.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pin.status().message()), HasSubstr("too large"));
}

TEST_F(PinSourceTest, CredentialDirectory) {
  Write("user-pin", "987654\n", 0400);
  Pin pin;
  pin.set_credential("user-pin");

  unsetenv("CREDENTIALS_DIRECTORY");
  absl::StatusOr<SecretString> value = ReadPin(pin);
  EXPECT_EQ(value.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(value.status().message()),
              AllOf(HasSubstr("CREDENTIALS_DIRECTORY"), HasSubstr("user-pin")));

  setenv("CREDENTIALS_DIRECTORY", dir_.c_str(), 1);
  value = ReadPin(pin);
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->view(), "987654");

  pin.set_credential("absent");
  EXPECT_EQ(ReadPin(pin).status().code(), absl::StatusCode::kNotFound);
  pin.set_credential("../user-pin");
  EXPECT_EQ(ReadPin(pin).status().code(), absl::StatusCode::kInvalidArgument);
  unsetenv("CREDENTIALS_DIRECTORY");
}

TEST_F(PinSourceTest, SourceRereadsEachTime) {
  std::string path = Write("r.pin", "first\n", 0600);
  Pin pin;
  pin.set_file(path);
  auto source = MakePinSource(pin);
  absl::StatusOr<SecretString> value = source();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->view(), "first");
  Write("r.pin", "second\n", 0600);
  value = source();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->view(), "second");
}

TEST(PinSourceDescribeTest, NamesSourceNotSecret) {
  Pin pin;
  pin.set_file("/etc/hsmd/user.pin");
  EXPECT_EQ(DescribePinSource(pin), "file:/etc/hsmd/user.pin");
  pin.set_credential("hsmd-pin");
  EXPECT_EQ(DescribePinSource(pin), "credential:hsmd-pin");
}

// The PIN lives in locked memory (kept out of swap) when RLIMIT_MEMLOCK
// allows, is NUL-terminated, and is gone after Clear.
TEST_F(PinSourceTest, PinMemoryIsLockedAndWiped) {
  absl::StatusOr<SecretString> pin =
      ReadPinFile(Write("l.pin", "locked-pin\n", 0600));
  ASSERT_TRUE(pin.ok()) << pin.status();
  rlimit limit;
  ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &limit), 0);
  if (limit.rlim_cur >= 64 * 1024) {
    EXPECT_TRUE(pin->locked());
  }
  EXPECT_STREQ(pin->data(), "locked-pin");
  SecretString moved = *std::move(pin);
  EXPECT_EQ(moved.view(), "locked-pin");
  EXPECT_TRUE(pin->empty());
  moved.Clear();
  EXPECT_TRUE(moved.empty());
  EXPECT_FALSE(moved.locked());
  EXPECT_STREQ(moved.data(), "");
}

// Without RLIMIT_MEMLOCK the PIN still works, unlocked.
TEST_F(PinSourceTest, WorksWhenMemoryCannotBeLocked) {
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &saved), 0);
  rlimit none = {0, saved.rlim_max};
  ASSERT_EQ(setrlimit(RLIMIT_MEMLOCK, &none), 0);
  absl::StatusOr<SecretString> pin =
      ReadPinFile(Write("u.pin", "unlocked\n", 0600));
  ASSERT_EQ(setrlimit(RLIMIT_MEMLOCK, &saved), 0);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(pin->view(), "unlocked");
  // Root may lock regardless of the limit (CAP_IPC_LOCK).
  if (geteuid() != 0) {
    EXPECT_FALSE(pin->locked());
  }
}

}  // namespace
}  // namespace hsmd::config
