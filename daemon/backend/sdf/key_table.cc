#include "daemon/backend/sdf/key_table.h"

#include <openssl/sha.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/openssl_ptr.h"
#include "tools/softsdf/sm2_codec.h"

namespace hsmd::backend::sdf {
namespace {

void FillCommon(absl::string_view backend_name, absl::string_view device_name,
                uint32_t index, KeyUsage usage, absl::string_view label,
                v1::Key& key) {
  key.set_label(std::string(label));
  key.set_uri(CanonicalUri(device_name, index, usage));
  key.set_backend(std::string(backend_name));
  key.set_token_label(std::string(device_name));
}

std::string Describe(const KeyEntry& entry) {
  return absl::StrCat(UsageName(entry.usage), " key at index ", entry.index);
}

}  // namespace

std::string KeyIdOf(absl::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
         digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), 16));
}

absl::StatusOr<KeyEntry> MakeSm2Entry(absl::string_view backend_name,
                                      absl::string_view device_name,
                                      uint32_t index, KeyUsage usage,
                                      absl::string_view label,
                                      const ECCrefPublicKey& public_key) {
  absl::StatusOr<EvpPkeyPtr> pkey = softsdf::Sm2PublicKeyFromRef(public_key);
  if (!pkey.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the device's ", UsageName(usage), " public key at index ",
                     index, " is not an SM2 key: ", pkey.status().message()));
  }
  const int length = i2d_PUBKEY(pkey->get(), nullptr);
  if (length <= 0) {
    return absl::InternalError("encoding an SM2 public key failed");
  }
  std::string spki(static_cast<size_t>(length), '\0');
  unsigned char* p = reinterpret_cast<unsigned char*>(spki.data());
  if (i2d_PUBKEY(pkey->get(), &p) != length) {
    return absl::InternalError("encoding an SM2 public key failed");
  }
  KeyEntry entry;
  entry.index = index;
  entry.usage = usage;
  entry.label = std::string(label);
  entry.public_key = public_key;
  v1::Key& key = entry.key;
  FillCommon(backend_name, device_name, index, usage, label, key);
  key.set_key_id(KeyIdOf(spki));
  key.set_key_type(v1::KEY_TYPE_SM2);
  key.set_size_bits(256);
  key.set_curve(v1::CURVE_SM2);
  key.add_allowed_operations(usage == KeyUsage::kSign ? v1::OPERATION_SIGN
                                                      : v1::OPERATION_DECRYPT);
  key.set_public_key_der(std::move(spki));
  return entry;
}

KeyEntry MakeSm4Entry(absl::string_view backend_name,
                      absl::string_view device_name, uint32_t index,
                      absl::string_view label) {
  KeyEntry entry;
  entry.index = index;
  entry.usage = KeyUsage::kSm4;
  entry.label = std::string(label);
  v1::Key& key = entry.key;
  FillCommon(backend_name, device_name, index, KeyUsage::kSm4, label, key);
  key.set_key_id(KeyIdOf(key.uri()));
  key.set_key_type(v1::KEY_TYPE_SM4);
  key.set_size_bits(128);
  key.add_allowed_operations(v1::OPERATION_ENCRYPT);
  key.add_allowed_operations(v1::OPERATION_DECRYPT);
  return entry;
}

absl::StatusOr<const KeyEntry*> KeyTable::Resolve(const v1::KeyRef& ref) const {
  std::vector<const KeyEntry*> found;
  if (ref.ref_case() == v1::KeyRef::kKeyId) {
    for (const KeyEntry& e : entries_) {
      if (e.key.key_id() == ref.key_id()) found.push_back(&e);
    }
    if (found.empty()) {
      return absl::NotFoundError(absl::StrCat("no key with key_id ",
                                              ref.key_id(), " on SDF device \"",
                                              device_name_, "\""));
    }
  } else if (ref.ref_case() == v1::KeyRef::kUri) {
    absl::StatusOr<SdfUri> uri = SdfUri::Parse(ref.uri());
    if (!uri.ok()) return uri.status();
    if (!uri->device.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("sdf: URI ", ref.uri(),
                       " names no device: add device=NAME (the device name "
                       "from hsmd's configuration)"));
    }
    if (!uri->index.has_value() && !uri->object.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sdf: URI ", ref.uri(),
          " names no key: add index=N and usage=sign|enc|sm4 (or object=)"));
    }
    if (*uri->device != device_name_) {
      return absl::NotFoundError(
          absl::StrCat("no SDF device named \"", *uri->device,
                       "\" (this backend serves \"", device_name_, "\")"));
    }
    for (const KeyEntry& e : entries_) {
      if (uri->Matches(device_name_, e.index, e.usage, e.label)) {
        found.push_back(&e);
      }
    }
    if (found.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "no configured key on SDF device \"", device_name_, "\" matches ",
          ref.uri(), " (configured: ",
          absl::StrJoin(entries_, ", ",
                        [](std::string* out, const KeyEntry& e) {
                          absl::StrAppend(out, "index=", e.index,
                                          ";usage=", UsageName(e.usage));
                        }),
          ")"));
    }
  } else {
    return absl::InvalidArgumentError(
        "a key reference (uri or key_id) is required");
  }
  if (found.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(DescribeRef(ref), " matches ", found.size(), " keys (",
                     absl::StrJoin(found, ", ",
                                   [](std::string* out, const KeyEntry* e) {
                                     out->append(Describe(*e));
                                   }),
                     "); add usage=sign|enc|sm4 to the URI"));
  }
  return found.front();
}

absl::StatusOr<std::vector<v1::Key>> KeyTable::List(
    absl::string_view uri_filter, absl::string_view label) const {
  SdfUri filter;
  if (!uri_filter.empty()) {
    absl::StatusOr<SdfUri> parsed = SdfUri::Parse(uri_filter);
    if (!parsed.ok()) return parsed.status();
    filter = *std::move(parsed);
  }
  std::vector<v1::Key> out;
  for (const KeyEntry& e : entries_) {
    if (!filter.Matches(device_name_, e.index, e.usage, e.label)) continue;
    if (!label.empty() && e.label != label) continue;
    out.push_back(e.key);
  }
  return out;
}

std::string DescribeRef(const v1::KeyRef& ref) {
  if (ref.ref_case() == v1::KeyRef::kKeyId) {
    return absl::StrCat("key_id:", ref.key_id());
  }
  return ref.uri();
}

}  // namespace hsmd::backend::sdf
