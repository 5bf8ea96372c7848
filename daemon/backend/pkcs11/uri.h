// RFC 7512 `pkcs11:` URIs naming keys, parsed with p11-kit's parser.
#ifndef HSMD_DAEMON_BACKEND_PKCS11_URI_H_
#define HSMD_DAEMON_BACKEND_PKCS11_URI_H_

#include <p11-kit/pkcs11.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct p11_kit_uri;

namespace hsmd::backend::pkcs11 {

// Longest URI accepted (hostile-input bound; real URIs are < 300 bytes).
inline constexpr size_t kMaxUriLength = 4096;

enum class ObjectType { kPrivateKey, kPublicKey, kCertificate };

// An immutable, validated URI: a matcher for module, slot, token and object.
// Cheap to copy (the p11-kit object is shared) and safe to use from many
// threads.
class Pkcs11Uri {
 public:
  // Rejects with INVALID_ARGUMENT, naming the problem (never echoing a PIN):
  // not a pkcs11: URI, bad percent-encoding, unknown, repeated or malformed
  // attributes, over-long token fields, pin-value / pin-source (the daemon
  // holds the PIN), unknown query attributes, and a type other than
  // private, public or cert. module-name / module-path are accepted and
  // ignored: the configuration chooses the module.
  static absl::StatusOr<Pkcs11Uri> Parse(absl::string_view text);

  // The URI as given (for messages).
  const std::string& text() const { return text_; }

  // Path attributes; unset ones are std::nullopt.
  const std::optional<std::string>& token_label() const { return token_; }
  const std::optional<std::string>& token_manufacturer() const {
    return manufacturer_;
  }
  const std::optional<std::string>& token_serial() const { return serial_; }
  const std::optional<std::string>& token_model() const { return model_; }
  const std::optional<CK_SLOT_ID>& slot_id() const { return slot_id_; }
  // CKA_LABEL (`object=`) and raw CKA_ID bytes (`id=`).
  const std::optional<std::string>& object_label() const { return object_; }
  const std::optional<std::string>& object_id() const { return id_; }
  const std::optional<ObjectType>& object_type() const { return type_; }

  // True when every module / slot / token attribute of the URI matches
  // (library-*, slot-*, token, manufacturer, serial, model).
  bool MatchesModule(const CK_INFO& info) const;
  bool MatchesSlot(CK_SLOT_ID slot_id, const CK_SLOT_INFO& info) const;
  bool MatchesToken(const CK_TOKEN_INFO& info) const;

 private:
  Pkcs11Uri() = default;

  std::string text_;
  std::shared_ptr<p11_kit_uri> uri_;
  std::optional<std::string> token_, manufacturer_, serial_, model_;
  std::optional<CK_SLOT_ID> slot_id_;
  std::optional<std::string> object_, id_;
  std::optional<ObjectType> type_;
};

// RFC 3986 percent-encoding of everything but the unreserved characters.
std::string PercentEncode(absl::string_view value);

// The canonical URI of a key pair's private key:
// pkcs11:token=<label>;object=<label>;id=<%XX...>;type=private
// (object / id omitted when empty; id always fully percent-encoded).
std::string FormatKeyUri(absl::string_view token_label,
                         absl::string_view object_label,
                         absl::string_view object_id);

}  // namespace hsmd::backend::pkcs11

#endif  // HSMD_DAEMON_BACKEND_PKCS11_URI_H_
