#include "daemon/config/config_loader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
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

bool SamePin(const Pin& a, const Pin& b) {
  return a.source_case() == b.source_case() && a.file() == b.file() &&
         a.credential() == b.credential();
}

bool IsHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

void ValidateSdf(const SdfBackend& sdf, const std::string& field,
                 std::set<std::string>& device_names, Validator& v) {
  if (!sdf.has_library_path() || sdf.library_path().empty()) {
    v.Error(field + ".library_path", "is required");
  } else if (sdf.library_path()[0] != '/') {
    v.Error(
        field + ".library_path",
        absl::StrCat("\"", sdf.library_path(), "\" is not an absolute path"));
  }
  if (!sdf.has_device_name()) {
    v.Error(field + ".device_name",
            "is required (the device= of the backend's sdf: URIs)");
  } else if (!IsValidBackendName(sdf.device_name())) {
    v.Error(field + ".device_name",
            absl::StrCat("\"", sdf.device_name(),
                         "\" must be 1..64 characters from [A-Za-z0-9_.-]"));
  } else if (!device_names.insert(sdf.device_name()).second) {
    v.Error(field + ".device_name",
            absl::StrCat("\"", sdf.device_name(),
                         "\" is used by another sdf backend"));
  }
  if (sdf.keys_size() == 0) {
    v.Error(field + ".keys", "at least one key is required");
  }
  // (index, usage) -> first entry; index -> the entry holding its password.
  std::set<std::pair<uint32_t, int>> seen;
  std::map<uint32_t, int> password_at;
  std::set<uint32_t> private_indexes;
  for (int k = 0; k < sdf.keys_size(); ++k) {
    const SdfKey& key = sdf.keys(k);
    const std::string kf = absl::StrCat(field, ".keys[", k, "]");
    if (!key.has_index()) v.Error(kf + ".index", "is required");
    if (!key.has_usage() || key.usage() == SdfKey::USAGE_UNSPECIFIED) {
      v.Error(kf + ".usage", "is required: SIGN, ENC or SM4");
      continue;
    }
    if (key.has_index() && !seen.insert({key.index(), key.usage()}).second) {
      v.Error(kf + ".index", absl::StrCat("index ", key.index(), " usage ",
                                          SdfKey::Usage_Name(key.usage()),
                                          " is configured twice"));
    }
    if (key.has_label() && (key.label().empty() || key.label().size() > 128)) {
      v.Error(kf + ".label",
              absl::StrCat("is ", key.label().size(),
                           " bytes; a label has 1..128 when set"));
    }
    if (key.usage() == SdfKey::SM4) {
      if (key.has_password()) {
        v.Error(kf + ".password",
                "SM4 keys take no password (only SM2 private keys need "
                "access rights)");
      }
      if (key.has_wrapped_key() &&
          (key.wrapped_key().size() != 32 || !IsHex(key.wrapped_key()))) {
        v.Error(kf + ".wrapped_key",
                "must be 32 hex digits (a 16-byte SM4 key wrapped with "
                "SM4-ECB)");
      }
      continue;
    }
    if (key.has_wrapped_key()) {
      v.Error(kf + ".wrapped_key", "is only for SM4 keys");
    }
    private_indexes.insert(key.index());
    if (!key.has_password()) continue;
    ValidatePin(key.password(), kf + ".password", v);
    auto [it, inserted] = password_at.emplace(key.index(), k);
    if (!inserted &&
        !SamePin(sdf.keys(it->second).password(), key.password())) {
      v.Error(kf + ".password",
              absl::StrCat("differs from keys[", it->second,
                           "].password; one access password covers both key "
                           "pairs of index ",
                           key.index()));
    }
  }
  for (uint32_t index : private_indexes) {
    if (password_at.count(index) != 0) continue;
    for (int k = 0; k < sdf.keys_size(); ++k) {
      if (sdf.keys(k).index() == index && sdf.keys(k).usage() != SdfKey::SM4) {
        v.Error(absl::StrCat(field, ".keys[", k, "].password"),
                absl::StrCat("is required: SM2 keys need the access "
                             "password of index ",
                             index, " (file or credential)"));
        break;
      }
    }
  }
  v.CheckRange<uint32_t>(field + ".session_pool_size", sdf.session_pool_size(),
                         1, 256);
  const SdfAlgorithmIds& ids = sdf.algorithm_ids();
  for (const auto& [name, value] :
       {std::make_pair("sm2_sign", ids.sm2_sign()),
        std::make_pair("sm2_encrypt", ids.sm2_encrypt()),
        std::make_pair("sm4_ecb", ids.sm4_ecb()),
        std::make_pair("sm4_cbc", ids.sm4_cbc())}) {
    if (value == 0) {
      v.Error(absl::StrCat(field, ".algorithm_ids.", name), "must not be 0");
    }
  }
  if (sdf.max_chunk_bytes() != 0) {
    v.CheckRange<uint32_t>(field + ".max_chunk_bytes", sdf.max_chunk_bytes(),
                           16, 64u << 20);
    if (sdf.max_chunk_bytes() % 16 != 0) {
      v.Error(field + ".max_chunk_bytes",
              absl::StrCat(sdf.max_chunk_bytes(),
                           " is not a multiple of 16 (the SM4 block size)"));
    }
  }
}

void ValidateRecovery(const Recovery& r, const std::string& field,
                      Validator& v) {
  v.CheckRange<uint32_t>(field + ".reinit_backoff_initial_ms",
                         r.reinit_backoff_initial_ms(), 1, 60000);
  v.CheckRange<uint32_t>(field + ".reinit_backoff_max_ms",
                         r.reinit_backoff_max_ms(), 1, 3600000);
  if (r.reinit_backoff_max_ms() < r.reinit_backoff_initial_ms()) {
    v.Error(field + ".reinit_backoff_max_ms",
            absl::StrCat(r.reinit_backoff_max_ms(),
                         " is below reinit_backoff_initial_ms (",
                         r.reinit_backoff_initial_ms(), ")"));
  }
  v.CheckRange<uint32_t>(field + ".reinit_drain_timeout_ms",
                         r.reinit_drain_timeout_ms(), 0, 600000);
  v.CheckRange<uint32_t>(field + ".degraded_hold_ms", r.degraded_hold_ms(), 0,
                         86400000);
}

void ValidateBackends(const Config& config, Validator& v) {
  if (config.backends_size() == 0) {
    v.Error("backends", "at least one backend is required");
  }
  std::set<std::string> names;
  std::set<std::string> device_names;
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
      case Backend::kSdf:
        ValidateSdf(b.sdf(), field + ".sdf", device_names, v);
        break;
      case Backend::KIND_NOT_SET:
        v.Error(field,
                "a backend kind is required (pkcs11 { ... } or sdf { ... })");
        break;
    }
    ValidateRecovery(b.recovery(), field + ".recovery", v);
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
