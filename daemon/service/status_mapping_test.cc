#include "daemon/service/status_mapping.h"

#include "common/error_detail.h"
#include "gtest/gtest.h"

namespace hsmd::service {
namespace {

TEST(StatusMappingTest, OkIsOk) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
}

TEST(StatusMappingTest, KeepsCodeMessageAndDetail) {
  absl::Status status = absl::InternalError("C_Sign failed: CKR_DEVICE_ERROR");
  v1::ErrorDetail detail;
  detail.set_backend_kind("pkcs11");
  detail.set_backend_code_name("CKR_DEVICE_ERROR");
  detail.set_backend_code(0x30);
  detail.set_backend_function("C_Sign");
  SetErrorDetail(status, detail);

  grpc::Status g = ToGrpcStatus(status);
  EXPECT_EQ(g.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(g.error_message(), "C_Sign failed: CKR_DEVICE_ERROR");
  absl::Status back = StatusFromRpcStatusProto(g.error_details());
  EXPECT_EQ(back.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(back.message(), status.message());
  std::optional<v1::ErrorDetail> got = GetErrorDetail(back);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->backend_code_name(), "CKR_DEVICE_ERROR");
  EXPECT_EQ(got->backend_code(), 0x30u);
  EXPECT_EQ(got->backend_function(), "C_Sign");
}

TEST(StatusMappingTest, EveryCodeMapsToTheSameNumber) {
  for (int code = 1; code <= 16; ++code) {
    absl::Status status(static_cast<absl::StatusCode>(code), "m");
    EXPECT_EQ(static_cast<int>(ToGrpcStatus(status).error_code()), code);
    if (code != 2) {
      EXPECT_STRNE(GrpcCodeName(status.code()), "UNKNOWN") << code;
    }
  }
  EXPECT_STREQ(GrpcCodeName(absl::StatusCode::kNotFound), "NOT_FOUND");
}

}  // namespace
}  // namespace hsmd::service
