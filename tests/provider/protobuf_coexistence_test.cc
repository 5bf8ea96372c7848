// A program that links its own (full-runtime) copy of hsmd.proto and
// google/rpc/status.proto, as hsmctl and gRPC applications do, can load
// hsmproxy.so: protobuf aborts the process on a second registration of the
// same .proto, which is why the provider links the lite-runtime messages.
//
// hsmproxy.so links libprotobuf-lite.so and carries its own lite
// google.protobuf.Timestamp / Any (third_party/protobuf_wkt_lite), hidden by
// its version script; this program links the full libprotobuf.so, whose
// Timestamp / Any are different classes of the same names. Both must keep
// working side by side, before and after the provider has signed.
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/store.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.pb.h"
#include "tests/provider/demo_daemon.h"
#include "tests/provider/test_util.h"

namespace hsmd::testing {
namespace {

TEST(ProtobufCoexistenceTest, LoadsNextToTheSameProtosInTheProgram) {
  // This program's registrations are in place (full runtime).
  ASSERT_NE(google::protobuf::DescriptorPool::generated_pool()->FindFileByName(
                "hsmd/v1/hsmd.proto"),
            nullptr);
  ASSERT_NE(v1::Key::descriptor(), nullptr);
  ASSERT_NE(google::rpc::Status::descriptor(), nullptr);

  setenv("HSMPROXY_SOCKET", "/tmp/hsmproxy-coexistence-none.sock", 1);
  OSSL_LIB_CTX* libctx = OSSL_LIB_CTX_new();
  std::string dir = RunfilePath("proxy_provider");
  ASSERT_EQ(OSSL_PROVIDER_set_default_search_path(libctx, dir.c_str()), 1);
  OSSL_PROVIDER* hsmproxy = OSSL_PROVIDER_load(libctx, "hsmproxy");
  ASSERT_NE(hsmproxy, nullptr) << DrainErrors();
  OSSL_PROVIDER* def = OSSL_PROVIDER_load(libctx, "default");
  // The provider's own messages work too (a ListKeys request is built and
  // the transport error comes back as a readable error).
  absl::StatusOr<EvpPkeyPtr> key =
      LoadKey(libctx, "pkcs11:token=demo;object=ec-p256", OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(key.ok());
  EXPECT_THAT(key.status().message(),
              ::testing::HasSubstr("hsmd unavailable at "
                                   "/tmp/hsmproxy-coexistence-none.sock"));
  OSSL_PROVIDER_unload(def);
  OSSL_PROVIDER_unload(hsmproxy);
  OSSL_LIB_CTX_free(libctx);
}

// This program's own full-runtime messages, with the well-known types that
// hsmproxy.so also defines (as lite classes): serialized, parsed back and
// read through reflection.
void ExpectOwnMessagesWork() {
  v1::GetStatusResponse status;
  status.set_version("coexistence");
  status.mutable_start_time()->set_seconds(1700000000);
  status.mutable_start_time()->set_nanos(5);
  google::rpc::Status rpc_status;
  rpc_status.set_code(5);
  google::protobuf::Any* any = rpc_status.add_details();
  ASSERT_TRUE(any->PackFrom(status));

  std::string wire;
  ASSERT_TRUE(rpc_status.SerializeToString(&wire));
  google::rpc::Status parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire));
  ASSERT_EQ(parsed.details_size(), 1);
  EXPECT_EQ(parsed.details(0).type_url(),
            "type.googleapis.com/hsmd.v1.GetStatusResponse");
  v1::GetStatusResponse unpacked;
  ASSERT_TRUE(parsed.details(0).UnpackTo(&unpacked));
  EXPECT_EQ(unpacked.start_time().seconds(), 1700000000);
  EXPECT_EQ(unpacked.start_time().nanos(), 5);

  // Reflection on the full Timestamp (the lite one has no descriptor).
  const google::protobuf::Descriptor* descriptor =
      google::protobuf::Timestamp::descriptor();
  ASSERT_NE(descriptor, nullptr);
  EXPECT_EQ(descriptor->full_name(), "google.protobuf.Timestamp");
  const google::protobuf::Timestamp& start = unpacked.start_time();
  EXPECT_EQ(start.GetReflection()->GetInt64(
                start, descriptor->FindFieldByName("seconds")),
            1700000000);
  EXPECT_THAT(unpacked.DebugString(),
              ::testing::HasSubstr("seconds: 1700000000"));

  // And this program's Abseil (absl::Status payloads live in a Cord).
  absl::Status error = absl::NotFoundError("own absl");
  error.SetPayload("type.googleapis.com/test", absl::Cord(wire));
  ASSERT_TRUE(error.GetPayload("type.googleapis.com/test").has_value());
  EXPECT_EQ(std::string(*error.GetPayload("type.googleapis.com/test")), wire);
}

TEST(ProtobufCoexistenceTest, SignsWithHsmKeysNextToTheFullRuntime) {
  // A hang fails the test binary instead of blocking CI.
  alarm(120);
  ExpectOwnMessagesWork();
  absl::StatusOr<std::unique_ptr<DemoDaemon>> daemon = DemoDaemon::Start();
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  setenv("HSMPROXY_SOCKET", (*daemon)->socket_path().c_str(), 1);

  OSSL_LIB_CTX* libctx = OSSL_LIB_CTX_new();
  std::string dir = RunfilePath("proxy_provider");
  ASSERT_EQ(OSSL_PROVIDER_set_default_search_path(libctx, dir.c_str()), 1);
  OSSL_PROVIDER* hsmproxy = OSSL_PROVIDER_load(libctx, "hsmproxy");
  ASSERT_NE(hsmproxy, nullptr) << DrainErrors();
  OSSL_PROVIDER* def = OSSL_PROVIDER_load(libctx, "default");
  OSSL_LIB_CTX* verify_libctx = OSSL_LIB_CTX_new();
  OSSL_PROVIDER* verify_default = OSSL_PROVIDER_load(verify_libctx, "default");

  const std::string message = "signed next to libprotobuf.so";
  for (const char* label : {"ec-p256", "rsa-2048"}) {
    SCOPED_TRACE(label);
    absl::StatusOr<EvpPkeyPtr> key = LoadKey(
        libctx, absl::StrCat("pkcs11:token=demo;object=", label, ";type=private"),
        OSSL_STORE_INFO_PKEY);
    ASSERT_TRUE(key.ok()) << key.status();
    absl::StatusOr<std::string> sig =
        DigestSign(libctx, key->get(), "SHA256", message);
    ASSERT_TRUE(sig.ok()) << sig.status();
    EvpPkeyPtr pub = PublicKeyFromSpki(verify_libctx, SpkiOf(key->get()));
    ASSERT_NE(pub, nullptr);
    absl::StatusOr<bool> ok =
        DigestVerify(verify_libctx, pub.get(), "SHA256", message, *sig);
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_TRUE(*ok);
    // A tampered message does not verify: the check is real.
    ok = DigestVerify(verify_libctx, pub.get(), "SHA256", message + "!", *sig);
    ASSERT_TRUE(ok.ok()) << ok.status();
    EXPECT_FALSE(*ok);
  }
  // An error from hsmd (a key that does not exist) travels through the
  // provider's lite google.rpc.Status / Any and comes back readable.
  absl::StatusOr<EvpPkeyPtr> missing =
      LoadKey(libctx, "pkcs11:token=demo;object=no-such-key;type=private",
              OSSL_STORE_INFO_PKEY);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("key not found"));

  // The program's own messages still work after the provider's.
  ExpectOwnMessagesWork();

  OSSL_PROVIDER_unload(verify_default);
  OSSL_LIB_CTX_free(verify_libctx);
  OSSL_PROVIDER_unload(def);
  OSSL_PROVIDER_unload(hsmproxy);
  OSSL_LIB_CTX_free(libctx);
  alarm(0);
}

}  // namespace
}  // namespace hsmd::testing
