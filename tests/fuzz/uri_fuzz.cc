// Fuzzes the key URI parsers (pkcs11: and sdf:) with arbitrary text. Beyond
// "no crash", every URI that parses must survive a round trip through the
// canonical formatter with the same attributes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/backend/pkcs11/uri.h"
#include "daemon/backend/sdf/uri.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace p11 = ::hsmd::backend::pkcs11;
namespace sdf = ::hsmd::backend::sdf;

// Blank-padded CK_TOKEN_INFO fields, as a module reports them.
template <size_t N>
void Pad(unsigned char (&field)[N], const char* value) {
  memset(field, ' ', N);
  memcpy(field, value, std::min(N, strlen(value)));
}

void FuzzPkcs11(absl::string_view text) {
  absl::StatusOr<p11::Pkcs11Uri> uri = p11::Pkcs11Uri::Parse(text);
  if (!uri.ok()) {
    FUZZ_CHECK(!uri.status().message().empty(), "error without a message");
    return;
  }
  // The matchers must cope with whatever attributes were accepted.
  CK_TOKEN_INFO token{};
  Pad(token.label, "fuzz");
  Pad(token.manufacturerID, "hsmd");
  Pad(token.model, "fake");
  Pad(token.serialNumber, "0000000000000001");
  (void)uri->MatchesToken(token);
  CK_SLOT_INFO slot{};
  Pad(slot.slotDescription, "slot");
  Pad(slot.manufacturerID, "hsmd");
  (void)uri->MatchesSlot(0, slot);
  CK_INFO info{};
  Pad(info.manufacturerID, "hsmd");
  Pad(info.libraryDescription, "fuzz");
  (void)uri->MatchesModule(info);

  if (!uri->token_label().has_value()) return;
  std::string formatted =
      p11::FormatKeyUri(*uri->token_label(), uri->object_label().value_or(""),
                        uri->object_id().value_or(""));
  // The canonical form percent-encodes every id byte, so it can outgrow the
  // length limit the original met.
  if (formatted.size() > p11::kMaxUriLength) return;
  absl::StatusOr<p11::Pkcs11Uri> again = p11::Pkcs11Uri::Parse(formatted);
  FUZZ_CHECK(again.ok(), formatted + " -> " + again.status().ToString());
  FUZZ_CHECK(again->token_label() == uri->token_label(), formatted);
  FUZZ_CHECK(
      again->object_label().value_or("") == uri->object_label().value_or(""),
      formatted);
  FUZZ_CHECK(again->object_id().value_or("") == uri->object_id().value_or(""),
             formatted);
  FUZZ_CHECK(again->object_type() == p11::ObjectType::kPrivateKey, formatted);
}

void FuzzSdf(absl::string_view text) {
  (void)sdf::IsSdfUri(text);
  absl::StatusOr<sdf::SdfUri> uri = sdf::SdfUri::Parse(text);
  if (!uri.ok()) {
    FUZZ_CHECK(!uri.status().message().empty(), "error without a message");
    return;
  }
  FUZZ_CHECK(sdf::IsSdfUri(text), std::string(text));
  (void)uri->Matches("card0", 1, sdf::KeyUsage::kSign, "label");
  if (!uri->device.has_value() || !uri->index.has_value() ||
      !uri->usage.has_value()) {
    return;
  }
  std::string canonical =
      sdf::CanonicalUri(*uri->device, *uri->index, *uri->usage);
  absl::StatusOr<sdf::SdfUri> again = sdf::SdfUri::Parse(canonical);
  FUZZ_CHECK(again.ok(), canonical + " -> " + again.status().ToString());
  FUZZ_CHECK(again->device == uri->device, canonical);
  FUZZ_CHECK(again->index == uri->index, canonical);
  FUZZ_CHECK(again->usage == uri->usage, canonical);
  FUZZ_CHECK(!again->object.has_value(), canonical);
  FUZZ_CHECK(again->Matches(*uri->device, *uri->index, *uri->usage, ""),
             canonical);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  FuzzPkcs11(text);
  FuzzSdf(text);
  // Each parser also sees the other's scheme, so the mutations of one
  // corpus reach both.
  if (text.size() >= 4 && text.substr(0, 4) == "sdf:") {
    FuzzPkcs11(std::string("pkcs11:") + std::string(text.substr(4)));
  } else if (text.size() >= 7 && text.substr(0, 7) == "pkcs11:") {
    FuzzSdf(std::string("sdf:") + std::string(text.substr(7)));
  }
  return 0;
}
