#include "daemon/backend/pkcs11/ck_rv.h"

#include "common/error_detail.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::backend::pkcs11 {
namespace {

using ::testing::HasSubstr;

TEST(CkRvTest, NamesKnownAndUnknownCodes) {
  EXPECT_EQ(CkRvName(CKR_OK), "CKR_OK");
  EXPECT_EQ(CkRvName(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
  EXPECT_EQ(CkRvName(CKR_KEY_HANDLE_INVALID), "CKR_KEY_HANDLE_INVALID");
  EXPECT_EQ(CkRvName(CKR_VENDOR_DEFINED + 5), "CKR_VENDOR_DEFINED+0x5");
  EXPECT_EQ(CkRvName(0x1ff), "CKR_0x000001ff");
}

TEST(CkRvTest, MapsCodes) {
  EXPECT_EQ(CkRvToStatusCode(CKR_KEY_HANDLE_INVALID),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(CkRvToStatusCode(CKR_OBJECT_HANDLE_INVALID),
            absl::StatusCode::kNotFound);
  for (CK_RV rv : {CKR_DATA_LEN_RANGE, CKR_ENCRYPTED_DATA_INVALID,
                   CKR_ENCRYPTED_DATA_LEN_RANGE, CKR_MECHANISM_INVALID,
                   CKR_MECHANISM_PARAM_INVALID}) {
    EXPECT_EQ(CkRvToStatusCode(rv), absl::StatusCode::kInvalidArgument)
        << CkRvName(rv);
  }
  for (CK_RV rv : {CKR_KEY_FUNCTION_NOT_PERMITTED, CKR_KEY_TYPE_INCONSISTENT,
                   CKR_PIN_LOCKED, CKR_PIN_EXPIRED}) {
    EXPECT_EQ(CkRvToStatusCode(rv), absl::StatusCode::kFailedPrecondition)
        << CkRvName(rv);
  }
  EXPECT_EQ(CkRvToStatusCode(CKR_PIN_INCORRECT),
            absl::StatusCode::kPermissionDenied);
  for (CK_RV rv : {CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
                   CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
                   CKR_CRYPTOKI_NOT_INITIALIZED}) {
    EXPECT_EQ(CkRvToStatusCode(rv), absl::StatusCode::kUnavailable)
        << CkRvName(rv);
  }
  EXPECT_EQ(CkRvToStatusCode(CKR_GENERAL_ERROR), absl::StatusCode::kInternal);
  EXPECT_EQ(CkRvToStatusCode(CKR_FUNCTION_FAILED), absl::StatusCode::kInternal);
}

TEST(CkRvTest, ErrorCarriesDetail) {
  absl::Status status =
      Pkcs11Error(CKR_PIN_INCORRECT, "C_Login", "token \"demo\"");
  EXPECT_EQ(status.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(status.message(),
              HasSubstr("token \"demo\": C_Login failed: CKR_PIN_INCORRECT "
                        "(0xa0): the token rejected the user PIN"));
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_kind(), "pkcs11");
  EXPECT_EQ(detail->backend_code_name(), "CKR_PIN_INCORRECT");
  EXPECT_EQ(detail->backend_code(), CKR_PIN_INCORRECT);
  EXPECT_EQ(detail->backend_function(), "C_Login");
  EXPECT_EQ(GetCkRv(status), CKR_PIN_INCORRECT);

  SetErrorKey(status, "pkcs11:object=x");
  detail = GetErrorDetail(status);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->key(), "pkcs11:object=x");
  EXPECT_EQ(detail->backend_code_name(), "CKR_PIN_INCORRECT");
}

TEST(CkRvTest, ErrorWithoutContext) {
  absl::Status status = Pkcs11Error(CKR_FUNCTION_FAILED, "C_Sign");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(status.message(), "C_Sign failed: CKR_FUNCTION_FAILED (0x6)");
  EXPECT_FALSE(GetCkRv(absl::InternalError("x")).has_value());
}

TEST(CkRvTest, Classes) {
  EXPECT_TRUE(IsStaleHandle(CKR_KEY_HANDLE_INVALID));
  EXPECT_TRUE(IsStaleHandle(CKR_OBJECT_HANDLE_INVALID));
  EXPECT_FALSE(IsStaleHandle(CKR_SESSION_HANDLE_INVALID));
  EXPECT_TRUE(IsBrokenSession(CKR_SESSION_HANDLE_INVALID));
  EXPECT_TRUE(IsBrokenSession(CKR_SESSION_CLOSED));
  EXPECT_FALSE(IsBrokenSession(CKR_DATA_LEN_RANGE));
  EXPECT_TRUE(IsDeviceFault(CKR_DEVICE_REMOVED));
  EXPECT_FALSE(IsDeviceFault(CKR_PIN_INCORRECT));
}

}  // namespace
}  // namespace hsmd::backend::pkcs11
