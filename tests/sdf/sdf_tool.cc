// sdf_tool: drives an SDF backend from the command line for
// openssl_cli_test.sh (the daemon's wiring comes separately).
//
//   sdf_tool --library LIB --device NAME --index N --password-file FILE CMD
//     pubkey sign|enc OUT     the exported public key, PEM
//     sign IN OUT [ID]        SM2 signature (DER) of IN's bytes, message
//                             input with distinguishing ID (default
//                             1234567812345678)
//     decrypt IN OUT          SM2 decryption of OpenSSL's ciphertext
//
// The password file holds the index's access password (mode 0600, checked);
// the SDF device's own configuration (SOFTSDF_STORE) comes from the
// environment.
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "common/secret.h"
#include "daemon/backend/backend.h"
#include "daemon/backend/sdf/sdf_backend.h"

namespace hsmd {
namespace {

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::Status WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<SecretString> ReadPassword(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot stat ", path));
  }
  if ((st.st_mode & 077) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat(path, " must not be readable by group or others"));
  }
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  return SecretString(*std::move(text));
}

absl::Status Run(const std::vector<std::string>& args) {
  std::string library, device, password_file;
  uint32_t index = 0;
  size_t i = 0;
  for (; i + 1 < args.size() && args[i].rfind("--", 0) == 0; i += 2) {
    const std::string& flag = args[i];
    const std::string& value = args[i + 1];
    if (flag == "--library") {
      library = value;
    } else if (flag == "--device") {
      device = value;
    } else if (flag == "--password-file") {
      password_file = value;
    } else if (flag == "--index") {
      if (!absl::SimpleAtoi(value, &index)) {
        return absl::InvalidArgumentError("--index wants a number");
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
    }
  }
  if (i >= args.size()) return absl::InvalidArgumentError("no command");
  const std::string command = args[i];
  const std::vector<std::string> rest(args.begin() + i + 1, args.end());

  backend::SdfBackendOptions options;
  options.name = "sdf-tool";
  options.library_path = library;
  options.device_name = device;
  options.session_pool_size = 1;
  for (backend::SdfKeyUsage usage :
       {backend::SdfKeyUsage::kSign, backend::SdfKeyUsage::kEnc}) {
    backend::SdfKeyConfig key;
    key.index = index;
    key.usage = usage;
    key.password_source = [password_file]() {
      return ReadPassword(password_file);
    };
    options.keys.push_back(std::move(key));
  }
  absl::StatusOr<std::unique_ptr<backend::Backend>> b =
      backend::NewSdfBackend(std::move(options));
  if (!b.ok()) return b.status();
  backend::Backend& sdf = **b;
  const backend::RequestContext ctx;
  auto ref = [&](const char* usage) {
    v1::KeyRef r;
    r.set_uri(absl::StrCat("sdf:device=", device, ";index=", index,
                           ";usage=", usage));
    return r;
  };

  if (command == "pubkey" && rest.size() == 2) {
    absl::StatusOr<v1::Key> key = sdf.GetKey(ref(rest[0].c_str()), ctx);
    if (!key.ok()) return key.status();
    const unsigned char* p =
        reinterpret_cast<const unsigned char*>(key->public_key_der().data());
    EvpPkeyPtr pkey(d2i_PUBKEY(
        nullptr, &p, static_cast<long>(key->public_key_der().size())));
    BioPtr bio(BIO_new(BIO_s_mem()));
    if (pkey == nullptr || PEM_write_bio_PUBKEY(bio.get(), pkey.get()) != 1) {
      return absl::InternalError("cannot write the public key");
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return WriteFile(rest[1], std::string(data, static_cast<size_t>(len)));
  }
  if (command == "sign" && (rest.size() == 2 || rest.size() == 3)) {
    absl::StatusOr<std::string> message = ReadFile(rest[0]);
    if (!message.ok()) return message.status();
    v1::SignRequest request;
    *request.mutable_key() = ref("sign");
    request.mutable_algorithm()->mutable_sm2()->set_distinguishing_id(
        rest.size() == 3 ? rest[2] : "");
    request.set_message(*message);
    absl::StatusOr<v1::SignResponse> signature = sdf.Sign(request, ctx);
    if (!signature.ok()) return signature.status();
    return WriteFile(rest[1], signature->signature());
  }
  if (command == "decrypt" && rest.size() == 2) {
    absl::StatusOr<std::string> ciphertext = ReadFile(rest[0]);
    if (!ciphertext.ok()) return ciphertext.status();
    v1::DecryptRequest request;
    *request.mutable_key() = ref("enc");
    request.mutable_algorithm()->mutable_sm2();
    request.set_ciphertext(*ciphertext);
    absl::StatusOr<v1::DecryptResponse> plaintext = sdf.Decrypt(request, ctx);
    if (!plaintext.ok()) return plaintext.status();
    return WriteFile(rest[1], plaintext->plaintext());
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown command or wrong arguments: ", command));
}

}  // namespace
}  // namespace hsmd

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const absl::Status status = hsmd::Run(args);
  if (!status.ok()) {
    std::cerr << "sdf_tool: " << status << "\n";
    return 1;
  }
  return 0;
}
