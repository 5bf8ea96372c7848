// Key selectors of policy rules (config `policy.rules[].keys`).
//
//   "*"                                   every key
//   "pkcs11:token=demo;object=web-*"      every attribute given must match
//   "sdf:device=card0;usage=sign"         SDF keys (国密), likewise
//   "web-*"                               any key labelled web-*
//
// URI patterns take the RFC 7512 path attributes `token` (the token label),
// `object` (the key's label), `id` (CKA_ID, percent-encoded bytes, exact)
// and `type=private`. In `token` and `object`, `*` matches any run of
// characters (a literal `*` is written %2A); a `?` would start the URI's
// query, so it is refused there. `sdf:` patterns take `device` (the
// backend's device_name; `*` wildcards), `object` (the label; `*`), `index`
// (decimal, exact) and `usage` (sign, enc or sm4) and match only SDF keys; a
// `pkcs11:` pattern matches only PKCS#11 keys. In the label shorthand, `*`
// matches any run and `?` one character. Patterns match the attributes of
// the key a request resolved to, never the text the client sent.
#ifndef HSMD_DAEMON_POLICY_KEY_PATTERN_H_
#define HSMD_DAEMON_POLICY_KEY_PATTERN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::policy {

// What a key pattern is matched against.
struct KeyAttributes {
  std::string backend;
  std::string token_label;
  // CKA_LABEL.
  std::string label;
  // CKA_ID (raw bytes). Unknown ids (a GenerateKey request that lets the
  // daemon choose one) are empty.
  std::string id;
  std::string key_id;
  // The key's canonical URI (Key.uri): "sdf:..." for SDF keys; empty when
  // not known (a key GenerateKey is about to create on a PKCS#11 token).
  std::string uri;
};

// A glob over bytes: `*` any run (also empty), `?` exactly one byte; other
// elements are literal.
class Glob {
 public:
  struct Element {
    enum Kind { kLiteral, kAnyOne, kAnyRun } kind;
    char c;
  };
  Glob() = default;
  explicit Glob(std::vector<Element> elements)
      : elements_(std::move(elements)) {}
  bool Matches(absl::string_view text) const;

 private:
  std::vector<Element> elements_;
};

class KeyPattern {
 public:
  // INVALID_ARGUMENT naming the problem (unknown attribute, bad escape,
  // query part, ...).
  static absl::StatusOr<KeyPattern> Parse(absl::string_view text);

  bool Matches(const KeyAttributes& key) const;
  const std::string& text() const { return text_; }

 private:
  KeyPattern() = default;

  enum class Scheme { kAny, kPkcs11, kSdf };
  static absl::Status ParseSdf(absl::string_view rest, KeyPattern& pattern);

  std::string text_;
  bool all_ = false;
  Scheme scheme_ = Scheme::kAny;
  // token= of pkcs11: patterns, device= of sdf: patterns (an SDF key's
  // token_label is its device name).
  std::optional<Glob> token_;
  // sdf: patterns.
  std::optional<uint32_t> index_;
  std::optional<std::string> usage_;
  std::optional<Glob> object_;
  std::optional<std::string> id_;
};

}  // namespace hsmd::policy

#endif  // HSMD_DAEMON_POLICY_KEY_PATTERN_H_
