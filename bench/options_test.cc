#include "bench/options.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::bench {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<BenchOptions> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "hsmd_bench");
  return ParseOptions(static_cast<int>(args.size()), args.data());
}

TEST(OptionsTest, DefaultsAreTheFullRun) {
  absl::StatusOr<BenchOptions> o = Parse({});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_FALSE(o->smoke);
  EXPECT_EQ(o->rounds, 5);
  EXPECT_EQ(o->max_ops_per_thread, 0);
  EXPECT_EQ(o->ops.size(), AllOps().size());
  EXPECT_EQ(o->load_clients, 64);
}

TEST(OptionsTest, SmokeSetsSmallBoundsAndExplicitFlagsWin) {
  absl::StatusOr<BenchOptions> o =
      Parse({"--rounds=3", "--smoke", "--json_out", "/tmp/x.json"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_TRUE(o->smoke);
  EXPECT_EQ(o->rounds, 3);
  EXPECT_EQ(o->max_ops_per_thread, 10);
  EXPECT_EQ(o->json_out, "/tmp/x.json");
}

TEST(OptionsTest, DashesAndUnderscoresAreTheSame) {
  absl::StatusOr<BenchOptions> o =
      Parse({"--softhsm-conf", "/d/softhsm2.conf", "--socket=/d/hsmd.sock",
             "--round-ms=50", "--max_ops_per_thread=7"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->softhsm_conf, "/d/softhsm2.conf");
  EXPECT_EQ(o->socket, "/d/hsmd.sock");
  EXPECT_EQ(o->round_ms, 50);
  EXPECT_EQ(o->max_ops_per_thread, 7);
}

TEST(OptionsTest, OpsAndSkipLists) {
  absl::StatusOr<BenchOptions> o = Parse(
      {"--ops=ecdsa_p256_sign,random_32", "--skip=nginx,fork",
       "--variants=hsmproxy,in-process", "--processes=1", "--threads=1,2,8"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->process_counts, std::vector<int>{1});
  EXPECT_EQ(o->thread_counts, (std::vector<int>{1, 2, 8}));
  EXPECT_EQ(o->variants, (std::set<std::string>{"hsmproxy", "in-process"}));
  EXPECT_EQ(o->ops, (std::vector<Op>{Op::kEcdsaP256Sign, Op::kRandom32}));
  EXPECT_EQ(o->skip, (std::set<std::string>{"fork", "nginx"}));
}

TEST(OptionsTest, ClientLibOverGrpcIsAVariant) {
  absl::StatusOr<BenchOptions> o =
      Parse({"--variants", "client_lib,client_lib_grpc"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->variants,
            (std::set<std::string>{"client_lib", "client_lib_grpc"}));
  EXPECT_THAT(Parse({"--variants=client_lib-grpc"}).status().message(),
              HasSubstr("unknown variant 'client_lib-grpc'; known: "
                        "in-process,socket_floor,hsmproxy,client_lib,"
                        "client_lib_grpc,software"));
  EXPECT_THAT(Usage(), HasSubstr("client_lib_grpc"));
}

TEST(OptionsTest, ErrorsNameTheProblem) {
  EXPECT_THAT(Parse({"--rounds=0"}).status().message(),
              HasSubstr("--rounds: '0' is not an integer >= 1"));
  EXPECT_THAT(Parse({"--ops=rsa9"}).status().message(),
              HasSubstr("unknown operation 'rsa9'"));
  EXPECT_THAT(Parse({"--skip=everything"}).status().message(),
              HasSubstr("unknown phase 'everything'"));
  EXPECT_THAT(Parse({"--variants=pkcs11"}).status().message(),
              HasSubstr("unknown variant 'pkcs11'"));
  EXPECT_THAT(Parse({"--threads=0"}).status().message(),
              HasSubstr("--threads: '0' is not a count from 1 to 16"));
  EXPECT_THAT(Parse({"--bogus=1"}).status().message(),
              HasSubstr("unknown flag --bogus"));
  EXPECT_THAT(Parse({"--json_out"}).status().message(),
              HasSubstr("--json_out needs a value"));
  EXPECT_THAT(Parse({"stray"}).status().message(),
              HasSubstr("unexpected argument 'stray'"));
  EXPECT_THAT(Parse({"--socket=/x"}).status().message(),
              HasSubstr("--socket and --softhsm-conf go together"));
}

}  // namespace
}  // namespace hsmd::bench
