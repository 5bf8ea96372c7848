#include "tools/hsmctl/io.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/hsmctl/exit_codes.h"

namespace hsmd::hsmctl {
namespace {

using ::testing::HasSubstr;

std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(IoTest, RoundTripThroughFileKeepsBinary) {
  const std::string path = TempPath("io_roundtrip.bin");
  const std::string data("a\0b\xff\n", 5);
  std::ostringstream unused;
  ASSERT_TRUE(WriteOutput("--out", path, data, unused).ok());
  std::istringstream no_stdin;
  auto read = ReadInput("--in", path, no_stdin);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, data);
  EXPECT_TRUE(unused.str().empty());
}

TEST(IoTest, DashUsesStreams) {
  std::istringstream in(std::string("stdin\0data", 10));
  auto read = ReadInput("--in", "-", in);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, std::string("stdin\0data", 10));
  std::ostringstream out;
  ASSERT_TRUE(WriteOutput("--out", "-", "xyz", out).ok());
  EXPECT_EQ(out.str(), "xyz");
}

TEST(IoTest, ModeOfNewFile) {
  const std::string path = TempPath("io_private.bin");
  std::ostringstream unused;
  ASSERT_TRUE(WriteOutput("--out", path, "secret", unused, 0600).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(IoTest, TruncatesExistingFile) {
  const std::string path = TempPath("io_truncate.bin");
  std::ostringstream unused;
  ASSERT_TRUE(WriteOutput("--out", path, "long old content", unused).ok());
  ASSERT_TRUE(WriteOutput("--out", path, "new", unused).ok());
  std::istringstream no_stdin;
  EXPECT_EQ(*ReadInput("--in", path, no_stdin), "new");
}

TEST(IoTest, ErrorsNameOptionAndFile) {
  std::istringstream no_stdin;
  auto missing = ReadInput("--sig", "/nonexistent/dir/sig.bin", no_stdin);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(ExitCodeFor(missing.status()), kExitLocalIo);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("cannot read --sig /nonexistent/dir/sig.bin: No such "
                        "file or directory"));
  std::ostringstream unused;
  absl::Status write =
      WriteOutput("--out", "/nonexistent/dir/out.bin", "x", unused);
  EXPECT_EQ(ExitCodeFor(write), kExitLocalIo);
  EXPECT_THAT(write.message(), HasSubstr("cannot write --out"));
  // A directory cannot be read as a file.
  auto dir = ReadInput("--in", "/", no_stdin);
  EXPECT_EQ(ExitCodeFor(dir.status()), kExitLocalIo);
}

TEST(IoTest, FailedStdoutIsAnIoError) {
  std::ostringstream out;
  out.setstate(std::ios::badbit);
  EXPECT_EQ(ExitCodeFor(WriteOutput("--out", "-", "x", out)), kExitLocalIo);
}

}  // namespace
}  // namespace hsmd::hsmctl
