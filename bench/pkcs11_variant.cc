#include "bench/pkcs11_variant.h"

#include <cstring>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/crypto_check.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

constexpr size_t kMaxOutput = 1024;

class Pkcs11Runner final : public OpRunner {
 public:
  Pkcs11Runner(Pkcs11Token* token, Op op, CK_OBJECT_HANDLE key,
               std::string ciphertext)
      : token_(token), op_(op), key_(key), ciphertext_(std::move(ciphertext)) {
    pss_params_.hashAlg = CKM_SHA256;
    pss_params_.mgf = CKG_MGF1_SHA256;
    pss_params_.sLen = 32;
    oaep_params_.hashAlg = CKM_SHA_1;
    oaep_params_.mgf = CKG_MGF1_SHA1;
    oaep_params_.source = CKZ_DATA_SPECIFIED;
    oaep_params_.pSourceData = nullptr;
    oaep_params_.ulSourceDataLen = 0;
  }

  absl::Status AddThread() {
    PerThread t;
    t.out.resize(kMaxOutput);
    const char* digest = InfoOf(op_).digest;
    if (digest[0] != '\0' && op_ != Op::kRsa2048OaepDecrypt) {
      ASSIGN_OR_RETURN(Hasher hasher, Hasher::New(digest));
      t.hasher.emplace(std::move(hasher));
    }
    threads_.push_back(std::move(t));
    return absl::OkStatus();
  }

  absl::Status Run(int thread) override {
    PerThread& t = threads_[thread];
    CK_FUNCTION_LIST* const fns = token_->fns();
    const CK_SESSION_HANDLE session = token_->session(thread);
    CK_ULONG out_len = kMaxOutput;
    auto* out = reinterpret_cast<CK_BYTE*>(t.out.data());
    if (op_ == Op::kRandom32) {
      const CK_RV rv = fns->C_GenerateRandom(session, out, kRandomBytes);
      if (rv != CKR_OK) return CkError("C_GenerateRandom", rv);
      t.out_len = kRandomBytes;
      return absl::OkStatus();
    }
    if (op_ == Op::kRsa2048OaepDecrypt) {
      CK_MECHANISM mech{CKM_RSA_PKCS_OAEP, &oaep_params_, sizeof(oaep_params_)};
      CK_RV rv = fns->C_DecryptInit(session, &mech, key_);
      if (rv != CKR_OK) return CkError("C_DecryptInit", rv);
      rv = fns->C_Decrypt(
          session,
          reinterpret_cast<CK_BYTE*>(const_cast<char*>(ciphertext_.data())),
          ciphertext_.size(), out, &out_len);
      if (rv != CKR_OK) return CkError("C_Decrypt", rv);
      t.out_len = out_len;
      return absl::OkStatus();
    }
    // Signatures: build the input, then C_SignInit + C_Sign.
    unsigned char input[128];
    size_t input_len = 0;
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    const absl::string_view message = BenchMessage();
    switch (op_) {
      case Op::kRsa2048Pkcs1Sign:
      case Op::kRsa3072Pkcs1Sign: {
        const absl::string_view prefix = Sha256DigestInfoPrefix();
        std::memcpy(input, prefix.data(), prefix.size());
        ASSIGN_OR_RETURN(size_t n,
                         t.hasher->Digest(message, input + prefix.size()));
        input_len = prefix.size() + n;
        mech.mechanism = CKM_RSA_PKCS;
        break;
      }
      case Op::kRsa2048PssSign: {
        ASSIGN_OR_RETURN(input_len, t.hasher->Digest(message, input));
        mech = {CKM_RSA_PKCS_PSS, &pss_params_, sizeof(pss_params_)};
        break;
      }
      case Op::kEcdsaP256Sign:
      case Op::kEcdsaP384Sign: {
        ASSIGN_OR_RETURN(input_len, t.hasher->Digest(message, input));
        mech.mechanism = CKM_ECDSA;
        break;
      }
      case Op::kEd25519Sign:
        std::memcpy(input, message.data(), message.size());
        input_len = message.size();
        mech.mechanism = CKM_EDDSA;
        break;
      default:
        return absl::InternalError("not a signature");
    }
    CK_RV rv = fns->C_SignInit(session, &mech, key_);
    if (rv != CKR_OK) return CkError("C_SignInit", rv);
    rv = fns->C_Sign(session, input, input_len, out, &out_len);
    if (rv != CKR_OK) return CkError("C_Sign", rv);
    t.out_len = out_len;
    return absl::OkStatus();
  }

  absl::string_view output(int thread) const override {
    const PerThread& t = threads_[thread];
    return absl::string_view(t.out.data(), t.out_len);
  }

 private:
  struct PerThread {
    std::optional<Hasher> hasher;
    std::string out;
    size_t out_len = 0;
  };

  Pkcs11Token* const token_;
  const Op op_;
  const CK_OBJECT_HANDLE key_;
  const std::string ciphertext_;
  CK_RSA_PKCS_PSS_PARAMS pss_params_;
  CK_RSA_PKCS_OAEP_PARAMS oaep_params_;
  std::vector<PerThread> threads_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Pkcs11Variant>> Pkcs11Variant::New(
    const Config& config) {
  if (config.pin == nullptr || config.keys == nullptr) {
    return absl::InvalidArgumentError("Pkcs11Variant needs a PIN and keys");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Pkcs11Library> library,
                   Pkcs11Library::Load(config.module_path));
  std::unique_ptr<Pkcs11Variant> variant(
      new Pkcs11Variant(config, library->fns()));
  for (const auto& [label, key] : *config.keys) {
    ASSIGN_OR_RETURN(EvpPkeyPtr pub, PublicKeyFromSpki(key.spki));
    variant->public_keys_[label] = std::move(pub);
  }
  RETURN_IF_ERROR(variant->Open());
  return variant;
}

absl::Status Pkcs11Variant::Open() {
  ASSIGN_OR_RETURN(token_, Pkcs11Token::Open(fns_, config_.token_label,
                                             *config_.pin, config_.sessions));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Pkcs11Variant>> Pkcs11Variant::ReopenAfterFork(
    Pkcs11Variant& inherited) {
  // The inherited sessions and login belong to the parent's module state:
  // drop them without calling the module, reset it, and start over.
  if (inherited.token_ != nullptr) inherited.token_->Abandon();
  inherited.fns_->C_Finalize(nullptr);
  std::unique_ptr<Pkcs11Variant> variant(
      new Pkcs11Variant(inherited.config_, inherited.fns_));
  // Only for Check(): an application would not need them.
  for (const auto& [label, key] : inherited.public_keys_) {
    EVP_PKEY_up_ref(key.get());
    variant->public_keys_[label] = EvpPkeyPtr(key.get());
  }
  RETURN_IF_ERROR(variant->Open());
  return variant;
}

absl::StatusOr<std::unique_ptr<OpRunner>> Pkcs11Variant::Prepare(Op op,
                                                                 int threads) {
  if (threads > token_->sessions()) {
    return absl::InvalidArgumentError(
        absl::StrCat(threads, " threads but only ", token_->sessions(),
                     " PKCS#11 sessions"));
  }
  const OpInfo& info = InfoOf(op);
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  std::string ciphertext;
  if (op != Op::kRandom32) {
    if (public_keys_.count(info.key_label) == 0) {
      return absl::NotFoundError(
          absl::StrCat("hsmd does not list the demo key ", info.key_label));
    }
    ASSIGN_OR_RETURN(key, token_->FindPrivateKey(info.key_label));
  }
  if (op == Op::kRsa2048OaepDecrypt) {
    ASSIGN_OR_RETURN(ciphertext,
                     OaepCiphertext(public_keys_.at(info.key_label).get()));
  }
  auto runner =
      std::make_unique<Pkcs11Runner>(token_.get(), op, key, ciphertext);
  for (int t = 0; t < threads; ++t) RETURN_IF_ERROR(runner->AddThread());
  return runner;
}

absl::Status Pkcs11Variant::Check(Op op, absl::string_view output) const {
  const OpInfo& info = InfoOf(op);
  EVP_PKEY* key = nullptr;
  if (op != Op::kRandom32) {
    auto it = public_keys_.find(info.key_label);
    if (it == public_keys_.end()) {
      return absl::NotFoundError(
          absl::StrCat("no public key for ", info.key_label));
    }
    key = it->second.get();
  }
  return CheckOutput(op, key, output, SignatureForm::kPkcs11);
}

}  // namespace hsmd::bench
