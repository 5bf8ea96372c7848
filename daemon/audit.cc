#include "daemon/audit.h"

#include <sys/uio.h>
#include <systemd/sd-journal.h>

#include <cctype>
#include <cstdlib>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "daemon/logging.h"
#include "daemon/service/status_mapping.h"

namespace hsmd {
namespace {

bool EnvSet(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0';
}

// (name, value, is_number) in one order for both outputs. Values reference
// the record (numbers and the group list are formatted into `storage`), so
// a record costs no string copies on its way to stderr.
struct Item {
  const char* name;
  absl::string_view value;
  bool number;
};

struct Items {
  std::vector<Item> list;
  // Formatted numbers and the group list (a deque: adding to it never moves
  // the strings the views point into).
  std::deque<std::string> storage;
};

Items ItemsOf(const AuditRecord& r) {
  Items items;
  items.list.reserve(24);
  auto text = [&items](const char* name, absl::string_view value) {
    if (!value.empty()) items.list.push_back({name, value, false});
  };
  auto number = [&items](const char* name, int64_t value) {
    items.storage.push_back(std::to_string(value));
    items.list.push_back({name, items.storage.back(), true});
  };
  text("method", r.method);
  text("operation", r.operation);
  text("decision", r.denied ? "deny" : "allow");
  text("rule", r.rule);
  text("result", service::GrpcCodeName(r.code));
  text("backend_code", r.backend_code);
  text("error", r.error);
  if (r.peer != nullptr) {
    number("peer_uid", r.peer->uid);
    number("peer_gid", r.peer->gid);
    items.storage.push_back(r.peer->GroupList());
    text("peer_groups", items.storage.back());
    number("peer_pid", r.peer->pid);
    text("peer_exe", r.peer->exe);
    text("peer_comm", r.peer->comm);
    number("connection", static_cast<int64_t>(r.peer->connection_id));
  } else {
    text("peer", "unidentified");
  }
  text("key", r.key_ref);
  text("key_uri", r.key_uri);
  text("key_id", r.key_id);
  text("backend", r.backend);
  text("mechanism", r.mechanism);
  number("latency_us", absl::ToInt64Microseconds(r.latency));
  return items;
}

std::string Summary(const AuditRecord& r) {
  std::string who = r.peer == nullptr ? std::string("unidentified peer")
                                      : absl::StrCat("uid ", r.peer->uid,
                                                     " pid ", r.peer->pid);
  std::string out = absl::StrCat(
      "audit: ", who, " ", r.method, r.key_ref.empty() ? "" : " ", r.key_ref,
      " ", r.denied ? "DENIED" : service::GrpcCodeName(r.code));
  return out;
}

std::string Upper(const char* name) {
  std::string out = absl::StrCat("HSMD_", name);
  for (char& c : out) c = static_cast<char>(std::toupper(c));
  return out;
}

}  // namespace

AuditLog::Output AuditLog::OutputFor(const config::Config& config) {
  switch (config.audit().output()) {
    case config::Audit::OFF:
      return Output::kOff;
    case config::Audit::STDERR:
      return Output::kStderr;
    case config::Audit::JOURNAL:
      return Output::kJournal;
    case config::Audit::AUTO:
      break;
  }
  return EnvSet("JOURNAL_STREAM") || EnvSet("INVOCATION_ID") ? Output::kJournal
                                                             : Output::kStderr;
}

std::vector<std::string> AuditLog::JournalFields(const AuditRecord& record) {
  std::vector<std::string> fields;
  fields.push_back(absl::StrCat("MESSAGE=", Summary(record)));
  fields.push_back(absl::StrCat("PRIORITY=", record.denied ? 4 : 6));
  fields.push_back(absl::StrCat("MESSAGE_ID=", kAuditMessageId));
  fields.push_back("SYSLOG_IDENTIFIER=hsmd");
  fields.push_back("HSMD_AUDIT=1");
  for (const Item& item : ItemsOf(record).list) {
    fields.push_back(absl::StrCat(Upper(item.name), "=", item.value));
  }
  return fields;
}

void AuditLog::Record(const AuditRecord& record) const {
  switch (output_) {
    case Output::kOff:
      return;
    case Output::kJournal: {
      std::vector<std::string> fields = JournalFields(record);
      std::vector<iovec> iov(fields.size());
      for (size_t i = 0; i < fields.size(); ++i) {
        iov[i].iov_base = fields[i].data();
        iov[i].iov_len = fields[i].size();
      }
      int rc = sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
      if (rc >= 0) return;
      // The journal is gone (not running, socket unreachable): keep the
      // record on stderr rather than lose it.
      break;
    }
    case Output::kStderr:
      break;
  }
  const Items items = ItemsOf(record);
  std::vector<log::Field> fields;
  fields.reserve(items.list.size());
  for (const Item& item : items.list) {
    if (item.number) {
      fields.push_back(log::Field::Number(item.name, item.value));
    } else {
      fields.emplace_back(item.name, item.value);
    }
  }
  log::WriteRecord(log::Format::kJson,
                   record.denied ? log::Level::kWarning : log::Level::kInfo,
                   "audit", fields);
}

}  // namespace hsmd
