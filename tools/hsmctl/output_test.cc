#include "tools/hsmctl/output.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::hsmctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::LatencyHistogram Histogram(std::vector<uint64_t> bounds,
                               std::vector<uint64_t> counts, uint64_t sum,
                               uint64_t max) {
  v1::LatencyHistogram h;
  for (uint64_t b : bounds) h.add_bucket_upper_bounds_us(b);
  for (uint64_t c : counts) h.add_counts(c);
  h.set_sum_us(sum);
  h.set_max_us(max);
  return h;
}

TEST(EstimateQuantileTest, EmptyHistogram) {
  EXPECT_EQ(EstimateQuantileUs(Histogram({100, 200}, {0, 0, 0}, 0, 0), 0.5), 0);
  EXPECT_EQ(EstimateQuantileUs(v1::LatencyHistogram(), 0.99), 0);
}

TEST(EstimateQuantileTest, InterpolatesInsideBucket) {
  // 100 samples all in (100, 200]: the median is half-way, p99 near the top.
  auto h = Histogram({100, 200, 400}, {0, 100, 0, 0}, 15000, 200);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(h, 0.5), 150);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(h, 0.99), 199);
  // First bucket starts at 0.
  auto first = Histogram({100, 200}, {10, 0, 0}, 500, 90);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(first, 0.5), 45);
}

TEST(EstimateQuantileTest, AcrossBuckets) {
  // 50 in [0,100], 40 in (100,200], 10 in (200,400].
  auto h = Histogram({100, 200, 400}, {50, 40, 10, 0}, 0, 400);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(h, 0.5), 100);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(h, 0.7), 150);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(h, 0.95), 300);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(h, 1.0), 400);
}

TEST(EstimateQuantileTest, CappedByObservedMax) {
  // All samples in (1000, 5000] but nothing above 1200 was seen.
  auto h = Histogram({1000, 5000}, {0, 10, 0}, 11000, 1200);
  EXPECT_LE(EstimateQuantileUs(h, 0.99), 1200);
  EXPECT_GE(EstimateQuantileUs(h, 0.99), 1000);
}

TEST(EstimateQuantileTest, UnboundedLastBucketEndsAtMax) {
  auto h = Histogram({100}, {0, 4}, 0, 900);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(h, 0.5), 500);
  EXPECT_DOUBLE_EQ(EstimateQuantileUs(h, 1.0), 900);
}

TEST(FormatTest, MicrosAndUptime) {
  EXPECT_EQ(FormatMicros(850), "850us");
  EXPECT_EQ(FormatMicros(1250), "1.25ms");
  EXPECT_EQ(FormatMicros(2.5e6), "2.50s");
  EXPECT_EQ(FormatUptime(5), "5s");
  EXPECT_EQ(FormatUptime(125), "2m 5s");
  EXPECT_EQ(FormatUptime(3600 + 61), "1h 1m 1s");
  EXPECT_EQ(FormatUptime(2 * 86400 + 3 * 3600), "2d 3h 0m 0s");
  EXPECT_EQ(HexOrDash(""), "-");
  EXPECT_EQ(HexOrDash("\x01\xab"), "01ab");
}

TEST(FormatTableTest, AlignsAndTrims) {
  EXPECT_EQ(
      FormatTable({"A", "LONG", "C"}, {{"xxx", "y", "z"}, {"1", "2", ""}}),
      "A    LONG  C\n"
      "xxx  y     z\n"
      "1    2\n");
}

v1::Key EcKey() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(key.get(), &der);
  v1::Key k;
  k.set_public_key_der(
      std::string(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  k.set_key_id("00112233445566778899aabbccddeeff");
  k.set_label("ec-p256");
  k.set_id("\x01\x02");
  k.set_key_type(v1::KEY_TYPE_EC);
  k.set_size_bits(256);
  k.set_curve(v1::CURVE_P256);
  k.add_allowed_operations(v1::OPERATION_SIGN);
  k.set_uri("pkcs11:token=demo;object=ec-p256;id=%01%02;type=private");
  k.set_backend("softhsm");
  k.set_token_label("demo");
  return k;
}

TEST(FormatKeyTableTest, Columns) {
  v1::ListKeysResponse response;
  *response.add_keys() = EcKey();
  std::string table = FormatKeyTable(response);
  EXPECT_THAT(table, HasSubstr("LABEL    TYPE      OPS   KEY ID"));
  EXPECT_THAT(table,
              HasSubstr("ec-p256  EC P-256  sign  "
                        "00112233445566778899aabbccddeeff  "
                        "pkcs11:token=demo;object=ec-p256;id=%01%02;type="
                        "private\n"));
  EXPECT_EQ(FormatKeyTable(v1::ListKeysResponse()), "No keys.\n");
}

TEST(FormatKeyDetailsTest, AllFieldsAndPem) {
  auto text = FormatKeyDetails(EcKey());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("Label:        ec-p256\n"));
  EXPECT_THAT(*text,
              HasSubstr("Key id:       00112233445566778899aabbccddeeff"));
  EXPECT_THAT(*text, HasSubstr("Type:         EC P-256\n"));
  EXPECT_THAT(*text, HasSubstr("CKA_ID:       0102\n"));
  EXPECT_THAT(*text, HasSubstr("Token:        demo\n"));
  EXPECT_THAT(*text, HasSubstr("Certificate:  none\n"));
  EXPECT_THAT(*text, HasSubstr("Public key:\n-----BEGIN PUBLIC KEY-----\n"));
  v1::Key broken = EcKey();
  broken.set_public_key_der("junk");
  EXPECT_FALSE(FormatKeyDetails(broken).ok());
}

// A key of the software SDF device as hsmd lists it.
v1::Key SdfKey(absl::string_view usage) {
  v1::Key k;
  k.set_label(absl::StrCat("sm-", usage));
  k.set_key_id("ffeeddccbbaa99887766554433221100");
  k.set_uri(absl::StrCat("sdf:device=soft0;index=1;usage=", usage));
  k.set_backend("soft0");
  k.set_token_label("soft0");
  if (usage == "sm4") {
    k.set_key_type(v1::KEY_TYPE_SM4);
    k.set_size_bits(128);
    k.add_allowed_operations(v1::OPERATION_ENCRYPT);
    k.add_allowed_operations(v1::OPERATION_DECRYPT);
    return k;
  }
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2"));
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key.get(), &der);
  k.set_public_key_der(
      std::string(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  k.set_key_type(v1::KEY_TYPE_SM2);
  k.set_size_bits(256);
  k.set_curve(v1::CURVE_SM2);
  k.add_allowed_operations(usage == "sign" ? v1::OPERATION_SIGN
                                           : v1::OPERATION_DECRYPT);
  return k;
}

TEST(FormatKeyTableTest, Sm2AndSm4Keys) {
  v1::ListKeysResponse response;
  *response.add_keys() = SdfKey("sign");
  *response.add_keys() = SdfKey("enc");
  *response.add_keys() = SdfKey("sm4");
  const std::string table = FormatKeyTable(response);
  EXPECT_THAT(table, HasSubstr("sm-sign  SM2      sign             "
                               "ffeeddccbbaa99887766554433221100  "
                               "sdf:device=soft0;index=1;usage=sign\n"));
  EXPECT_THAT(table, HasSubstr("sm-enc   SM2      decrypt  "));
  EXPECT_THAT(table, HasSubstr("sm-sm4   SM4-128  encrypt,decrypt  "));
}

TEST(FormatKeyDetailsTest, Sm2AndSm4Keys) {
  auto sm2 = FormatKeyDetails(SdfKey("sign"));
  ASSERT_TRUE(sm2.ok()) << sm2.status();
  EXPECT_THAT(*sm2, HasSubstr("Type:         SM2\n"));
  EXPECT_THAT(*sm2, HasSubstr("Curve:        SM2\n"));
  EXPECT_THAT(*sm2, HasSubstr("Size:         256 bits\n"));
  EXPECT_THAT(*sm2,
              HasSubstr("URI:          sdf:device=soft0;index=1;usage=sign"));
  EXPECT_THAT(*sm2, HasSubstr("Public key:\n-----BEGIN PUBLIC KEY-----\n"));
  auto sm4 = FormatKeyDetails(SdfKey("sm4"));
  ASSERT_TRUE(sm4.ok()) << sm4.status();
  EXPECT_THAT(*sm4, HasSubstr("Type:         SM4-128\n"));
  EXPECT_THAT(*sm4, HasSubstr("Operations:   encrypt,decrypt\n"));
  EXPECT_THAT(*sm4, HasSubstr("Public key:   none (symmetric key)\n"));
  EXPECT_THAT(*sm4, Not(HasSubstr("Curve:")));
  EXPECT_THAT(*sm4, Not(HasSubstr("BEGIN")));
}

TEST(FormatStatusTest, SdfBackendHasNoSlot) {
  v1::GetStatusResponse status;
  v1::BackendStatus* b = status.add_backends();
  b->set_name("soft0");
  b->set_kind("sdf");
  b->set_state(v1::BACKEND_STATE_READY);
  b->set_token_label("soft0");
  b->set_module_path("/usr/lib/libsoftsdf.so");
  b->set_token_serial("2025");
  const std::string text = FormatStatus(status);
  EXPECT_THAT(text, HasSubstr("soft0  sdf   READY  soft0"));
  EXPECT_THAT(text,
              HasSubstr("soft0: module /usr/lib/libsoftsdf.so, serial 2025\n"));
  EXPECT_THAT(text, Not(HasSubstr("slot")));
}

TEST(FormatStatusTest, BackendsAndConfig) {
  v1::GetStatusResponse status;
  status.set_version("0.1.0");
  status.set_uptime_seconds(3725);
  status.set_pid(42);
  status.mutable_connections()->set_fast_path(12);
  status.mutable_connections()->set_grpc(3);
  status.mutable_start_time()->set_seconds(1700000000);
  status.mutable_config()->set_socket_path("/run/hsmd/hsmd.sock");
  status.mutable_config()->add_pin_sources("file:/etc/hsmd/pin");
  status.mutable_config()->set_session_pool_size(8);
  status.mutable_config()->set_default_deadline_ms(30000);
  v1::BackendStatus* b = status.add_backends();
  b->set_name("softhsm");
  b->set_kind("pkcs11");
  b->set_state(v1::BACKEND_STATE_DEGRADED);
  b->set_state_reason("3 sessions replaced");
  b->set_token_label("demo");
  b->set_sessions_in_use(2);
  b->set_sessions_total(8);
  b->set_logged_in(true);
  b->set_module_path("/usr/lib/softhsm/libsofthsm2.so");
  std::string text = FormatStatus(status);
  EXPECT_THAT(text, HasSubstr("Version:      0.1.0\n"));
  EXPECT_THAT(text, HasSubstr("Uptime:       1h 2m 5s\n"));
  EXPECT_THAT(text, HasSubstr("Connections:  12 fast path, 3 gRPC\n"));
  EXPECT_THAT(text, HasSubstr("Started:      2023-11-14 22:13:20 UTC\n"));
  EXPECT_THAT(text, HasSubstr("PIN from:   file:/etc/hsmd/pin\n"));
  EXPECT_THAT(text, HasSubstr("Deadline:   30.00s"));
  EXPECT_THAT(text, HasSubstr("softhsm  pkcs11  DEGRADED  demo   2/8"));
  EXPECT_THAT(text, HasSubstr("softhsm: DEGRADED: 3 sessions replaced"));
  EXPECT_THAT(text, HasSubstr("module /usr/lib/softhsm/libsofthsm2.so"));
}

TEST(FormatStatsTest, RowsWithErrorsSorted) {
  v1::GetStatsResponse stats;
  v1::OperationStats* op = stats.add_operations();
  op->set_operation("Sign");
  op->set_key_label("rsa-2048");
  op->set_count(100);
  op->set_error_count(3);
  (*op->mutable_errors_by_code())["NOT_FOUND"] = 1;
  (*op->mutable_errors_by_code())["CKR_KEY_HANDLE_INVALID"] = 2;
  *op->mutable_latency() = Histogram({1000, 2000}, {0, 100, 0}, 150000, 2000);
  v1::OperationStats* idle = stats.add_operations();
  idle->set_operation("GenerateRandom");
  std::string text = FormatStats(stats);
  EXPECT_THAT(text, HasSubstr("OPERATION       KEY       COUNT  ERRORS  P50"));
  EXPECT_THAT(text, HasSubstr("Sign            rsa-2048  100    3       "
                              "1.50ms  1.99ms  1.50ms  2.00ms  "
                              "CKR_KEY_HANDLE_INVALID=2 NOT_FOUND=1\n"));
  EXPECT_THAT(text, HasSubstr("GenerateRandom  -         0      0       -"));
  EXPECT_THAT(FormatStats(v1::GetStatsResponse()),
              HasSubstr("No operations yet."));
}

TEST(ToJsonTest, CanonicalNamesAndZeroFields) {
  v1::GetKeyResponse response;
  *response.mutable_key() = EcKey();
  auto json = ToJson(response);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json,
              HasSubstr("\"keyId\": \"00112233445566778899aabbccddeeff\""));
  EXPECT_THAT(*json, HasSubstr("\"keyType\": \"KEY_TYPE_EC\""));
  EXPECT_THAT(*json, HasSubstr("\"allowedOperations\": [\n"));
  // bytes as base64: CKA_ID 01 02.
  EXPECT_THAT(*json, HasSubstr("\"id\": \"AQI=\""));
  // Zero-valued fields are still present.
  EXPECT_THAT(*json, HasSubstr("\"certificateDer\": \"\""));
  EXPECT_THAT(*json, Not(HasSubstr("key_id")));
  EXPECT_EQ(json->back(), '\n');
}

}  // namespace
}  // namespace hsmd::hsmctl
