#include "bench/crypto_check.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <utility>

#include "absl/strings/str_cat.h"

namespace hsmd::bench {
namespace {

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// r || s (each half of `raw`) as a DER ECDSA-Sig-Value.
absl::StatusOr<std::string> RawEcdsaToDer(absl::string_view raw) {
  if (raw.empty() || raw.size() % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("raw ECDSA signature of odd length ", raw.size()));
  }
  const int half = static_cast<int>(raw.size() / 2);
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(Bytes(raw), half, nullptr);
  BIGNUM* s = BN_bin2bn(Bytes(raw) + half, half, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr ||
      ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return OpenSslError("ECDSA_SIG_set0");
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return OpenSslError("i2d_ECDSA_SIG");
  std::string out(reinterpret_cast<char*>(der), len);
  OPENSSL_free(der);
  return out;
}

absl::Status VerifySignature(Op op, EVP_PKEY* key, absl::string_view sig) {
  const OpInfo& info = InfoOf(op);
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  const char* md = info.digest[0] == '\0' ? nullptr : info.digest;
  if (ctx == nullptr || EVP_DigestVerifyInit_ex(ctx.get(), &pctx, md, nullptr,
                                                nullptr, key, nullptr) != 1) {
    return OpenSslError("EVP_DigestVerifyInit_ex");
  }
  if (op == Op::kRsa2048PssSign &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1)) {
    return OpenSslError("setting PSS parameters");
  }
  const absl::string_view message = BenchMessage();
  const int ok = EVP_DigestVerify(ctx.get(), Bytes(sig), sig.size(),
                                  Bytes(message), message.size());
  if (ok != 1) {
    return absl::DataLossError(absl::StrCat(
        info.title, ": the signature does not verify with the public key (",
        OpenSslErrors(), ")"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string OpenSslErrors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? "no OpenSSL error" : out;
}

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, " failed: ", OpenSslErrors()));
}

absl::StatusOr<EvpPkeyPtr> PublicKeyFromSpki(absl::string_view der) {
  const unsigned char* p = Bytes(der);
  EvpPkeyPtr key(d2i_PUBKEY(nullptr, &p, static_cast<long>(der.size())));
  if (key == nullptr) return OpenSslError("d2i_PUBKEY");
  return key;
}

absl::StatusOr<std::string> SpkiOf(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  if (len <= 0) return OpenSslError("i2d_PUBKEY");
  std::string out(reinterpret_cast<char*>(der), len);
  OPENSSL_free(der);
  return out;
}

absl::Status CheckOutput(Op op, EVP_PKEY* public_key, absl::string_view output,
                         SignatureForm form) {
  switch (op) {
    case Op::kRandom32:
      if (output.size() != kRandomBytes) {
        return absl::DataLossError(absl::StrCat(
            "asked for ", kRandomBytes, " random bytes, got ", output.size()));
      }
      if (output == std::string(kRandomBytes, '\0')) {
        return absl::DataLossError("32 random bytes that are all zero");
      }
      return absl::OkStatus();
    case Op::kRsa2048OaepDecrypt:
      if (output != OaepPlaintext()) {
        return absl::DataLossError(
            "OAEP decryption did not return the encrypted plaintext");
      }
      return absl::OkStatus();
    case Op::kEcdsaP256Sign:
    case Op::kEcdsaP384Sign:
      if (form == SignatureForm::kPkcs11) {
        absl::StatusOr<std::string> der = RawEcdsaToDer(output);
        if (!der.ok()) return der.status();
        return VerifySignature(op, public_key, *der);
      }
      return VerifySignature(op, public_key, output);
    default:
      return VerifySignature(op, public_key, output);
  }
}

absl::StatusOr<std::string> OaepCiphertext(EVP_PKEY* public_key) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, public_key, nullptr));
  if (ctx == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_OAEP_PADDING) != 1) {
    return OpenSslError("OAEP encryption set-up");
  }
  const absl::string_view plain = OaepPlaintext();
  size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, Bytes(plain), plain.size()) !=
      1) {
    return OpenSslError("EVP_PKEY_encrypt (size)");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                       &len, Bytes(plain), plain.size()) != 1) {
    return OpenSslError("EVP_PKEY_encrypt");
  }
  out.resize(len);
  return out;
}

absl::string_view Sha256DigestInfoPrefix() {
  static constexpr char kPrefix[] =
      "\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00"
      "\x04\x20";
  return absl::string_view(kPrefix, sizeof(kPrefix) - 1);
}

absl::StatusOr<Hasher> Hasher::New(const char* digest) {
  EvpMdPtr md(EVP_MD_fetch(nullptr, digest, nullptr));
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  if (md == nullptr || ctx == nullptr) {
    return OpenSslError(absl::StrCat("fetching digest ", digest));
  }
  return Hasher(std::move(md), std::move(ctx));
}

absl::StatusOr<size_t> Hasher::Digest(absl::string_view data,
                                      unsigned char* out) {
  unsigned int len = 0;
  if (EVP_DigestInit_ex2(ctx_.get(), md_.get(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx_.get(), out, &len) != 1) {
    return OpenSslError("hashing");
  }
  return len;
}

}  // namespace hsmd::bench
