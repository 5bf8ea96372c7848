#include "proxy_provider/sm2.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace hsmd::proxy {
namespace {

TEST(Sm2Test, AlgorithmIdIsSm2WithSm3WithoutParameters) {
  absl::StatusOr<std::string> aid = Sm2WithSm3AlgorithmId();
  ASSERT_TRUE(aid.ok()) << aid.status();
  // SEQUENCE { OID 1.2.156.10197.1.501 }
  EXPECT_EQ(absl::BytesToHexString(*aid), "300a06082a811ccf55018375");
}

}  // namespace
}  // namespace hsmd::proxy
