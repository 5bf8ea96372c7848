#include "bench/variant.h"

#include <cstdlib>

namespace hsmd::bench {

const std::vector<OpInfo>& AllOps() {
  static const auto* ops = new std::vector<OpInfo>{
      {Op::kRsa2048Pkcs1Sign, "rsa2048_pkcs1_sign",
       "RSA-2048 PKCS#1 v1.5 sign (SHA-256)", "rsa-2048", "SHA256"},
      {Op::kRsa2048PssSign, "rsa2048_pss_sign",
       "RSA-2048 PSS sign (SHA-256, salt 32)", "rsa-2048", "SHA256"},
      {Op::kRsa3072Pkcs1Sign, "rsa3072_pkcs1_sign",
       "RSA-3072 PKCS#1 v1.5 sign (SHA-256)", "rsa-3072", "SHA256"},
      {Op::kEcdsaP256Sign, "ecdsa_p256_sign", "ECDSA P-256 sign (SHA-256)",
       "ec-p256", "SHA256"},
      {Op::kEcdsaP384Sign, "ecdsa_p384_sign", "ECDSA P-384 sign (SHA-384)",
       "ec-p384", "SHA384"},
      {Op::kEd25519Sign, "ed25519_sign", "Ed25519 sign (64-byte message)",
       "ed25519", ""},
      {Op::kRsa2048OaepDecrypt, "rsa2048_oaep_decrypt",
       "RSA-2048 OAEP decrypt (SHA-1)", "rsa-2048", ""},
      {Op::kRandom32, "random_32", "RAND_bytes(32) / C_GenerateRandom(32)", "",
       ""},
  };
  return *ops;
}

int OpIndex(Op op) {
  const std::vector<OpInfo>& all = AllOps();
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].op == op) return static_cast<int>(i);
  }
  return -1;
}

const OpInfo& InfoOf(Op op) {
  for (const OpInfo& info : AllOps()) {
    if (info.op == op) return info;
  }
  std::abort();  // Every Op is in the table.
}

absl::string_view BenchMessage() {
  return "hsmd benchmark: 64 bytes to sign, like a small TLS transcript!!!";
}

absl::string_view OaepPlaintext() { return "a 32-byte secret for OAEP tests."; }

}  // namespace hsmd::bench
