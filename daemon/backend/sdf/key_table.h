// The keys an SDF backend serves: the configured key indexes, with what was
// read from the device (SM2 public keys), as hsmd.v1.Key messages; and the
// resolution of key references (sdf: URIs, key ids) against them.
#ifndef HSMD_DAEMON_BACKEND_SDF_KEY_TABLE_H_
#define HSMD_DAEMON_BACKEND_SDF_KEY_TABLE_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/backend/sdf/gmt0018.h"
#include "daemon/backend/sdf/uri.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::backend::sdf {

struct KeyEntry {
  uint32_t index = 0;
  KeyUsage usage = KeyUsage::kSign;
  std::string label;
  // As served by ListKeys / GetKey.
  v1::Key key;
  // SM2 keys: the public key as the device exported it (for Z).
  ECCrefPublicKey public_key{};
};

// Lowercase hex of the first 16 bytes of SHA-256 over `bytes` (the SPKI, or
// the canonical URI of a key without a public half), as Key.key_id.
std::string KeyIdOf(absl::string_view bytes);

// An SM2 key (sign or enc) from the device's exported public key. The SPKI
// is the named-curve SM2 form OpenSSL writes (id-ecPublicKey, curve
// 1.2.156.10197.1.301). INVALID_ARGUMENT if the device's value is not an SM2
// public key.
absl::StatusOr<KeyEntry> MakeSm2Entry(absl::string_view backend_name,
                                      absl::string_view device_name,
                                      uint32_t index, KeyUsage usage,
                                      absl::string_view label,
                                      const ECCrefPublicKey& public_key);
// An SM4 key (no public half: the key id hashes the canonical URI).
KeyEntry MakeSm4Entry(absl::string_view backend_name,
                      absl::string_view device_name, uint32_t index,
                      absl::string_view label);

class KeyTable {
 public:
  KeyTable() = default;
  KeyTable(std::string device_name, std::vector<KeyEntry> entries)
      : device_name_(std::move(device_name)), entries_(std::move(entries)) {}

  // Exactly one key for `ref`:
  //  - by key id: NOT_FOUND if no key has it, FAILED_PRECONDITION if several
  //    do (the same key material configured twice);
  //  - by URI: INVALID_ARGUMENT for a malformed sdf: URI, one without
  //    device=, or one naming no key (neither index= nor object=);
  //    NOT_FOUND for another device or when nothing matches;
  //    FAILED_PRECONDITION when several keys match (e.g. sign and enc at
  //    one index: add usage=).
  absl::StatusOr<const KeyEntry*> Resolve(const v1::KeyRef& ref) const;

  // The keys matching an sdf: URI filter (any subset of its attributes; ""
  // matches all) and, if not empty, a label. INVALID_ARGUMENT for a filter
  // that is not a well-formed sdf: URI.
  absl::StatusOr<std::vector<v1::Key>> List(absl::string_view uri_filter,
                                            absl::string_view label) const;

  const std::vector<KeyEntry>& entries() const { return entries_; }

 private:
  std::string device_name_;
  std::vector<KeyEntry> entries_;
};

// The reference as text for error details ("sdf:..." or "key_id:...").
std::string DescribeRef(const v1::KeyRef& ref);

}  // namespace hsmd::backend::sdf

#endif  // HSMD_DAEMON_BACKEND_SDF_KEY_TABLE_H_
