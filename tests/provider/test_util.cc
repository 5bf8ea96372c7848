#include "tests/provider/test_util.h"

#include <execinfo.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/store.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace hsmd::testing {
namespace {

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", DrainErrors()));
}

template <typename T>
const unsigned char* Bytes(const T& s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string DrainErrors() {
  std::string text;
  unsigned long code;
  const char* file = nullptr;
  int line = 0;
  const char* data = nullptr;
  int flags = 0;
  while ((code = ERR_get_error_all(&file, &line, nullptr, &data, &flags)) !=
         0) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    absl::StrAppend(&text, text.empty() ? "" : " | ", buffer);
    if (data != nullptr && (flags & ERR_TXT_STRING) != 0 && data[0] != '\0') {
      absl::StrAppend(&text, " (", data, ")");
    }
  }
  return text;
}

absl::StatusOr<EvpPkeyPtr> LoadKey(OSSL_LIB_CTX* libctx, const std::string& uri,
                                   int expected_type) {
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(uri.c_str(), libctx, nullptr, nullptr, nullptr,
                         nullptr, nullptr, nullptr);
  if (store == nullptr) return OpenSslError(absl::StrCat("open ", uri));
  if (expected_type != 0) OSSL_STORE_expect(store, expected_type);
  EvpPkeyPtr key;
  while (key == nullptr && !OSSL_STORE_eof(store)) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info == nullptr) {
      if (OSSL_STORE_error(store)) break;
      continue;
    }
    int type = OSSL_STORE_INFO_get_type(info);
    if (type == OSSL_STORE_INFO_PKEY &&
        expected_type != OSSL_STORE_INFO_PUBKEY) {
      key.reset(OSSL_STORE_INFO_get1_PKEY(info));
    } else if (type == OSSL_STORE_INFO_PUBKEY) {
      key.reset(OSSL_STORE_INFO_get1_PUBKEY(info));
    }
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  if (key == nullptr) return OpenSslError(absl::StrCat("no key at ", uri));
  return key;
}

absl::StatusOr<X509Ptr> LoadCertificate(OSSL_LIB_CTX* libctx,
                                        const std::string& uri) {
  OSSL_STORE_CTX* store =
      OSSL_STORE_open_ex(uri.c_str(), libctx, nullptr, nullptr, nullptr,
                         nullptr, nullptr, nullptr);
  if (store == nullptr) return OpenSslError(absl::StrCat("open ", uri));
  OSSL_STORE_expect(store, OSSL_STORE_INFO_CERT);
  X509Ptr cert;
  while (cert == nullptr && !OSSL_STORE_eof(store)) {
    OSSL_STORE_INFO* info = OSSL_STORE_load(store);
    if (info == nullptr) {
      if (OSSL_STORE_error(store)) break;
      continue;
    }
    if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_CERT) {
      cert.reset(OSSL_STORE_INFO_get1_CERT(info));
    }
    OSSL_STORE_INFO_free(info);
  }
  OSSL_STORE_close(store);
  if (cert == nullptr) return OpenSslError(absl::StrCat("no cert at ", uri));
  return cert;
}

EvpPkeyPtr PublicKeyFromSpki(OSSL_LIB_CTX* libctx, const std::string& spki) {
  const unsigned char* p = Bytes(spki);
  return EvpPkeyPtr(d2i_PUBKEY_ex(nullptr, &p, static_cast<long>(spki.size()),
                                  libctx, nullptr));
}

std::string SpkiOf(EVP_PKEY* pkey) {
  unsigned char* der = nullptr;
  int length = i2d_PUBKEY(pkey, &der);
  if (length <= 0) return "";
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(length));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> DigestSign(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                       const char* md,
                                       const std::string& message,
                                       const CtxSetup& setup) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit_ex(ctx.get(), &pctx,
                            md != nullptr && md[0] != '\0' ? md : nullptr,
                            libctx, nullptr, key, nullptr) != 1) {
    return OpenSslError("EVP_DigestSignInit_ex");
  }
  if (setup && !setup(pctx)) return OpenSslError("signature settings");
  size_t length = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &length, Bytes(message),
                     message.size()) != 1 ||
      length == 0) {
    return OpenSslError("EVP_DigestSign size query");
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(),
                     reinterpret_cast<unsigned char*>(signature.data()),
                     &length, Bytes(message), message.size()) != 1) {
    return OpenSslError("EVP_DigestSign");
  }
  signature.resize(length);
  return signature;
}

absl::StatusOr<bool> DigestVerify(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                  const char* md, const std::string& message,
                                  const std::string& signature,
                                  const CtxSetup& setup) {
  EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit_ex(ctx.get(), &pctx,
                              md != nullptr && md[0] != '\0' ? md : nullptr,
                              libctx, nullptr, key, nullptr) != 1) {
    return OpenSslError("EVP_DigestVerifyInit_ex");
  }
  if (setup && !setup(pctx)) return OpenSslError("signature settings");
  int rc = EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(),
                            Bytes(message), message.size());
  ERR_clear_error();
  return rc == 1;
}

absl::StatusOr<std::string> PkeySign(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                     const std::string& tbs,
                                     const CtxSetup& setup) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(libctx, key, nullptr));
  if (ctx == nullptr || EVP_PKEY_sign_init(ctx.get()) != 1) {
    return OpenSslError("EVP_PKEY_sign_init");
  }
  if (setup && !setup(ctx.get())) return OpenSslError("signature settings");
  size_t length = 0;
  if (EVP_PKEY_sign(ctx.get(), nullptr, &length, Bytes(tbs), tbs.size()) != 1) {
    return OpenSslError("EVP_PKEY_sign size query");
  }
  std::string signature(length, '\0');
  if (EVP_PKEY_sign(ctx.get(),
                    reinterpret_cast<unsigned char*>(signature.data()), &length,
                    Bytes(tbs), tbs.size()) != 1) {
    return OpenSslError("EVP_PKEY_sign");
  }
  signature.resize(length);
  return signature;
}

absl::StatusOr<bool> PkeyVerify(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                const std::string& tbs,
                                const std::string& signature,
                                const CtxSetup& setup) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(libctx, key, nullptr));
  if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) != 1) {
    return OpenSslError("EVP_PKEY_verify_init");
  }
  if (setup && !setup(ctx.get())) return OpenSslError("signature settings");
  int rc = EVP_PKEY_verify(ctx.get(), Bytes(signature), signature.size(),
                           Bytes(tbs), tbs.size());
  ERR_clear_error();
  return rc == 1;
}

absl::StatusOr<std::string> PkeyEncrypt(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                        const std::string& plaintext,
                                        const CtxSetup& setup) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(libctx, key, nullptr));
  if (ctx == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1) {
    return OpenSslError("EVP_PKEY_encrypt_init");
  }
  if (setup && !setup(ctx.get())) return OpenSslError("cipher settings");
  size_t length = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &length, Bytes(plaintext),
                       plaintext.size()) != 1) {
    return OpenSslError("EVP_PKEY_encrypt size query");
  }
  std::string out(length, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                       &length, Bytes(plaintext), plaintext.size()) != 1) {
    return OpenSslError("EVP_PKEY_encrypt");
  }
  out.resize(length);
  return out;
}

absl::StatusOr<std::string> PkeyDecrypt(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                        const std::string& ciphertext,
                                        const CtxSetup& setup) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(libctx, key, nullptr));
  if (ctx == nullptr || EVP_PKEY_decrypt_init(ctx.get()) != 1) {
    return OpenSslError("EVP_PKEY_decrypt_init");
  }
  if (setup && !setup(ctx.get())) return OpenSslError("cipher settings");
  size_t length = 0;
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &length, Bytes(ciphertext),
                       ciphertext.size()) != 1) {
    return OpenSslError("EVP_PKEY_decrypt size query");
  }
  std::string out(length, '\0');
  if (EVP_PKEY_decrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                       &length, Bytes(ciphertext), ciphertext.size()) != 1) {
    return OpenSslError("EVP_PKEY_decrypt");
  }
  out.resize(length);
  return out;
}

absl::StatusOr<std::string> PkeyDerive(OSSL_LIB_CTX* libctx, EVP_PKEY* key,
                                       EVP_PKEY* peer, const CtxSetup& setup) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(libctx, key, nullptr));
  if (ctx == nullptr || EVP_PKEY_derive_init(ctx.get()) != 1) {
    return OpenSslError("EVP_PKEY_derive_init");
  }
  if (setup && !setup(ctx.get())) return OpenSslError("derive settings");
  if (EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1) {
    return OpenSslError("EVP_PKEY_derive_set_peer");
  }
  size_t length = 0;
  if (EVP_PKEY_derive(ctx.get(), nullptr, &length) != 1) {
    return OpenSslError("EVP_PKEY_derive size query");
  }
  std::string out(length, '\0');
  if (EVP_PKEY_derive(ctx.get(), reinterpret_cast<unsigned char*>(out.data()),
                      &length) != 1) {
    return OpenSslError("EVP_PKEY_derive");
  }
  out.resize(length);
  return out;
}

std::string Hash(const char* md, const std::string& data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EvpMdPtr fetched(EVP_MD_fetch(nullptr, md, nullptr));
  if (fetched == nullptr || EVP_Digest(data.data(), data.size(), out, &length,
                                       fetched.get(), nullptr) != 1) {
    return "";
  }
  return std::string(reinterpret_cast<char*>(out), length);
}

absl::StatusOr<X509Ptr> SelfSignedCertificate(EVP_PKEY* key, const char* md,
                                              const std::string& cn) {
  X509Ptr cert(X509_new());
  if (cert == nullptr || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return OpenSslError("X509_new");
  }
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  if (X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("X509_set_pubkey");
  }
  EvpMdPtr digest;
  if (md != nullptr) digest.reset(EVP_MD_fetch(nullptr, md, nullptr));
  if (X509_sign(cert.get(), key, digest.get()) <= 0) {
    return OpenSslError("X509_sign");
  }
  return cert;
}

namespace {

// Moves bytes between the two memory BIO pairs until neither side wants
// more or `step` reports completion.
absl::Status Pump(SSL* client, SSL* server,
                  const std::function<int(SSL*)>& client_step,
                  const std::function<int(SSL*)>& server_step) {
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 1000 && !(client_done && server_done); ++round) {
    if (!client_done) {
      int rc = client_step(client);
      if (rc > 0) {
        client_done = true;
      } else {
        int err = SSL_get_error(client, rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          return absl::InternalError(
              absl::StrCat("client failed (", err, "): ", DrainErrors()));
        }
      }
    }
    if (!server_done) {
      int rc = server_step(server);
      if (rc > 0) {
        server_done = true;
      } else {
        int err = SSL_get_error(server, rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
          return absl::InternalError(
              absl::StrCat("server failed (", err, "): ", DrainErrors()));
        }
      }
    }
  }
  if (!(client_done && server_done)) {
    return absl::DeadlineExceededError("TLS exchange did not finish");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status TlsHandshake(OSSL_LIB_CTX* server_libctx, X509* cert,
                          EVP_PKEY* key, OSSL_LIB_CTX* client_libctx,
                          int version, const char* cipher_list) {
  SslCtxPtr server_ctx(
      SSL_CTX_new_ex(server_libctx, nullptr, TLS_server_method()));
  SslCtxPtr client_ctx(
      SSL_CTX_new_ex(client_libctx, nullptr, TLS_client_method()));
  if (server_ctx == nullptr || client_ctx == nullptr) {
    return OpenSslError("SSL_CTX_new_ex");
  }
  for (SSL_CTX* ctx : {server_ctx.get(), client_ctx.get()}) {
    SSL_CTX_set_min_proto_version(ctx, version);
    SSL_CTX_set_max_proto_version(ctx, version);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  }
  SSL_CTX_set_num_tickets(server_ctx.get(), 0);
  if (cipher_list != nullptr &&
      (SSL_CTX_set_cipher_list(server_ctx.get(), cipher_list) != 1 ||
       SSL_CTX_set_cipher_list(client_ctx.get(), cipher_list) != 1)) {
    return OpenSslError("SSL_CTX_set_cipher_list");
  }
  if (SSL_CTX_use_certificate(server_ctx.get(), cert) != 1 ||
      SSL_CTX_use_PrivateKey(server_ctx.get(), key) != 1 ||
      SSL_CTX_check_private_key(server_ctx.get()) != 1) {
    return OpenSslError("server certificate/key");
  }
  X509_STORE* trust = SSL_CTX_get_cert_store(client_ctx.get());
  X509_STORE_add_cert(trust, cert);
  SSL_CTX_set_verify(client_ctx.get(), SSL_VERIFY_PEER, nullptr);

  SslPtr server(SSL_new(server_ctx.get()));
  SslPtr client(SSL_new(client_ctx.get()));
  BIO* client_bio = nullptr;
  BIO* server_bio = nullptr;
  if (server == nullptr || client == nullptr ||
      BIO_new_bio_pair(&client_bio, 0, &server_bio, 0) != 1) {
    return OpenSslError("SSL_new");
  }
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_connect_state(client.get());
  SSL_set_accept_state(server.get());
  absl::Status status =
      Pump(client.get(), server.get(), SSL_do_handshake, SSL_do_handshake);
  if (!status.ok()) return status;
  if (SSL_version(client.get()) != version) {
    return absl::InternalError(
        absl::StrCat("negotiated ", SSL_get_version(client.get())));
  }
  if (SSL_get_verify_result(client.get()) != X509_V_OK) {
    return absl::InternalError("client did not verify the server");
  }
  // Application data both ways (fits the BIO pair's buffer).
  std::string payload(1024, 'x');
  for (auto [from, to] : {std::make_pair(client.get(), server.get()),
                          std::make_pair(server.get(), client.get())}) {
    if (SSL_write(from, payload.data(), static_cast<int>(payload.size())) !=
        static_cast<int>(payload.size())) {
      return OpenSslError("SSL_write");
    }
    std::string received;
    char buffer[2048];
    while (received.size() < payload.size()) {
      int n = SSL_read(to, buffer, sizeof(buffer));
      if (n <= 0) return OpenSslError("SSL_read");
      received.append(buffer, static_cast<size_t>(n));
    }
    if (received != payload) return absl::InternalError("payload mismatch");
  }
  return absl::OkStatus();
}

namespace {

// The child's watchdog: show where it hung, then die by SIGALRM.
void WatchdogFired(int signal_number) {
  static const char kMessage[] = "watchdog: child hung; stack:\n";
  ssize_t ignored = write(STDERR_FILENO, kMessage, sizeof(kMessage) - 1);
  (void)ignored;
  void* frames[64];
  int count = backtrace(frames, 64);
  backtrace_symbols_fd(frames, count, STDERR_FILENO);
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

}  // namespace

std::string RunInChild(const std::function<int()>& fn, int seconds) {
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    // Loads the unwinder now, not inside the signal handler.
    void* frame[1];
    backtrace(frame, 1);
    signal(SIGALRM, &WatchdogFired);
    alarm(static_cast<unsigned int>(seconds));
    int rc = fn();
    _exit(rc);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return "waitpid failed";
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status) == 0
               ? ""
               : absl::StrCat("exit ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return absl::StrCat("signal ", WTERMSIG(status),
                        WTERMSIG(status) == SIGALRM ? " (watchdog: hung)" : "");
  }
  return "unknown child status";
}

}  // namespace hsmd::testing
