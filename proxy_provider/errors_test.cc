#include "proxy_provider/errors.h"

#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "common/error_detail.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::proxy {
namespace {

using ::testing::HasSubstr;

TEST(ErrorsTest, ReasonFromStatusCode) {
  EXPECT_EQ(ReasonOf(absl::UnavailableError("x")), Reason::kHsmdUnavailable);
  EXPECT_EQ(ReasonOf(absl::NotFoundError("x")), Reason::kKeyNotFound);
  EXPECT_EQ(ReasonOf(absl::PermissionDeniedError("x")),
            Reason::kPermissionDenied);
  EXPECT_EQ(ReasonOf(absl::InvalidArgumentError("x")),
            Reason::kInvalidArgument);
  EXPECT_EQ(ReasonOf(absl::FailedPreconditionError("x")),
            Reason::kOperationNotAllowed);
  EXPECT_EQ(ReasonOf(absl::DeadlineExceededError("x")), Reason::kTimeout);
  EXPECT_EQ(ReasonOf(absl::ResourceExhaustedError("x")), Reason::kHsmdBusy);
  EXPECT_EQ(ReasonOf(absl::InternalError("x")), Reason::kHsmdError);
}

TEST(ErrorsTest, ExplicitReasonWins) {
  absl::Status status =
      WithReason(absl::InvalidArgumentError(""), Reason::kDecryptFailed);
  EXPECT_EQ(ReasonOf(status), Reason::kDecryptFailed);
  EXPECT_EQ(ReasonOf(UnsupportedError("no")), Reason::kUnsupported);
  EXPECT_EQ(ReasonOf(NoPrivateKeyError("no")), Reason::kNoPrivateKey);
  EXPECT_EQ(ReasonOf(BufferTooSmallError(256, 100)), Reason::kBufferTooSmall);
  EXPECT_THAT(BufferTooSmallError(256, 100).message(), HasSubstr("256"));
  EXPECT_TRUE(WithReason(absl::OkStatus(), Reason::kInternal).ok());
}

TEST(ErrorsTest, EveryReasonHasText) {
  const OSSL_ITEM* items = ReasonStrings();
  int count = 0;
  for (const OSSL_ITEM* item = items; item->ptr != nullptr; ++item) {
    EXPECT_GT(std::strlen(static_cast<const char*>(item->ptr)), 3u);
    ++count;
  }
  EXPECT_EQ(count, 15);
  EXPECT_STREQ(ReasonText(Reason::kHsmdUnavailable), "hsmd unavailable");
  EXPECT_STREQ(ReasonText(Reason::kKeyNotFound), "key not found");
  EXPECT_STREQ(ReasonText(Reason::kPermissionDenied), "permission denied");
}

TEST(ErrorsTest, ErrorTextAddsTheBackendCode) {
  absl::Status status = absl::InternalError("C_Sign failed");
  v1::ErrorDetail detail;
  detail.set_backend_kind("pkcs11");
  detail.set_backend_code_name("CKR_DEVICE_ERROR");
  detail.set_backend_code(0x30);
  SetErrorDetail(status, detail);
  std::string text = ErrorText(status);
  EXPECT_THAT(text, HasSubstr("C_Sign failed"));
  EXPECT_THAT(text, HasSubstr("CKR_DEVICE_ERROR"));
  EXPECT_EQ(ErrorText(absl::UnavailableError(
                "hsmd unavailable at /run/hsmd/hsmd.sock: connection refused")),
            "hsmd unavailable at /run/hsmd/hsmd.sock: connection refused");
}

}  // namespace
}  // namespace hsmd::proxy
