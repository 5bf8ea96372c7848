#include "bench/client_lib_variant.h"

#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/crypto_check.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

constexpr char kSign[] = "/hsmd.v1.KeyService/Sign";
constexpr char kDecrypt[] = "/hsmd.v1.KeyService/Decrypt";
constexpr char kRandom[] = "/hsmd.v1.KeyService/GenerateRandom";

class ClientLibRunner final : public OpRunner {
 public:
  ClientLibRunner(client::Client* client, Op op, std::string key_id,
                  std::string ciphertext)
      : client_(client),
        op_(op),
        key_id_(std::move(key_id)),
        ciphertext_(std::move(ciphertext)) {}

  absl::Status AddThread() {
    PerThread t;
    switch (op_) {
      case Op::kRandom32:
        t.random.set_length(kRandomBytes);
        break;
      case Op::kRsa2048OaepDecrypt:
        t.decrypt.mutable_key()->set_key_id(key_id_);
        t.decrypt.mutable_algorithm()->mutable_rsa_oaep()->set_hash(
            v1::HASH_ALGORITHM_SHA1);
        t.decrypt.mutable_algorithm()->mutable_rsa_oaep()->set_mgf1_hash(
            v1::HASH_ALGORITHM_SHA1);
        t.decrypt.set_ciphertext(ciphertext_);
        break;
      default: {
        t.sign.mutable_key()->set_key_id(key_id_);
        v1::SignatureAlgorithm* alg = t.sign.mutable_algorithm();
        const v1::HashAlgorithm hash = op_ == Op::kEcdsaP384Sign
                                           ? v1::HASH_ALGORITHM_SHA384
                                           : v1::HASH_ALGORITHM_SHA256;
        switch (op_) {
          case Op::kRsa2048Pkcs1Sign:
          case Op::kRsa3072Pkcs1Sign:
            alg->mutable_rsa_pkcs1()->set_hash(hash);
            break;
          case Op::kRsa2048PssSign:
            alg->mutable_rsa_pss()->set_hash(hash);
            alg->mutable_rsa_pss()->set_mgf1_hash(hash);
            alg->mutable_rsa_pss()->set_salt_length(32);
            break;
          case Op::kEcdsaP256Sign:
          case Op::kEcdsaP384Sign:
            alg->mutable_ecdsa()->set_hash(hash);
            break;
          case Op::kEd25519Sign:
            alg->mutable_ed25519();
            t.sign.set_message(std::string(BenchMessage()));
            break;
          default:
            return absl::InternalError("not a signature");
        }
        if (op_ != Op::kEd25519Sign) {
          ASSIGN_OR_RETURN(Hasher hasher, Hasher::New(InfoOf(op_).digest));
          t.hasher.emplace(std::move(hasher));
        }
      }
    }
    threads_.push_back(std::move(t));
    return absl::OkStatus();
  }

  absl::Status Run(int thread) override {
    PerThread& t = threads_[thread];
    switch (op_) {
      case Op::kRandom32:
        return client_->Call(kRandom, t.random, &t.random_response);
      case Op::kRsa2048OaepDecrypt:
        return client_->Call(kDecrypt, t.decrypt, &t.decrypt_response);
      default:
        if (t.hasher.has_value()) {
          unsigned char digest[EVP_MAX_MD_SIZE];
          ASSIGN_OR_RETURN(size_t n, t.hasher->Digest(BenchMessage(), digest));
          t.sign.set_digest(digest, n);
        }
        return client_->Call(kSign, t.sign, &t.sign_response);
    }
  }

  absl::string_view output(int thread) const override {
    const PerThread& t = threads_[thread];
    switch (op_) {
      case Op::kRandom32:
        return t.random_response.data();
      case Op::kRsa2048OaepDecrypt:
        return t.decrypt_response.plaintext();
      default:
        return t.sign_response.signature();
    }
  }

 private:
  struct PerThread {
    std::optional<Hasher> hasher;
    v1::SignRequest sign;
    v1::SignResponse sign_response;
    v1::DecryptRequest decrypt;
    v1::DecryptResponse decrypt_response;
    v1::GenerateRandomRequest random;
    v1::GenerateRandomResponse random_response;
  };

  client::Client* const client_;
  const Op op_;
  const std::string key_id_;
  const std::string ciphertext_;
  std::vector<PerThread> threads_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ClientLibVariant>> ClientLibVariant::New(
    const std::string& socket_path, const KeyDirectory& keys, bool fast_path) {
  client::ClientOptions options;
  options.socket_path = socket_path;
  // One idle connection per benchmark thread.
  options.max_idle_connections = 8;
  options.fast_path = fast_path;
  ASSIGN_OR_RETURN(std::unique_ptr<client::Client> client,
                   client::Client::New(options));
  std::unique_ptr<ClientLibVariant> variant(
      new ClientLibVariant(std::move(client), keys, fast_path));
  for (const auto& [label, key] : keys) {
    ASSIGN_OR_RETURN(EvpPkeyPtr pub, PublicKeyFromSpki(key.spki));
    variant->public_keys_[label] = std::move(pub);
  }
  return variant;
}

absl::StatusOr<std::unique_ptr<OpRunner>> ClientLibVariant::Prepare(
    Op op, int threads) {
  const std::string label = InfoOf(op).key_label;
  std::string key_id;
  std::string ciphertext;
  if (!label.empty()) {
    auto it = keys_.find(label);
    if (it == keys_.end()) {
      return absl::NotFoundError(
          absl::StrCat("hsmd does not list the demo key ", label));
    }
    key_id = it->second.key_id;
  }
  if (op == Op::kRsa2048OaepDecrypt) {
    ASSIGN_OR_RETURN(ciphertext, OaepCiphertext(public_keys_.at(label).get()));
  }
  auto runner =
      std::make_unique<ClientLibRunner>(client_.get(), op, key_id, ciphertext);
  for (int t = 0; t < threads; ++t) RETURN_IF_ERROR(runner->AddThread());
  return runner;
}

absl::Status ClientLibVariant::Check(Op op, absl::string_view output) const {
  const std::string label = InfoOf(op).key_label;
  EVP_PKEY* key = nullptr;
  if (!label.empty()) key = public_keys_.at(label).get();
  return CheckOutput(op, key, output, SignatureForm::kEvp);
}

}  // namespace hsmd::bench
