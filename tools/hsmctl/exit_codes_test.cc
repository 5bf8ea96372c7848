#include "tools/hsmctl/exit_codes.h"

#include "common/error_detail.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::hsmctl {
namespace {

TEST(ExitCodeForTest, LocalTags) {
  EXPECT_EQ(ExitCodeFor(absl::OkStatus()), kExitOk);
  EXPECT_EQ(ExitCodeFor(UsageError("bad")), kExitUsage);
  EXPECT_EQ(ExitCodeFor(LocalIoError("disk")), kExitLocalIo);
  EXPECT_EQ(ExitCodeFor(AsUsageError(absl::InvalidArgumentError("x"))),
            kExitUsage);
  absl::StatusOr<int> tagged =
      AsUsageError(absl::StatusOr<int>(absl::NotFoundError("x")));
  EXPECT_EQ(ExitCodeFor(tagged.status()), kExitUsage);
  EXPECT_EQ(*AsUsageError(absl::StatusOr<int>(7)), 7);
}

TEST(ExitCodeForTest, ServerAndTransportCodes) {
  EXPECT_EQ(ExitCodeFor(absl::UnavailableError(
                "hsmd unavailable at /x.sock: connection refused")),
            kExitUnavailable);
  EXPECT_EQ(ExitCodeFor(absl::DeadlineExceededError("late")), kExitUnavailable);
  // The server's INVALID_ARGUMENT is not a local usage error.
  for (absl::Status s :
       {absl::NotFoundError("no key"), absl::InvalidArgumentError("bad alg"),
        absl::PermissionDeniedError("no"), absl::FailedPreconditionError("x"),
        absl::InternalError("x"), absl::ResourceExhaustedError("x")}) {
    EXPECT_EQ(ExitCodeFor(s), kExitServerError) << s;
  }
}

TEST(FormatErrorTest, PlainMessage) {
  EXPECT_EQ(FormatError("show", absl::NotFoundError(
                                    "no key matches pkcs11:object=nope")),
            "hsmctl: show: no key matches pkcs11:object=nope");
  EXPECT_EQ(FormatError("", UsageError("unknown command 'x'")),
            "hsmctl: unknown command 'x'");
  EXPECT_EQ(FormatError("list", absl::Status(absl::StatusCode::kInternal, "")),
            "hsmctl: list: INTERNAL");
}

TEST(FormatErrorTest, BackendCode) {
  absl::Status status = absl::InternalError("C_Sign failed");
  v1::ErrorDetail detail;
  detail.set_backend_kind("pkcs11");
  detail.set_backend_code_name("CKR_KEY_HANDLE_INVALID");
  detail.set_backend_code(0x82);
  SetErrorDetail(status, detail);
  EXPECT_EQ(FormatError("sign", status),
            "hsmctl: sign: C_Sign failed (CKR_KEY_HANDLE_INVALID 0x82)");
  // A detail without a backend code (e.g. only the key) adds nothing.
  absl::Status no_code = absl::NotFoundError("no key");
  v1::ErrorDetail key_only;
  key_only.set_key("pkcs11:object=x");
  SetErrorDetail(no_code, key_only);
  EXPECT_EQ(FormatError("show", no_code), "hsmctl: show: no key");
}

TEST(ExitCodeHelpTest, ListsEveryCode) {
  for (const char* line :
       {"  0  ", "  1  ", "  2  ", "  3  ", "  4  ", "  5  "}) {
    EXPECT_THAT(std::string(kExitCodeHelp), ::testing::HasSubstr(line));
  }
}

}  // namespace
}  // namespace hsmd::hsmctl
