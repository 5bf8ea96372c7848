#include "daemon/backend/sdf/device.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"
#include "daemon/backend/sdf/operations.h"
#include "daemon/backend/sdf/sdr.h"
#include "tools/softsdf/sm2_codec.h"

namespace hsmd::backend::sdf {
namespace {

// Used when the device reports no DEVICEINFO.BufferSize.
constexpr size_t kDefaultChunk = 4096;

// A fixed-size DEVICEINFO text field: NUL-padded (or space-padded), not
// terminated when full; bytes outside printable ASCII shown as '?'.
std::string FixedField(const unsigned char* data, size_t size) {
  std::string out;
  for (size_t i = 0; i < size && data[i] != '\0'; ++i) {
    const char c = static_cast<char>(data[i]);
    out.push_back(absl::ascii_isprint(static_cast<unsigned char>(c)) ? c : '?');
  }
  return std::string(absl::StripTrailingAsciiWhitespace(out));
}

std::string Where(const DeviceConfig& config) {
  return absl::StrCat("SDF device \"", config.device_name, "\"");
}

}  // namespace

Device::Device(std::shared_ptr<const Library> library,
               const DeviceConfig& config, GrantFn grant, void* handle)
    : library_(std::move(library)),
      config_(config),
      grant_(std::move(grant)),
      handle_(handle) {
  for (const DeviceKeySpec& spec : config_.keys) {
    if (spec.usage == KeyUsage::kSm4) continue;
    if (std::find(private_indexes_.begin(), private_indexes_.end(),
                  spec.index) == private_indexes_.end()) {
      private_indexes_.push_back(spec.index);
    }
  }
}

absl::StatusOr<std::shared_ptr<Device>> Device::Open(
    std::shared_ptr<const Library> library, const DeviceConfig& config,
    GrantFn grant) {
  if (config.pool_size == 0) {
    return absl::InvalidArgumentError("session pool size must be at least 1");
  }
  void* handle = nullptr;
  const int rc = library->fns().OpenDevice(&handle);
  if (rc != SDR_OK) {
    return SdfError(
        rc, "SDF_OpenDevice",
        absl::StrCat("opening ", Where(config), " with ", library->path()));
  }
  std::shared_ptr<Device> device(
      new Device(std::move(library), config, std::move(grant), handle));
  std::vector<std::unique_ptr<SdfSession>> sessions;
  auto fail = [&](absl::Status status) {
    for (auto& s : sessions) device->CloseSession(*s);
    sessions.clear();
    return status;
  };
  for (uint32_t i = 0; i < config.pool_size; ++i) {
    absl::StatusOr<std::unique_ptr<SdfSession>> session = device->OpenSession();
    if (!session.ok()) return fail(session.status());
    sessions.push_back(*std::move(session));
  }
  if (absl::Status s = device->ReadDevice(*sessions.front()); !s.ok()) {
    return fail(s);
  }
  if (config.self_test) {
    if (absl::Status s = device->SelfTest(*sessions.front()); !s.ok()) {
      return fail(s);
    }
  }
  Device* raw = device.get();
  // The pool's hooks hold a raw pointer: the pool lives inside the device.
  absl::StatusOr<std::unique_ptr<SessionPool>> pool = SessionPool::New(
      std::move(sessions), [raw]() { return raw->OpenSession(); },
      [raw](SdfSession& s) { raw->CloseSession(s); });
  if (!pool.ok()) return pool.status();
  device->pool_ = *std::move(pool);
  return device;
}

Device::~Device() { Close(absl::ZeroDuration(), true); }

absl::StatusOr<std::unique_ptr<SdfSession>> Device::OpenSession() {
  auto session = std::make_unique<SdfSession>();
  const int rc = fns().OpenSession(handle_, &session->handle);
  if (rc != SDR_OK) {
    return SdfError(rc, "SDF_OpenSession",
                    absl::StrCat("opening a session on ", Where(config_)));
  }
  if (absl::Status s = grant_(session->handle); !s.ok()) {
    fns().CloseSession(session->handle);
    return s;
  }
  return session;
}

void Device::CloseSession(SdfSession& session) {
  // Failures change nothing: the session is dropped either way.
  if (fns().DestroyKey != nullptr) {
    for (const auto& [index, key] : session.sm4_keys) {
      fns().DestroyKey(session.handle, key);
    }
  }
  session.sm4_keys.clear();
  for (uint32_t index : private_indexes_) {
    fns().ReleasePrivateKeyAccessRight(session.handle, index);
  }
  fns().CloseSession(session.handle);
  session.handle = nullptr;
}

const DeviceKeySpec* Device::SpecFor(const KeyEntry& key) const {
  for (const DeviceKeySpec& spec : config_.keys) {
    if (spec.index == key.index && spec.usage == key.usage) return &spec;
  }
  return nullptr;
}

absl::Status Device::ReadDevice(SdfSession& first) {
  DEVICEINFO info;
  std::memset(&info, 0, sizeof(info));
  int rc = fns().GetDeviceInfo(first.handle, &info);
  if (rc != SDR_OK) {
    return SdfError(rc, "SDF_GetDeviceInfo",
                    absl::StrCat("reading ", Where(config_)));
  }
  facts_.issuer = FixedField(info.IssuerName, sizeof(info.IssuerName));
  facts_.device_name = FixedField(info.DeviceName, sizeof(info.DeviceName));
  facts_.serial = FixedField(info.DeviceSerial, sizeof(info.DeviceSerial));
  facts_.device_version = info.DeviceVersion;
  facts_.standard_version = info.StandardVersion;
  facts_.buffer_size = info.BufferSize;
  if (config_.max_chunk_bytes != 0) {
    chunk_ = config_.max_chunk_bytes;
  } else if (info.BufferSize != 0) {
    chunk_ = info.BufferSize;
  } else {
    chunk_ = kDefaultChunk;
  }

  std::vector<KeyEntry> entries;
  for (const DeviceKeySpec& spec : config_.keys) {
    if (spec.usage == KeyUsage::kSm4) {
      entries.push_back(MakeSm4Entry(config_.backend_name, config_.device_name,
                                     spec.index, spec.label));
      continue;
    }
    ECCrefPublicKey public_key;
    std::memset(&public_key, 0, sizeof(public_key));
    const bool sign = spec.usage == KeyUsage::kSign;
    rc = sign ? fns().ExportSignPublicKey_ECC(first.handle, spec.index,
                                              &public_key)
              : fns().ExportEncPublicKey_ECC(first.handle, spec.index,
                                             &public_key);
    if (rc != SDR_OK) {
      return SdfError(
          rc,
          sign ? "SDF_ExportSignPublicKey_ECC" : "SDF_ExportEncPublicKey_ECC",
          absl::StrCat("reading the ", UsageName(spec.usage),
                       " public key at index ", spec.index, " of ",
                       Where(config_)));
    }
    ASSIGN_OR_RETURN(
        KeyEntry entry,
        MakeSm2Entry(config_.backend_name, config_.device_name, spec.index,
                     spec.usage, spec.label, public_key));
    entries.push_back(std::move(entry));
  }
  keys_ = KeyTable(config_.device_name, std::move(entries));

  // An SM4 key the device does not hold is a configuration error, found
  // now rather than at the first request (when the library can tell).
  const bool can_use_sm4 = fns().Encrypt != nullptr && fns().Decrypt != nullptr;
  for (const KeyEntry& entry : keys_.entries()) {
    if (entry.usage != KeyUsage::kSm4 || !can_use_sm4) continue;
    absl::StatusOr<void*> key = Sm4Handle(first, entry);
    if (!key.ok() && !absl::IsUnimplemented(key.status())) {
      return key.status();
    }
  }
  return absl::OkStatus();
}

absl::Status Device::SelfTest(SdfSession& first) {
  // Any 32 bytes do as e.
  std::string e(kSm3DigestBytes, '\0');
  for (size_t i = 0; i < e.size(); ++i) e[i] = static_cast<char>(0xa5 ^ i);
  for (const KeyEntry& entry : keys_.entries()) {
    if (entry.usage != KeyUsage::kSign) continue;
    const std::string what =
        absl::StrCat("self-test of the signing key at index ", entry.index,
                     " of ", Where(config_));
    absl::StatusOr<std::string> der =
        InternalSign(fns(), first.handle, entry.index, e);
    if (!der.ok()) {
      return absl::Status(der.status().code(),
                          absl::StrCat(what, ": ", der.status().message()));
    }
    ASSIGN_OR_RETURN(EvpPkeyPtr pkey,
                     softsdf::Sm2PublicKeyFromRef(entry.public_key));
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
    // OpenSSL's SM2 verify without a digest set takes the input as e.
    if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) != 1 ||
        EVP_PKEY_verify(
            ctx.get(), reinterpret_cast<const unsigned char*>(der->data()),
            der->size(), reinterpret_cast<const unsigned char*>(e.data()),
            e.size()) != 1) {
      return absl::FailedPreconditionError(absl::StrCat(
          what,
          ": the device's signature does not verify with its exported "
          "public key (the library's ECCSignature / ECCrefPublicKey layout "
          "differs from GM/T 0018's right-aligned 64-byte fields)"));
    }
    if (fns().ExternalVerify_ECC == nullptr) continue;
    ECCrefPublicKey public_key = entry.public_key;
    ECCSignature signature;
    if (absl::Status s = softsdf::SignatureFromDer(*der, &signature); !s.ok()) {
      return absl::InternalError(absl::StrCat(what, ": ", s.message()));
    }
    const int rc = fns().ExternalVerify_ECC(
        first.handle, config_.sm2_sign_alg, &public_key,
        reinterpret_cast<unsigned char*>(e.data()),
        static_cast<unsigned int>(e.size()), &signature);
    if (rc != SDR_OK) {
      return SdfError(rc, "SDF_ExternalVerify_ECC",
                      absl::StrCat(what, " (SM2 signature algorithm id 0x",
                                   absl::Hex(config_.sm2_sign_alg), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<void*> Device::Sm4Handle(SdfSession& session,
                                        const KeyEntry& key) {
  if (auto it = session.sm4_keys.find(key.index);
      it != session.sm4_keys.end()) {
    return it->second;
  }
  const DeviceKeySpec* spec = SpecFor(key);
  void* handle = nullptr;
  const std::string context =
      absl::StrCat("the SM4 key at index ", key.index, " of ", Where(config_));
  if (spec != nullptr && !spec->wrapped_key.empty()) {
    if (fns().ImportKeyWithKEK == nullptr) {
      return absl::UnimplementedError(
          absl::StrCat(library().Missing("SDF_ImportKeyWithKEK"), ": ", context,
                       " is configured as a wrapped key"));
    }
    std::string wrapped = spec->wrapped_key;
    const int rc = fns().ImportKeyWithKEK(
        session.handle, config_.sm4_ecb_alg, key.index,
        reinterpret_cast<unsigned char*>(wrapped.data()),
        static_cast<unsigned int>(wrapped.size()), &handle);
    if (rc != SDR_OK) {
      return SdfError(rc, "SDF_ImportKeyWithKEK",
                      absl::StrCat("unwrapping ", context));
    }
  } else {
    if (fns().GetSymmKeyHandle == nullptr) {
      return absl::UnimplementedError(absl::StrCat(
          library().Missing("SDF_GetSymmKeyHandle"), ": ", context,
          " cannot be used (configure it as a key wrapped under the "
          "device's key-encryption key to use SDF_ImportKeyWithKEK)"));
    }
    const int rc = fns().GetSymmKeyHandle(session.handle, key.index, &handle);
    if (rc != SDR_OK) {
      return SdfError(rc, "SDF_GetSymmKeyHandle",
                      absl::StrCat("opening ", context));
    }
  }
  session.sm4_keys[key.index] = handle;
  return handle;
}

void Device::DropSm4Handle(SdfSession& session, uint32_t index) {
  auto it = session.sm4_keys.find(index);
  if (it == session.sm4_keys.end()) return;
  if (fns().DestroyKey != nullptr) fns().DestroyKey(session.handle, it->second);
  session.sm4_keys.erase(it);
}

void Device::Close(absl::Duration grace, bool release) {
  {
    std::lock_guard<std::mutex> lock(close_mu_);
    if (closed_) return;
    closed_ = true;
  }
  if (pool_ != nullptr) pool_->Close(grace, release);
  // Nothing to do about a failure: the handle is dropped either way.
  fns().CloseDevice(handle_);
}

}  // namespace hsmd::backend::sdf
