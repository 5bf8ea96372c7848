#include "tests/provider/fake_hsmd.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace hsmd::testing {
namespace {

constexpr char kToken[] = "demo";
constexpr char kSdfDevice[] = "soft0";
// GM/T 0009's default distinguishing ID, which hsmd uses for message input.
constexpr char kSm2DefaultId[] = "1234567812345678";

class FakeClient : public client::Client {
 public:
  FakeClient(std::shared_ptr<FakeHsmd> hsmd, client::ClientOptions options)
      : hsmd_(std::move(hsmd)), options_(std::move(options)) {}

  const client::ClientOptions& options() const override { return options_; }

  absl::Status Call(absl::string_view method,
                    const google::protobuf::MessageLite& request,
                    google::protobuf::MessageLite* response,
                    const client::CallOptions& /*call_options*/) override {
    return hsmd_->Call(method, request, response, options_.socket_path);
  }

 private:
  std::shared_ptr<FakeHsmd> hsmd_;
  client::ClientOptions options_;
};

const char* MdName(v1::HashAlgorithm hash) {
  switch (hash) {
    case v1::HASH_ALGORITHM_SHA1:
      return "SHA1";
    case v1::HASH_ALGORITHM_SHA224:
      return "SHA224";
    case v1::HASH_ALGORITHM_SHA256:
      return "SHA256";
    case v1::HASH_ALGORITHM_SHA384:
      return "SHA384";
    case v1::HASH_ALGORITHM_SHA512:
      return "SHA512";
    case v1::HASH_ALGORITHM_MD5_SHA1:
      return "MD5-SHA1";
    default:
      return nullptr;
  }
}

absl::StatusOr<std::string> Hash(const char* md, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), out, &length,
                 EVP_get_digestbyname(md), nullptr) != 1) {
    return absl::InternalError("digest failed");
  }
  return std::string(reinterpret_cast<char*>(out), length);
}

absl::StatusOr<EvpPkeyPtr> Generate(const char* type, const char* curve,
                                    int bits) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_keygen_init(ctx.get()) <= 0 ||
      (curve != nullptr &&
       EVP_PKEY_CTX_set_group_name(ctx.get(), curve) <= 0) ||
      (bits > 0 && EVP_PKEY_CTX_set_rsa_keygen_bits(ctx.get(), bits) <= 0) ||
      EVP_PKEY_generate(ctx.get(), &pkey) <= 0) {
    return absl::InternalError(absl::StrCat("cannot generate ", type));
  }
  return EvpPkeyPtr(pkey);
}

std::string Spki(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  int length = i2d_PUBKEY(pkey, &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<FakeHsmd>> FakeHsmd::New() {
  std::shared_ptr<FakeHsmd> hsmd(new FakeHsmd());
  ASSIGN_OR_RETURN(EvpPkeyPtr rsa, Generate("RSA", nullptr, 2048));
  RETURN_IF_ERROR(hsmd->AddKey("rsa-2048", v1::KEY_TYPE_RSA, std::move(rsa),
                               v1::CURVE_UNSPECIFIED));
  ASSIGN_OR_RETURN(EvpPkeyPtr p256, Generate("EC", "P-256", 0));
  RETURN_IF_ERROR(hsmd->AddKey("ec-p256", v1::KEY_TYPE_EC, std::move(p256),
                               v1::CURVE_P256));
  ASSIGN_OR_RETURN(EvpPkeyPtr p384, Generate("EC", "P-384", 0));
  RETURN_IF_ERROR(hsmd->AddKey("ec-p384", v1::KEY_TYPE_EC, std::move(p384),
                               v1::CURVE_P384));
  ASSIGN_OR_RETURN(EvpPkeyPtr ed, Generate("ED25519", nullptr, 0));
  RETURN_IF_ERROR(hsmd->AddKey("ed25519", v1::KEY_TYPE_ED25519, std::move(ed),
                               v1::CURVE_ED25519));
  ASSIGN_OR_RETURN(EvpPkeyPtr sm2_sign, Generate("SM2", nullptr, 0));
  RETURN_IF_ERROR(hsmd->AddSdfKey("sm2-sign", v1::KEY_TYPE_SM2,
                                  std::move(sm2_sign), 1, "sign",
                                  v1::OPERATION_SIGN));
  ASSIGN_OR_RETURN(EvpPkeyPtr sm2_enc, Generate("SM2", nullptr, 0));
  RETURN_IF_ERROR(hsmd->AddSdfKey("sm2-enc", v1::KEY_TYPE_SM2,
                                  std::move(sm2_enc), 1, "enc",
                                  v1::OPERATION_DECRYPT));
  RETURN_IF_ERROR(hsmd->AddSdfKey("sm4", v1::KEY_TYPE_SM4, nullptr, 1, "sm4",
                                  v1::OPERATION_ENCRYPT));
  return hsmd;
}

absl::Status FakeHsmd::AddSdfKey(const std::string& label, v1::KeyType type,
                                 EvpPkeyPtr pkey, int index,
                                 const std::string& usage,
                                 v1::Operation operation) {
  Entry entry;
  entry.key.set_label(label);
  entry.key.set_key_type(type);
  entry.key.add_allowed_operations(operation);
  entry.key.set_uri(absl::StrCat("sdf:device=", kSdfDevice, ";index=", index,
                                 ";usage=", usage));
  std::string hashed = entry.key.uri();
  if (pkey != nullptr) {
    entry.key.set_size_bits(
        static_cast<uint32_t>(EVP_PKEY_get_bits(pkey.get())));
    entry.key.set_curve(v1::CURVE_SM2);
    entry.key.set_public_key_der(Spki(pkey.get()));
    hashed = entry.key.public_key_der();
  } else {
    entry.key.set_size_bits(128);
    entry.key.add_allowed_operations(v1::OPERATION_DECRYPT);
  }
  unsigned char digest[32];
  SHA256(reinterpret_cast<const unsigned char*>(hashed.data()), hashed.size(),
         digest);
  entry.key.set_key_id(absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), 16)));
  entry.key.set_backend("sdf");
  entry.key.set_token_label(kSdfDevice);
  entry.pkey = std::move(pkey);
  keys_.emplace(label, std::move(entry));
  return absl::OkStatus();
}

absl::Status FakeHsmd::AddKey(const std::string& label, v1::KeyType type,
                              EvpPkeyPtr pkey, v1::Curve curve) {
  Entry entry;
  entry.key.set_label(label);
  entry.key.set_id(label);
  entry.key.set_key_type(type);
  entry.key.set_size_bits(static_cast<uint32_t>(EVP_PKEY_get_bits(pkey.get())));
  entry.key.set_curve(curve);
  entry.key.add_allowed_operations(v1::OPERATION_SIGN);
  if (type == v1::KEY_TYPE_RSA) {
    entry.key.add_allowed_operations(v1::OPERATION_DECRYPT);
  }
  if (type == v1::KEY_TYPE_EC) {
    entry.key.add_allowed_operations(v1::OPERATION_DERIVE);
  }
  std::string spki = Spki(pkey.get());
  entry.key.set_public_key_der(spki);
  unsigned char digest[32];
  SHA256(reinterpret_cast<const unsigned char*>(spki.data()), spki.size(),
         digest);
  entry.key.set_key_id(absl::BytesToHexString(
      absl::string_view(reinterpret_cast<char*>(digest), 16)));
  entry.key.set_uri(absl::StrCat("pkcs11:token=", kToken, ";object=", label,
                                 ";type=private"));
  entry.key.set_backend("fake");
  entry.key.set_token_label(kToken);
  entry.pkey = std::move(pkey);
  keys_.emplace(label, std::move(entry));
  return absl::OkStatus();
}

std::unique_ptr<client::Client> FakeHsmd::NewClient(
    const client::ClientOptions& options) {
  // The fake lives as long as any client (the provider may outlive a test's
  // reference).
  return std::make_unique<FakeClient>(shared_from_this(), options);
}

void FakeHsmd::set_unavailable(bool unavailable) {
  absl::MutexLock lock(&mu_);
  unavailable_ = unavailable;
}

int FakeHsmd::calls(const std::string& method) const {
  absl::MutexLock lock(&mu_);
  auto it = calls_.find(method);
  return it == calls_.end() ? 0 : it->second;
}

const v1::Key& FakeHsmd::key(const std::string& label) const {
  return keys_.at(label).key;
}

EVP_PKEY* FakeHsmd::private_key(const std::string& label) const {
  return keys_.at(label).pkey.get();
}

v1::SignRequest FakeHsmd::last_sign_request() const {
  absl::MutexLock lock(&mu_);
  return last_sign_request_;
}

void FakeHsmd::set_certificate(const std::string& label,
                               const std::string& der) {
  absl::MutexLock lock(&mu_);
  certificates_[label] = der;
}

absl::Status FakeHsmd::Call(absl::string_view method,
                            const google::protobuf::MessageLite& request,
                            google::protobuf::MessageLite* response,
                            const std::string& socket_path) {
  std::string name(method.substr(method.rfind('/') + 1));
  {
    absl::MutexLock lock(&mu_);
    calls_[name]++;
    if (unavailable_) {
      return absl::UnavailableError(absl::StrCat(
          "hsmd unavailable at ", socket_path, ": connection refused"));
    }
  }
  // Round-trip through the wire format, as the real client does.
  std::string bytes = request.SerializeAsString();
  auto answer = [&](auto result) -> absl::Status {
    if (!result.ok()) return result.status();
    if (!response->ParseFromString(result->SerializeAsString())) {
      return absl::InternalError("response does not parse");
    }
    return absl::OkStatus();
  };
  if (name == "ListKeys") {
    v1::ListKeysRequest r;
    r.ParseFromString(bytes);
    return answer(ListKeys(r));
  }
  if (name == "GetKey") {
    v1::GetKeyRequest r;
    r.ParseFromString(bytes);
    return answer(GetKey(r));
  }
  if (name == "Sign") {
    v1::SignRequest r;
    r.ParseFromString(bytes);
    return answer(Sign(r));
  }
  if (name == "Decrypt") {
    v1::DecryptRequest r;
    r.ParseFromString(bytes);
    return answer(Decrypt(r));
  }
  if (name == "Derive") {
    v1::DeriveRequest r;
    r.ParseFromString(bytes);
    return answer(Derive(r));
  }
  if (name == "GenerateRandom") {
    v1::GenerateRandomRequest r;
    r.ParseFromString(bytes);
    return answer(GenerateRandom(r));
  }
  return absl::UnimplementedError(absl::StrCat("fake hsmd has no ", method));
}

absl::StatusOr<std::vector<const FakeHsmd::Entry*>> FakeHsmd::Match(
    const std::string& uri_filter) const {
  std::vector<const Entry*> out;
  if (uri_filter.empty()) {
    for (const auto& [label, entry] : keys_) out.push_back(&entry);
    return out;
  }
  absl::string_view path = uri_filter;
  if (absl::ConsumePrefix(&path, "pkcs11:")) {
    std::string token;
    std::string object;
    path = path.substr(0, path.find('?'));
    for (absl::string_view attribute : absl::StrSplit(path, ';')) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(attribute, absl::MaxSplits('=', 1));
      if (kv.first == "token") token = kv.second;
      if (kv.first == "object") object = kv.second;
    }
    if (!token.empty() && token != kToken) return out;
    for (const auto& [label, entry] : keys_) {
      if (!absl::StartsWith(entry.key.uri(), "pkcs11:")) continue;
      if (object.empty() || object == label) out.push_back(&entry);
    }
    return out;
  }
  if (absl::ConsumePrefix(&path, "sdf:")) {
    // Like hsmd: any subset of device, index, usage and object; nothing
    // else.
    std::map<std::string, std::string> wanted;
    for (absl::string_view attribute : absl::StrSplit(path, ';')) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(attribute, absl::MaxSplits('=', 1));
      if (kv.first != "device" && kv.first != "index" && kv.first != "usage" &&
          kv.first != "object") {
        return absl::InvalidArgumentError(absl::StrCat(
            "sdf: URI attribute \"", kv.first,
            "\" is unknown (sdf: URIs take device, index, usage and object)"));
      }
      wanted[kv.first] = kv.second;
    }
    for (const auto& [label, entry] : keys_) {
      if (!absl::StartsWith(entry.key.uri(), "sdf:")) continue;
      bool match = true;
      for (const auto& [name, value] : wanted) {
        if (name == "object") {
          match &= value == label;
        } else {
          match &= absl::StrContains(absl::StrCat(entry.key.uri(), ";"),
                                     absl::StrCat(name, "=", value, ";"));
        }
      }
      if (match) out.push_back(&entry);
    }
    return out;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported scheme in \"", uri_filter, "\""));
}

absl::StatusOr<const FakeHsmd::Entry*> FakeHsmd::Find(
    const v1::KeyRef& ref) const {
  if (ref.has_key_id()) {
    for (const auto& [label, entry] : keys_) {
      if (entry.key.key_id() == ref.key_id()) return &entry;
    }
    return absl::NotFoundError(
        absl::StrCat("no key with key_id ", ref.key_id()));
  }
  ASSIGN_OR_RETURN(std::vector<const Entry*> matches, Match(ref.uri()));
  if (matches.empty()) {
    return absl::NotFoundError(absl::StrCat("no key matches ", ref.uri()));
  }
  if (matches.size() > 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(ref.uri(), " matches ", matches.size(), " keys"));
  }
  return matches[0];
}

absl::StatusOr<v1::ListKeysResponse> FakeHsmd::ListKeys(
    const v1::ListKeysRequest& r) {
  if (absl::StrContains(r.uri_filter(), "pin-value")) {
    return absl::InvalidArgumentError(
        "pin-value is not accepted: hsmd holds the PIN");
  }
  ASSIGN_OR_RETURN(std::vector<const Entry*> matches, Match(r.uri_filter()));
  v1::ListKeysResponse response;
  absl::MutexLock lock(&mu_);
  for (const Entry* entry : matches) {
    v1::Key* key = response.add_keys();
    *key = entry->key;
    auto cert = certificates_.find(entry->key.label());
    if (cert != certificates_.end()) key->set_certificate_der(cert->second);
  }
  return response;
}

absl::StatusOr<v1::GetKeyResponse> FakeHsmd::GetKey(
    const v1::GetKeyRequest& r) {
  ASSIGN_OR_RETURN(const Entry* entry, Find(r.key()));
  v1::GetKeyResponse response;
  *response.mutable_key() = entry->key;
  return response;
}

absl::StatusOr<v1::SignResponse> FakeHsmd::Sign(const v1::SignRequest& r) {
  {
    absl::MutexLock lock(&mu_);
    last_sign_request_ = r;
  }
  ASSIGN_OR_RETURN(const Entry* entry, Find(r.key()));
  EVP_PKEY* pkey = entry->pkey.get();
  const v1::SignatureAlgorithm& alg = r.algorithm();
  std::string signature;
  if (entry->key.key_type() == v1::KEY_TYPE_SM2 ||
      entry->key.key_type() == v1::KEY_TYPE_SM4) {
    ASSIGN_OR_RETURN(signature, Sm2Sign(*entry, r));
  } else if (alg.has_sm2()) {
    return absl::InvalidArgumentError("SM2 signatures need an SM2 key");
  } else if (alg.has_ed25519()) {
    if (entry->key.key_type() != v1::KEY_TYPE_ED25519) {
      return absl::InvalidArgumentError("Ed25519 needs an Ed25519 key");
    }
    if (!r.has_message()) {
      return absl::InvalidArgumentError("Ed25519 signs messages only");
    }
    EvpMdCtxPtr md(EVP_MD_CTX_new());
    size_t length = 64;
    signature.resize(length);
    if (EVP_DigestSignInit(md.get(), nullptr, nullptr, nullptr, pkey) != 1 ||
        EVP_DigestSign(
            md.get(), reinterpret_cast<unsigned char*>(signature.data()),
            &length, reinterpret_cast<const unsigned char*>(r.message().data()),
            r.message().size()) != 1) {
      return absl::InternalError("Ed25519 signing failed");
    }
    signature.resize(length);
  } else {
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(pkey, nullptr));
    if (EVP_PKEY_sign_init(ctx.get()) != 1) {
      return absl::InternalError("sign init failed");
    }
    v1::HashAlgorithm hash = v1::HASH_ALGORITHM_UNSPECIFIED;
    if (alg.has_rsa_pkcs1() || alg.has_rsa_pss()) {
      if (entry->key.key_type() != v1::KEY_TYPE_RSA) {
        return absl::InvalidArgumentError("RSA algorithm for a non-RSA key");
      }
      hash =
          alg.has_rsa_pkcs1() ? alg.rsa_pkcs1().hash() : alg.rsa_pss().hash();
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), alg.has_rsa_pkcs1()
                                                  ? RSA_PKCS1_PADDING
                                                  : RSA_PKCS1_PSS_PADDING);
    } else if (alg.has_ecdsa()) {
      if (entry->key.key_type() != v1::KEY_TYPE_EC) {
        return absl::InvalidArgumentError("ECDSA needs an EC key");
      }
      hash = alg.ecdsa().hash();
      if (hash == v1::HASH_ALGORITHM_UNSPECIFIED) {
        return absl::InvalidArgumentError("ECDSA needs a hash");
      }
    } else {
      return absl::InvalidArgumentError("no signature algorithm");
    }
    std::string input = r.has_digest() ? r.digest() : r.message();
    const char* md = MdName(hash);
    if (md != nullptr) {
      if (r.has_message()) {
        ASSIGN_OR_RETURN(input, Hash(md, input));
      } else if (input.size() != static_cast<size_t>(EVP_MD_get_size(
                                     EVP_get_digestbyname(md)))) {
        return absl::InvalidArgumentError(
            absl::StrCat("digest of ", input.size(), " bytes for ", md));
      }
      if (!alg.has_ecdsa() && EVP_PKEY_CTX_set_signature_md(
                                  ctx.get(), EVP_get_digestbyname(md)) != 1) {
        return absl::InternalError("set md failed");
      }
    } else if (!r.has_digest()) {
      return absl::InvalidArgumentError("raw PKCS#1 needs digest input");
    }
    if (alg.has_rsa_pss()) {
      const char* mgf1 = MdName(alg.rsa_pss().mgf1_hash());
      if (mgf1 != nullptr) {
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), EVP_get_digestbyname(mgf1));
      }
      int salt = alg.rsa_pss().has_salt_length()
                     ? static_cast<int>(alg.rsa_pss().salt_length())
                     : RSA_PSS_SALTLEN_DIGEST;
      if (EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), salt) != 1) {
        return absl::InvalidArgumentError("bad salt length");
      }
    }
    size_t length = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(input.data());
    if (EVP_PKEY_sign(ctx.get(), nullptr, &length, in, input.size()) != 1) {
      return absl::InvalidArgumentError("signing failed");
    }
    signature.resize(length);
    if (EVP_PKEY_sign(ctx.get(),
                      reinterpret_cast<unsigned char*>(signature.data()),
                      &length, in, input.size()) != 1) {
      return absl::InvalidArgumentError("signing failed");
    }
    signature.resize(length);
  }
  v1::SignResponse response;
  response.set_signature(signature);
  response.set_key_id(entry->key.key_id());
  return response;
}

absl::StatusOr<std::string> FakeHsmd::Sm2Sign(const Entry& entry,
                                              const v1::SignRequest& r) {
  if (!r.algorithm().has_sm2()) {
    return absl::InvalidArgumentError(absl::StrCat(
        entry.key.uri(), " is an ", v1::KeyType_Name(entry.key.key_type()),
        " key: only SM2 signatures"));
  }
  if (entry.key.key_type() != v1::KEY_TYPE_SM2 ||
      entry.key.allowed_operations(0) != v1::OPERATION_SIGN) {
    return absl::FailedPreconditionError(
        absl::StrCat(entry.key.uri(), " is not a signing key"));
  }
  std::string signature(72, '\0');
  size_t length = signature.size();
  auto* out = reinterpret_cast<unsigned char*>(signature.data());
  if (r.has_digest()) {
    if (r.digest().size() != 32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SM2 digest input must be e (32 bytes), got ", r.digest().size()));
    }
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(entry.pkey.get(), nullptr));
    if (EVP_PKEY_sign_init(ctx.get()) != 1 ||
        EVP_PKEY_sign(ctx.get(), out, &length,
                      reinterpret_cast<const unsigned char*>(r.digest().data()),
                      r.digest().size()) != 1) {
      return absl::InternalError("SM2 signing failed");
    }
  } else {
    std::string id = r.algorithm().sm2().distinguishing_id();
    if (id.empty()) id = kSm2DefaultId;
    EvpMdCtxPtr md(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit(md.get(), &pctx, EVP_sm3(), nullptr,
                           entry.pkey.get()) != 1 ||
        EVP_PKEY_CTX_set1_id(pctx, id.data(), static_cast<int>(id.size())) !=
            1 ||
        EVP_DigestSign(
            md.get(), out, &length,
            reinterpret_cast<const unsigned char*>(r.message().data()),
            r.message().size()) != 1) {
      return absl::InternalError("SM2 signing failed");
    }
  }
  signature.resize(length);
  return signature;
}

absl::StatusOr<std::string> FakeHsmd::Sm2Decrypt(
    const Entry& entry, const std::string& ciphertext) {
  if (entry.key.key_type() != v1::KEY_TYPE_SM2 ||
      entry.key.allowed_operations(0) != v1::OPERATION_DECRYPT) {
    return absl::FailedPreconditionError(
        absl::StrCat(entry.key.uri(), " is not an SM2 encryption key"));
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(entry.pkey.get(), nullptr));
  std::string plaintext(ciphertext.size(), '\0');
  size_t length = plaintext.size();
  if (EVP_PKEY_decrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_decrypt(
          ctx.get(), reinterpret_cast<unsigned char*>(plaintext.data()),
          &length, reinterpret_cast<const unsigned char*>(ciphertext.data()),
          ciphertext.size()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("decryption failed");
  }
  plaintext.resize(length);
  return plaintext;
}

absl::StatusOr<v1::DeriveResponse> FakeHsmd::Derive(
    const v1::DeriveRequest& r) {
  ASSIGN_OR_RETURN(const Entry* entry, Find(r.key()));
  if (!r.has_ecdh()) {
    return absl::InvalidArgumentError("algorithm: is required (ecdh)");
  }
  if (entry->key.key_type() != v1::KEY_TYPE_EC) {
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm ecdh does not fit key type ",
        v1::KeyType_Name(entry->key.key_type()), " of ", entry->key.uri()));
  }
  const std::string& der = r.ecdh().peer_public_key();
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  EvpPkeyPtr peer(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (peer == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "peer_public_key: is not a DER SubjectPublicKeyInfo");
  }
  EvpPkeyCtxPtr ctx(
      EVP_PKEY_CTX_new_from_pkey(nullptr, entry->pkey.get(), nullptr));
  size_t length = 0;
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &length) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(
        "peer_public_key: is not on the curve of ", entry->key.uri()));
  }
  std::string secret(length, '\0');
  if (EVP_PKEY_derive(ctx.get(),
                      reinterpret_cast<unsigned char*>(secret.data()),
                      &length) != 1) {
    ERR_clear_error();
    return absl::InternalError("EVP_PKEY_derive failed");
  }
  secret.resize(length);
  v1::DeriveResponse response;
  response.set_shared_secret(std::move(secret));
  response.set_key_id(entry->key.key_id());
  return response;
}

absl::StatusOr<v1::DecryptResponse> FakeHsmd::Decrypt(
    const v1::DecryptRequest& r) {
  ASSIGN_OR_RETURN(const Entry* entry, Find(r.key()));
  if (r.algorithm().has_sm2()) {
    ASSIGN_OR_RETURN(std::string plaintext, Sm2Decrypt(*entry, r.ciphertext()));
    v1::DecryptResponse response;
    response.set_plaintext(plaintext);
    response.set_key_id(entry->key.key_id());
    return response;
  }
  if (entry->key.key_type() != v1::KEY_TYPE_RSA) {
    return absl::InvalidArgumentError("decryption needs an RSA key");
  }
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(entry->pkey.get(), nullptr));
  if (EVP_PKEY_decrypt_init(ctx.get()) != 1) {
    return absl::InternalError("decrypt init failed");
  }
  const v1::DecryptionAlgorithm& alg = r.algorithm();
  if (alg.has_rsa_oaep()) {
    const char* md = MdName(alg.rsa_oaep().hash());
    const char* mgf1 = MdName(alg.rsa_oaep().mgf1_hash());
    if (md == nullptr) return absl::InvalidArgumentError("OAEP needs a hash");
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING);
    EVP_PKEY_CTX_set_rsa_oaep_md(ctx.get(), EVP_get_digestbyname(md));
    EVP_PKEY_CTX_set_rsa_mgf1_md(
        ctx.get(), EVP_get_digestbyname(mgf1 != nullptr ? mgf1 : md));
    if (!alg.rsa_oaep().label().empty()) {
      void* label = OPENSSL_memdup(alg.rsa_oaep().label().data(),
                                   alg.rsa_oaep().label().size());
      EVP_PKEY_CTX_set0_rsa_oaep_label(
          ctx.get(), label, static_cast<int>(alg.rsa_oaep().label().size()));
    }
  } else if (alg.has_rsa_pkcs1()) {
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  } else {
    return absl::InvalidArgumentError("no decryption algorithm");
  }
  const auto* in =
      reinterpret_cast<const unsigned char*>(r.ciphertext().data());
  std::string plaintext(
      static_cast<size_t>(EVP_PKEY_get_size(entry->pkey.get())), '\0');
  size_t length = plaintext.size();
  if (EVP_PKEY_decrypt(ctx.get(),
                       reinterpret_cast<unsigned char*>(plaintext.data()),
                       &length, in, r.ciphertext().size()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("decryption failed");
  }
  plaintext.resize(length);
  v1::DecryptResponse response;
  response.set_plaintext(plaintext);
  response.set_key_id(entry->key.key_id());
  return response;
}

absl::StatusOr<v1::GenerateRandomResponse> FakeHsmd::GenerateRandom(
    const v1::GenerateRandomRequest& r) {
  if (r.length() < 1 || r.length() > 65536) {
    return absl::InvalidArgumentError("length must be 1..65536");
  }
  std::string data(r.length(), '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(data.data()),
                 static_cast<int>(data.size())) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  v1::GenerateRandomResponse response;
  response.set_data(data);
  return response;
}

}  // namespace hsmd::testing
