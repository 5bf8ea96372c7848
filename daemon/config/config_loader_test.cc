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

TEST(ConfigLoaderTest, ParseSocketMode) {
  EXPECT_EQ(*ParseSocketMode("0660"), 0660u);
  EXPECT_EQ(*ParseSocketMode("600"), 0600u);
  EXPECT_EQ(*ParseSocketMode("0"), 0u);
  EXPECT_FALSE(ParseSocketMode("").ok());
  EXPECT_FALSE(ParseSocketMode("0888").ok());
  EXPECT_FALSE(ParseSocketMode("01777").ok());
  EXPECT_FALSE(ParseSocketMode("00660").ok());
}

TEST(ConfigLoaderTest, ResolveGroup) {
  EXPECT_EQ(*ResolveGroup("0"), 0u);
  EXPECT_EQ(*ResolveGroup("1234"), 1234u);
  absl::StatusOr<gid_t> root = ResolveGroup("root");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, 0u);
  absl::StatusOr<gid_t> missing = ResolveGroup("no-such-group-hsmd-test");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("no-such-group-hsmd-test"));
}

}  // namespace
}  // namespace hsmd::config
