// hsmd's audit trail: one structured record per request on the hsmd API
// (every key operation, every denial, and the admin/diagnostic calls), so
// the records and GetStats count the same things.
//
// Outputs:
//  - the systemd journal (sd_journal_sendv), with MESSAGE_ID=kAuditMessageId
//    and the fields HSMD_AUDIT=1, HSMD_METHOD, HSMD_OPERATION,
//    HSMD_DECISION (allow|deny), HSMD_RULE, HSMD_RESULT (gRPC code name),
//    HSMD_BACKEND_CODE, HSMD_ERROR, HSMD_PEER_UID, HSMD_PEER_GID,
//    HSMD_PEER_GROUPS, HSMD_PEER_PID, HSMD_PEER_EXE, HSMD_PEER_COMM,
//    HSMD_CONNECTION, HSMD_KEY (as the request named it), HSMD_KEY_URI,
//    HSMD_KEY_ID, HSMD_BACKEND, HSMD_MECHANISM, HSMD_LATENCY_US;
//    query with `journalctl HSMD_AUDIT=1` or `-o json`;
//  - stderr, one JSON object per line with "msg":"audit" and the same
//    fields in lower case without the HSMD_ prefix ("peer_uid", "result",
//    ...), whatever logging.format says.
// Denials are written at warning level (journal PRIORITY=4), the rest at
// info (PRIORITY=6).
#ifndef HSMD_DAEMON_AUDIT_H_
#define HSMD_DAEMON_AUDIT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "daemon/config/config.pb.h"
#include "daemon/peer_credentials.h"

namespace hsmd {

// The journal MESSAGE_ID of audit records (journalctl MESSAGE_ID=...).
inline constexpr char kAuditMessageId[] = "5f1c8e0a2b7d4c3e9a6f0b1d2c3e4f50";

// The record's time is when it is written (journal: the entry's own
// timestamp; stderr: "ts"), right after the request completed.
// Views into what the request scope holds: a record lives only for the
// AuditLog::Record call it is made for.
struct AuditRecord {
  // Null when the caller could not be identified.
  std::shared_ptr<const PeerIdentity> peer;
  // RPC name ("Sign") and the policy operation it needed ("sign").
  absl::string_view method;
  absl::string_view operation;
  // "allow" or "deny" (a denial by the policy).
  bool denied = false;
  // The policy rule that allowed the request (may be empty).
  absl::string_view rule;
  // The key as the request named it, and what it resolved to.
  absl::string_view key_ref;
  absl::string_view key_uri;
  absl::string_view key_id;
  absl::string_view backend;
  // "ecdsa-sha256", "rsa-pss-sha256-mgf1-sha256-salt32", ...
  absl::string_view mechanism;
  absl::StatusCode code = absl::StatusCode::kOk;
  // "CKR_DEVICE_ERROR 0x30" when the backend reported one.
  absl::string_view backend_code;
  absl::string_view error;
  absl::Duration latency;
};

class AuditLog {
 public:
  enum class Output { kOff, kStderr, kJournal };

  // config.audit.output, with AUTO resolved from the environment
  // ($JOURNAL_STREAM or $INVOCATION_ID set: journal).
  static Output OutputFor(const config::Config& config);

  explicit AuditLog(Output output) : output_(output) {}

  Output output() const { return output_; }
  // Thread-safe.
  void Record(const AuditRecord& record) const;

  // The journal fields ("HSMD_METHOD=Sign", ...) of `record`, MESSAGE and
  // PRIORITY included; exposed for tests.
  static std::vector<std::string> JournalFields(const AuditRecord& record);

 private:
  const Output output_;
};

}  // namespace hsmd

#endif  // HSMD_DAEMON_AUDIT_H_
