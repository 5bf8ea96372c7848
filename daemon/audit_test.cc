#include "daemon/audit.h"

#include <stdlib.h>

#include <string>
#include <vector>

#include "daemon/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

AuditRecord Record(bool denied) {
  auto peer = std::make_shared<PeerIdentity>();
  peer->connection_id = 7;
  peer->uid = 1000;
  peer->gid = 1001;
  peer->groups = {27, 44};
  peer->pid = 4242;
  peer->exe = "/usr/bin/openssl";
  peer->comm = "openssl";
  AuditRecord r;
  r.peer = peer;
  r.method = "Sign";
  r.operation = "sign";
  r.denied = denied;
  r.rule = denied ? "" : "web";
  r.key_ref = "pkcs11:object=ec-p256";
  r.key_uri = "pkcs11:token=demo;object=ec-p256;id=%01;type=private";
  r.key_id = "00112233445566778899aabbccddeeff";
  r.backend = "hsm";
  r.mechanism = "ecdsa-sha-256";
  r.code = denied ? absl::StatusCode::kPermissionDenied : absl::StatusCode::kOk;
  if (denied) r.error = "permission denied: uid 1000 may not sign with ...";
  r.latency = absl::Microseconds(250);
  return r;
}

TEST(AuditTest, JournalFields) {
  std::vector<std::string> fields = AuditLog::JournalFields(Record(false));
  EXPECT_THAT(fields, Contains("PRIORITY=6"));
  EXPECT_THAT(fields, Contains(std::string("MESSAGE_ID=") + kAuditMessageId));
  EXPECT_THAT(fields, Contains("SYSLOG_IDENTIFIER=hsmd"));
  EXPECT_THAT(fields, Contains("HSMD_AUDIT=1"));
  EXPECT_THAT(fields, Contains("HSMD_METHOD=Sign"));
  EXPECT_THAT(fields, Contains("HSMD_OPERATION=sign"));
  EXPECT_THAT(fields, Contains("HSMD_DECISION=allow"));
  EXPECT_THAT(fields, Contains("HSMD_RULE=web"));
  EXPECT_THAT(fields, Contains("HSMD_RESULT=OK"));
  EXPECT_THAT(fields, Contains("HSMD_PEER_UID=1000"));
  EXPECT_THAT(fields, Contains("HSMD_PEER_GID=1001"));
  EXPECT_THAT(fields, Contains("HSMD_PEER_GROUPS=27,44"));
  EXPECT_THAT(fields, Contains("HSMD_PEER_PID=4242"));
  EXPECT_THAT(fields, Contains("HSMD_PEER_EXE=/usr/bin/openssl"));
  EXPECT_THAT(fields, Contains("HSMD_CONNECTION=7"));
  EXPECT_THAT(fields, Contains("HSMD_KEY=pkcs11:object=ec-p256"));
  EXPECT_THAT(fields, Contains("HSMD_KEY_ID=00112233445566778899aabbccddeeff"));
  EXPECT_THAT(fields, Contains("HSMD_BACKEND=hsm"));
  EXPECT_THAT(fields, Contains("HSMD_MECHANISM=ecdsa-sha-256"));
  EXPECT_THAT(fields, Contains("HSMD_LATENCY_US=250"));
  EXPECT_THAT(fields, Contains(HasSubstr("MESSAGE=audit: uid 1000 pid 4242 "
                                         "Sign pkcs11:object=ec-p256 OK")));
  // No empty fields (a successful request has no error).
  EXPECT_THAT(fields, Not(Contains(HasSubstr("HSMD_ERROR="))));

  fields = AuditLog::JournalFields(Record(true));
  EXPECT_THAT(fields, Contains("PRIORITY=4"));
  EXPECT_THAT(fields, Contains("HSMD_DECISION=deny"));
  EXPECT_THAT(fields, Contains("HSMD_RESULT=PERMISSION_DENIED"));
  EXPECT_THAT(fields, Contains(HasSubstr("HSMD_ERROR=permission denied")));
  EXPECT_THAT(fields, Contains(HasSubstr("DENIED")));
}

TEST(AuditTest, StderrRecordsAreJsonAndNeverFiltered) {
  std::vector<std::string> lines;
  log::SetSinkForTesting(
      [&](absl::string_view line) { lines.emplace_back(line); });
  // Logging set to errors only, as text: audit records still come, as JSON.
  log::Configure(log::Level::kError, log::Format::kText);
  AuditLog audit(AuditLog::Output::kStderr);
  audit.Record(Record(false));
  audit.Record(Record(true));
  AuditRecord unidentified = Record(false);
  unidentified.peer = nullptr;
  audit.Record(unidentified);
  AuditLog(AuditLog::Output::kOff).Record(Record(false));
  log::SetSinkForTesting(nullptr);
  log::Configure(log::Level::kInfo, log::Format::kText);

  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(
      lines[0],
      AllOf(HasSubstr("{\"ts\":"), HasSubstr("\"level\":\"info\""),
            HasSubstr("\"msg\":\"audit\""), HasSubstr("\"method\":\"Sign\""),
            HasSubstr("\"decision\":\"allow\""), HasSubstr("\"result\":\"OK\""),
            HasSubstr("\"peer_uid\":1000,"), HasSubstr("\"peer_pid\":4242,"),
            HasSubstr("\"peer_exe\":\"/usr/bin/openssl\""),
            HasSubstr("\"connection\":7,"), HasSubstr("\"latency_us\":250}")));
  EXPECT_THAT(lines[1], AllOf(HasSubstr("\"level\":\"warning\""),
                              HasSubstr("\"decision\":\"deny\""),
                              HasSubstr("\"result\":\"PERMISSION_DENIED\"")));
  EXPECT_THAT(lines[2], HasSubstr("\"peer\":\"unidentified\""));
}

TEST(AuditTest, OutputFollowsConfigAndEnvironment) {
  config::Config config;
  unsetenv("JOURNAL_STREAM");
  unsetenv("INVOCATION_ID");
  EXPECT_EQ(AuditLog::OutputFor(config), AuditLog::Output::kStderr);
  setenv("INVOCATION_ID", "0123456789abcdef0123456789abcdef", 1);
  EXPECT_EQ(AuditLog::OutputFor(config), AuditLog::Output::kJournal);
  unsetenv("INVOCATION_ID");
  setenv("JOURNAL_STREAM", "8:12345", 1);
  EXPECT_EQ(AuditLog::OutputFor(config), AuditLog::Output::kJournal);
  config.mutable_audit()->set_output(config::Audit::STDERR);
  EXPECT_EQ(AuditLog::OutputFor(config), AuditLog::Output::kStderr);
  config.mutable_audit()->set_output(config::Audit::OFF);
  EXPECT_EQ(AuditLog::OutputFor(config), AuditLog::Output::kOff);
  unsetenv("JOURNAL_STREAM");
  config.mutable_audit()->set_output(config::Audit::JOURNAL);
  EXPECT_EQ(AuditLog::OutputFor(config), AuditLog::Output::kJournal);
}

}  // namespace
}  // namespace hsmd
