// A program that links its own (full-runtime) copy of hsmd.proto and
// google/rpc/status.proto, as hsmctl and gRPC applications do, can load
// hsmproxy.so: protobuf aborts the process on a second registration of the
// same .proto, which is why the provider links the lite-runtime messages.
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/store.h>

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
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

}  // namespace
}  // namespace hsmd::testing
