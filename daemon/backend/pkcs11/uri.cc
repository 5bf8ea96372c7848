#include "daemon/backend/pkcs11/uri.h"

#include <p11-kit/uri.h>

#include <cstring>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/backend/pkcs11/module.h"

namespace hsmd::backend::pkcs11 {
namespace {

constexpr absl::string_view kScheme = "pkcs11:";

// Path attributes of RFC 7512 (all of which p11-kit understands), with the
// size of the PKCS#11 field holding them (0: no fixed size).
struct PathAttribute {
  absl::string_view name;
  size_t max_length;
};
constexpr PathAttribute kPathAttributes[] = {
    {"id", 0},
    {"library-description", 32},
    {"library-manufacturer", 32},
    {"library-version", 0},
    {"manufacturer", 32},
    {"model", 16},
    {"object", 0},
    {"serial", 16},
    {"slot-description", 64},
    {"slot-id", 0},
    {"slot-manufacturer", 32},
    {"token", 32},
    {"type", 0},
};

const PathAttribute* FindPathAttribute(absl::string_view name) {
  for (const PathAttribute& attribute : kPathAttributes) {
    if (attribute.name == name) return &attribute;
  }
  return nullptr;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes; false on a truncated or non-hex escape.
bool PercentDecode(absl::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed pkcs11: URI: ", what));
}

// Validates the path part (before '?'); p11-kit would accept some of these
// problems silently or report them without saying where.
absl::Status CheckPath(absl::string_view path) {
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view segment : absl::StrSplit(path, ';')) {
    if (segment.empty()) continue;
    size_t eq = segment.find('=');
    if (eq == absl::string_view::npos) {
      return Invalid(absl::StrCat("path attribute \"", segment.substr(0, 64),
                                  "\" has no '=' (expected name=value)"));
    }
    absl::string_view name = segment.substr(0, eq);
    absl::string_view raw_value = segment.substr(eq + 1);
    const PathAttribute* attribute = FindPathAttribute(name);
    if (attribute == nullptr) {
      return Invalid(absl::StrCat(
          "unknown path attribute \"", name.substr(0, 64),
          "\" (known: token, manufacturer, serial, model, slot-id, "
          "slot-description, slot-manufacturer, library-description, "
          "library-manufacturer, library-version, object, id, type)"));
    }
    if (!seen.insert(std::string(name)).second) {
      return Invalid(absl::StrCat("attribute \"", name, "\" appears twice"));
    }
    std::string value;
    if (!PercentDecode(raw_value, &value)) {
      return Invalid(absl::StrCat("bad percent-encoding in attribute \"", name,
                                  "\" (a '%' must be followed by two hex "
                                  "digits)"));
    }
    if (attribute->max_length > 0 && value.size() > attribute->max_length) {
      return Invalid(absl::StrCat("attribute \"", name, "\" is ", value.size(),
                                  " bytes long; PKCS#11 allows at most ",
                                  attribute->max_length));
    }
    if (name == "type" && value != "private" && value != "public" &&
        value != "cert") {
      return Invalid(absl::StrCat("type=", value.substr(0, 64),
                                  " is not supported (use private, public or "
                                  "cert)"));
    }
    if (name == "slot-id") {
      uint64_t slot = 0;
      if (!absl::SimpleAtoi(value, &slot) || value.empty() ||
          !absl::ascii_isdigit(static_cast<unsigned char>(value[0]))) {
        return Invalid(absl::StrCat("slot-id \"", value.substr(0, 64),
                                    "\" is not a decimal number"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckQuery(absl::string_view query) {
  absl::flat_hash_set<std::string> seen;
  for (absl::string_view segment : absl::StrSplit(query, '&')) {
    if (segment.empty()) continue;
    size_t eq = segment.find('=');
    absl::string_view name = segment.substr(0, eq);
    // Checked first and without echoing the value: it may be a PIN.
    if (name == "pin-value" || name == "pin-source") {
      return Invalid(absl::StrCat(
          "query attribute \"", name,
          "\" is not accepted: hsmd holds the token PIN itself (remove it "
          "from the URI)"));
    }
    if (name != "module-name" && name != "module-path") {
      return Invalid(
          absl::StrCat("unknown query attribute \"", name.substr(0, 64), "\""));
    }
    if (eq == absl::string_view::npos) {
      return Invalid(absl::StrCat("query attribute \"", name,
                                  "\" has no '=' (expected name=value)"));
    }
    if (!seen.insert(std::string(name)).second) {
      return Invalid(absl::StrCat("attribute \"", name, "\" appears twice"));
    }
    std::string value;
    if (!PercentDecode(segment.substr(eq + 1), &value)) {
      return Invalid(
          absl::StrCat("bad percent-encoding in attribute \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

std::optional<std::string> PaddedField(const unsigned char* data, size_t size) {
  // p11-kit leaves unset fields zeroed and blank-pads set ones.
  if (data[0] == 0) return std::nullopt;
  return TrimPadded(data, size);
}

std::optional<std::string> AttributeBytes(P11KitUri* uri,
                                          CK_ATTRIBUTE_TYPE type) {
  CK_ATTRIBUTE* attribute = p11_kit_uri_get_attribute(uri, type);
  if (attribute == nullptr) return std::nullopt;
  return std::string(static_cast<const char*>(attribute->pValue),
                     attribute->ulValueLen);
}

}  // namespace

absl::StatusOr<Pkcs11Uri> Pkcs11Uri::Parse(absl::string_view text) {
  if (text.empty()) return Invalid("the URI is empty");
  if (text.size() > kMaxUriLength) {
    return Invalid(absl::StrCat("the URI is ", text.size(),
                                " bytes long; the limit is ", kMaxUriLength));
  }
  if (text.size() < kScheme.size() ||
      !absl::EqualsIgnoreCase(text.substr(0, kScheme.size()), kScheme)) {
    return Invalid("not a pkcs11: URI (it must start with \"pkcs11:\")");
  }
  if (text.find('\0') != absl::string_view::npos) {
    return Invalid("the URI contains a NUL byte");
  }
  absl::string_view rest = text.substr(kScheme.size());
  size_t question = rest.find('?');
  absl::string_view path = rest.substr(0, question);
  absl::string_view query = question == absl::string_view::npos
                                ? absl::string_view()
                                : rest.substr(question + 1);
  // The query may hold a PIN: check it before anything echoes the URI.
  if (absl::Status status = CheckQuery(query); !status.ok()) return status;
  if (absl::Status status = CheckPath(path); !status.ok()) return status;

  std::shared_ptr<P11KitUri> uri(p11_kit_uri_new(), p11_kit_uri_free);
  if (uri == nullptr) return absl::ResourceExhaustedError("out of memory");
  const std::string owned(text);
  int result = p11_kit_uri_parse(owned.c_str(), P11_KIT_URI_FOR_ANY, uri.get());
  if (result != P11_KIT_URI_OK) {
    const char* message = p11_kit_uri_message(result);
    return Invalid(absl::StrCat("p11-kit: ",
                                message != nullptr ? message : "parse error"));
  }
  if (p11_kit_uri_any_unrecognized(uri.get())) {
    return Invalid("p11-kit did not recognise an attribute or value");
  }

  Pkcs11Uri parsed;
  parsed.text_ = owned;
  CK_TOKEN_INFO* token = p11_kit_uri_get_token_info(uri.get());
  parsed.token_ = PaddedField(token->label, sizeof(token->label));
  parsed.manufacturer_ =
      PaddedField(token->manufacturerID, sizeof(token->manufacturerID));
  parsed.serial_ =
      PaddedField(token->serialNumber, sizeof(token->serialNumber));
  parsed.model_ = PaddedField(token->model, sizeof(token->model));
  CK_SLOT_ID slot = p11_kit_uri_get_slot_id(uri.get());
  if (slot != static_cast<CK_SLOT_ID>(-1)) parsed.slot_id_ = slot;
  parsed.object_ = AttributeBytes(uri.get(), CKA_LABEL);
  parsed.id_ = AttributeBytes(uri.get(), CKA_ID);
  if (std::optional<std::string> klass = AttributeBytes(uri.get(), CKA_CLASS);
      klass.has_value() && klass->size() == sizeof(CK_OBJECT_CLASS)) {
    CK_OBJECT_CLASS value;
    std::memcpy(&value, klass->data(), sizeof(value));
    switch (value) {
      case CKO_PRIVATE_KEY:
        parsed.type_ = ObjectType::kPrivateKey;
        break;
      case CKO_PUBLIC_KEY:
        parsed.type_ = ObjectType::kPublicKey;
        break;
      case CKO_CERTIFICATE:
        parsed.type_ = ObjectType::kCertificate;
        break;
      default:
        return Invalid("type is not supported (use private, public or cert)");
    }
  }
  parsed.uri_ = std::move(uri);
  return parsed;
}

bool Pkcs11Uri::MatchesModule(const CK_INFO& info) const {
  return p11_kit_uri_match_module_info(uri_.get(), &info) == 1;
}

bool Pkcs11Uri::MatchesSlot(CK_SLOT_ID slot_id,
                            const CK_SLOT_INFO& info) const {
  if (slot_id_.has_value() && *slot_id_ != slot_id) return false;
  return p11_kit_uri_match_slot_info(uri_.get(), &info) == 1;
}

bool Pkcs11Uri::MatchesToken(const CK_TOKEN_INFO& info) const {
  return p11_kit_uri_match_token_info(uri_.get(), &info) == 1;
}

std::string PercentEncode(absl::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size() * 3);
  for (char c : value) {
    unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xf]);
    }
  }
  return out;
}

std::string FormatKeyUri(absl::string_view token_label,
                         absl::string_view object_label,
                         absl::string_view object_id) {
  std::string uri = absl::StrCat("pkcs11:token=", PercentEncode(token_label));
  if (!object_label.empty()) {
    absl::StrAppend(&uri, ";object=", PercentEncode(object_label));
  }
  if (!object_id.empty()) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    absl::StrAppend(&uri, ";id=");
    for (char c : object_id) {
      unsigned char u = static_cast<unsigned char>(c);
      uri.push_back('%');
      uri.push_back(kHex[u >> 4]);
      uri.push_back(kHex[u & 0xf]);
    }
  }
  absl::StrAppend(&uri, ";type=private");
  return uri;
}

}  // namespace hsmd::backend::pkcs11
