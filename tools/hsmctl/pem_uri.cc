#include "tools/hsmctl/pem_uri.h"

#include <openssl/bio.h>
#include <openssl/pem.h>

#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"

namespace hsmd::hsmctl {
namespace {

constexpr uint8_t kTagSequence = 0x30;
constexpr uint8_t kTagUtf8String = 0x0c;
constexpr uint8_t kTagVisibleString = 0x1a;

// DER definite length: short form below 128, else 0x80|n followed by n
// big-endian bytes.
void AppendLength(size_t length, std::string& out) {
  if (length < 0x80) {
    out.push_back(static_cast<char>(length));
    return;
  }
  std::string bytes;
  for (size_t l = length; l != 0; l >>= 8) {
    bytes.insert(bytes.begin(), static_cast<char>(l & 0xff));
  }
  out.push_back(static_cast<char>(0x80 | bytes.size()));
  out.append(bytes);
}

std::string Tlv(uint8_t tag, absl::string_view value) {
  std::string out;
  out.push_back(static_cast<char>(tag));
  AppendLength(value.size(), out);
  out.append(value.data(), value.size());
  return out;
}

}  // namespace

absl::StatusOr<std::string> EncodePemUriDer(absl::string_view uri) {
  // sdf: URIs use the same file format; only hsmproxy reads those.
  if (!absl::StartsWithIgnoreCase(uri, "pkcs11:") &&
      !absl::StartsWithIgnoreCase(uri, "sdf:")) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", uri, "' is not a pkcs11: or sdf: URI"));
  }
  for (char c : uri) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "the URI has a space, control or non-ASCII character; RFC 7512 "
          "URIs percent-encode those");
    }
  }
  return Tlv(kTagSequence,
             absl::StrCat(Tlv(kTagVisibleString, kPemUriDescription),
                          Tlv(kTagUtf8String, uri)));
}

absl::StatusOr<std::string> EncodePemUriFile(absl::string_view uri) {
  absl::StatusOr<std::string> der = EncodePemUriDer(uri);
  if (!der.ok()) return der.status();
  BioPtr bio(BIO_new(BIO_s_mem()));
  const std::string label(kPemUriLabel);
  if (bio == nullptr ||
      PEM_write_bio(bio.get(), label.c_str(), "",
                    reinterpret_cast<const unsigned char*>(der->data()),
                    static_cast<long>(der->size())) <= 0) {
    return absl::InternalError("OpenSSL could not PEM-encode the URI");
  }
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

}  // namespace hsmd::hsmctl
