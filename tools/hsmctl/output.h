// Rendering of hsmd responses: human-readable text (tables and field lists)
// and, for --json, the protobuf messages in canonical proto3 JSON.
#ifndef HSMD_TOOLS_HSMCTL_OUTPUT_H_
#define HSMD_TOOLS_HSMCTL_OUTPUT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "hsmd/v1/hsmd.pb.h"

namespace hsmd::hsmctl {

// Canonical proto3 JSON (lowerCamelCase names, bytes as base64, enums by
// name), indented, every field printed even when zero so scripts see a
// stable shape; ends with a newline.
absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message);

// Left-aligned columns separated by two spaces; the header row first.
std::string FormatTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);

// `list`: label, type, operations, key id, URI.
std::string FormatKeyTable(const v1::ListKeysResponse& response);

// `show` / `genkey`: every field, the public key as PEM and the certificate
// (if any) summarised and as PEM.
absl::StatusOr<std::string> FormatKeyDetails(const v1::Key& key);

// `status`.
std::string FormatStatus(const v1::GetStatusResponse& status);

// `stats`: one row per operation and key.
std::string FormatStats(const v1::GetStatsResponse& stats);

// Estimated `quantile` (0..1) of a latency histogram in microseconds, by
// linear interpolation inside the bucket holding that rank (the unbounded
// last bucket ends at max_us). 0 when the histogram is empty.
double EstimateQuantileUs(const v1::LatencyHistogram& histogram,
                          double quantile);

// "850us", "1.25ms", "2.50s".
std::string FormatMicros(double micros);

// "3d 4h 5m 6s" (leading zero units omitted).
std::string FormatUptime(uint64_t seconds);

// Lowercase hex, "-" when empty.
std::string HexOrDash(const std::string& bytes);

}  // namespace hsmd::hsmctl

#endif  // HSMD_TOOLS_HSMCTL_OUTPUT_H_
