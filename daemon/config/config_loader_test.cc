#include "daemon/config/config_loader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::config {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr char kGood[] = R"pb(
  # A complete config.
  listen {
    socket_path: "/run/hsmd/hsmd.sock"
    socket_mode: "0660"
    socket_group: "hsmd"
  }
  backends {
    name: "softhsm"
    pkcs11 {
      module_path: "/usr/lib/softhsm/libsofthsm2.so"
      token_label: "demo"
      slot_id: 7
      pin { file: "/etc/hsmd/user.pin" }
      session_pool_size: 8
      no_finalize: true
    }
  }
  limits {
    max_message_bytes: 65536
    max_random_bytes: 1024
    default_deadline_ms: 2000
    shutdown_grace_ms: 100
    max_streams_per_connection: 16
    max_list_results: 50
  }
  logging { level: DEBUG format: JSON }
)pb";

constexpr char kMinimal[] = R"pb(
  backends {
    name: "hsm"
    pkcs11 {
      module_path: "/usr/lib/softhsm/libsofthsm2.so"
      token_label: "t"
      pin { credential: "user-pin" }
    }
  }
)pb";

TEST(ConfigLoaderTest, ParsesCompleteConfig) {
  absl::StatusOr<Config> config = ParseConfig(kGood, "hsmd.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen().socket_path(), "/run/hsmd/hsmd.sock");
  EXPECT_EQ(config->listen().socket_group(), "hsmd");
  ASSERT_EQ(config->backends_size(), 1);
  const Pkcs11Backend& p = config->backends(0).pkcs11();
  EXPECT_EQ(p.token_label(), "demo");
  EXPECT_TRUE(p.has_slot_id());
  EXPECT_EQ(p.slot_id(), 7u);
  EXPECT_EQ(p.pin().file(), "/etc/hsmd/user.pin");
  EXPECT_EQ(p.session_pool_size(), 8u);
  EXPECT_TRUE(p.no_finalize());
  EXPECT_EQ(config->limits().max_message_bytes(), 65536u);
  EXPECT_EQ(config->limits().shutdown_grace_ms(), 100u);
  EXPECT_EQ(config->limits().max_streams_per_connection(), 16u);
  EXPECT_EQ(config->limits().max_list_results(), 50u);
  EXPECT_EQ(config->logging().level(), Logging::DEBUG);
  EXPECT_EQ(config->logging().format(), Logging::JSON);
}

TEST(ConfigLoaderTest, AppliesDefaults) {
  absl::StatusOr<Config> config = ParseConfig(kMinimal, "hsmd.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen().socket_path(), "/run/hsmd/hsmd.sock");
  EXPECT_EQ(*ParseSocketMode(config->listen().socket_mode()), 0660u);
  EXPECT_FALSE(config->listen().has_socket_group());
  EXPECT_EQ(config->backends(0).pkcs11().session_pool_size(), 4u);
  EXPECT_FALSE(config->backends(0).pkcs11().has_slot_id());
  EXPECT_EQ(config->limits().max_message_bytes(), 1048576u);
  EXPECT_EQ(config->limits().max_random_bytes(), 65536u);
  EXPECT_EQ(config->limits().default_deadline_ms(), 10000u);
  EXPECT_EQ(config->limits().max_streams_per_connection(), 100u);
  EXPECT_EQ(config->limits().max_list_results(), 1000u);
  EXPECT_EQ(config->logging().level(), Logging::INFO);
  EXPECT_EQ(config->logging().format(), Logging::TEXT);
}

TEST(ConfigLoaderTest, UnknownFieldNamesFileLineAndColumn) {
  absl::StatusOr<Config> config = ParseConfig(
      "backends {\n  name: \"x\"\n  colour: 3\n}\n", "/etc/hsmd.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              AllOf(HasSubstr("/etc/hsmd.conf:3:"), HasSubstr("colour")));
}

TEST(ConfigLoaderTest, BadValueNamesFileLineAndColumn) {
  absl::StatusOr<Config> config =
      ParseConfig("limits {\n  max_random_bytes: -5\n}\n", "hsmd.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("hsmd.conf:2:"));

  config = ParseConfig("logging { level: LOUD }\n", "hsmd.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              AllOf(HasSubstr("hsmd.conf:1:"), HasSubstr("LOUD")));
}

TEST(ConfigLoaderTest, SyntaxErrorNamesLine) {
  absl::StatusOr<Config> config =
      ParseConfig("listen {\n  socket_path: \"/x\"\n", "hsmd.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("hsmd.conf:3:"));
}

TEST(ConfigLoaderTest, RepeatedSingularFieldIsAnError) {
  absl::StatusOr<Config> config = ParseConfig(
      "listen { socket_path: \"/a\" socket_path: \"/b\" }", "hsmd.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              AllOf(HasSubstr("hsmd.conf:1:"), HasSubstr("socket_path")));
}

struct SemanticCase {
  std::string text;
  std::string expected;
};

class SemanticErrorTest : public ::testing::TestWithParam<SemanticCase> {};

TEST_P(SemanticErrorTest, NamesTheField) {
  absl::StatusOr<Config> config = ParseConfig(GetParam().text, "hsmd.conf");
  ASSERT_FALSE(config.ok()) << GetParam().text;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr(GetParam().expected));
}

std::string WithBackend(const std::string& pkcs11_body,
                        const std::string& extra = "") {
  return absl::StrCat("backends { name: \"hsm\" pkcs11 { ", pkcs11_body,
                      " } }\n", extra);
}

constexpr char kGoodBody[] =
    "module_path: \"/m.so\" token_label: \"t\" pin { file: \"/p\" }";

INSTANTIATE_TEST_SUITE_P(
    Fields, SemanticErrorTest,
    ::testing::Values(
        SemanticCase{"", "hsmd.conf: backends: at least one backend"},
        SemanticCase{WithBackend("token_label: \"t\" pin { file: \"/p\" }"),
                     "hsmd.conf:1:24: backends[0].pkcs11.module_path: is "
                     "required"},
        SemanticCase{
            WithBackend("module_path: \"m.so\" token_label: \"t\" pin { "
                        "file: \"/p\" }"),
            "backends[0].pkcs11.module_path: \"m.so\" is not an absolute"},
        SemanticCase{WithBackend("module_path: \"/m.so\" pin { file: \"/p\" }"),
                     "backends[0].pkcs11: set token_label, token_serial or "
                     "slot_id"},
        SemanticCase{WithBackend("module_path: \"/m.so\" token_label: \"t\""),
                     "backends[0].pkcs11.pin: is required"},
        SemanticCase{
            WithBackend("module_path: \"/m.so\" token_label: \"t\" pin {}"),
            "backends[0].pkcs11.pin: a PIN source is required"},
        SemanticCase{WithBackend("module_path: \"/m.so\" token_label: \"t\" "
                                 "pin { file: \"pin.txt\" }"),
                     "backends[0].pkcs11.pin.file: \"pin.txt\" is not an "
                     "absolute path"},
        SemanticCase{WithBackend("module_path: \"/m.so\" token_label: \"t\" "
                                 "pin { credential: \"a/b\" }"),
                     "backends[0].pkcs11.pin.credential: \"a/b\""},
        SemanticCase{
            WithBackend(absl::StrCat(kGoodBody, " session_pool_size: 0")),
            "backends[0].pkcs11.session_pool_size: 0 is out of "
            "range (1..256)"},
        SemanticCase{
            WithBackend(absl::StrCat(kGoodBody, " session_pool_size: 300")),
            "backends[0].pkcs11.session_pool_size: 300"},
        SemanticCase{
            WithBackend(
                "module_path: \"/m.so\" pin { file: \"/p\" } token_label: "
                "\"0123456789012345678901234567890123\""),
            "backends[0].pkcs11.token_label: is 34 bytes"},
        SemanticCase{absl::StrCat("backends { pkcs11 { ", kGoodBody, " } }"),
                     "backends[0].name: is required"},
        SemanticCase{absl::StrCat("backends { name: \"a b\" pkcs11 { ",
                                  kGoodBody, " } }"),
                     "backends[0].name: \"a b\" must be"},
        SemanticCase{absl::StrCat("backends { name: \"a\" pkcs11 { ", kGoodBody,
                                  " } }\n", "backends { name: \"a\" pkcs11 { ",
                                  kGoodBody, " } }"),
                     "backends[1].name: \"a\" is used by another backend"},
        SemanticCase{"backends { name: \"a\" }",
                     "backends[0]: a backend kind is required"},
        SemanticCase{
            WithBackend(kGoodBody, "listen { socket_path: \"x.sock\" }"),
            "listen.socket_path: \"x.sock\" is not an absolute path"},
        SemanticCase{
            WithBackend(kGoodBody, absl::StrCat("listen { socket_path: \"/",
                                                std::string(120, 'a'), "\" }")),
            "listen.socket_path: is 121 bytes"},
        SemanticCase{WithBackend(kGoodBody, "listen { socket_mode: \"660x\" }"),
                     "listen.socket_mode: \"660x\" is not an octal"},
        SemanticCase{WithBackend(kGoodBody, "listen { socket_mode: \"4755\" }"),
                     "listen.socket_mode: \"4755\" has bits beyond 0777"},
        SemanticCase{WithBackend(kGoodBody, "limits { max_random_bytes: 0 }"),
                     "limits.max_random_bytes: 0 is out of range (1..65536)"},
        SemanticCase{
            WithBackend(kGoodBody, "limits { max_random_bytes: 65537 }"),
            "limits.max_random_bytes: 65537 is out of range"},
        SemanticCase{
            WithBackend(kGoodBody, "limits { max_message_bytes: 100 }"),
            "limits.max_message_bytes: 100 is out of range (4096..67108864)"},
        SemanticCase{
            WithBackend(kGoodBody, "limits { default_deadline_ms: 0 }"),
            "limits.default_deadline_ms: 0 is out of range"},
        SemanticCase{
            WithBackend(kGoodBody, "limits { max_concurrent_requests: 1 }"),
            "limits.max_concurrent_requests: 1 is out of range"},
        SemanticCase{
            WithBackend(kGoodBody, "limits { max_streams_per_connection: 0 }"),
            "limits.max_streams_per_connection: 0 is out of range (1..1024)"},
        SemanticCase{
            WithBackend(kGoodBody,
                        "limits { max_streams_per_connection: 1025 }"),
            "limits.max_streams_per_connection: 1025 is out of range"},
        SemanticCase{WithBackend(kGoodBody, "limits { max_list_results: 0 }"),
                     "limits.max_list_results: 0 is out of range (1..100000)"},
        SemanticCase{
            WithBackend(kGoodBody, "limits { max_list_results: 100001 }"),
            "limits.max_list_results: 100001 is out of range"}));

TEST(ConfigLoaderTest, ReportsAllSemanticErrorsAtOnce) {
  absl::StatusOr<Config> config = ParseConfig(
      WithBackend("token_label: \"t\"", "limits { max_random_bytes: 0 }"),
      "hsmd.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(
      std::string(config.status().message()),
      AllOf(HasSubstr("module_path: is required"),
            HasSubstr("pin: is required"), HasSubstr("max_random_bytes: 0")));
}

TEST(ConfigLoaderTest, LoadsFileAndNamesItInErrors) {
  std::string dir = ::testing::TempDir();
  std::string good = absl::StrCat(dir, "/good.conf");
  std::string bad = absl::StrCat(dir, "/bad.conf");
  for (auto [path, text] : {std::pair<std::string, std::string>{good, kGood},
                            {bad, "backends { nme: 1 }"}}) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, text.data(), text.size()),
              static_cast<ssize_t>(text.size()));
    close(fd);
  }
  absl::StatusOr<Config> config = LoadConfigFile(good);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->backends(0).name(), "softhsm");

  config = LoadConfigFile(bad);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              AllOf(HasSubstr(absl::StrCat(bad, ":1:")), HasSubstr("nme")));

  config = LoadConfigFile(absl::StrCat(dir, "/missing.conf"));
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              AllOf(HasSubstr("missing.conf"), HasSubstr("cannot open")));

  config = LoadConfigFile(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("not a regular file"));
}

// 国密: an sdf backend next to a pkcs11 one, every field set.
constexpr char kGoodSdf[] = R"pb(
  backends {
    name: "softhsm"
    pkcs11 {
      module_path: "/usr/lib/softhsm/libsofthsm2.so"
      token_label: "demo"
      pin { file: "/etc/hsmd/user.pin" }
    }
    recovery { reinit_backoff_initial_ms: 50 calls_on_workers: false }
  }
  backends {
    name: "card"
    sdf {
      library_path: "/opt/vendor/lib/libsdf.so"
      device_name: "card0"
      keys {
        index: 1
        usage: SIGN
        label: "server"
        password { credential: "sdf-key1" }
      }
      keys { index: 1 usage: ENC label: "server" }
      keys { index: 2 usage: SM4 wrapped_key: "00112233445566778899aabbccddeeff" }
      keys {
        index: 3
        usage: ENC
        password { file: "/etc/hsmd/sdf-key3.password" }
      }
      session_pool_size: 8
      algorithm_ids { sm2_sign: 0x00020100 sm2_encrypt: 0x00020400 }
      max_chunk_bytes: 8192
      self_test: false
    }
    recovery {
      reinit_backoff_initial_ms: 200
      reinit_backoff_max_ms: 10000
      reinit_drain_timeout_ms: 0
      degraded_hold_ms: 1000
    }
  }
)pb";

TEST(ConfigLoaderTest, ParsesSdfBackend) {
  absl::StatusOr<Config> config = ParseConfig(kGoodSdf, "hsmd.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->backends_size(), 2);
  EXPECT_EQ(config->backends(0).recovery().reinit_backoff_initial_ms(), 50u);
  EXPECT_EQ(config->backends(0).recovery().reinit_backoff_max_ms(), 5000u);
  EXPECT_FALSE(config->backends(0).recovery().calls_on_workers());
  const Backend& b = config->backends(1);
  ASSERT_TRUE(b.has_sdf());
  const SdfBackend& sdf = b.sdf();
  EXPECT_EQ(sdf.library_path(), "/opt/vendor/lib/libsdf.so");
  EXPECT_EQ(sdf.device_name(), "card0");
  ASSERT_EQ(sdf.keys_size(), 4);
  EXPECT_EQ(sdf.keys(0).usage(), SdfKey::SIGN);
  EXPECT_EQ(sdf.keys(0).password().credential(), "sdf-key1");
  EXPECT_EQ(sdf.keys(2).wrapped_key(), "00112233445566778899aabbccddeeff");
  EXPECT_EQ(sdf.session_pool_size(), 8u);
  EXPECT_EQ(sdf.algorithm_ids().sm2_sign(), 0x00020100u);
  EXPECT_EQ(sdf.algorithm_ids().sm2_encrypt(), 0x00020400u);
  // GM/T 0006 defaults for what is not set.
  EXPECT_EQ(sdf.algorithm_ids().sm4_ecb(), 0x00000401u);
  EXPECT_EQ(sdf.algorithm_ids().sm4_cbc(), 0x00000402u);
  EXPECT_EQ(sdf.max_chunk_bytes(), 8192u);
  EXPECT_FALSE(sdf.self_test());
  EXPECT_EQ(b.recovery().reinit_backoff_max_ms(), 10000u);
  EXPECT_EQ(b.recovery().reinit_drain_timeout_ms(), 0u);
  EXPECT_EQ(b.recovery().degraded_hold_ms(), 1000u);
  EXPECT_TRUE(b.recovery().calls_on_workers());
}

TEST(ConfigLoaderTest, SdfDefaults) {
  absl::StatusOr<Config> config = ParseConfig(
      "backends { name: \"s\" sdf { library_path: \"/l.so\" device_name: "
      "\"d\" keys { index: 0 usage: SM4 } } }",
      "hsmd.conf");
  ASSERT_TRUE(config.ok()) << config.status();
  const SdfBackend& sdf = config->backends(0).sdf();
  EXPECT_EQ(sdf.session_pool_size(), 4u);
  EXPECT_EQ(sdf.max_chunk_bytes(), 0u);
  EXPECT_TRUE(sdf.self_test());
  EXPECT_EQ(sdf.algorithm_ids().sm2_sign(), 0x00020200u);
  EXPECT_EQ(sdf.algorithm_ids().sm2_encrypt(), 0x00020800u);
  const Recovery& r = config->backends(0).recovery();
  EXPECT_EQ(r.reinit_backoff_initial_ms(), 100u);
  EXPECT_EQ(r.reinit_backoff_max_ms(), 5000u);
  EXPECT_EQ(r.reinit_drain_timeout_ms(), 2000u);
  EXPECT_EQ(r.degraded_hold_ms(), 60000u);
  EXPECT_TRUE(r.calls_on_workers());
}

// A pkcs11 backend first, then an sdf backend with `body` (so the sdf one
// is backends[1]).
std::string WithSdf(const std::string& body, const std::string& extra = "") {
  return absl::StrCat(
      "backends { name: \"hsm\" pkcs11 { module_path: \"/m.so\" token_label: "
      "\"t\" pin { file: \"/p\" } } }\n"
      "backends { name: \"card\" sdf { ",
      body, " } ", extra, "}\n");
}

constexpr char kSdfLib[] =
    "library_path: \"/l.so\" device_name: \"card0\" ";
constexpr char kSignKey[] =
    "keys { index: 1 usage: SIGN password { file: \"/k1\" } } ";

INSTANTIATE_TEST_SUITE_P(
    SdfFields, SemanticErrorTest,
    ::testing::Values(
        SemanticCase{WithSdf(absl::StrCat("device_name: \"card0\" ", kSignKey)),
                     "backends[1].sdf.library_path: is required"},
        SemanticCase{WithSdf(absl::StrCat(
                         "library_path: \"l.so\" device_name: \"card0\" ",
                         kSignKey)),
                     "backends[1].sdf.library_path: \"l.so\" is not an "
                     "absolute path"},
        SemanticCase{WithSdf(absl::StrCat("library_path: \"/l.so\" ",
                                          kSignKey)),
                     "backends[1].sdf.device_name: is required"},
        SemanticCase{WithSdf(absl::StrCat(
                         "library_path: \"/l.so\" device_name: \"card 0\" ",
                         kSignKey)),
                     "backends[1].sdf.device_name: \"card 0\" must be 1..64 "
                     "characters"},
        SemanticCase{WithSdf(kSdfLib), "backends[1].sdf.keys: at least one "
                                       "key is required"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib, "keys { usage: SIGN password { file: "
                                  "\"/k\" } }")),
                     "backends[1].sdf.keys[0].index: is required"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, "keys { index: 1 }")),
                     "backends[1].sdf.keys[0].usage: is required: SIGN, ENC "
                     "or SM4"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib,
                                          "keys { index: 1 usage: "
                                          "USAGE_UNSPECIFIED }")),
                     "backends[1].sdf.keys[0].usage: is required"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey, kSignKey)),
                     "backends[1].sdf.keys[1].index: index 1 usage SIGN is "
                     "configured twice"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, "keys { index: 4 usage: SM4 }"
                                                   "keys { index: 4 usage: "
                                                   "SM4 }")),
                     "backends[1].sdf.keys[1].index: index 4 usage SM4 is "
                     "configured twice"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib,
                                          "keys { index: 1 usage: SIGN }")),
                     "backends[1].sdf.keys[0].password: is required: SM2 "
                     "keys need the access password of index 1"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib,
                                          "keys { index: 2 usage: ENC }")),
                     "backends[1].sdf.keys[0].password: is required"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib,
                         "keys { index: 1 usage: SIGN password {} }")),
                     "backends[1].sdf.keys[0].password: a PIN source is "
                     "required"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib,
                         "keys { index: 1 usage: SIGN password { file: "
                         "\"k1\" } }")),
                     "backends[1].sdf.keys[0].password.file: \"k1\" is not "
                     "an absolute path"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib,
                         "keys { index: 1 usage: SIGN password { credential: "
                         "\"a/b\" } }")),
                     "backends[1].sdf.keys[0].password.credential: \"a/b\""},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib, kSignKey,
                         "keys { index: 1 usage: ENC password { file: "
                         "\"/other\" } }")),
                     "backends[1].sdf.keys[1].password: differs from "
                     "keys[0].password"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib,
                         "keys { index: 2 usage: SM4 password { file: "
                         "\"/k\" } }")),
                     "backends[1].sdf.keys[0].password: SM4 keys take no "
                     "password"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib, "keys { index: 2 usage: SM4 wrapped_key: "
                                  "\"0011\" }")),
                     "backends[1].sdf.keys[0].wrapped_key: must be 32 hex "
                     "digits"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib, "keys { index: 2 usage: SM4 wrapped_key: "
                                  "\"zz112233445566778899aabbccddeeff\" }")),
                     "backends[1].sdf.keys[0].wrapped_key: must be 32 hex"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib,
                         "keys { index: 1 usage: SIGN password { file: "
                         "\"/k\" } wrapped_key: "
                         "\"00112233445566778899aabbccddeeff\" }")),
                     "backends[1].sdf.keys[0].wrapped_key: is only for SM4 "
                     "keys"},
        SemanticCase{WithSdf(absl::StrCat(
                         kSdfLib, "keys { index: 2 usage: SM4 label: \"\" }")),
                     "backends[1].sdf.keys[0].label: is 0 bytes"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib,
                                          "keys { index: 2 usage: SM4 label: "
                                          "\"",
                                          std::string(129, 'x'), "\" }")),
                     "backends[1].sdf.keys[0].label: is 129 bytes"},
        SemanticCase{
            WithSdf(absl::StrCat(kSdfLib, kSignKey, "session_pool_size: 0")),
            "backends[1].sdf.session_pool_size: 0 is out of range (1..256)"},
        SemanticCase{
            WithSdf(absl::StrCat(kSdfLib, kSignKey, "session_pool_size: 257")),
            "backends[1].sdf.session_pool_size: 257 is out of range"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey,
                                          "algorithm_ids { sm2_sign: 0 }")),
                     "backends[1].sdf.algorithm_ids.sm2_sign: must not be 0"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey,
                                          "algorithm_ids { sm2_encrypt: 0 }")),
                     "backends[1].sdf.algorithm_ids.sm2_encrypt: must not "
                     "be 0"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey,
                                          "algorithm_ids { sm4_ecb: 0 }")),
                     "backends[1].sdf.algorithm_ids.sm4_ecb: must not be 0"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey,
                                          "algorithm_ids { sm4_cbc: 0 }")),
                     "backends[1].sdf.algorithm_ids.sm4_cbc: must not be 0"},
        SemanticCase{
            WithSdf(absl::StrCat(kSdfLib, kSignKey, "max_chunk_bytes: 8")),
            "backends[1].sdf.max_chunk_bytes: 8 is out of range "
            "(16..67108864)"},
        SemanticCase{
            WithSdf(absl::StrCat(kSdfLib, kSignKey, "max_chunk_bytes: 100")),
            "backends[1].sdf.max_chunk_bytes: 100 is not a multiple of 16"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey,
                                          "max_chunk_bytes: 134217728")),
                     "backends[1].sdf.max_chunk_bytes: 134217728 is out of "
                     "range"},
        SemanticCase{absl::StrCat(WithSdf(absl::StrCat(kSdfLib, kSignKey)),
                                  "backends { name: \"card2\" sdf { ", kSdfLib,
                                  kSignKey, " } }"),
                     "backends[2].sdf.device_name: \"card0\" is used by "
                     "another sdf backend"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey),
                             "recovery { reinit_backoff_initial_ms: 0 } "),
                     "backends[1].recovery.reinit_backoff_initial_ms: 0 is "
                     "out of range (1..60000)"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey),
                             "recovery { reinit_backoff_max_ms: 3600001 } "),
                     "backends[1].recovery.reinit_backoff_max_ms: 3600001 is "
                     "out of range"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey),
                             "recovery { reinit_backoff_initial_ms: 500 "
                             "reinit_backoff_max_ms: 100 } "),
                     "backends[1].recovery.reinit_backoff_max_ms: 100 is "
                     "below reinit_backoff_initial_ms (500)"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey),
                             "recovery { reinit_drain_timeout_ms: 600001 } "),
                     "backends[1].recovery.reinit_drain_timeout_ms: 600001 "
                     "is out of range (0..600000)"},
        SemanticCase{WithSdf(absl::StrCat(kSdfLib, kSignKey),
                             "recovery { degraded_hold_ms: 86400001 } "),
                     "backends[1].recovery.degraded_hold_ms: 86400001 is out "
                     "of range (0..86400000)"},
        SemanticCase{
            WithBackend(kGoodBody) + "backends { name: \"x\" recovery {} }",
            "backends[1]: a backend kind is required (pkcs11 { ... } or sdf "
            "{ ... })"}));

TEST(ConfigLoaderTest, SdfErrorsNameTheLine) {
  absl::StatusOr<Config> config = ParseConfig(
      "backends {\n"
      "  name: \"card\"\n"
      "  sdf {\n"
      "    library_path: \"/l.so\"\n"
      "    device_name: \"card0\"\n"
      "    keys { index: 7 usage: SIGN }\n"
      "  }\n"
      "}\n",
      "hsmd.conf");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(std::string(config.status().message()),
              HasSubstr("hsmd.conf:6:5: backends[0].sdf.keys[0].password: is "
                        "required"));
}

TEST(ConfigLoaderTest, ParseSocketMode) {
  EXPECT_EQ(*ParseSocketMode("0660"), 0660u);
  EXPECT_EQ(*ParseSocketMode("600"), 0600u);
  EXPECT_EQ(*ParseSocketMode("0"), 0u);
  EXPECT_FALSE(ParseSocketMode("").ok());
  EXPECT_FALSE(ParseSocketMode("0888").ok());
  EXPECT_FALSE(ParseSocketMode("01777").ok());
  EXPECT_FALSE(ParseSocketMode("00660").ok());
}

}  // namespace
}  // namespace hsmd::config
