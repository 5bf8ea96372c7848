#include "tools/hsmctl/output.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "google/protobuf/util/json_util.h"
#include "tools/hsmctl/algorithms.h"
#include "tools/hsmctl/local_crypto.h"

namespace hsmd::hsmctl {
namespace {

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string StateName(v1::BackendState state) {
  switch (state) {
    case v1::BACKEND_STATE_STARTING:
      return "STARTING";
    case v1::BACKEND_STATE_READY:
      return "READY";
    case v1::BACKEND_STATE_DEGRADED:
      return "DEGRADED";
    case v1::BACKEND_STATE_REINITIALIZING:
      return "REINITIALIZING";
    case v1::BACKEND_STATE_FAILED:
      return "FAILED";
    default:
      return "UNKNOWN";
  }
}

std::string FormatTimestamp(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                          absl::FromUnixSeconds(ts.seconds()),
                          absl::UTCTimeZone());
}

// "Name:" padded so values line up.
void AppendField(std::string& out, absl::string_view name,
                 absl::string_view value) {
  absl::StrAppendFormat(&out, "%-13s %s\n", absl::StrCat(name, ":"), value);
}

}  // namespace

absl::StatusOr<std::string> ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  std::string json;
  auto status =
      google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat(
        "cannot render ", message.GetTypeName(), " as JSON: ",
        std::string(status.message().data(), status.message().size())));
  }
  if (json.empty() || json.back() != '\n') json.push_back('\n');
  return json;
}

std::string FormatTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(headers.size(), 0);
  auto measure = [&widths](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  };
  measure(headers);
  for (const auto& row : rows) measure(row);
  std::string out;
  auto append = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      if (i + 1 == row.size()) {
        absl::StrAppend(&line, row[i]);
      } else {
        absl::StrAppendFormat(&line, "%-*s  ", static_cast<int>(widths[i]),
                              row[i]);
      }
    }
    // Empty trailing cells would leave trailing blanks.
    line.erase(line.find_last_not_of(' ') + 1);
    absl::StrAppend(&out, line, "\n");
  };
  append(headers);
  for (const auto& row : rows) append(row);
  return out;
}

std::string FormatKeyTable(const v1::ListKeysResponse& response) {
  if (response.keys_size() == 0) return "No keys.\n";
  std::vector<std::vector<std::string>> rows;
  for (const v1::Key& key : response.keys()) {
    rows.push_back({OrDash(key.label()), DescribeKeyType(key),
                    DescribeOperations(key), key.key_id(), key.uri()});
  }
  return FormatTable({"LABEL", "TYPE", "OPS", "KEY ID", "URI"}, rows);
}

absl::StatusOr<std::string> FormatKeyDetails(const v1::Key& key) {
  std::string out;
  AppendField(out, "Label", OrDash(key.label()));
  AppendField(out, "Key id", key.key_id());
  AppendField(out, "Type", DescribeKeyType(key));
  AppendField(out, "Size", absl::StrCat(key.size_bits(), " bits"));
  if (key.key_type() == v1::KEY_TYPE_SM2) {
    // The device keeps separate signing and encryption key pairs per index.
    AppendField(out, "Curve", CurveName(key.curve()));
  }
  AppendField(out, "Operations", DescribeOperations(key));
  AppendField(out, "CKA_ID", HexOrDash(key.id()));
  AppendField(out, "Token", OrDash(key.token_label()));
  AppendField(out, "Backend", OrDash(key.backend()));
  AppendField(out, "URI", key.uri());
  std::string cert_pem;
  if (key.certificate_der().empty()) {
    AppendField(out, "Certificate", "none");
  } else {
    ASSIGN_OR_RETURN(CertificateSummary cert,
                     SummarizeCertificate(key.certificate_der()));
    AppendField(out, "Certificate", cert.subject);
    AppendField(out, "  Issuer", cert.issuer);
    AppendField(out, "  Valid",
                absl::StrCat(cert.not_before, " to ", cert.not_after));
    cert_pem = std::move(cert.pem);
  }
  if (key.public_key_der().empty()) {
    // SM4 keys (symmetric) have no public half.
    AppendField(out, "Public key", "none (symmetric key)");
  } else {
    ASSIGN_OR_RETURN(std::string pem, PublicKeyDerToPem(key.public_key_der()));
    absl::StrAppend(&out, "Public key:\n", pem);
  }
  if (!cert_pem.empty()) absl::StrAppend(&out, "Certificate:\n", cert_pem);
  return out;
}

std::string FormatStatus(const v1::GetStatusResponse& status) {
  std::string out;
  AppendField(out, "Version", OrDash(status.version()));
  AppendField(out, "PID", absl::StrCat(status.pid()));
  AppendField(out, "Started", FormatTimestamp(status.start_time()));
  AppendField(out, "Uptime", FormatUptime(status.uptime_seconds()));
  AppendField(out, "Connections",
              absl::StrCat(status.connections().fast_path(), " fast path, ",
                           status.connections().grpc(), " gRPC"));
  const v1::ConfigSummary& config = status.config();
  absl::StrAppend(&out, "Config:\n");
  AppendField(out, "  File", OrDash(config.config_path()));
  AppendField(out, "  Socket", OrDash(config.socket_path()));
  AppendField(out, "  Pool size", absl::StrCat(config.session_pool_size()));
  AppendField(out, "  Max message",
              absl::StrCat(config.max_message_bytes(), " bytes"));
  AppendField(out, "  Deadline",
              FormatMicros(1000.0 * config.default_deadline_ms()));
  AppendField(out, "  PIN from",
              config.pin_sources().empty()
                  ? "-"
                  : absl::StrJoin(config.pin_sources(), ", "));
  if (status.backends().empty()) {
    absl::StrAppend(&out, "Backends:     none\n");
    return out;
  }
  absl::StrAppend(&out, "Backends:\n");
  std::vector<std::vector<std::string>> rows;
  for (const v1::BackendStatus& b : status.backends()) {
    rows.push_back(
        {b.name(), b.kind(), StateName(b.state()), OrDash(b.token_label()),
         absl::StrCat(b.sessions_in_use(), "/", b.sessions_total()),
         b.logged_in() ? "yes" : "no", absl::StrCat(b.reinitializations())});
  }
  std::string table = FormatTable(
      {"NAME", "KIND", "STATE", "TOKEN", "SESSIONS", "LOGGED IN", "REINITS"},
      rows);
  for (absl::string_view line :
       absl::StrSplit(table, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  for (const v1::BackendStatus& b : status.backends()) {
    absl::StrAppend(&out, "  ", b.name(), ": module ", OrDash(b.module_path()));
    if (!b.library_description().empty()) {
      absl::StrAppend(&out, " (", b.library_description(), ")");
    }
    // SDF devices have no slots (their TOKEN column is the device name).
    if (b.kind() != "sdf") absl::StrAppend(&out, ", slot ", b.slot_id());
    if (!b.token_serial().empty()) {
      absl::StrAppend(&out, ", serial ", b.token_serial());
    }
    if (!b.token_model().empty() || !b.token_manufacturer().empty()) {
      absl::StrAppend(
          &out, ", ",
          absl::StrJoin({b.token_manufacturer(), b.token_model()}, " "));
    }
    absl::StrAppend(&out, "\n");
    if (!b.state_reason().empty()) {
      absl::StrAppend(&out, "  ", b.name(), ": ", StateName(b.state()), ": ",
                      b.state_reason(), "\n");
    }
  }
  return out;
}

std::string FormatStats(const v1::GetStatsResponse& stats) {
  std::string out;
  absl::StrAppend(&out, "Since ", FormatTimestamp(stats.since()), "\n");
  if (stats.operations().empty()) {
    absl::StrAppend(&out, "No operations yet.\n");
    return out;
  }
  std::vector<std::vector<std::string>> rows;
  for (const v1::OperationStats& op : stats.operations()) {
    const v1::LatencyHistogram& h = op.latency();
    std::string key = !op.key_label().empty() ? op.key_label()
                      : !op.key_id().empty()  ? op.key_id()
                                              : "-";
    // Sorted so the output is stable (protobuf maps are unordered).
    std::vector<std::pair<std::string, uint64_t>> codes(
        op.errors_by_code().begin(), op.errors_by_code().end());
    std::sort(codes.begin(), codes.end());
    std::vector<std::string> code_text;
    for (const auto& [name, n] : codes) {
      code_text.push_back(absl::StrCat(name, "=", n));
    }
    const double mean =
        op.count() == 0 ? 0 : static_cast<double>(h.sum_us()) / op.count();
    const bool has_latency = op.count() > 0;
    rows.push_back(
        {op.operation(), key, absl::StrCat(op.count()),
         absl::StrCat(op.error_count()),
         has_latency ? FormatMicros(EstimateQuantileUs(h, 0.50)) : "-",
         has_latency ? FormatMicros(EstimateQuantileUs(h, 0.99)) : "-",
         has_latency ? FormatMicros(mean) : "-",
         has_latency ? FormatMicros(static_cast<double>(h.max_us())) : "-",
         code_text.empty() ? "" : absl::StrJoin(code_text, " ")});
  }
  absl::StrAppend(
      &out, FormatTable({"OPERATION", "KEY", "COUNT", "ERRORS", "P50", "P99",
                         "MEAN", "MAX", "ERROR CODES"},
                        rows));
  return out;
}

double EstimateQuantileUs(const v1::LatencyHistogram& histogram,
                          double quantile) {
  uint64_t total = 0;
  for (uint64_t c : histogram.counts()) total += c;
  if (total == 0) return 0;
  quantile = std::clamp(quantile, 0.0, 1.0);
  const double rank = quantile * static_cast<double>(total);
  const auto& bounds = histogram.bucket_upper_bounds_us();
  const double max = static_cast<double>(histogram.max_us());
  uint64_t cumulative = 0;
  for (int i = 0; i < histogram.counts_size(); ++i) {
    const uint64_t count = histogram.counts(i);
    if (count == 0) continue;
    if (static_cast<double>(cumulative + count) >= rank) {
      const double lower = i == 0 ? 0.0 : static_cast<double>(bounds[i - 1]);
      double upper = i < bounds.size() ? static_cast<double>(bounds[i])
                                       : std::max(max, lower);
      // Nothing above the observed maximum was ever seen.
      if (max > 0) upper = std::min(upper, std::max(max, lower));
      const double fraction =
          (rank - static_cast<double>(cumulative)) / static_cast<double>(count);
      return lower + (upper - lower) * std::clamp(fraction, 0.0, 1.0);
    }
    cumulative += count;
  }
  return max;
}

std::string FormatMicros(double micros) {
  if (micros < 1000) return absl::StrFormat("%.0fus", micros);
  if (micros < 1000 * 1000) return absl::StrFormat("%.2fms", micros / 1000);
  return absl::StrFormat("%.2fs", micros / 1e6);
}

std::string FormatUptime(uint64_t seconds) {
  const uint64_t days = seconds / 86400;
  const uint64_t hours = seconds / 3600 % 24;
  const uint64_t minutes = seconds / 60 % 60;
  const uint64_t secs = seconds % 60;
  if (days > 0)
    return absl::StrFormat("%dd %dh %dm %ds", days, hours, minutes, secs);
  if (hours > 0) return absl::StrFormat("%dh %dm %ds", hours, minutes, secs);
  if (minutes > 0) return absl::StrFormat("%dm %ds", minutes, secs);
  return absl::StrFormat("%ds", secs);
}

std::string HexOrDash(const std::string& bytes) {
  return bytes.empty() ? "-" : absl::BytesToHexString(bytes);
}

}  // namespace hsmd::hsmctl
