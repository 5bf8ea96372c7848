#include "daemon/policy/key_pattern.h"

#include <utility>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace hsmd::policy {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes a URI attribute value; `*` and `?` become wildcards when `glob`.
absl::StatusOr<std::vector<Glob::Element>> Decode(absl::string_view name,
                                                  absl::string_view value,
                                                  bool glob) {
  std::vector<Glob::Element> out;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '%') {
      int hi = i + 1 < value.size() ? HexValue(value[i + 1]) : -1;
      int lo = i + 2 < value.size() ? HexValue(value[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "attribute \"", name, "\": bad percent escape at \"",
            value.substr(i, 3), "\" (write %XX with two hex digits)"));
      }
      out.push_back({Glob::Element::kLiteral, static_cast<char>(hi * 16 + lo)});
      i += 2;
    } else if (glob && c == '*') {
      out.push_back({Glob::Element::kAnyRun, 0});
    } else if (glob && c == '?') {
      out.push_back({Glob::Element::kAnyOne, 0});
    } else {
      out.push_back({Glob::Element::kLiteral, c});
    }
  }
  return out;
}

}  // namespace

bool Glob::Matches(absl::string_view text) const {
  // Iterative matching with one backtrack point (the last `*`): linear in
  // practice, never exponential.
  size_t p = 0, t = 0;
  size_t star_p = std::string::npos, star_t = 0;
  while (t < text.size()) {
    if (p < elements_.size() && elements_[p].kind == Element::kAnyRun) {
      star_p = p++;
      star_t = t;
    } else if (p < elements_.size() && (elements_[p].kind == Element::kAnyOne ||
                                        elements_[p].c == text[t])) {
      ++p;
      ++t;
    } else if (star_p != std::string::npos) {
      p = star_p + 1;
      t = ++star_t;
    } else {
      return false;
    }
  }
  while (p < elements_.size() && elements_[p].kind == Element::kAnyRun) ++p;
  return p == elements_.size();
}

absl::StatusOr<KeyPattern> KeyPattern::Parse(absl::string_view text) {
  KeyPattern pattern;
  pattern.text_ = std::string(text);
  if (text == "*") {
    pattern.all_ = true;
    return pattern;
  }
  if (text.empty()) {
    return absl::InvalidArgumentError(
        "an empty key pattern matches nothing (use \"*\" for every key)");
  }
  constexpr absl::string_view kScheme = "pkcs11:";
  constexpr absl::string_view kSdfScheme = "sdf:";
  if (absl::StartsWithIgnoreCase(text, kSdfScheme)) {
    pattern.scheme_ = Scheme::kSdf;
    if (absl::Status s = ParseSdf(text.substr(kSdfScheme.size()), pattern);
        !s.ok()) {
      return s;
    }
    return pattern;
  }
  if (!absl::StartsWithIgnoreCase(text, kScheme)) {
    if (absl::StrContains(text, ':')) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", text,
                       "\" is neither \"*\", a pkcs11: or sdf: URI pattern "
                       "nor a label pattern (labels with ':' go in "
                       "pkcs11:object=...)"));
    }
    absl::StatusOr<std::vector<Glob::Element>> label =
        Decode("object", text, /*glob=*/true);
    if (!label.ok()) return label.status();
    pattern.object_ = Glob(*std::move(label));
    return pattern;
  }
  pattern.scheme_ = Scheme::kPkcs11;
  absl::string_view rest = text.substr(kScheme.size());
  if (absl::StrContains(rest, '?')) {
    // In a URI '?' starts the query (pin-value, ...), so it cannot be a
    // wildcard there.
    return absl::InvalidArgumentError(
        "query attributes (after '?') are not allowed in a key pattern "
        "(in pkcs11: patterns only '*' is a wildcard)");
  }
  if (rest.empty()) {
    return absl::InvalidArgumentError(
        "\"pkcs11:\" names no attribute (use \"*\" for every key)");
  }
  for (absl::string_view part : absl::StrSplit(rest, ';')) {
    if (part.empty()) continue;
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute \"", part, "\" has no '='"));
    }
    const std::string name = absl::AsciiStrToLower(part.substr(0, eq));
    absl::string_view value = part.substr(eq + 1);
    if (name == "token" || name == "object") {
      std::optional<Glob>& slot =
          name == "token" ? pattern.token_ : pattern.object_;
      if (slot.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("attribute \"", name, "\" is given twice"));
      }
      absl::StatusOr<std::vector<Glob::Element>> glob =
          Decode(name, value, /*glob=*/true);
      // (No '?' can reach here: it was rejected as a query above.)
      if (!glob.ok()) return glob.status();
      slot = Glob(*std::move(glob));
    } else if (name == "id") {
      if (pattern.id_.has_value()) {
        return absl::InvalidArgumentError("attribute \"id\" is given twice");
      }
      absl::StatusOr<std::vector<Glob::Element>> bytes =
          Decode(name, value, /*glob=*/false);
      if (!bytes.ok()) return bytes.status();
      std::string id;
      for (const Glob::Element& e : *bytes) id.push_back(e.c);
      pattern.id_ = std::move(id);
    } else if (name == "type") {
      if (value != "private") {
        return absl::InvalidArgumentError(absl::StrCat(
            "type=", value, ": policies govern private keys (type=private)"));
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "attribute \"", name,
          "\" is not supported in key patterns (use token, object, id)"));
    }
  }
  return pattern;
}

absl::Status KeyPattern::ParseSdf(absl::string_view rest,
                                  KeyPattern& pattern) {
  if (absl::StrContains(rest, '?')) {
    return absl::InvalidArgumentError(
        "query attributes (after '?') are not allowed in a key pattern "
        "(in sdf: patterns only '*' is a wildcard)");
  }
  bool any = false;
  for (absl::string_view part : absl::StrSplit(rest, ';')) {
    if (part.empty()) continue;
    any = true;
    size_t eq = part.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute \"", part, "\" has no '='"));
    }
    const std::string name = absl::AsciiStrToLower(part.substr(0, eq));
    absl::string_view value = part.substr(eq + 1);
    auto twice = [&name]() {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute \"", name, "\" is given twice"));
    };
    if (name == "device" || name == "object") {
      std::optional<Glob>& slot =
          name == "device" ? pattern.token_ : pattern.object_;
      if (slot.has_value()) return twice();
      absl::StatusOr<std::vector<Glob::Element>> glob =
          Decode(name, value, /*glob=*/true);
      if (!glob.ok()) return glob.status();
      slot = Glob(*std::move(glob));
    } else if (name == "index") {
      if (pattern.index_.has_value()) return twice();
      uint32_t index = 0;
      if (value.empty() || value.size() > 10 ||
          !absl::c_all_of(value, [](char c) { return c >= '0' && c <= '9'; }) ||
          !absl::SimpleAtoi(value, &index)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "index=", value, ": want a decimal key index (0..4294967295)"));
      }
      pattern.index_ = index;
    } else if (name == "usage") {
      if (pattern.usage_.has_value()) return twice();
      if (value != "sign" && value != "enc" && value != "sm4") {
        return absl::InvalidArgumentError(
            absl::StrCat("usage=", value, ": want sign, enc or sm4"));
      }
      pattern.usage_ = std::string(value);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute \"", name,
                       "\" is not supported in sdf: key patterns (use "
                       "device, object, index, usage)"));
    }
  }
  if (!any) {
    return absl::InvalidArgumentError(
        "\"sdf:\" names no attribute (use \"*\" for every key)");
  }
  return absl::OkStatus();
}

namespace {

// index and usage of a canonical SDF key URI
// ("sdf:device=D;index=N;usage=U"); false for anything else.
bool SdfIndexAndUsage(absl::string_view uri, uint32_t& index,
                      std::string& usage) {
  bool has_index = false;
  bool has_usage = false;
  for (absl::string_view part : absl::StrSplit(uri.substr(4), ';')) {
    if (absl::StartsWith(part, "index=")) {
      has_index = absl::SimpleAtoi(part.substr(6), &index);
    } else if (absl::StartsWith(part, "usage=")) {
      usage = std::string(part.substr(6));
      has_usage = true;
    }
  }
  return has_index && has_usage;
}

}  // namespace

bool KeyPattern::Matches(const KeyAttributes& key) const {
  if (all_) return true;
  const bool sdf_key = absl::StartsWithIgnoreCase(key.uri, "sdf:");
  if (scheme_ == Scheme::kPkcs11 && sdf_key) return false;
  if (scheme_ == Scheme::kSdf) {
    if (!sdf_key) return false;
    if (index_.has_value() || usage_.has_value()) {
      uint32_t index = 0;
      std::string usage;
      if (!SdfIndexAndUsage(key.uri, index, usage)) return false;
      if (index_.has_value() && *index_ != index) return false;
      if (usage_.has_value() && *usage_ != usage) return false;
    }
  }
  if (token_.has_value() && !token_->Matches(key.token_label)) return false;
  if (object_.has_value() && !object_->Matches(key.label)) return false;
  if (id_.has_value() && *id_ != key.id) return false;
  return true;
}

}  // namespace hsmd::policy
