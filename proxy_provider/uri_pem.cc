#include "proxy_provider/uri_pem.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cstdint>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"

namespace hsmd::proxy {
namespace {

constexpr uint8_t kTagSequence = 0x30;
constexpr uint8_t kTagUtf8String = 0x0c;
constexpr uint8_t kTagPrintableString = 0x13;
constexpr uint8_t kTagIa5String = 0x16;
constexpr uint8_t kTagVisibleString = 0x1a;

bool IsStringTag(uint8_t tag) {
  return tag == kTagUtf8String || tag == kTagPrintableString ||
         tag == kTagIa5String || tag == kTagVisibleString;
}

// Reads one DER TLV from the front of `in`; definite lengths only.
bool ReadTlv(absl::string_view& in, uint8_t& tag, absl::string_view& value) {
  if (in.size() < 2) return false;
  tag = static_cast<uint8_t>(in[0]);
  size_t pos = 1;
  uint8_t first = static_cast<uint8_t>(in[pos++]);
  size_t length = 0;
  if (first < 0x80) {
    length = first;
  } else {
    size_t count = first & 0x7f;
    if (count == 0 || count > 4 || in.size() < pos + count) return false;
    for (size_t i = 0; i < count; ++i) {
      length = (length << 8) | static_cast<uint8_t>(in[pos++]);
    }
  }
  if (in.size() - pos < length) return false;
  value = in.substr(pos, length);
  in.remove_prefix(pos + length);
  return true;
}

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
  std::string out(1, static_cast<char>(tag));
  AppendLength(value.size(), out);
  out.append(value.data(), value.size());
  return out;
}

// The URI schemes hsmproxy resolves.
bool IsKeyUri(absl::string_view uri) {
  return absl::StartsWithIgnoreCase(uri, "pkcs11:") ||
         absl::StartsWithIgnoreCase(uri, "sdf:");
}

absl::Status NotUriDer(absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("not a PKCS#11 PROVIDER URI structure: ", why));
}

}  // namespace

absl::StatusOr<std::string> ParseUriDer(absl::string_view der) {
  uint8_t tag = 0;
  absl::string_view body;
  if (!ReadTlv(der, tag, body) || tag != kTagSequence || !der.empty()) {
    return NotUriDer("no single DER SEQUENCE");
  }
  absl::string_view description;
  absl::string_view uri;
  if (!ReadTlv(body, tag, description) || !IsStringTag(tag)) {
    return NotUriDer("no description string");
  }
  if (!ReadTlv(body, tag, uri) || !IsStringTag(tag) || !body.empty()) {
    return NotUriDer("no URI string");
  }
  if (!IsKeyUri(uri)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the key file names \"", uri, "\", not a pkcs11: or sdf: URI"));
  }
  return std::string(uri);
}

std::string EncodeUriDer(absl::string_view uri) {
  return Tlv(kTagSequence,
             absl::StrCat(Tlv(kTagVisibleString, kUriPemDescription),
                          Tlv(kTagUtf8String, uri)));
}

absl::StatusOr<std::string> ParseUriPem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory");
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long length = 0;
  ERR_set_mark();
  int ok = PEM_read_bio(bio.get(), &name, &header, &data, &length);
  ERR_pop_to_mark();
  absl::StatusOr<std::string> result =
      absl::InvalidArgumentError("no PEM block found");
  if (ok > 0) {
    if (std::strcmp(name, kUriPemLabel) != 0) {
      result = absl::InvalidArgumentError(absl::StrCat(
          "the PEM block is \"", name, "\", not \"", kUriPemLabel, "\""));
    } else {
      result = ParseUriDer(absl::string_view(reinterpret_cast<char*>(data),
                                             static_cast<size_t>(length)));
    }
  }
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  return result;
}

absl::StatusOr<std::string> EncodeUriPem(absl::string_view uri) {
  if (!IsKeyUri(uri)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", uri, "\" is not a pkcs11: or sdf: URI"));
  }
  std::string der = EncodeUriDer(uri);
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr ||
      PEM_write_bio(bio.get(), kUriPemLabel, "",
                    reinterpret_cast<const unsigned char*>(der.data()),
                    static_cast<long>(der.size())) <= 0) {
    return absl::InternalError("could not PEM-encode the URI");
  }
  char* data = nullptr;
  long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(length));
}

}  // namespace hsmd::proxy
