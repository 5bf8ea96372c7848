#include "tests/faulty_pkcs11/files.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <string>

#include "gtest/gtest.h"

namespace hsmd::faulty_pkcs11 {
namespace {

std::string TempPath(const char* name) {
  return std::string(getenv("TEST_TMPDIR")) + "/" + name;
}

int64_t MtimeNs(const std::string& path) {
  struct stat st;
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

TEST(FilesTest, WritesAndReadsBack) {
  const std::string path = TempPath("roundtrip");
  ASSERT_TRUE(WriteFileAtomically(path, "first\n").ok());
  EXPECT_EQ(*ReadWholeFile(path), "first\n");
  ASSERT_TRUE(WriteFileAtomically(path, "").ok());
  EXPECT_EQ(*ReadWholeFile(path), "");
}

TEST(FilesTest, EveryWriteGetsALaterMtime) {
  const std::string path = TempPath("mtime");
  ASSERT_TRUE(WriteFileAtomically(path, "aaaa").ok());
  int64_t previous = MtimeNs(path);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(WriteFileAtomically(path, i % 2 ? "aaaa" : "bbbb").ok());
    const int64_t now = MtimeNs(path);
    EXPECT_GT(now, previous);
    previous = now;
  }
}

TEST(FilesTest, ReportsMissingFilesAndDirectories) {
  absl::StatusOr<std::string> missing = ReadWholeFile(TempPath("nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  absl::Status status = WriteFileAtomically(TempPath("no/such/dir"), "x");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("no/such/dir"), absl::string_view::npos);
}

}  // namespace
}  // namespace hsmd::faulty_pkcs11
