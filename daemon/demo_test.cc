// `hsmd --demo DIR` end to end with the real binary, SoftHSM and softsdf:
// the first start creates the token and the five demo keys and the SDF
// device soft0 (SM2 sign / enc, SM4), serves them, and stops cleanly on
// SIGTERM; the second start reuses the same token, device and keys. Without
// libsoftsdf.so the token is served alone.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/testing/signature_verifier.h"
#include "daemon/testing/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "hsmd/v1/hsmd.grpc.pb.h"

namespace hsmd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::Subprocess;

const absl::Duration kStartTimeout = absl::Seconds(180);
const absl::Duration kExitTimeout = absl::Seconds(60);

std::unique_ptr<grpc::ClientContext> Context() {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::seconds(60));
  return context;
}

mode_t Mode(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

class DemoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hsmdXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    dir_ = base_ + "/demo";
  }
  void TearDown() override {
    ASSERT_EQ(system(absl::StrCat("rm -rf ", base_).c_str()), 0);
  }

  struct Run {
    std::string stdout_text;
    std::string stderr_text;
    std::map<std::string, v1::Key> keys;  // By label (SoftHSM).
    std::string sm2_key_id;               // soft0's signing key.
  };

  // Starts the demo, checks it serves, stops it with SIGTERM.
  void StartCheckAndStop(const std::vector<std::string>& extra_args,
                         const std::string& socket, Run& run) {
    std::vector<std::string> argv = {testing::RunfilePath("daemon/hsmd"),
                                     "--demo", dir_};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    auto daemon = Subprocess::Start(argv);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    absl::Status up = testing::WaitForSocket(**daemon, socket, kStartTimeout);
    ASSERT_TRUE(up.ok()) << up;

    auto channel = grpc::CreateChannel("unix:" + socket,
                                       grpc::InsecureChannelCredentials());
    auto admin = v1::AdminService::NewStub(channel);
    auto keys = v1::KeyService::NewStub(channel);

    v1::GetStatusResponse status;
    grpc::Status s = admin->GetStatus(Context().get(), {}, &status);
    ASSERT_TRUE(s.ok()) << s.error_message();
    ASSERT_EQ(status.backends_size(), 2);
    EXPECT_EQ(status.backends(0).state(), v1::BACKEND_STATE_READY);
    EXPECT_EQ(status.backends(0).token_label(), "demo");
    EXPECT_TRUE(status.backends(0).logged_in());
    EXPECT_EQ(status.backends(1).name(), "soft0");
    EXPECT_EQ(status.backends(1).kind(), "sdf");
    EXPECT_EQ(status.backends(1).state(), v1::BACKEND_STATE_READY);
    EXPECT_EQ(status.backends(1).token_label(), "soft0");
    EXPECT_TRUE(status.backends(1).logged_in());
    EXPECT_EQ(status.config().config_path(), dir_ + "/hsmd.conf");
    ASSERT_EQ(status.config().pin_sources_size(), 2);
    EXPECT_EQ(status.config().pin_sources(0), "file:" + dir_ + "/user.pin");
    EXPECT_EQ(status.config().pin_sources(1),
              "file:" + dir_ + "/sdf.password");

    v1::ListKeysResponse list;
    s = keys->ListKeys(Context().get(), {}, &list);
    ASSERT_TRUE(s.ok()) << s.error_message();
    std::map<std::string, v1::Key> sdf_keys;  // By URI.
    for (const v1::Key& key : list.keys()) {
      if (key.backend() == "soft0") {
        sdf_keys[key.uri()] = key;
      } else {
        run.keys[key.label()] = key;
      }
    }
    std::set<std::string> labels;
    for (const auto& [label, key] : run.keys) labels.insert(label);
    EXPECT_EQ(labels, (std::set<std::string>{"rsa-2048", "rsa-3072", "ec-p256",
                                             "ec-p384", "ed25519"}));
    EXPECT_EQ(list.keys_size(), 8);
    // 国密: the software SDF device's three keys.
    const std::string sign_uri = "sdf:device=soft0;index=1;usage=sign";
    ASSERT_EQ(sdf_keys.size(), 3u);
    EXPECT_EQ(sdf_keys[sign_uri].label(), "sm2-sign");
    EXPECT_EQ(sdf_keys[sign_uri].key_type(), v1::KEY_TYPE_SM2);
    EXPECT_EQ(sdf_keys["sdf:device=soft0;index=1;usage=enc"].label(),
              "sm2-enc");
    EXPECT_EQ(sdf_keys["sdf:device=soft0;index=1;usage=sm4"].label(),
              "sm4-demo");
    run.sm2_key_id = sdf_keys[sign_uri].key_id();
    {
      v1::SignRequest request;
      request.mutable_key()->set_uri(sign_uri);
      request.set_message("demo");
      request.mutable_algorithm()->mutable_sm2();
      v1::SignResponse response;
      s = keys->Sign(Context().get(), request, &response);
      ASSERT_TRUE(s.ok()) << "sm2: " << s.error_message();
      EXPECT_TRUE(testing::VerifySignature(sdf_keys[sign_uri].public_key_der(),
                                           request, response.signature())
                      .ok())
          << "sm2";
    }

    // Every key signs, and the signature verifies with its public key.
    for (const auto& [label, key] : run.keys) {
      v1::SignRequest request;
      request.mutable_key()->set_uri(
          absl::StrCat("pkcs11:token=demo;object=", label, ";type=private"));
      request.set_message("demo");
      if (key.key_type() == v1::KEY_TYPE_RSA) {
        request.mutable_algorithm()->mutable_rsa_pkcs1()->set_hash(
            v1::HASH_ALGORITHM_SHA256);
      } else if (key.key_type() == v1::KEY_TYPE_EC) {
        request.mutable_algorithm()->mutable_ecdsa()->set_hash(
            v1::HASH_ALGORITHM_SHA256);
      } else {
        request.mutable_algorithm()->mutable_ed25519();
      }
      v1::SignResponse response;
      s = keys->Sign(Context().get(), request, &response);
      ASSERT_TRUE(s.ok()) << label << ": " << s.error_message();
      EXPECT_TRUE(testing::VerifySignature(key.public_key_der(), request,
                                           response.signature())
                      .ok())
          << label;
    }

    (*daemon)->Signal(SIGTERM);
    absl::StatusOr<int> code = (*daemon)->Wait(kExitTimeout);
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0) << (*daemon)->Stderr();
    EXPECT_EQ(Mode(socket), 0u) << "socket file left behind";
    run.stdout_text = (*daemon)->Stdout();
    run.stderr_text = (*daemon)->Stderr();
  }

  std::string base_;
  std::string dir_;
};

TEST_F(DemoTest, CreatesServesAndReuses) {
  Run first;
  StartCheckAndStop({}, dir_ + "/hsmd.sock", first);
  if (HasFailure()) return;
  EXPECT_THAT(first.stderr_text, HasSubstr("demo token created"));
  EXPECT_THAT(first.stderr_text, HasSubstr("demo key generated"));
  EXPECT_THAT(first.stderr_text, HasSubstr("hsmd ready"));
  EXPECT_THAT(first.stdout_text,
              HasSubstr("export HSMD_SOCKET=" + dir_ + "/hsmd.sock"));
  EXPECT_THAT(first.stdout_text, HasSubstr("pkcs11:token=demo;object=ec-p256"));
  EXPECT_EQ(Mode(dir_), 0700u);
  EXPECT_EQ(Mode(dir_ + "/user.pin"), 0600u);
  EXPECT_EQ(Mode(dir_ + "/hsmd.conf"), 0600u);
  EXPECT_NE(Mode(dir_ + "/softhsm2.conf"), 0u);
  EXPECT_NE(Mode(dir_ + "/tokens"), 0u);
  EXPECT_THAT(first.stderr_text, HasSubstr("demo SDF device created"));
  EXPECT_THAT(first.stdout_text,
              HasSubstr("sdf:device=soft0;index=1;usage=sign"));
  EXPECT_THAT(first.stdout_text, HasSubstr("-rawin -digest sm3"));
  EXPECT_EQ(Mode(dir_ + "/sdf"), 0700u);
  EXPECT_EQ(Mode(dir_ + "/sdf.password"), 0600u);

  Run second;
  StartCheckAndStop({}, dir_ + "/hsmd.sock", second);
  if (HasFailure()) return;
  EXPECT_THAT(second.stderr_text, Not(HasSubstr("demo token created")));
  EXPECT_THAT(second.stderr_text, Not(HasSubstr("demo key generated")));
  EXPECT_THAT(second.stderr_text, Not(HasSubstr("demo SDF device created")));
  EXPECT_EQ(second.sm2_key_id, first.sm2_key_id);
  for (const auto& [label, key] : first.keys) {
    EXPECT_EQ(second.keys[label].key_id(), key.key_id()) << label;
  }

  // --socket moves the socket and keeps the token.
  Run third;
  StartCheckAndStop({"--socket", base_ + "/alt.sock"}, base_ + "/alt.sock",
                    third);
  if (HasFailure()) return;
  EXPECT_EQ(third.keys["ec-p256"].key_id(), first.keys["ec-p256"].key_id());

  // Without --socket it is back on DIR/hsmd.sock.
  Run fourth;
  StartCheckAndStop({}, dir_ + "/hsmd.sock", fourth);
}

// Without libsoftsdf.so next to it (a copy of hsmd elsewhere), the demo
// serves the SoftHSM token alone and says why.
TEST_F(DemoTest, WithoutSoftSdfServesTheTokenAlone) {
  const std::string bin = base_ + "/bin";
  ASSERT_EQ(mkdir(bin.c_str(), 0700), 0);
  std::error_code ec;
  std::filesystem::copy_file(testing::RunfilePath("daemon/hsmd"),
                             bin + "/hsmd", ec);
  ASSERT_FALSE(ec) << ec.message();
  ASSERT_EQ(chmod((bin + "/hsmd").c_str(), 0700), 0);
  auto daemon = Subprocess::Start({bin + "/hsmd", "--demo", dir_});
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  const std::string socket = dir_ + "/hsmd.sock";
  absl::Status up = testing::WaitForSocket(**daemon, socket, kStartTimeout);
  ASSERT_TRUE(up.ok()) << up;
  auto admin = v1::AdminService::NewStub(grpc::CreateChannel(
      "unix:" + socket, grpc::InsecureChannelCredentials()));
  v1::GetStatusResponse status;
  grpc::Status s = admin->GetStatus(Context().get(), {}, &status);
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(status.backends_size(), 1);
  EXPECT_EQ(status.backends(0).kind(), "pkcs11");
  (*daemon)->Signal(SIGTERM);
  absl::StatusOr<int> code = (*daemon)->Wait(kExitTimeout);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_THAT((*daemon)->Stderr(),
              HasSubstr("libsoftsdf.so not found, serving the SoftHSM token "
                        "without the SDF device soft0"));
  EXPECT_THAT((*daemon)->Stdout(), Not(HasSubstr("soft0")));
  EXPECT_EQ(Mode(dir_ + "/sdf"), 0u);
}

TEST_F(DemoTest, SoftSdfLibraryFlagErrors) {
  std::string out, err;
  // A path that is not there: exit 5, naming it.
  absl::StatusOr<int> code = testing::RunToCompletion(
      {testing::RunfilePath("daemon/hsmd"), "--demo", dir_,
       "--softsdf-library", base_ + "/missing.so"},
      &out, &err);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 5);
  EXPECT_THAT(err, HasSubstr("--softsdf-library " + base_ + "/missing.so"));
  // Only with --demo: a usage error.
  code = testing::RunToCompletion(
      {testing::RunfilePath("daemon/hsmd"), "--config", base_ + "/x.conf",
       "--softsdf-library", "/x.so"},
      &out, &err);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 1);
  EXPECT_THAT(err, HasSubstr("--softsdf-library is only for --demo"));
}

}  // namespace
}  // namespace hsmd
