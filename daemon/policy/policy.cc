#include "daemon/policy/policy.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hsmd::policy {
namespace {

constexpr unsigned Bit(Op op) { return 1u << static_cast<unsigned>(op); }

absl::StatusOr<Op> FromConfig(config::Rule::Operation op) {
  switch (op) {
    case config::Rule::SIGN:
      return Op::kSign;
    case config::Rule::DECRYPT:
      return Op::kDecrypt;
    case config::Rule::ENCRYPT:
      return Op::kEncrypt;
    case config::Rule::DERIVE:
      return Op::kDerive;
    case config::Rule::RANDOM:
      return Op::kRandom;
    case config::Rule::LIST:
      return Op::kList;
    case config::Rule::STATUS:
      return Op::kStatus;
    case config::Rule::ADMIN:
      return Op::kAdmin;
    case config::Rule::OPERATION_UNSPECIFIED:
      break;
  }
  return absl::InvalidArgumentError(
      "OPERATION_UNSPECIFIED is not an operation (use SIGN, DECRYPT, "
      "ENCRYPT, DERIVE, RANDOM, LIST, STATUS or ADMIN)");
}

bool IsValidRuleName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

}  // namespace

absl::string_view OpName(Op op) {
  switch (op) {
    case Op::kSign:
      return "sign";
    case Op::kDecrypt:
      return "decrypt";
    case Op::kEncrypt:
      return "encrypt";
    case Op::kRandom:
      return "random";
    case Op::kList:
      return "list";
    case Op::kStatus:
      return "status";
    case Op::kAdmin:
      return "admin";
    case Op::kDerive:
      return "derive";
  }
  return "unknown";
}

bool Policy::Rule::MatchesPeer(const PeerIdentity& peer) const {
  if (any_user || uids.contains(peer.uid) || gids.contains(peer.gid)) {
    return true;
  }
  for (gid_t g : peer.groups) {
    if (gids.contains(g)) return true;
  }
  return false;
}

bool Policy::Rule::Grants(Op op) const {
  switch (op) {
    case Op::kList:
      return (ops & (Bit(Op::kList) | Bit(Op::kSign) | Bit(Op::kDecrypt) |
                     Bit(Op::kEncrypt) | Bit(Op::kDerive) | Bit(Op::kAdmin))) !=
             0;
    case Op::kStatus:
      return (ops & (Bit(Op::kStatus) | Bit(Op::kAdmin))) != 0;
    default:
      return (ops & Bit(op)) != 0;
  }
}

bool Policy::Rule::CoversKey(const KeyAttributes& key) const {
  for (const KeyPattern& pattern : keys) {
    if (pattern.Matches(key)) return true;
  }
  return false;
}

void ValidatePolicy(const config::Policy& policy, const ErrorSink& errors) {
  for (int i = 0; i < policy.rules_size(); ++i) {
    const config::Rule& rule = policy.rules(i);
    const std::string field = absl::StrCat("rules[", i, "]");
    if (rule.has_name() && !IsValidRuleName(rule.name())) {
      errors(field + ".name",
             absl::StrCat("\"", rule.name(),
                          "\" must be 1..64 characters from [A-Za-z0-9_.-]"));
    }
    if (rule.users_size() == 0 && rule.groups_size() == 0) {
      errors(field,
             "names no caller: add users or groups (users: \"*\" for every "
             "user that can reach the socket)");
    }
    for (int j = 0; j < rule.users_size(); ++j) {
      if (rule.users(j) == "*") continue;
      const std::string f = absl::StrCat(field, ".users[", j, "]");
      if (rule.users(j).empty()) {
        errors(f, "must not be empty");
        continue;
      }
      absl::StatusOr<uid_t> uid = ResolveUser(rule.users(j));
      if (!uid.ok()) errors(f, std::string(uid.status().message()));
    }
    for (int j = 0; j < rule.groups_size(); ++j) {
      const std::string f = absl::StrCat(field, ".groups[", j, "]");
      if (rule.groups(j).empty() || rule.groups(j) == "*") {
        errors(f, absl::StrCat("\"", rule.groups(j),
                               "\" is not a group (for everyone use users: "
                               "\"*\")"));
        continue;
      }
      absl::StatusOr<gid_t> gid = ResolveGroup(rule.groups(j));
      if (!gid.ok()) errors(f, std::string(gid.status().message()));
    }
    if (rule.operations_size() == 0) {
      errors(field + ".operations",
             "grants nothing: list operations (SIGN, DECRYPT, ENCRYPT, DERIVE, "
             "RANDOM, LIST, STATUS, ADMIN)");
    }
    bool needs_keys = false;
    for (int j = 0; j < rule.operations_size(); ++j) {
      absl::StatusOr<Op> op = FromConfig(rule.operations(j));
      if (!op.ok()) {
        errors(absl::StrCat(field, ".operations[", j, "]"),
               std::string(op.status().message()));
        continue;
      }
      if (*op != Op::kRandom && *op != Op::kStatus) needs_keys = true;
    }
    if (needs_keys && rule.keys_size() == 0) {
      errors(field + ".keys",
             "is required for SIGN, DECRYPT, ENCRYPT, DERIVE, LIST and ADMIN "
             "(\"*\" for every key)");
    }
    for (int j = 0; j < rule.keys_size(); ++j) {
      absl::StatusOr<KeyPattern> pattern = KeyPattern::Parse(rule.keys(j));
      if (!pattern.ok()) {
        errors(absl::StrCat(field, ".keys[", j, "]"),
               std::string(pattern.status().message()));
      }
    }
  }
}

std::unique_ptr<Policy> Policy::AllowAll() {
  return std::unique_ptr<Policy>(new Policy);
}

absl::StatusOr<std::unique_ptr<Policy>> Policy::New(
    const config::Config& config) {
  std::unique_ptr<Policy> policy(new Policy);
  if (!config.has_policy()) return policy;
  std::vector<std::string> problems;
  ValidatePolicy(config.policy(), [&](const std::string& field,
                                      const std::string& message) {
    problems.push_back(absl::StrCat("policy.", field, ": ", message));
  });
  if (!problems.empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(problems, "\n"));
  }
  policy->enforced_ = true;
  for (const config::Rule& r : config.policy().rules()) {
    Rule rule;
    rule.name = r.name();
    for (const std::string& user : r.users()) {
      if (user == "*") {
        rule.any_user = true;
      } else {
        rule.uids.insert(*ResolveUser(user));
      }
    }
    for (const std::string& group : r.groups()) {
      rule.gids.insert(*ResolveGroup(group));
    }
    for (const std::string& key : r.keys()) {
      rule.keys.push_back(*KeyPattern::Parse(key));
    }
    for (int op : r.operations()) {
      rule.ops |= Bit(*FromConfig(static_cast<config::Rule::Operation>(op)));
    }
    policy->rules_.push_back(std::move(rule));
  }
  return policy;
}

bool Policy::Allows(const PeerIdentity* peer, Op op, const KeyAttributes* key,
                    std::string* rule_name) const {
  if (rule_name != nullptr) rule_name->clear();
  if (!enforced_) return true;
  if (peer == nullptr) return false;
  const bool keyless = op == Op::kRandom || op == Op::kStatus;
  if (!keyless && key == nullptr) return false;
  for (const Rule& rule : rules_) {
    if (!rule.Grants(op) || !rule.MatchesPeer(*peer)) continue;
    if (!keyless && !rule.CoversKey(*key)) continue;
    if (rule_name != nullptr) *rule_name = rule.name;
    return true;
  }
  return false;
}

bool Policy::AllowsSomeKey(const PeerIdentity* peer, Op op) const {
  if (!enforced_) return true;
  if (peer == nullptr) return false;
  for (const Rule& rule : rules_) {
    if (rule.Grants(op) && rule.MatchesPeer(*peer)) return true;
  }
  return false;
}

absl::StatusOr<uid_t> ResolveUser(absl::string_view user) {
  uint32_t uid = 0;
  if (absl::SimpleAtoi(user, &uid)) return static_cast<uid_t>(uid);
  std::string name(user);
  std::vector<char> buf(16384);
  struct passwd pw;
  struct passwd* result = nullptr;
  int rc = getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &result);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("looking up user \"", name, "\": ", std::strerror(rc)));
  }
  if (result == nullptr) {
    return absl::NotFoundError(absl::StrCat("no user named \"", name, "\""));
  }
  return result->pw_uid;
}

absl::StatusOr<gid_t> ResolveGroup(absl::string_view group) {
  uint32_t gid = 0;
  if (absl::SimpleAtoi(group, &gid)) return static_cast<gid_t>(gid);
  std::string name(group);
  std::vector<char> buf(16384);
  struct group gr;
  struct group* result = nullptr;
  int rc = getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &result);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("looking up group \"", name, "\": ", std::strerror(rc)));
  }
  if (result == nullptr) {
    return absl::NotFoundError(absl::StrCat("no group named \"", name, "\""));
  }
  return result->gr_gid;
}

}  // namespace hsmd::policy
