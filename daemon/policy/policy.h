// Access control for hsmd requests, compiled from config `policy`
// (daemon/config/config.proto documents the rules and what each RPC needs).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Policy> policy, Policy::New(config));
//   if (!policy->Allows(peer, Op::kSign, &key)) -> PERMISSION_DENIED
//
// Without a `policy` section in the config, everything is allowed (the
// socket's permissions are the only gate). With one, everything not granted
// is denied, including callers whose identity is unknown.
#ifndef HSMD_DAEMON_POLICY_POLICY_H_
#define HSMD_DAEMON_POLICY_POLICY_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/config/config.pb.h"
#include "daemon/peer_credentials.h"
#include "daemon/policy/key_pattern.h"

namespace hsmd::policy {

enum class Op {
  kSign,
  kDecrypt,
  kEncrypt,
  kRandom,
  kList,
  kStatus,
  kAdmin,
  kDerive,
};

// "sign", "decrypt", "encrypt", "random", "list", "status", "admin",
// "derive".
absl::string_view OpName(Op op);

// Receives (field path relative to `policy`, e.g. "rules[0].users[1]",
// message) for each problem found.
using ErrorSink =
    std::function<void(const std::string& field, const std::string& message)>;

// Checks a policy section and resolves its user and group names. Reports
// every problem to `errors`.
void ValidatePolicy(const config::Policy& policy, const ErrorSink& errors);

class Policy {
 public:
  // A policy for `config` (allow-all when it has no policy section).
  // INVALID_ARGUMENT listing the problems ValidatePolicy would report.
  static absl::StatusOr<std::unique_ptr<Policy>> New(
      const config::Config& config);
  // Everything allowed (tests, and configs without a policy).
  static std::unique_ptr<Policy> AllowAll();

  // False for allow-all.
  bool enforced() const { return enforced_; }

  // Whether `peer` (null = unidentified) may do `op` on `key`. For kRandom
  // and kStatus `key` is ignored (may be null); for the others a null `key`
  // is never allowed. kList is granted by LIST or any other key operation;
  // kStatus by STATUS or ADMIN. `rule` (optional) receives the name of the
  // granting rule (empty when it has none or the policy is not enforced).
  bool Allows(const PeerIdentity* peer, Op op, const KeyAttributes* key,
              std::string* rule = nullptr) const;

  // Whether some rule matching `peer` grants `op` on some key: the check
  // made before a key is looked up, so callers without any grant learn
  // nothing about which keys exist.
  bool AllowsSomeKey(const PeerIdentity* peer, Op op) const;

 private:
  struct Rule {
    std::string name;
    bool any_user = false;
    absl::flat_hash_set<uid_t> uids;
    absl::flat_hash_set<gid_t> gids;
    std::vector<KeyPattern> keys;
    // Bit (1 << Op) per granted operation.
    unsigned ops = 0;

    bool MatchesPeer(const PeerIdentity& peer) const;
    bool Grants(Op op) const;
    bool CoversKey(const KeyAttributes& key) const;
  };

  Policy() = default;

  bool enforced_ = false;
  std::vector<Rule> rules_;
};

// A user name or a numeric uid -> uid; a group name or a numeric gid -> gid
// (the policy's `users` / `groups`, the socket's group). NOT_FOUND naming an
// unknown name, INTERNAL if the lookup itself fails.
absl::StatusOr<uid_t> ResolveUser(absl::string_view user);
absl::StatusOr<gid_t> ResolveGroup(absl::string_view group);

}  // namespace hsmd::policy

#endif  // HSMD_DAEMON_POLICY_POLICY_H_
