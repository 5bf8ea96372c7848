#include "daemon/backend/sdf/uri.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hsmd::backend::sdf {
namespace {

constexpr absl::string_view kScheme = "sdf:";
// Long enough for any real device name or label, short enough to quote.
constexpr size_t kMaxQuoted = 64;

absl::Status Bad(absl::string_view part, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("sdf: URI attribute \"", part, "\": ", why));
}

std::string Quote(absl::string_view s) {
  if (s.size() > kMaxQuoted) {
    return absl::StrCat("\"", absl::CHexEscape(s.substr(0, kMaxQuoted)),
                        "...\"");
  }
  return absl::StrCat("\"", absl::CHexEscape(s), "\"");
}

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// RFC 7512's pk11-pchar without ';' (our separator): what may appear
// unencoded in a value.
bool IsValueChar(char c) {
  return IsUnreserved(c) || absl::StrContains(":[]@!$'()*+,=&/", c);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> Decode(absl::string_view name,
                                   absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (c == '%') {
      const int hi = i + 1 < value.size() ? HexValue(value[i + 1]) : -1;
      const int lo = i + 2 < value.size() ? HexValue(value[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return Bad(name, "'%' must be followed by two hex digits");
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
      continue;
    }
    if (!IsValueChar(c)) {
      return Bad(name,
                 absl::StrCat("character ", Quote(absl::string_view(&c, 1)),
                              " must be percent-encoded"));
    }
    out.push_back(c);
  }
  return out;
}

absl::StatusOr<uint32_t> ParseIndex(absl::string_view text) {
  if (text.empty()) return Bad("index", "is empty");
  if (text.size() > 10) {
    return Bad("index", absl::StrCat(Quote(text), " is out of range (0..",
                                     UINT32_MAX, ")"));
  }
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return Bad("index",
                 absl::StrCat(Quote(text), " is not a decimal number"));
    }
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  if (value > UINT32_MAX) {
    return Bad("index", absl::StrCat(Quote(text), " is out of range (0..",
                                     UINT32_MAX, ")"));
  }
  return static_cast<uint32_t>(value);
}

}  // namespace

absl::string_view UsageName(KeyUsage usage) {
  switch (usage) {
    case KeyUsage::kSign:
      return "sign";
    case KeyUsage::kEnc:
      return "enc";
    case KeyUsage::kSm4:
      return "sm4";
  }
  return "?";
}

absl::StatusOr<KeyUsage> ParseUsage(absl::string_view name) {
  if (name == "sign") return KeyUsage::kSign;
  if (name == "enc") return KeyUsage::kEnc;
  if (name == "sm4") return KeyUsage::kSm4;
  return Bad("usage", absl::StrCat(Quote(name), " is not sign, enc or sm4"));
}

bool IsSdfUri(absl::string_view uri) {
  return uri.size() >= kScheme.size() &&
         absl::EqualsIgnoreCase(uri.substr(0, kScheme.size()), kScheme);
}

absl::StatusOr<SdfUri> SdfUri::Parse(absl::string_view uri) {
  if (!IsSdfUri(uri)) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an sdf: URI: ", Quote(uri)));
  }
  absl::string_view path = uri.substr(kScheme.size());
  if (size_t q = path.find_first_of("?#"); q != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "sdf: URIs take no query or fragment; remove ", Quote(path.substr(q))));
  }
  SdfUri out;
  if (path.empty()) return out;
  for (absl::string_view part : absl::StrSplit(path, ';')) {
    if (part.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sdf: URI has an empty attribute (\";;\" or a ';' at "
                       "either end): ",
                       Quote(uri)));
    }
    const size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      return Bad(part, "has no '=' (want name=value)");
    }
    const absl::string_view name = part.substr(0, eq);
    absl::StatusOr<std::string> value = Decode(name, part.substr(eq + 1));
    if (!value.ok()) return value.status();
    auto once = [&](bool present) -> absl::Status {
      if (present) return Bad(name, "appears more than once");
      return absl::OkStatus();
    };
    if (name == "device") {
      if (absl::Status s = once(out.device.has_value()); !s.ok()) return s;
      if (value->empty()) return Bad(name, "is empty");
      out.device = *std::move(value);
    } else if (name == "index") {
      if (absl::Status s = once(out.index.has_value()); !s.ok()) return s;
      absl::StatusOr<uint32_t> index = ParseIndex(*value);
      if (!index.ok()) return index.status();
      out.index = *index;
    } else if (name == "usage") {
      if (absl::Status s = once(out.usage.has_value()); !s.ok()) return s;
      absl::StatusOr<KeyUsage> usage = ParseUsage(*value);
      if (!usage.ok()) return usage.status();
      out.usage = *usage;
    } else if (name == "object") {
      if (absl::Status s = once(out.object.has_value()); !s.ok()) return s;
      if (value->empty()) return Bad(name, "is empty");
      out.object = *std::move(value);
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "sdf: URI attribute ", Quote(name),
          " is unknown (sdf: URIs take device, index, usage and object)"));
    }
  }
  return out;
}

bool SdfUri::Matches(absl::string_view device_name, uint32_t key_index,
                     KeyUsage key_usage, absl::string_view label) const {
  return (!device.has_value() || *device == device_name) &&
         (!index.has_value() || *index == key_index) &&
         (!usage.has_value() || *usage == key_usage) &&
         (!object.has_value() || *object == label);
}

std::string PercentEncode(absl::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : value) {
    if (IsUnreserved(c)) {
      out.push_back(c);
    } else {
      const auto u = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

std::string CanonicalUri(absl::string_view device, uint32_t index,
                         KeyUsage usage) {
  return absl::StrCat("sdf:device=", PercentEncode(device), ";index=", index,
                      ";usage=", UsageName(usage));
}

}  // namespace hsmd::backend::sdf
