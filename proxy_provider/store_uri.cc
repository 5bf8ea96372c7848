#include "proxy_provider/store_uri.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "proxy_provider/errors.h"

namespace hsmd::proxy {
namespace {

absl::Status BadUri(absl::string_view uri, absl::string_view why) {
  return WithReason(absl::InvalidArgumentError(absl::StrCat(uri, ": ", why)),
                    Reason::kBadUri);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(static_cast<unsigned char>(c));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(absl::string_view value) {
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '%') {
      out.push_back(value[i]);
      continue;
    }
    if (i + 2 >= value.size()) {
      return absl::InvalidArgumentError("truncated percent escape");
    }
    int hi = HexValue(value[i + 1]);
    int lo = HexValue(value[i + 2]);
    if (hi < 0 || lo < 0)
      return absl::InvalidArgumentError("bad percent escape");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace

absl::StatusOr<StoreUri> ParseStoreUri(absl::string_view uri) {
  if (absl::StartsWithIgnoreCase(uri, "sdf:")) {
    // hsmd validates sdf: URIs and names what it rejects.
    StoreUri result;
    result.filter = absl::StrCat("sdf:", uri.substr(4));
    return result;
  }
  constexpr absl::string_view kScheme = "pkcs11:";
  if (!absl::StartsWithIgnoreCase(uri, kScheme)) {
    return BadUri(uri, "not a pkcs11: or sdf: URI");
  }
  absl::string_view rest = uri.substr(kScheme.size());
  absl::string_view path = rest;
  absl::string_view query;
  size_t question = rest.find('?');
  if (question != absl::string_view::npos) {
    path = rest.substr(0, question);
    query = rest.substr(question);
  }
  StoreUri result;
  std::vector<absl::string_view> kept;
  for (absl::string_view attribute : absl::StrSplit(path, ';')) {
    if (attribute.empty()) continue;
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(attribute, absl::MaxSplits('=', 1));
    if (kv.first != "type") {
      kept.push_back(attribute);
      continue;
    }
    absl::StatusOr<std::string> value = PercentDecode(kv.second);
    if (!value.ok()) return BadUri(uri, value.status().message());
    if (*value == "private") {
      result.type = UriObjectType::kPrivate;
    } else if (*value == "public") {
      result.type = UriObjectType::kPublic;
    } else if (*value == "cert") {
      result.type = UriObjectType::kCert;
    } else {
      return BadUri(uri, absl::StrCat("type=", *value,
                                      " is not served (hsmproxy serves "
                                      "private, public and cert)"));
    }
  }
  result.filter = absl::StrCat(kScheme, absl::StrJoin(kept, ";"), query);
  return result;
}

}  // namespace hsmd::proxy
