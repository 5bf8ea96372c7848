// Server reflection as grpcurl uses it (`grpcurl -plaintext -unix SOCK list`
// and `describe`), against hsmd's main program in a separate process (with
// fake backends): list the services, then resolve a method's descriptors.
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "daemon/testing/subprocess.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

using ::grpc::reflection::v1alpha::ServerReflection;
using ::grpc::reflection::v1alpha::ServerReflectionRequest;
using ::grpc::reflection::v1alpha::ServerReflectionResponse;
using ::testing::IsSupersetOf;

std::string FakeConfig(const std::string& socket) {
  return absl::StrCat("listen { socket_path: \"", socket,
                      "\" }\n"
                      "backends { name: \"fake\" pkcs11 {\n"
                      "  module_path: \"/nonexistent/module.so\"\n"
                      "  token_label: \"fake\"\n"
                      "  pin { file: \"/nonexistent/pin\" } } }\n");
}

class ReflectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hsmdXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    socket_ = dir_ + "/hsmd.sock";
    std::string conf = dir_ + "/hsmd.conf";
    std::ofstream(conf) << FakeConfig(socket_);
    auto process = testing::Subprocess::Start(
        {testing::RunfilePath("daemon/testing/fake_hsmd"), "--config", conf});
    ASSERT_TRUE(process.ok()) << process.status();
    process_ = *std::move(process);
    ASSERT_TRUE(
        testing::WaitForSocket(*process_, socket_, absl::Seconds(60)).ok());
    stub_ = ServerReflection::NewStub(grpc::CreateChannel(
        "unix:" + socket_, grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (process_ != nullptr) {
      process_->Signal(SIGTERM);
      absl::StatusOr<int> code = process_->Wait(absl::Seconds(30));
      EXPECT_TRUE(code.ok() && *code == 0) << code.status();
    }
    std::remove((dir_ + "/hsmd.conf").c_str());
    std::remove((socket_ + ".lock").c_str());
    rmdir(dir_.c_str());
  }

  // One request/response exchange on the bidirectional stream.
  ServerReflectionResponse Ask(const ServerReflectionRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    auto stream = stub_->ServerReflectionInfo(&context);
    EXPECT_TRUE(stream->Write(request));
    stream->WritesDone();
    ServerReflectionResponse response;
    EXPECT_TRUE(stream->Read(&response));
    ServerReflectionResponse extra;
    while (stream->Read(&extra)) {
    }
    grpc::Status s = stream->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response;
  }

  // The FileDescriptorProtos in a file_descriptor_response, by name.
  std::map<std::string, google::protobuf::FileDescriptorProto> Files(
      const ServerReflectionResponse& response) {
    std::map<std::string, google::protobuf::FileDescriptorProto> files;
    EXPECT_TRUE(response.has_file_descriptor_response())
        << response.DebugString();
    for (const std::string& bytes :
         response.file_descriptor_response().file_descriptor_proto()) {
      google::protobuf::FileDescriptorProto file;
      EXPECT_TRUE(file.ParseFromString(bytes));
      files[file.name()] = file;
    }
    return files;
  }

  std::string dir_;
  std::string socket_;
  std::unique_ptr<testing::Subprocess> process_;
  std::unique_ptr<ServerReflection::Stub> stub_;
};

TEST_F(ReflectionTest, ListsServices) {
  ServerReflectionRequest request;
  request.set_list_services("");
  ServerReflectionResponse response = Ask(request);
  ASSERT_TRUE(response.has_list_services_response()) << response.DebugString();
  std::set<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.insert(service.name());
  }
  EXPECT_THAT(names, IsSupersetOf({"hsmd.v1.KeyService", "hsmd.v1.AdminService",
                                   "grpc.health.v1.Health"}));
}

TEST_F(ReflectionTest, ResolvesAMethodAndItsTypes) {
  ServerReflectionRequest request;
  request.set_file_containing_symbol("hsmd.v1.KeyService.Sign");
  auto files = Files(Ask(request));
  ASSERT_EQ(files.count("hsmd/v1/hsmd.proto"), 1u);
  const google::protobuf::FileDescriptorProto& api =
      files["hsmd/v1/hsmd.proto"];
  EXPECT_EQ(api.package(), "hsmd.v1");
  bool found = false;
  for (const auto& service : api.service()) {
    if (service.name() != "KeyService") continue;
    for (const auto& method : service.method()) {
      if (method.name() == "Sign") {
        found = true;
        EXPECT_EQ(method.input_type(), ".hsmd.v1.SignRequest");
        EXPECT_EQ(method.output_type(), ".hsmd.v1.SignResponse");
      }
    }
  }
  EXPECT_TRUE(found);
  // grpcurl then fetches the imports it does not have yet.
  for (const std::string& dependency : api.dependency()) {
    if (files.count(dependency) > 0) continue;
    ServerReflectionRequest by_name;
    by_name.set_file_by_filename(dependency);
    EXPECT_EQ(Files(Ask(by_name)).count(dependency), 1u) << dependency;
  }

  // describe hsmd.v1.SignRequest
  ServerReflectionRequest message;
  message.set_file_containing_symbol("hsmd.v1.SignRequest");
  EXPECT_EQ(Files(Ask(message)).count("hsmd/v1/hsmd.proto"), 1u);

  ServerReflectionRequest unknown;
  unknown.set_file_containing_symbol("hsmd.v1.NoSuchThing");
  ServerReflectionResponse response = Ask(unknown);
  EXPECT_TRUE(response.has_error_response());
}

}  // namespace
}  // namespace hsmd
