#include "tools/hsmctl/sm4.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace hsmd::hsmctl {

using client::kSm4BlockBytes;

std::string Pkcs7Pad(absl::string_view data) {
  const size_t pad = kSm4BlockBytes - data.size() % kSm4BlockBytes;
  std::string out(data);
  out.append(pad, static_cast<char>(pad));
  return out;
}

absl::StatusOr<std::string> Pkcs7Unpad(absl::string_view data) {
  if (data.empty() || data.size() % kSm4BlockBytes != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("decryption failed: ", data.size(),
                     " bytes cannot carry PKCS#7 padding"));
  }
  const size_t pad = static_cast<unsigned char>(data.back());
  bool valid = pad >= 1 && pad <= kSm4BlockBytes;
  // Look at every padding byte: a wrong key gives random bytes that may end
  // in 0x01 by chance, and that case alone cannot be told apart.
  for (size_t i = 0; valid && i < pad; ++i) {
    valid = static_cast<unsigned char>(data[data.size() - 1 - i]) == pad;
  }
  if (!valid) {
    return absl::InvalidArgumentError(
        "decryption failed: the PKCS#7 padding is invalid (wrong key, IV or "
        "mode, or data that was not padded: then use --padding none)");
  }
  return std::string(data.substr(0, data.size() - pad));
}

absl::StatusOr<Sm4Result> Sm4ThroughHsmd(client::Client& client,
                                         const v1::KeyRef& key,
                                         v1::CipherMode mode,
                                         absl::string_view iv,
                                         absl::string_view data, bool encrypt,
                                         size_t chunk_bytes) {
  if (chunk_bytes == 0 || chunk_bytes % kSm4BlockBytes != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SM4 piece size ", chunk_bytes,
                     " is not a non-zero multiple of ", kSm4BlockBytes));
  }
  Sm4Result result;
  result.output.reserve(data.size());
  std::string chain(iv);
  for (size_t offset = 0; offset < data.size() || offset == 0;
       offset += chunk_bytes) {
    const absl::string_view piece = data.substr(offset, chunk_bytes);
    absl::string_view produced;
    if (encrypt) {
      absl::StatusOr<v1::EncryptRequest> request =
          client::Sm4EncryptRequest(key, mode, chain, std::string(piece));
      if (!request.ok()) return request.status();
      absl::StatusOr<v1::EncryptResponse> response = client.Encrypt(*request);
      if (!response.ok()) return response.status();
      if (response->ciphertext().size() != piece.size()) {
        return absl::InternalError(absl::StrCat(
            "hsmd returned ", response->ciphertext().size(),
            " bytes of SM4 ciphertext for ", piece.size(), " bytes"));
      }
      result.key_id = response->key_id();
      result.output += response->ciphertext();
      produced = absl::string_view(result.output).substr(offset);
    } else {
      absl::StatusOr<v1::DecryptRequest> request =
          client::Sm4DecryptRequest(key, mode, chain, std::string(piece));
      if (!request.ok()) return request.status();
      absl::StatusOr<v1::DecryptResponse> response = client.Decrypt(*request);
      if (!response.ok()) return response.status();
      if (response->plaintext().size() != piece.size()) {
        return absl::InternalError(absl::StrCat(
            "hsmd returned ", response->plaintext().size(),
            " bytes of SM4 plaintext for ", piece.size(), " bytes"));
      }
      result.key_id = response->key_id();
      result.output += response->plaintext();
      produced = piece;
    }
    if (mode == v1::CIPHER_MODE_CBC) {
      // The next piece continues from the last ciphertext block.
      chain = std::string(produced.substr(produced.size() - kSm4BlockBytes));
    }
    if (piece.size() < chunk_bytes) break;
  }
  return result;
}

}  // namespace hsmd::hsmctl
