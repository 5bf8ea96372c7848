#include "daemon/backend/sdf/sdr.h"

#include "common/error_detail.h"
#include "daemon/backend/sdf/gmt0018.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::backend::sdf {
namespace {

using ::testing::HasSubstr;

TEST(SdrTest, Names) {
  EXPECT_EQ(SdrName(SDR_OK), "SDR_OK");
  EXPECT_EQ(SdrName(SDR_KEYNOTEXIST), "SDR_KEYNOTEXIST");
  EXPECT_EQ(SdrName(SDR_OUTARGERR), "SDR_OUTARGERR");
  EXPECT_EQ(SdrName(SDR_BASE + 0x2f), "SDR_BASE+0x2f");
  EXPECT_EQ(SdrName(0x0a000001), "SDR_0x0a000001");
  EXPECT_EQ(SdrName(-1), "SDR_0xffffffff");
}

TEST(SdrTest, StatusCodes) {
  EXPECT_EQ(SdrToStatusCode(SDR_KEYNOTEXIST), absl::StatusCode::kNotFound);
  EXPECT_EQ(SdrToStatusCode(SDR_INARGERR), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SdrToStatusCode(SDR_ENCDATAERR),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SdrToStatusCode(SDR_ALGNOTSUPPORT),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SdrToStatusCode(SDR_PRKRERR), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(SdrToStatusCode(SDR_PARDENY),
            absl::StatusCode::kFailedPrecondition);
  for (int code :
       {SDR_COMMFAIL, SDR_HARDFAIL, SDR_OPENDEVICE, SDR_OPENSESSION}) {
    EXPECT_EQ(SdrToStatusCode(code), absl::StatusCode::kUnavailable)
        << SdrName(code);
  }
  EXPECT_EQ(SdrToStatusCode(SDR_NOBUFFER),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(SdrToStatusCode(SDR_NOTSUPPORT), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(SdrToStatusCode(SDR_SIGNERR), absl::StatusCode::kInternal);
  EXPECT_EQ(SdrToStatusCode(0x0a000001), absl::StatusCode::kInternal);
}

TEST(SdrTest, ErrorCarriesTheCode) {
  absl::Status status =
      SdfError(SDR_KEYNOTEXIST, "SDF_InternalSign_ECC", "signing");
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("signing: SDF_InternalSign_ECC failed: "
                        "SDR_KEYNOTEXIST (0x1000008): the device holds no "
                        "such key"));
  std::optional<v1::ErrorDetail> detail = GetErrorDetail(status);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->backend_kind(), "sdf");
  EXPECT_EQ(detail->backend_code_name(), "SDR_KEYNOTEXIST");
  EXPECT_EQ(detail->backend_code(), static_cast<uint64_t>(SDR_KEYNOTEXIST));
  EXPECT_EQ(detail->backend_function(), "SDF_InternalSign_ECC");
  EXPECT_EQ(GetSdrCode(status), SDR_KEYNOTEXIST);

  SetErrorKey(status, "sdf:device=d;index=1;usage=sign");
  detail = GetErrorDetail(status);
  ASSERT_TRUE(detail.has_value());
  EXPECT_EQ(detail->key(), "sdf:device=d;index=1;usage=sign");
  EXPECT_EQ(detail->backend_code_name(), "SDR_KEYNOTEXIST");

  // SDR_OK is the caller's bug, never an OK status.
  EXPECT_EQ(SdfError(SDR_OK, "SDF_X").code(), absl::StatusCode::kInternal);
  EXPECT_FALSE(GetSdrCode(absl::InternalError("plain")).has_value());
}

TEST(SdrTest, Classes) {
  EXPECT_TRUE(IsDeviceFault(SDR_COMMFAIL));
  EXPECT_TRUE(IsDeviceFault(SDR_HARDFAIL));
  EXPECT_TRUE(IsDeviceFault(SDR_OPENDEVICE));
  EXPECT_FALSE(IsDeviceFault(SDR_OPENSESSION));
  EXPECT_TRUE(IsBrokenSession(SDR_OPENSESSION));
  EXPECT_FALSE(IsBrokenSession(SDR_KEYNOTEXIST));
  EXPECT_TRUE(IsPasswordRejection(SDR_PRKRERR));
  EXPECT_TRUE(IsPasswordRejection(SDR_PARDENY));
  EXPECT_FALSE(IsPasswordRejection(SDR_KEYNOTEXIST));
}

}  // namespace
}  // namespace hsmd::backend::sdf
