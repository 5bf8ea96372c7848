// `sdf:` key URIs, hsmd's way of naming keys held in an SDF (GM/T 0018)
// device:
//
//   sdf:device=card0;index=1;usage=sign
//
// Attributes (path only, separated by ';', each at most once; values are
// percent-decoded as in RFC 7512; names are lowercase):
//   device  the device name from hsmd's configuration (not the vendor's)
//   index   the key index on the device, decimal
//   usage   sign (the SM2 signing key pair at the index), enc (the SM2
//           encryption key pair) or sm4 (the SM4 key)
//   object  the label given to the key in hsmd's configuration
// The scheme is case-insensitive; query ("?...") and fragment ("#...") parts
// are rejected, as are unknown attributes: a misspelt attribute must not
// silently widen a match.
#ifndef HSMD_DAEMON_BACKEND_SDF_URI_H_
#define HSMD_DAEMON_BACKEND_SDF_URI_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace hsmd::backend::sdf {

enum class KeyUsage { kSign, kEnc, kSm4 };

// "sign", "enc", "sm4".
absl::string_view UsageName(KeyUsage usage);
// INVALID_ARGUMENT for anything but sign, enc and sm4.
absl::StatusOr<KeyUsage> ParseUsage(absl::string_view name);

struct SdfUri {
  std::optional<std::string> device;
  std::optional<uint32_t> index;
  std::optional<KeyUsage> usage;
  std::optional<std::string> object;

  // Parses any sdf: URI; every attribute is optional here (a filter may
  // name none). INVALID_ARGUMENT naming the offending part otherwise.
  static absl::StatusOr<SdfUri> Parse(absl::string_view uri);

  // True if every attribute present equals the key's.
  bool Matches(absl::string_view device_name, uint32_t key_index,
               KeyUsage key_usage, absl::string_view label) const;
};

// True if `uri` starts with "sdf:" (any case).
bool IsSdfUri(absl::string_view uri);

// The canonical URI of a key: sdf:device=D;index=N;usage=U, with D
// percent-encoded (all but RFC 3986 unreserved characters).
std::string CanonicalUri(absl::string_view device, uint32_t index,
                         KeyUsage usage);

// Percent-encodes all but RFC 3986 unreserved characters.
std::string PercentEncode(absl::string_view value);

}  // namespace hsmd::backend::sdf

#endif  // HSMD_DAEMON_BACKEND_SDF_URI_H_
