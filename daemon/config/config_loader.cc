#include "daemon/config/config_loader.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "daemon/policy/policy.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace hsmd::config {
namespace {

// A config is a few hundred bytes; anything huge is a wrong path.
constexpr off_t kMaxConfigBytes = 1 << 20;

// Text-format errors as "FILE:LINE:COLUMN: message" (1-based, as editors
// count).
class CollectingErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit CollectingErrorCollector(absl::string_view filename)
      : filename_(filename) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(
        absl::StrCat(filename_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    // The parser warns e.g. about deprecated fields; treat them as errors so
    // a config never half-works.
    AddError(line, column, message);
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string filename_;
  std::vector<std::string> errors_;
};

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::TextFormat;

// Where a field path ("backends[0].pkcs11.module_path") appears in the
// parsed text: the field itself, or the innermost enclosing block present
// when the field is absent (as for "is required"). Lines and columns are
// 1-based; nullopt when nothing of the path is in the text.
std::optional<std::pair<int, int>> Locate(const TextFormat::ParseInfoTree* tree,
                                          absl::string_view path) {
  const Descriptor* descriptor = Config::descriptor();
  std::optional<std::pair<int, int>> found;
  for (absl::string_view segment : absl::StrSplit(path, '.')) {
    if (tree == nullptr || descriptor == nullptr) break;
    int index = -1;
    absl::string_view name = segment;
    if (size_t bracket = segment.find('[');
        bracket != absl::string_view::npos) {
      name = segment.substr(0, bracket);
      absl::string_view digits = segment.substr(bracket + 1);
      if (!digits.empty() && digits.back() == ']') digits.remove_suffix(1);
      if (!absl::SimpleAtoi(digits, &index)) break;
    }
    const FieldDescriptor* field =
        descriptor->FindFieldByName(std::string(name));
    if (field == nullptr) break;
    // A repeated field named without an index: point at its first entry.
    if (field->is_repeated() && index < 0) index = 0;
    TextFormat::ParseLocation location = tree->GetLocation(field, index);
    if (location.line < 0) break;
    found = std::make_pair(location.line + 1, location.column + 1);
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) break;
    tree = tree->GetTreeForNested(field, index);
    descriptor = field->message_type();
  }
  return found;
}

// Accumulates semantic errors as "FILE:LINE:COL: FIELD: message" (or
// "FILE: FIELD: message" when the text is not at hand).
class Validator {
 public:
  Validator(absl::string_view filename, const TextFormat::ParseInfoTree* tree)
      : filename_(filename), tree_(tree) {}

  void Error(absl::string_view field, absl::string_view message) {
    std::optional<std::pair<int, int>> at;
    if (tree_ != nullptr) at = Locate(tree_, field);
    if (at.has_value()) {
      errors_.push_back(absl::StrCat(filename_, ":", at->first, ":", at->second,
                                     ": ", field, ": ", message));
    } else {
      errors_.push_back(absl::StrCat(filename_, ": ", field, ": ", message));
    }
  }

  absl::Status Result() const {
    if (errors_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrJoin(errors_, "\n"));
  }

  template <typename T>
  void CheckRange(absl::string_view field, T value, T min, T max) {
    if (value < min || value > max) {
      Error(field,
            absl::StrCat(value, " is out of range (", min, "..", max, ")"));
    }
  }

 private:
  std::string filename_;
  const TextFormat::ParseInfoTree* tree_;
  std::vector<std::string> errors_;
};

bool IsValidBackendName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

void ValidateListen(const Listen& listen, Validator& v) {
  const std::string& path = listen.socket_path();
  if (path.empty()) {
    v.Error("listen.socket_path", "must not be empty");
  } else if (path[0] != '/') {
    v.Error("listen.socket_path",
            absl::StrCat("\"", path, "\" is not an absolute path"));
  } else if (path.size() > kMaxSocketPathBytes) {
    v.Error("listen.socket_path", absl::StrCat("is ", path.size(),
                                               " bytes; Unix socket paths are "
                                               "limited to ",
                                               kMaxSocketPathBytes, " bytes"));
  } else if (path.back() == '/') {
    v.Error("listen.socket_path",
            absl::StrCat("\"", path, "\" names a directory, not a socket"));
  }
  absl::StatusOr<uint32_t> mode = ParseSocketMode(listen.socket_mode());
  if (!mode.ok()) v.Error("listen.socket_mode", mode.status().message());
  if (listen.has_socket_group() && listen.socket_group().empty()) {
    v.Error("listen.socket_group", "must not be empty when set");
  }
}

void ValidatePin(const Pin& pin, const std::string& field, Validator& v) {
  switch (pin.source_case()) {
    case Pin::kFile:
      if (pin.file().empty() || pin.file()[0] != '/') {
        v.Error(field + ".file",
                absl::StrCat("\"", pin.file(), "\" is not an absolute path"));
      }
      break;
    case Pin::kCredential:
      if (pin.credential().empty() ||
          absl::StrContains(pin.credential(), '/') || pin.credential() == "." ||
          pin.credential() == "..") {
        v.Error(field + ".credential",
                absl::StrCat("\"", pin.credential(),
                             "\" is not a credential name (a plain file name "
                             "in $CREDENTIALS_DIRECTORY)"));
      }
      break;
    case Pin::SOURCE_NOT_SET:
      v.Error(field, "a PIN source is required: file or credential");
      break;
  }
}

void ValidatePkcs11(const Pkcs11Backend& p, const std::string& field,
                    Validator& v) {
  if (!p.has_module_path() || p.module_path().empty()) {
    v.Error(field + ".module_path", "is required");
  } else if (p.module_path()[0] != '/') {
    v.Error(field + ".module_path",
            absl::StrCat("\"", p.module_path(), "\" is not an absolute path"));
  }
  if (!p.has_token_label() && !p.has_token_serial() && !p.has_slot_id()) {
    v.Error(field,
            "set token_label, token_serial or slot_id to select the token");
  }
  if (p.has_token_label() && p.token_label().empty()) {
    v.Error(field + ".token_label", "must not be empty when set");
  }
  if (p.token_label().size() > 32) {
    v.Error(field + ".token_label",
            absl::StrCat("is ", p.token_label().size(),
                         " bytes; PKCS#11 token labels have at most 32"));
  }
  if (p.has_token_serial() && p.token_serial().empty()) {
    v.Error(field + ".token_serial", "must not be empty when set");
  }
  if (p.token_serial().size() > 16) {
    v.Error(field + ".token_serial",
            absl::StrCat("is ", p.token_serial().size(),
                         " bytes; PKCS#11 token serials have at most 16"));
  }
  if (!p.has_pin()) {
    v.Error(field + ".pin", "is required");
  } else {
    ValidatePin(p.pin(), field + ".pin", v);
  }
  v.CheckRange<uint32_t>(field + ".session_pool_size", p.session_pool_size(), 1,
                         256);
}

void ValidateBackends(const Config& config, Validator& v) {
  if (config.backends_size() == 0) {
    v.Error("backends", "at least one backend is required");
  }
  std::set<std::string> names;
  for (int i = 0; i < config.backends_size(); ++i) {
    const Backend& b = config.backends(i);
    const std::string field = absl::StrCat("backends[", i, "]");
    if (!b.has_name()) {
      v.Error(field + ".name", "is required");
    } else if (!IsValidBackendName(b.name())) {
      v.Error(field + ".name",
              absl::StrCat("\"", b.name(),
                           "\" must be 1..64 characters from [A-Za-z0-9_.-]"));
    } else if (!names.insert(b.name()).second) {
      v.Error(field + ".name",
              absl::StrCat("\"", b.name(), "\" is used by another backend"));
    }
    switch (b.kind_case()) {
      case Backend::kPkcs11:
        ValidatePkcs11(b.pkcs11(), field + ".pkcs11", v);
        break;
      case Backend::KIND_NOT_SET:
        v.Error(field, "a backend kind is required (pkcs11 { ... })");
        break;
    }
  }
}

void ValidateLimits(const Limits& limits, Validator& v) {
  v.CheckRange<uint32_t>("limits.max_message_bytes", limits.max_message_bytes(),
                         4096, 64u << 20);
  v.CheckRange<uint32_t>("limits.max_random_bytes", limits.max_random_bytes(),
                         1, 65536);
  v.CheckRange<uint32_t>("limits.default_deadline_ms",
                         limits.default_deadline_ms(), 1, 3600000);
  v.CheckRange<uint32_t>("limits.shutdown_grace_ms", limits.shutdown_grace_ms(),
                         0, 600000);
  v.CheckRange<uint32_t>("limits.max_concurrent_requests",
                         limits.max_concurrent_requests(), 8, 4096);
  v.CheckRange<uint32_t>("limits.max_streams_per_connection",
                         limits.max_streams_per_connection(), 1, 1024);
  v.CheckRange<uint32_t>("limits.max_list_results", limits.max_list_results(),
                         1, 100000);
}

void ValidateAccess(const Config& config, Validator& v) {
  if (!config.has_policy()) return;
  policy::ValidatePolicy(config.policy(), [&v](const std::string& field,
                                               const std::string& message) {
    v.Error(absl::StrCat("policy.", field), message);
  });
}

absl::Status Validate(const Config& config, absl::string_view filename,
                      const TextFormat::ParseInfoTree* tree) {
  Validator v(filename, tree);
  ValidateListen(config.listen(), v);
  ValidateBackends(config, v);
  ValidateLimits(config.limits(), v);
  ValidateAccess(config, v);
  return v.Result();
}

}  // namespace

absl::StatusOr<uint32_t> ParseSocketMode(absl::string_view mode) {
  if (mode.empty() || mode.size() > 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", mode, "\" is not an octal permission mode such as \"0660\""));
  }
  uint32_t value = 0;
  for (char c : mode) {
    if (c < '0' || c > '7') {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", mode, "\" is not an octal permission mode such as \"0660\""));
    }
    value = value * 8 + static_cast<uint32_t>(c - '0');
  }
  if (value > 0777) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", mode,
                     "\" has bits beyond 0777 (setuid/setgid/sticky make no "
                     "sense on a socket)"));
  }
  return value;
}

absl::StatusOr<gid_t> ResolveGroup(absl::string_view group) {
  uint32_t gid = 0;
  if (absl::SimpleAtoi(group, &gid)) return static_cast<gid_t>(gid);
  std::string name(group);
  std::vector<char> buf(16384);
  struct group grp;
  struct group* result = nullptr;
  int rc = getgrnam_r(name.c_str(), &grp, buf.data(), buf.size(), &result);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("looking up group \"", name, "\": ", std::strerror(rc)));
  }
  if (result == nullptr) {
    return absl::NotFoundError(absl::StrCat("no group named \"", name, "\""));
  }
  return result->gr_gid;
}

absl::Status ValidateConfig(const Config& config, absl::string_view filename) {
  return Validate(config, filename, /*tree=*/nullptr);
}

absl::StatusOr<Config> ParseConfig(absl::string_view text,
                                   absl::string_view filename) {
  Config config;
  CollectingErrorCollector collector(filename);
  TextFormat::Parser parser;
  TextFormat::ParseInfoTree tree;
  parser.RecordErrorsTo(&collector);
  parser.WriteLocationsTo(&tree);
  // Unknown fields are typos: reject them (the parser's default, made
  // explicit because a silently ignored PIN setting would be dangerous).
  parser.AllowUnknownField(false);
  parser.AllowUnknownExtension(false);
  if (!parser.ParseFromString(std::string(text), &config)) {
    if (collector.errors().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(filename, ": could not be parsed"));
    }
    return absl::InvalidArgumentError(absl::StrJoin(collector.errors(), "\n"));
  }
  if (!collector.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(collector.errors(), "\n"));
  }
  if (absl::Status s = Validate(config, filename, &tree); !s.ok()) return s;
  return config;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  absl::Cleanup close_fd = [fd] { close(fd); };
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is not a regular file"));
  }
  if (st.st_size > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is ", st.st_size, " bytes; a config is at most ",
                     kMaxConfigBytes));
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": read error: ", std::strerror(errno)));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > static_cast<size_t>(kMaxConfigBytes)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": larger than ", kMaxConfigBytes, " bytes"));
    }
  }
  return ParseConfig(text, path);
}

}  // namespace hsmd::config
