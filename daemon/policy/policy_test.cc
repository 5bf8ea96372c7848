#include "daemon/policy/policy.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace hsmd::policy {
namespace {

using ::testing::HasSubstr;

config::Config Parse(const std::string& policy_text) {
  config::Config config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
      absl::StrCat("policy { ", policy_text, " }"), &config))
      << policy_text;
  return config;
}

std::unique_ptr<Policy> Make(const std::string& policy_text) {
  absl::StatusOr<std::unique_ptr<Policy>> policy =
      Policy::New(Parse(policy_text));
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.ok() ? *std::move(policy) : Policy::AllowAll();
}

PeerIdentity Peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  PeerIdentity p;
  p.uid = uid;
  p.gid = gid;
  p.groups = std::move(groups);
  p.pid = 42;
  return p;
}

KeyAttributes Key(const std::string& label, const std::string& token = "demo") {
  KeyAttributes k;
  k.token_label = token;
  k.label = label;
  return k;
}

TEST(PolicyTest, NoPolicySectionAllowsEverything) {
  absl::StatusOr<std::unique_ptr<Policy>> policy = Policy::New({});
  ASSERT_TRUE(policy.ok());
  EXPECT_FALSE((*policy)->enforced());
  EXPECT_TRUE((*policy)->Allows(nullptr, Op::kAdmin, nullptr));
  EXPECT_TRUE((*policy)->AllowsSomeKey(nullptr, Op::kSign));
}

TEST(PolicyTest, EmptyPolicyDeniesEverything) {
  std::unique_ptr<Policy> policy = Make("");
  EXPECT_TRUE(policy->enforced());
  const PeerIdentity root = Peer(0, 0);
  const KeyAttributes key = Key("k");
  for (Op op : {Op::kSign, Op::kDecrypt, Op::kRandom, Op::kList, Op::kStatus,
                Op::kAdmin}) {
    EXPECT_FALSE(policy->Allows(&root, op, &key)) << OpName(op);
    EXPECT_FALSE(policy->AllowsSomeKey(&root, op)) << OpName(op);
  }
}

TEST(PolicyTest, UsersGroupsAndSupplementaryGroups) {
  std::unique_ptr<Policy> policy = Make(R"(
    rules { name: "web" users: "1000" groups: "2000"
            keys: "web-*" operations: [SIGN] })");
  const KeyAttributes web = Key("web-1");
  const PeerIdentity by_uid = Peer(1000, 1000);
  const PeerIdentity by_primary = Peer(1500, 2000);
  const PeerIdentity by_supplementary = Peer(1501, 1501, {3000, 2000});
  const PeerIdentity stranger = Peer(1502, 1502, {3000});
  std::string rule;
  EXPECT_TRUE(policy->Allows(&by_uid, Op::kSign, &web, &rule));
  EXPECT_EQ(rule, "web");
  EXPECT_TRUE(policy->Allows(&by_primary, Op::kSign, &web));
  EXPECT_TRUE(policy->Allows(&by_supplementary, Op::kSign, &web));
  EXPECT_FALSE(policy->Allows(&stranger, Op::kSign, &web));
  EXPECT_FALSE(policy->AllowsSomeKey(&stranger, Op::kSign));
  // Unidentified callers are never allowed under a policy.
  EXPECT_FALSE(policy->Allows(nullptr, Op::kSign, &web));
}

TEST(PolicyTest, OperationsAndKeys) {
  std::unique_ptr<Policy> policy = Make(R"(
    rules { users: "1000" keys: "pkcs11:token=demo;object=web-*"
            operations: [SIGN] }
    rules { users: "1000" keys: "db" operations: [DECRYPT, LIST] }
    rules { users: "1000" keys: "sm4-*" operations: [ENCRYPT] }
    rules { users: "1000" keys: "ecdh-*" operations: [DERIVE] }
    rules { users: "1000" operations: [RANDOM] })");
  const PeerIdentity peer = Peer(1000, 1000);
  const KeyAttributes web = Key("web-1");
  const KeyAttributes web_other_token = Key("web-1", "prod");
  const KeyAttributes db = Key("db");
  EXPECT_TRUE(policy->Allows(&peer, Op::kSign, &web));
  EXPECT_FALSE(policy->Allows(&peer, Op::kSign, &web_other_token));
  EXPECT_FALSE(policy->Allows(&peer, Op::kDecrypt, &web));
  EXPECT_TRUE(policy->Allows(&peer, Op::kDecrypt, &db));
  EXPECT_FALSE(policy->Allows(&peer, Op::kSign, &db));
  // SIGN makes a key visible; so does LIST.
  EXPECT_TRUE(policy->Allows(&peer, Op::kList, &web));
  EXPECT_TRUE(policy->Allows(&peer, Op::kList, &db));
  EXPECT_FALSE(policy->Allows(&peer, Op::kList, &web_other_token));
  const KeyAttributes sm4 = Key("sm4-1");
  EXPECT_TRUE(policy->Allows(&peer, Op::kEncrypt, &sm4));
  EXPECT_TRUE(policy->Allows(&peer, Op::kList, &sm4));
  EXPECT_FALSE(policy->Allows(&peer, Op::kDecrypt, &sm4));
  EXPECT_FALSE(policy->Allows(&peer, Op::kEncrypt, &db));
  // DERIVE grants key agreement (and visibility), nothing else.
  const KeyAttributes ecdh = Key("ecdh-1");
  EXPECT_TRUE(policy->Allows(&peer, Op::kDerive, &ecdh));
  EXPECT_TRUE(policy->Allows(&peer, Op::kList, &ecdh));
  EXPECT_FALSE(policy->Allows(&peer, Op::kSign, &ecdh));
  EXPECT_FALSE(policy->Allows(&peer, Op::kDerive, &web));
  EXPECT_EQ(OpName(Op::kDerive), "derive");
  EXPECT_TRUE(policy->Allows(&peer, Op::kRandom, nullptr));
  EXPECT_FALSE(policy->Allows(&peer, Op::kStatus, nullptr));
  EXPECT_FALSE(policy->Allows(&peer, Op::kAdmin, &web));
  // Key operations need a key.
  EXPECT_FALSE(policy->Allows(&peer, Op::kSign, nullptr));
}

TEST(PolicyTest, AdminGrantsStatusAndKeyLifecycle) {
  std::unique_ptr<Policy> policy = Make(R"(
    rules { users: "0" keys: "test-*" operations: [ADMIN] }
    rules { users: "*" operations: [STATUS] })");
  const PeerIdentity root = Peer(0, 0);
  const PeerIdentity anyone = Peer(4242, 4242);
  const KeyAttributes test = Key("test-1");
  const KeyAttributes prod = Key("prod-1");
  EXPECT_TRUE(policy->Allows(&root, Op::kAdmin, &test));
  EXPECT_FALSE(policy->Allows(&root, Op::kAdmin, &prod));
  EXPECT_TRUE(policy->Allows(&root, Op::kStatus, nullptr));
  EXPECT_TRUE(policy->Allows(&anyone, Op::kStatus, nullptr));
  EXPECT_FALSE(policy->Allows(&anyone, Op::kAdmin, &test));
  EXPECT_FALSE(policy->Allows(&root, Op::kSign, &test));
}

TEST(PolicyTest, NamesResolve) {
  std::unique_ptr<Policy> policy = Make(R"(
    rules { users: "nobody" groups: "root" keys: "*" operations: [SIGN] })");
  const PeerIdentity nobody = Peer(65534, 65534);
  const PeerIdentity root_group = Peer(1234, 0);
  const KeyAttributes key = Key("k");
  EXPECT_TRUE(policy->Allows(&nobody, Op::kSign, &key));
  EXPECT_TRUE(policy->Allows(&root_group, Op::kSign, &key));
}

TEST(PolicyTest, ValidationReportsEveryProblemWithItsField) {
  std::vector<std::string> errors;
  ValidatePolicy(Parse(R"(
    rules { }
    rules { name: "bad name" users: "no-such-user-hsmd-test" keys: "*"
            operations: [SIGN] }
    rules { groups: "no-such-group-hsmd-test" groups: "*"
            operations: [SIGN] }
    rules { users: "*" keys: "pkcs11:serial=1" operations: [LIST] }
    rules { users: "*" operations: [OPERATION_UNSPECIFIED] })")
                     .policy(),
                 [&](const std::string& field, const std::string& message) {
                   errors.push_back(absl::StrCat(field, ": ", message));
                 });
  EXPECT_THAT(errors,
              ::testing::UnorderedElementsAre(
                  HasSubstr("rules[0]: names no caller"),
                  HasSubstr("rules[0].operations: grants nothing"),
                  HasSubstr("rules[1].name: \"bad name\""),
                  HasSubstr("rules[1].users[0]: no user named "
                            "\"no-such-user-hsmd-test\""),
                  HasSubstr("rules[2].groups[0]: no group named"),
                  HasSubstr("rules[2].groups[1]: \"*\" is not a group"),
                  HasSubstr("rules[2].keys: is required"),
                  HasSubstr("rules[3].keys[0]: attribute \"serial\""),
                  HasSubstr("rules[4].operations[0]: OPERATION_UNSPECIFIED")));
  absl::StatusOr<std::unique_ptr<Policy>> policy =
      Policy::New(Parse("rules { users: \"*\" }"));
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(policy.status().message()),
              HasSubstr("policy.rules[0].operations: grants nothing"));
}

TEST(ResolveTest, GroupsByNameOrNumber) {
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

TEST(ResolveTest, UsersByNameOrNumber) {
  EXPECT_EQ(*ResolveUser("0"), 0u);
  EXPECT_EQ(*ResolveUser("4321"), 4321u);
  absl::StatusOr<uid_t> root = ResolveUser("root");
  ASSERT_TRUE(root.ok()) << root.status();
  EXPECT_EQ(*root, 0u);
  absl::StatusOr<uid_t> missing = ResolveUser("no-such-user-hsmd-test");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("no user named \"no-such-user-hsmd-test\""));
}

}  // namespace
}  // namespace hsmd::policy
