// Fuzzes the configuration loader with arbitrary text. Beyond "no crash":
// a config that is accepted must validate again as parsed, and must be
// accepted again after printing it back to text (what --check-config users
// and tooling rely on).
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/config/config.pb.h"
#include "daemon/config/config_loader.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace config = ::hsmd::config;

// The mode parser also sees short inputs on their own.
constexpr size_t kMaxSocketModeProbe = 8;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  if (size <= kMaxSocketModeProbe) {
    absl::StatusOr<uint32_t> mode = config::ParseSocketMode(text);
    if (mode.ok()) FUZZ_CHECK(*mode <= 0777, std::string(text));
  }
  absl::StatusOr<config::Config> parsed =
      config::ParseConfig(text, "fuzz.conf");
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.status().message().empty(), "error without a message");
    return 0;
  }
  absl::Status valid = config::ValidateConfig(*parsed, "fuzz.conf");
  FUZZ_CHECK(valid.ok(),
             "accepted config fails validation: " + valid.ToString());

  std::string printed;
  FUZZ_CHECK(google::protobuf::TextFormat::PrintToString(*parsed, &printed),
             "printing the config");
  absl::StatusOr<config::Config> again =
      config::ParseConfig(printed, "printed");
  FUZZ_CHECK(again.ok(), "printed config rejected: " +
                             again.status().ToString() + "\n" + printed);
  FUZZ_CHECK(
      google::protobuf::util::MessageDifferencer::Equals(*parsed, *again),
      "printed config parses differently:\n" + printed);
  return 0;
}
