// Tests of libsoftsdf.so through dlopen(), the way hsmd loads a vendor SDF
// library, with a store made by softsdf-init. Interoperability with OpenSSL's
// default provider is the proof that the device does real SM2 / SM3 / SM4.

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"
#include "daemon/backend/sdf/gmt0018.h"
#include "gtest/gtest.h"
#include "tools/softsdf/sm2_codec.h"

extern char** environ;

namespace hsmd::softsdf {
namespace {

using EvpCipherCtxPtr = OpenSslPtr<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;

// The functions under test, resolved with dlsym like a vendor library's.
struct Sdf {
  SDF_OpenDevice_fn OpenDevice;
  SDF_CloseDevice_fn CloseDevice;
  SDF_OpenSession_fn OpenSession;
  SDF_CloseSession_fn CloseSession;
  SDF_GetDeviceInfo_fn GetDeviceInfo;
  SDF_GenerateRandom_fn GenerateRandom;
  SDF_GetPrivateKeyAccessRight_fn GetPrivateKeyAccessRight;
  SDF_ReleasePrivateKeyAccessRight_fn ReleasePrivateKeyAccessRight;
  SDF_ExportSignPublicKey_ECC_fn ExportSignPublicKey_ECC;
  SDF_ExportEncPublicKey_ECC_fn ExportEncPublicKey_ECC;
  SDF_GenerateKeyPair_ECC_fn GenerateKeyPair_ECC;
  SDF_GenerateKeyWithKEK_fn GenerateKeyWithKEK;
  SDF_ImportKeyWithKEK_fn ImportKeyWithKEK;
  SDF_ImportKey_fn ImportKey;
  SDF_DestroyKey_fn DestroyKey;
  SDF_GetSymmKeyHandle_fn GetSymmKeyHandle;
  SDF_ExternalVerify_ECC_fn ExternalVerify_ECC;
  SDF_InternalSign_ECC_fn InternalSign_ECC;
  SDF_InternalVerify_ECC_fn InternalVerify_ECC;
  SDF_ExternalEncrypt_ECC_fn ExternalEncrypt_ECC;
  SDF_InternalEncrypt_ECC_fn InternalEncrypt_ECC;
  SDF_InternalDecrypt_ECC_fn InternalDecrypt_ECC;
  SDF_Encrypt_fn Encrypt;
  SDF_Decrypt_fn Decrypt;
  SDF_HashInit_fn HashInit;
  SDF_HashUpdate_fn HashUpdate;
  SDF_HashFinal_fn HashFinal;
};

// GB/T 32907-2016 appendix A, example 1.
constexpr char kSm4VectorHex[] = "0123456789abcdeffedcba9876543210";
constexpr char kSm4VectorCipherHex[] = "681edf34d206965e86b3e94f536e4246";

// Key indexes of the test store.
constexpr unsigned int kGenerated = 1;  // generated sign + enc + SM4 keys
constexpr unsigned int kImported = 2;   // OpenSSL-made sign + enc keys
constexpr unsigned int kVectorSm4 = 3;  // the GB/T 32907 key
constexpr unsigned int kMissing = 77;
constexpr char kPassword1[] = "pw-one";
constexpr char kPassword2[] = "two: with colon and spaces";

std::string Runfile(absl::string_view name) {
  return absl::StrCat(getenv("TEST_SRCDIR"), "/", getenv("TEST_WORKSPACE"),
                      "/tools/softsdf/", name);
}

unsigned char* U(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}
unsigned char* U(const char* s) {
  return reinterpret_cast<unsigned char*>(const_cast<char*>(s));
}

std::string Hex(const unsigned char* data, size_t len) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(data), len));
}

std::string Sm3(absl::string_view data) {
  unsigned char out[32];
  unsigned int len = 0;
  EXPECT_EQ(EVP_Digest(data.data(), data.size(), out, &len, EVP_sm3(), nullptr),
            1);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  EXPECT_EQ(RAND_bytes(U(out), static_cast<int>(n)), 1);
  return out;
}

void WriteFile(const std::string& path, absl::string_view data, mode_t mode) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  ASSERT_EQ(chmod(path.c_str(), mode), 0) << path;
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Runs softsdf-init; returns its exit status and sets `err` to its stderr.
int RunInit(const std::vector<std::string>& args, const std::string& tmp,
            std::string* err) {
  const std::string binary = Runfile("softsdf-init");
  const std::string err_path = tmp + "/init.stderr";
  std::vector<char*> argv = {const_cast<char*>(binary.c_str())};
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr,
                             argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  if (err != nullptr) *err = ReadText(err_path);
  return WEXITSTATUS(status);
}

// Z || M hashed with SM3, computed here independently of the library: the
// curve parameters are those of GB/T 32918.5.
std::string LocalE(const ECCrefPublicKey& pub, absl::string_view id,
                   absl::string_view message) {
  const std::string curve = absl::HexStringToBytes(
      "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
      "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
      "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
      "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");
  std::string z_input;
  const size_t bits = id.size() * 8;
  z_input.push_back(static_cast<char>(bits >> 8));
  z_input.push_back(static_cast<char>(bits & 0xff));
  absl::StrAppend(
      &z_input, id, curve,
      absl::string_view(reinterpret_cast<const char*>(pub.x + 32), 32),
      absl::string_view(reinterpret_cast<const char*>(pub.y + 32), 32));
  return Sm3(Sm3(z_input) + std::string(message));
}

// OpenSSL's default-provider SM2 signature of `message` with `id`.
std::string OpenSslSign(EVP_PKEY* key, absl::string_view id,
                        absl::string_view message) {
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  EXPECT_EQ(EVP_DigestSignInit(md.get(), &pctx, EVP_sm3(), nullptr, key), 1);
  EXPECT_EQ(EVP_PKEY_CTX_set1_id(pctx, id.data(), id.size()), 1);
  size_t len = 0;
  const auto* m = reinterpret_cast<const unsigned char*>(message.data());
  EXPECT_EQ(EVP_DigestSign(md.get(), nullptr, &len, m, message.size()), 1);
  std::string der(len, '\0');
  EXPECT_EQ(EVP_DigestSign(md.get(), U(der), &len, m, message.size()), 1);
  der.resize(len);
  return der;
}

// OpenSSL's default-provider SM2 verification of `message` with `id`.
bool OpenSslVerify(EVP_PKEY* key, absl::string_view id,
                   absl::string_view message, const std::string& der) {
  EvpMdCtxPtr md(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestVerifyInit(md.get(), &pctx, EVP_sm3(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set1_id(pctx, id.data(), id.size()) != 1) {
    return false;
  }
  return EVP_DigestVerify(
             md.get(), reinterpret_cast<const unsigned char*>(der.data()),
             der.size(), reinterpret_cast<const unsigned char*>(message.data()),
             message.size()) == 1;
}

std::string OpenSslSm4(const char* name, const std::string& key,
                       const std::string& iv, const std::string& in,
                       bool encrypt) {
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  OpenSslPtr<EVP_CIPHER, EVP_CIPHER_free> cipher(
      EVP_CIPHER_fetch(nullptr, name, nullptr));
  std::string out(in.size(), '\0');
  int n1 = 0, n2 = 0;
  EXPECT_EQ(EVP_CipherInit_ex2(
                ctx.get(), cipher.get(),
                reinterpret_cast<const unsigned char*>(key.data()),
                iv.empty() ? nullptr
                           : reinterpret_cast<const unsigned char*>(iv.data()),
                encrypt ? 1 : 0, nullptr),
            1);
  EVP_CIPHER_CTX_set_padding(ctx.get(), 0);
  EXPECT_EQ(EVP_CipherUpdate(ctx.get(), U(out), &n1,
                             reinterpret_cast<const unsigned char*>(in.data()),
                             static_cast<int>(in.size())),
            1);
  EXPECT_EQ(EVP_CipherFinal_ex(ctx.get(), U(out) + n1, &n2), 1);
  EXPECT_EQ(static_cast<size_t>(n1 + n2), in.size());
  return out;
}

EvpPkeyPtr ReadPem(const std::string& path, bool is_private) {
  OpenSslPtr<BIO, BIO_free_all> bio(BIO_new_file(path.c_str(), "r"));
  if (bio == nullptr) return nullptr;
  return EvpPkeyPtr(
      is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                 : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
}

class SoftSdfTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new std::string(getenv("TEST_TMPDIR"));
    store_ = new std::string(*tmp_ + "/store");

    // Keys made by OpenSSL, imported into the device at kImported.
    imported_sign_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2");
    imported_enc_ = EVP_PKEY_Q_keygen(nullptr, nullptr, "SM2");
    ASSERT_NE(imported_sign_, nullptr);
    ASSERT_NE(imported_enc_, nullptr);
    for (auto [key, name] : {std::pair{imported_sign_, "sign.pem"},
                             std::pair{imported_enc_, "enc.pem"}}) {
      OpenSslPtr<BIO, BIO_free_all> bio(
          BIO_new_file((*tmp_ + "/" + name).c_str(), "w"));
      ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0,
                                         nullptr, nullptr),
                1);
    }
    WriteFile(*tmp_ + "/sm4.hex", std::string(kSm4VectorHex) + "\n", 0600);
    WriteFile(*tmp_ + "/passwords",
              absl::StrCat("# test passwords\n", kGenerated, ":", kPassword1,
                           "\n", kImported, ":", kPassword2, "\n"),
              0600);
    std::string err;
    ASSERT_EQ(
        RunInit(
            {"--store", *store_, "--sign-keys", "1", "--enc-keys", "1",
             "--sm4-keys", "1,2", "--import-sign",
             absl::StrCat(kImported, "=", *tmp_, "/sign.pem"), "--import-enc",
             absl::StrCat(kImported, "=", *tmp_, "/enc.pem"), "--import-sm4",
             absl::StrCat(kVectorSm4, "=", *tmp_, "/sm4.hex"),
             "--password-file", *tmp_ + "/passwords", "--pbkdf2-iterations",
             "1000"},
            *tmp_, &err),
        0)
        << err;

    dl_ = dlopen(Runfile("libsoftsdf.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(dl_, nullptr) << dlerror();
#define RESOLVE(name)                                                      \
  sdf_.name = reinterpret_cast<SDF_##name##_fn>(dlsym(dl_, "SDF_" #name)); \
  ASSERT_NE(sdf_.name, nullptr) << "SDF_" #name
    RESOLVE(OpenDevice);
    RESOLVE(CloseDevice);
    RESOLVE(OpenSession);
    RESOLVE(CloseSession);
    RESOLVE(GetDeviceInfo);
    RESOLVE(GenerateRandom);
    RESOLVE(GetPrivateKeyAccessRight);
    RESOLVE(ReleasePrivateKeyAccessRight);
    RESOLVE(ExportSignPublicKey_ECC);
    RESOLVE(ExportEncPublicKey_ECC);
    RESOLVE(GenerateKeyPair_ECC);
    RESOLVE(GenerateKeyWithKEK);
    RESOLVE(ImportKeyWithKEK);
    RESOLVE(ImportKey);
    RESOLVE(DestroyKey);
    RESOLVE(GetSymmKeyHandle);
    RESOLVE(ExternalVerify_ECC);
    RESOLVE(InternalSign_ECC);
    RESOLVE(InternalVerify_ECC);
    RESOLVE(ExternalEncrypt_ECC);
    RESOLVE(InternalEncrypt_ECC);
    RESOLVE(InternalDecrypt_ECC);
    RESOLVE(Encrypt);
    RESOLVE(Decrypt);
    RESOLVE(HashInit);
    RESOLVE(HashUpdate);
    RESOLVE(HashFinal);
#undef RESOLVE

    ASSERT_EQ(setenv("SOFTSDF_STORE", store_->c_str(), 1), 0);
    ASSERT_EQ(sdf_.OpenDevice(&device_), SDR_OK);
  }

  static void TearDownTestSuite() {
    if (device_ != nullptr) {
      EXPECT_EQ(sdf_.CloseDevice(device_), SDR_OK);
    }
    EVP_PKEY_free(imported_sign_);
    EVP_PKEY_free(imported_enc_);
    delete store_;
    delete tmp_;
  }

  void SetUp() override {
    ASSERT_NE(device_, nullptr);
    ASSERT_EQ(sdf_.OpenSession(device_, &session_), SDR_OK);
  }
  void TearDown() override {
    if (session_ != nullptr) {
      EXPECT_EQ(sdf_.CloseSession(session_), SDR_OK);
    }
  }

  void Login(unsigned int index, const char* password) {
    ASSERT_EQ(sdf_.GetPrivateKeyAccessRight(session_, index, U(password),
                                            strlen(password)),
              SDR_OK);
  }

  ECCrefPublicKey SignPublicKey(unsigned int index) {
    ECCrefPublicKey pub;
    EXPECT_EQ(sdf_.ExportSignPublicKey_ECC(session_, index, &pub), SDR_OK);
    return pub;
  }
  ECCrefPublicKey EncPublicKey(unsigned int index) {
    ECCrefPublicKey pub;
    EXPECT_EQ(sdf_.ExportEncPublicKey_ECC(session_, index, &pub), SDR_OK);
    return pub;
  }

  // e = SM3(Z || M) through the device's hash functions.
  std::string DeviceE(ECCrefPublicKey pub, absl::string_view id,
                      std::string message) {
    std::string id_copy(id);
    EXPECT_EQ(
        sdf_.HashInit(session_, SGD_SM3, &pub, U(id_copy), id_copy.size()),
        SDR_OK);
    EXPECT_EQ(sdf_.HashUpdate(session_, U(message), message.size()), SDR_OK);
    unsigned char e[32];
    unsigned int len = 0;
    EXPECT_EQ(sdf_.HashFinal(session_, e, &len), SDR_OK);
    EXPECT_EQ(len, 32u);
    return std::string(reinterpret_cast<char*>(e), sizeof(e));
  }

  void* NewKeyHandle(const std::string& key) {
    std::string copy = key;
    void* handle = nullptr;
    EXPECT_EQ(sdf_.ImportKey(session_, U(copy), copy.size(), &handle), SDR_OK);
    return handle;
  }

  std::string DeviceSm4(void* key, unsigned int alg, std::string* iv,
                        std::string in, bool encrypt) {
    std::string out(in.size(), '\0');
    unsigned int len = 0;
    unsigned char* ivp = iv == nullptr ? nullptr : U(*iv);
    const int rc = encrypt ? sdf_.Encrypt(session_, key, alg, ivp, U(in),
                                          in.size(), U(out), &len)
                           : sdf_.Decrypt(session_, key, alg, ivp, U(in),
                                          in.size(), U(out), &len);
    EXPECT_EQ(rc, SDR_OK);
    EXPECT_EQ(len, in.size());
    return out;
  }

  static std::string* tmp_;
  static std::string* store_;
  static EVP_PKEY* imported_sign_;
  static EVP_PKEY* imported_enc_;
  static void* dl_;
  static Sdf sdf_;
  static void* device_;
  void* session_ = nullptr;
};

std::string* SoftSdfTest::tmp_ = nullptr;
std::string* SoftSdfTest::store_ = nullptr;
EVP_PKEY* SoftSdfTest::imported_sign_ = nullptr;
EVP_PKEY* SoftSdfTest::imported_enc_ = nullptr;
void* SoftSdfTest::dl_ = nullptr;
Sdf SoftSdfTest::sdf_ = {};
void* SoftSdfTest::device_ = nullptr;

TEST_F(SoftSdfTest, ExportsOnlySdfFunctions) {
  EXPECT_NE(dlsym(dl_, "SDF_InternalSign_ECC"), nullptr);
  // Internals (C++ symbols of the statically linked helpers) stay hidden.
  EXPECT_EQ(dlsym(dl_,
                  "_ZN4hsmd7softsdf8KeyStore4LoadERKNSt7__cxx1112basic_"
                  "stringIcSt11char_traitsIcESaIcEEE"),
            nullptr);
}

TEST_F(SoftSdfTest, DeviceInfoAndRandom) {
  DEVICEINFO info;
  ASSERT_EQ(sdf_.GetDeviceInfo(session_, &info), SDR_OK);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(info.DeviceName)), "softsdf");
  EXPECT_EQ(info.AsymAlgAbility[0],
            static_cast<unsigned>(SGD_SM2_1 | SGD_SM2_3));
  EXPECT_EQ(info.SymAlgAbility & SGD_SM4_CBC,
            static_cast<unsigned>(SGD_SM4_CBC));
  EXPECT_EQ(info.HashAlgAbility, static_cast<unsigned>(SGD_SM3));
  EXPECT_GT(info.BufferSize, 0u);

  unsigned char a[64] = {}, b[64] = {};
  ASSERT_EQ(sdf_.GenerateRandom(session_, sizeof(a), a), SDR_OK);
  ASSERT_EQ(sdf_.GenerateRandom(session_, sizeof(b), b), SDR_OK);
  EXPECT_NE(Hex(a, sizeof(a)), Hex(b, sizeof(b)));
  EXPECT_EQ(sdf_.GenerateRandom(session_, 0, a), SDR_INARGERR);
  EXPECT_EQ(sdf_.GenerateRandom(session_, info.BufferSize + 1, a),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.GenerateRandom(session_, 8, nullptr), SDR_OUTARGERR);
}

TEST_F(SoftSdfTest, ExportedPublicKeysMatchTheStore) {
  absl::StatusOr<EvpPkeyPtr> sign = Sm2PublicKeyFromRef(SignPublicKey(1));
  absl::StatusOr<EvpPkeyPtr> enc = Sm2PublicKeyFromRef(EncPublicKey(1));
  ASSERT_TRUE(sign.ok() && enc.ok());
  EXPECT_EQ(EVP_PKEY_eq(sign->get(),
                        ReadPem(*store_ + "/sign-1.pub.pem", false).get()),
            1);
  EXPECT_EQ(
      EVP_PKEY_eq(enc->get(), ReadPem(*store_ + "/enc-1.pub.pem", false).get()),
      1);
  EXPECT_NE(EVP_PKEY_eq(sign->get(), enc->get()), 1);

  absl::StatusOr<EvpPkeyPtr> imported =
      Sm2PublicKeyFromRef(SignPublicKey(kImported));
  ASSERT_TRUE(imported.ok());
  EXPECT_EQ(EVP_PKEY_eq(imported->get(), imported_sign_), 1);
}

// Signed by the device, verified by OpenSSL's default provider over M.
TEST_F(SoftSdfTest, DeviceSignatureVerifiesWithOpenSsl) {
  Login(kGenerated, kPassword1);
  const ECCrefPublicKey pub = SignPublicKey(kGenerated);
  absl::StatusOr<EvpPkeyPtr> pkey = Sm2PublicKeyFromRef(pub);
  ASSERT_TRUE(pkey.ok());
  const std::string message = "国密 SM2 signature interop";

  for (const std::string& id :
       {std::string(kSm2DefaultId), std::string("alice@example.com")}) {
    std::string e = DeviceE(pub, id, message);
    EXPECT_EQ(absl::BytesToHexString(e),
              absl::BytesToHexString(LocalE(pub, id, message)))
        << id;

    ECCSignature sig;
    ASSERT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, U(e), e.size(), &sig),
              SDR_OK);
    absl::StatusOr<std::string> der = SignatureToDer(sig);
    ASSERT_TRUE(der.ok());
    EXPECT_TRUE(OpenSslVerify(pkey->get(), id, message, *der)) << id;
    EXPECT_FALSE(OpenSslVerify(pkey->get(), id, message + ".", *der));
    EXPECT_FALSE(OpenSslVerify(pkey->get(), "another id", message, *der));

    // The device agrees, and rejects a different digest.
    EXPECT_EQ(
        sdf_.InternalVerify_ECC(session_, kGenerated, U(e), e.size(), &sig),
        SDR_OK);
    ECCrefPublicKey pub_copy = pub;
    EXPECT_EQ(sdf_.ExternalVerify_ECC(session_, SGD_SM2_1, &pub_copy, U(e),
                                      e.size(), &sig),
              SDR_OK);
    e[0] ^= 1;
    EXPECT_EQ(
        sdf_.InternalVerify_ECC(session_, kGenerated, U(e), e.size(), &sig),
        SDR_VERIFYERR);
  }
}

// Signed by OpenSSL with a key imported into the device, verified by it.
TEST_F(SoftSdfTest, OpenSslSignatureVerifiesOnTheDevice) {
  const std::string message = "signed by OpenSSL";
  const std::string der = OpenSslSign(imported_sign_, kSm2DefaultId, message);
  ECCSignature sig;
  ASSERT_TRUE(SignatureFromDer(der, &sig).ok());
  ECCrefPublicKey pub = SignPublicKey(kImported);
  std::string e = DeviceE(pub, kSm2DefaultId, message);

  EXPECT_EQ(
      sdf_.ExternalVerify_ECC(session_, SGD_SM2_1, &pub, U(e), e.size(), &sig),
      SDR_OK);
  EXPECT_EQ(
      sdf_.ExternalVerify_ECC(session_, SGD_SM2, &pub, U(e), e.size(), &sig),
      SDR_OK);
  EXPECT_EQ(sdf_.InternalVerify_ECC(session_, kImported, U(e), e.size(), &sig),
            SDR_OK);
  // Not with another key.
  EXPECT_EQ(sdf_.InternalVerify_ECC(session_, kGenerated, U(e), e.size(), &sig),
            SDR_VERIFYERR);

  // And the device signs with the imported key: OpenSSL verifies with the
  // original key object.
  Login(kImported, kPassword2);
  ECCSignature device_sig;
  ASSERT_EQ(
      sdf_.InternalSign_ECC(session_, kImported, U(e), e.size(), &device_sig),
      SDR_OK);
  absl::StatusOr<std::string> device_der = SignatureToDer(device_sig);
  ASSERT_TRUE(device_der.ok());
  EXPECT_TRUE(
      OpenSslVerify(imported_sign_, kSm2DefaultId, message, *device_der));
}

// Encrypted by OpenSSL to the exported public key, decrypted by the device.
TEST_F(SoftSdfTest, OpenSslCiphertextDecryptsOnTheDevice) {
  Login(kGenerated, kPassword1);
  absl::StatusOr<EvpPkeyPtr> pub =
      Sm2PublicKeyFromRef(EncPublicKey(kGenerated));
  ASSERT_TRUE(pub.ok());
  for (size_t size : {1, 16, 32, 100, 1000}) {
    const std::string plain = RandomBytes(size);
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pub->get(), nullptr));
    ASSERT_EQ(EVP_PKEY_encrypt_init(ctx.get()), 1);
    size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(plain.data());
    ASSERT_EQ(EVP_PKEY_encrypt(ctx.get(), nullptr, &len, in, plain.size()), 1);
    std::string der(len, '\0');
    ASSERT_EQ(EVP_PKEY_encrypt(ctx.get(), U(der), &len, in, plain.size()), 1);
    der.resize(len);

    absl::StatusOr<EccCipherBuffer> cipher = CipherFromDer(der);
    ASSERT_TRUE(cipher.ok()) << cipher.status();
    std::string out(size, '\0');
    unsigned int out_len = 0;
    ASSERT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM2_3,
                                       cipher->get(), U(out), &out_len),
              SDR_OK);
    EXPECT_EQ(out_len, size);
    EXPECT_EQ(out, plain);

    // A flipped bit in C2 breaks the C3 check.
    unsigned char* c = reinterpret_cast<unsigned char*>(cipher->get()) +
                       offsetof(ECCCipher, C);
    c[0] ^= 1;
    EXPECT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM2_3,
                                       cipher->get(), U(out), &out_len),
              SDR_ENCDATAERR);
  }
}

// Encrypted by the device, decrypted by OpenSSL with the imported key.
TEST_F(SoftSdfTest, DeviceCiphertextDecryptsWithOpenSsl) {
  ECCrefPublicKey pub = EncPublicKey(kImported);
  std::string plain = "to be decrypted by OpenSSL";
  for (bool internal : {false, true}) {
    EccCipherBuffer cipher(plain.size());
    if (internal) {
      ASSERT_EQ(sdf_.InternalEncrypt_ECC(session_, kImported, SGD_SM2_3,
                                         U(plain), plain.size(), cipher.get()),
                SDR_OK);
    } else {
      ASSERT_EQ(sdf_.ExternalEncrypt_ECC(session_, SGD_SM2_3, &pub, U(plain),
                                         plain.size(), cipher.get()),
                SDR_OK);
    }
    EXPECT_EQ(cipher.get()->L, plain.size());
    absl::StatusOr<std::string> der = CipherToDer(*cipher.get(), plain.size());
    ASSERT_TRUE(der.ok());
    EvpPkeyCtxPtr ctx(
        EVP_PKEY_CTX_new_from_pkey(nullptr, imported_enc_, nullptr));
    ASSERT_EQ(EVP_PKEY_decrypt_init(ctx.get()), 1);
    size_t len = 0;
    const auto* in = reinterpret_cast<const unsigned char*>(der->data());
    ASSERT_EQ(EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in, der->size()), 1);
    std::string out(len, '\0');
    ASSERT_EQ(EVP_PKEY_decrypt(ctx.get(), U(out), &len, in, der->size()), 1);
    out.resize(len);
    EXPECT_EQ(out, plain);
  }

  // Round trip through the device's own index-1 pair.
  Login(kGenerated, kPassword1);
  EccCipherBuffer cipher(plain.size());
  ASSERT_EQ(sdf_.InternalEncrypt_ECC(session_, kGenerated, SGD_SM2, U(plain),
                                     plain.size(), cipher.get()),
            SDR_OK);
  std::string out(plain.size(), '\0');
  unsigned int out_len = 0;
  ASSERT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM2,
                                     cipher.get(), U(out), &out_len),
            SDR_OK);
  EXPECT_EQ(out, plain);
}

TEST_F(SoftSdfTest, Sm4PublishedVector) {
  const std::string key = absl::HexStringToBytes(kSm4VectorHex);
  const std::string plain = absl::HexStringToBytes(kSm4VectorHex);
  void* imported = NewKeyHandle(key);
  void* internal = nullptr;
  ASSERT_EQ(sdf_.GetSymmKeyHandle(session_, kVectorSm4, &internal), SDR_OK);
  for (void* handle : {imported, internal}) {
    const std::string cipher =
        DeviceSm4(handle, SGD_SM4_ECB, nullptr, plain, /*encrypt=*/true);
    EXPECT_EQ(absl::BytesToHexString(cipher), kSm4VectorCipherHex);
    EXPECT_EQ(DeviceSm4(handle, SGD_SM4_ECB, nullptr, cipher, false), plain);
  }
  EXPECT_EQ(absl::BytesToHexString(
                OpenSslSm4("SM4-ECB", key, "", plain, /*encrypt=*/true)),
            kSm4VectorCipherHex);
  EXPECT_EQ(sdf_.DestroyKey(session_, imported), SDR_OK);
  EXPECT_EQ(sdf_.DestroyKey(session_, internal), SDR_OK);
  EXPECT_EQ(sdf_.DestroyKey(session_, internal), SDR_KEYNOTEXIST);
}

TEST_F(SoftSdfTest, Sm4MatchesOpenSsl) {
  const std::string key = RandomBytes(16);
  void* handle = NewKeyHandle(key);
  const std::string plain = RandomBytes(16 * 8);
  const std::string iv = RandomBytes(16);

  EXPECT_EQ(DeviceSm4(handle, SGD_SM4_ECB, nullptr, plain, true),
            OpenSslSm4("SM4-ECB", key, "", plain, true));
  std::string device_iv = iv;
  const std::string cbc =
      DeviceSm4(handle, SGD_SM4_CBC, &device_iv, plain, true);
  EXPECT_EQ(cbc, OpenSslSm4("SM4-CBC", key, iv, plain, true));
  // The IV comes back as the chaining value (the last ciphertext block).
  EXPECT_EQ(device_iv, cbc.substr(cbc.size() - 16));

  // So two calls chain like one.
  device_iv = iv;
  std::string chained =
      DeviceSm4(handle, SGD_SM4_CBC, &device_iv, plain.substr(0, 48), true);
  chained += DeviceSm4(handle, SGD_SM4_CBC, &device_iv, plain.substr(48), true);
  EXPECT_EQ(chained, cbc);

  device_iv = iv;
  EXPECT_EQ(DeviceSm4(handle, SGD_SM4_CBC, &device_iv, cbc, false), plain);
  EXPECT_EQ(device_iv, cbc.substr(cbc.size() - 16));

  // In place (output buffer = input buffer).
  std::string buffer = cbc;
  device_iv = iv;
  unsigned int len = 0;
  ASSERT_EQ(sdf_.Decrypt(session_, handle, SGD_SM4_CBC, U(device_iv), U(buffer),
                         buffer.size(), U(buffer), &len),
            SDR_OK);
  EXPECT_EQ(buffer, plain);
  EXPECT_EQ(device_iv, cbc.substr(cbc.size() - 16));

  // The device's own SM4 key at the vector index is the published key.
  void* internal = nullptr;
  ASSERT_EQ(sdf_.GetSymmKeyHandle(session_, kVectorSm4, &internal), SDR_OK);
  device_iv = iv;
  EXPECT_EQ(DeviceSm4(internal, SGD_SM4_CBC, &device_iv, plain, true),
            OpenSslSm4("SM4-CBC", absl::HexStringToBytes(kSm4VectorHex), iv,
                       plain, true));
}

TEST_F(SoftSdfTest, SessionKeysWrappedUnderKek) {
  unsigned char wrapped[16];
  unsigned int wrapped_len = 0;
  void* generated = nullptr;
  ASSERT_EQ(sdf_.GenerateKeyWithKEK(session_, 128, SGD_SM4_ECB, kVectorSm4,
                                    wrapped, &wrapped_len, &generated),
            SDR_OK);
  ASSERT_EQ(wrapped_len, 16u);
  // Unwrapped by OpenSSL with the known KEK, the key encrypts the same.
  const std::string unwrapped = OpenSslSm4(
      "SM4-ECB", absl::HexStringToBytes(kSm4VectorHex), "",
      std::string(reinterpret_cast<char*>(wrapped), 16), /*encrypt=*/false);
  const std::string plain = RandomBytes(32);
  EXPECT_EQ(DeviceSm4(generated, SGD_SM4_ECB, nullptr, plain, true),
            OpenSslSm4("SM4-ECB", unwrapped, "", plain, true));

  // Another session imports the wrapped key.
  void* other = nullptr;
  ASSERT_EQ(sdf_.OpenSession(device_, &other), SDR_OK);
  void* imported = nullptr;
  ASSERT_EQ(sdf_.ImportKeyWithKEK(other, SGD_SM4_ECB, kVectorSm4, wrapped, 16,
                                  &imported),
            SDR_OK);
  std::string in = plain;
  std::string out(32, '\0');
  unsigned int len = 0;
  ASSERT_EQ(sdf_.Encrypt(other, imported, SGD_SM4_ECB, nullptr, U(in), 32,
                         U(out), &len),
            SDR_OK);
  EXPECT_EQ(out, OpenSslSm4("SM4-ECB", unwrapped, "", plain, true));
  // Key handles belong to their session.
  EXPECT_EQ(sdf_.Encrypt(session_, imported, SGD_SM4_ECB, nullptr, U(in), 32,
                         U(out), &len),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.CloseSession(other), SDR_OK);

  EXPECT_EQ(sdf_.ImportKeyWithKEK(session_, SGD_SM4_ECB, kMissing, wrapped, 16,
                                  &imported),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.ImportKeyWithKEK(session_, SGD_SM4_CBC, kVectorSm4, wrapped,
                                  16, &imported),
            SDR_ALGMODNOTSUPPORT);
  EXPECT_EQ(sdf_.ImportKeyWithKEK(session_, SGD_SM4_ECB, kVectorSm4, wrapped,
                                  15, &imported),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.GenerateKeyWithKEK(session_, 256, SGD_SM4_ECB, kVectorSm4,
                                    wrapped, &wrapped_len, &generated),
            SDR_INARGERR);
}

TEST_F(SoftSdfTest, GeneratedKeyPairIsUsable) {
  ECCrefPublicKey pub;
  ECCrefPrivateKey priv;
  ASSERT_EQ(sdf_.GenerateKeyPair_ECC(session_, SGD_SM2_1, 256, &pub, &priv),
            SDR_OK);
  EXPECT_EQ(priv.bits, 256u);
  ASSERT_TRUE(Sm2PublicKeyFromRef(pub).ok());
  EXPECT_EQ(sdf_.GenerateKeyPair_ECC(session_, SGD_SM2_1, 512, &pub, &priv),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.GenerateKeyPair_ECC(session_, SGD_RSA, 256, &pub, &priv),
            SDR_ALGNOTSUPPORT);
}

TEST_F(SoftSdfTest, AccessRightsAndPasswords) {
  std::string e = RandomBytes(32);
  ECCSignature sig;
  // No access right yet.
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, U(e), 32, &sig),
            SDR_PARDENY);
  // Wrong passwords, including another index's and a prefix.
  for (const char* wrong : {"wrong", kPassword2, "pw-on", "pw-one "}) {
    EXPECT_EQ(sdf_.GetPrivateKeyAccessRight(session_, kGenerated, U(wrong),
                                            strlen(wrong)),
              SDR_PRKRERR)
        << wrong;
  }
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, U(e), 32, &sig),
            SDR_PARDENY);
  EXPECT_EQ(sdf_.GetPrivateKeyAccessRight(session_, kMissing, U(kPassword1),
                                          strlen(kPassword1)),
            SDR_KEYNOTEXIST);
  // An SM4-only index has no private key, hence no password.
  EXPECT_EQ(sdf_.GetPrivateKeyAccessRight(session_, kVectorSm4, U(kPassword1),
                                          strlen(kPassword1)),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.GetPrivateKeyAccessRight(session_, kGenerated, nullptr, 4),
            SDR_INARGERR);
  EXPECT_EQ(
      sdf_.GetPrivateKeyAccessRight(session_, kGenerated, U(kPassword1), 0),
      SDR_INARGERR);

  Login(kGenerated, kPassword1);
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, U(e), 32, &sig),
            SDR_OK);
  // Rights are per index and per session.
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kImported, U(e), 32, &sig),
            SDR_PARDENY);
  void* other = nullptr;
  ASSERT_EQ(sdf_.OpenSession(device_, &other), SDR_OK);
  EXPECT_EQ(sdf_.InternalSign_ECC(other, kGenerated, U(e), 32, &sig),
            SDR_PARDENY);
  EXPECT_EQ(sdf_.CloseSession(other), SDR_OK);

  EXPECT_EQ(sdf_.ReleasePrivateKeyAccessRight(session_, kGenerated), SDR_OK);
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, U(e), 32, &sig),
            SDR_PARDENY);
  EXPECT_EQ(sdf_.ReleasePrivateKeyAccessRight(session_, kMissing),
            SDR_KEYNOTEXIST);

  // Decryption needs the right too.
  std::string plain = "x";
  EccCipherBuffer cipher(1);
  ASSERT_EQ(sdf_.InternalEncrypt_ECC(session_, kGenerated, SGD_SM2_3, U(plain),
                                     1, cipher.get()),
            SDR_OK);
  unsigned char out[1];
  unsigned int out_len = 0;
  EXPECT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM2_3,
                                     cipher.get(), out, &out_len),
            SDR_PARDENY);
}

TEST_F(SoftSdfTest, BadArgumentsGetStandardCodes) {
  Login(kGenerated, kPassword1);
  std::string e = RandomBytes(33);
  ECCSignature sig;
  ECCrefPublicKey pub = SignPublicKey(kGenerated);

  // Sign / verify.
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, U(e), 31, &sig),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, U(e), 33, &sig),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, nullptr, 32, &sig),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kGenerated, U(e), 32, nullptr),
            SDR_OUTARGERR);
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kMissing, U(e), 32, &sig),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, 0, U(e), 32, &sig),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.InternalSign_ECC(session_, kVectorSm4, U(e), 32, &sig),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.InternalVerify_ECC(session_, kMissing, U(e), 32, &sig),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.InternalVerify_ECC(session_, kGenerated, U(e), 32, nullptr),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.ExternalVerify_ECC(session_, SGD_SM2_3, &pub, U(e), 32, &sig),
            SDR_ALGNOTSUPPORT);
  EXPECT_EQ(
      sdf_.ExternalVerify_ECC(session_, SGD_SM2_1, nullptr, U(e), 32, &sig),
      SDR_INARGERR);
  ECCrefPublicKey bad_pub = pub;
  bad_pub.bits = 192;
  EXPECT_EQ(
      sdf_.ExternalVerify_ECC(session_, SGD_SM2_1, &bad_pub, U(e), 32, &sig),
      SDR_KEYERR);
  bad_pub = pub;
  bad_pub.y[63] ^= 1;
  EXPECT_EQ(
      sdf_.ExternalVerify_ECC(session_, SGD_SM2_1, &bad_pub, U(e), 32, &sig),
      SDR_KEYERR);
  std::memset(&sig, 0xff, sizeof(sig));  // r, s beyond 256 bits
  EXPECT_EQ(sdf_.InternalVerify_ECC(session_, kGenerated, U(e), 32, &sig),
            SDR_VERIFYERR);

  // Public keys.
  EXPECT_EQ(sdf_.ExportSignPublicKey_ECC(session_, kMissing, &pub),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.ExportEncPublicKey_ECC(session_, kVectorSm4, &pub),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.ExportSignPublicKey_ECC(session_, kGenerated, nullptr),
            SDR_OUTARGERR);

  // SM2 encryption.
  std::string plain = RandomBytes(5000);
  EccCipherBuffer cipher(plain.size());
  EXPECT_EQ(sdf_.ExternalEncrypt_ECC(session_, SGD_SM2_3, &pub, U(plain), 0,
                                     cipher.get()),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.ExternalEncrypt_ECC(session_, SGD_SM2_3, &pub, U(plain), 4097,
                                     cipher.get()),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.ExternalEncrypt_ECC(session_, SGD_SM2_1, &pub, U(plain), 16,
                                     cipher.get()),
            SDR_ALGNOTSUPPORT);
  EXPECT_EQ(sdf_.ExternalEncrypt_ECC(session_, SGD_SM2_3, &pub, U(plain), 16,
                                     nullptr),
            SDR_OUTARGERR);
  EXPECT_EQ(sdf_.InternalEncrypt_ECC(session_, kMissing, SGD_SM2_3, U(plain),
                                     16, cipher.get()),
            SDR_KEYNOTEXIST);
  ASSERT_EQ(sdf_.InternalEncrypt_ECC(session_, kGenerated, SGD_SM2_3, U(plain),
                                     16, cipher.get()),
            SDR_OK);
  unsigned char out[16];
  unsigned int out_len = 0;
  EXPECT_EQ(sdf_.InternalDecrypt_ECC(session_, kMissing, SGD_SM2_3,
                                     cipher.get(), out, &out_len),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM2_3, nullptr,
                                     out, &out_len),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM2_3,
                                     cipher.get(), nullptr, &out_len),
            SDR_OUTARGERR);
  EXPECT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM4_ECB,
                                     cipher.get(), out, &out_len),
            SDR_ALGNOTSUPPORT);
  cipher.get()->L = 0;
  EXPECT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM2_3,
                                     cipher.get(), out, &out_len),
            SDR_INARGERR);
  cipher.get()->L = 1u << 30;  // never read beyond the cap
  EXPECT_EQ(sdf_.InternalDecrypt_ECC(session_, kGenerated, SGD_SM2_3,
                                     cipher.get(), out, &out_len),
            SDR_INARGERR);

  // SM4.
  void* key = NewKeyHandle(RandomBytes(16));
  std::string data = RandomBytes(64);
  std::string iv = RandomBytes(16);
  std::string enc(64, '\0');
  unsigned int len = 0;
  for (unsigned int bad_len : {0u, 15u, 17u, 33u}) {
    EXPECT_EQ(sdf_.Encrypt(session_, key, SGD_SM4_ECB, nullptr, U(data),
                           bad_len, U(enc), &len),
              SDR_INARGERR)
        << bad_len;
    EXPECT_EQ(sdf_.Decrypt(session_, key, SGD_SM4_CBC, U(iv), U(data), bad_len,
                           U(enc), &len),
              SDR_INARGERR)
        << bad_len;
  }
  EXPECT_EQ(sdf_.Encrypt(session_, key, SGD_SM4_CBC, nullptr, U(data), 16,
                         U(enc), &len),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.Encrypt(session_, key, SGD_SM4_OFB, U(iv), U(data), 16, U(enc),
                         &len),
            SDR_ALGMODNOTSUPPORT);
  EXPECT_EQ(sdf_.Encrypt(session_, key, SGD_SM1_ECB, nullptr, U(data), 16,
                         U(enc), &len),
            SDR_ALGNOTSUPPORT);
  EXPECT_EQ(sdf_.Encrypt(session_, key, SGD_SM4_ECB, nullptr, nullptr, 16,
                         U(enc), &len),
            SDR_INARGERR);
  EXPECT_EQ(sdf_.Encrypt(session_, key, SGD_SM4_ECB, nullptr, U(data), 16,
                         nullptr, &len),
            SDR_OUTARGERR);
  EXPECT_EQ(sdf_.Encrypt(session_, reinterpret_cast<void*>(0x1234), SGD_SM4_ECB,
                         nullptr, U(data), 16, U(enc), &len),
            SDR_KEYNOTEXIST);
  std::string short_key = RandomBytes(15);
  void* unused = nullptr;
  EXPECT_EQ(sdf_.ImportKey(session_, U(short_key), 15, &unused), SDR_INARGERR);
  EXPECT_EQ(sdf_.ImportKey(session_, nullptr, 16, &unused), SDR_INARGERR);
  EXPECT_EQ(sdf_.GetSymmKeyHandle(session_, kMissing, &unused),
            SDR_KEYNOTEXIST);
  EXPECT_EQ(sdf_.GetSymmKeyHandle(session_, kVectorSm4, nullptr),
            SDR_OUTARGERR);

  // Hash.
  unsigned char digest[32];
  unsigned int digest_len = 0;
  EXPECT_EQ(sdf_.HashUpdate(session_, U(data), 4), SDR_STEPERR);
  EXPECT_EQ(sdf_.HashFinal(session_, digest, &digest_len), SDR_STEPERR);
  EXPECT_EQ(sdf_.HashInit(session_, SGD_SHA256, nullptr, nullptr, 0),
            SDR_ALGNOTSUPPORT);
  EXPECT_EQ(sdf_.HashInit(session_, SGD_SM3, &pub, nullptr, 0), SDR_INARGERR);
  EXPECT_EQ(sdf_.HashInit(session_, SGD_SM3, nullptr, U(data), 16),
            SDR_INARGERR);
  // Plain SM3 when neither key nor ID is given.
  ASSERT_EQ(sdf_.HashInit(session_, SGD_SM3, nullptr, nullptr, 0), SDR_OK);
  ASSERT_EQ(sdf_.HashUpdate(session_, U(data), data.size()), SDR_OK);
  ASSERT_EQ(sdf_.HashFinal(session_, digest, &digest_len), SDR_OK);
  EXPECT_EQ(Hex(digest, digest_len), absl::BytesToHexString(Sm3(data)));
  EXPECT_EQ(sdf_.HashFinal(session_, digest, &digest_len), SDR_STEPERR);
}

TEST_F(SoftSdfTest, BogusHandlesNeverCrash) {
  void* bogus[] = {nullptr, reinterpret_cast<void*>(1),
                   reinterpret_cast<void*>(0xdeadbeef), &bogus};
  std::string e = RandomBytes(32);
  ECCSignature sig;
  DEVICEINFO info;
  for (void* h : bogus) {
    EXPECT_EQ(sdf_.InternalSign_ECC(h, kGenerated, U(e), 32, &sig),
              SDR_OPENSESSION);
    EXPECT_EQ(sdf_.GetDeviceInfo(h, &info), SDR_OPENSESSION);
    EXPECT_EQ(sdf_.CloseSession(h), SDR_OPENSESSION);
    EXPECT_EQ(sdf_.CloseDevice(h), SDR_OPENDEVICE);
    void* session = nullptr;
    EXPECT_EQ(sdf_.OpenSession(h, &session), SDR_OPENDEVICE);
    EXPECT_EQ(sdf_.DestroyKey(session_, h), SDR_KEYNOTEXIST);
  }
  EXPECT_EQ(sdf_.OpenDevice(nullptr), SDR_OUTARGERR);
  EXPECT_EQ(sdf_.OpenSession(device_, nullptr), SDR_OUTARGERR);
  EXPECT_EQ(sdf_.GetDeviceInfo(session_, nullptr), SDR_OUTARGERR);

  // A closed session's handle stays dead; a closed device takes its sessions.
  void* device2 = nullptr;
  ASSERT_EQ(sdf_.OpenDevice(&device2), SDR_OK);
  void* s1 = nullptr;
  void* s2 = nullptr;
  ASSERT_EQ(sdf_.OpenSession(device2, &s1), SDR_OK);
  ASSERT_EQ(sdf_.OpenSession(device2, &s2), SDR_OK);
  EXPECT_NE(s1, s2);
  EXPECT_EQ(sdf_.CloseSession(s1), SDR_OK);
  EXPECT_EQ(sdf_.GetDeviceInfo(s1, &info), SDR_OPENSESSION);
  EXPECT_EQ(sdf_.GetDeviceInfo(s2, &info), SDR_OK);
  EXPECT_EQ(sdf_.CloseDevice(device2), SDR_OK);
  EXPECT_EQ(sdf_.GetDeviceInfo(s2, &info), SDR_OPENSESSION);
  EXPECT_EQ(sdf_.CloseDevice(device2), SDR_OPENDEVICE);
  // The fixture's device is unaffected.
  EXPECT_EQ(sdf_.GetDeviceInfo(session_, &info), SDR_OK);
}

TEST_F(SoftSdfTest, ConcurrentSessionsSign) {
  constexpr int kThreads = 8;
  constexpr int kSignaturesPerThread = 25;
  absl::StatusOr<EvpPkeyPtr> pub = Sm2PublicKeyFromRef(SignPublicKey(1));
  ASSERT_TRUE(pub.ok());
  // One session shared by all threads as well as one per thread.
  Login(kGenerated, kPassword1);
  std::atomic<int> good{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      void* own = nullptr;
      if (sdf_.OpenSession(device_, &own) != SDR_OK ||
          sdf_.GetPrivateKeyAccessRight(own, kGenerated, U(kPassword1),
                                        strlen(kPassword1)) != SDR_OK) {
        bad += kSignaturesPerThread;
        return;
      }
      for (int i = 0; i < kSignaturesPerThread; ++i) {
        unsigned char e[32];
        RAND_bytes(e, sizeof(e));
        ECCSignature sig;
        void* session = i % 2 == 0 ? own : session_;
        if (sdf_.InternalSign_ECC(session, kGenerated, e, 32, &sig) != SDR_OK) {
          ++bad;
          continue;
        }
        absl::StatusOr<std::string> der = SignatureToDer(sig);
        EvpPkeyCtxPtr ctx(
            EVP_PKEY_CTX_new_from_pkey(nullptr, pub->get(), nullptr));
        const bool ok =
            der.ok() && EVP_PKEY_verify_init(ctx.get()) == 1 &&
            EVP_PKEY_verify(ctx.get(),
                            reinterpret_cast<const unsigned char*>(der->data()),
                            der->size(), e, sizeof(e)) == 1;
        ++(ok ? good : bad);
      }
      if (sdf_.CloseSession(own) != SDR_OK) ++bad;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(good.load(), kThreads * kSignaturesPerThread);
}

// Store problems are reported by SDF_OpenDevice, not found later.
TEST_F(SoftSdfTest, OpenDeviceChecksTheStore) {
  void* device = nullptr;
  ASSERT_EQ(unsetenv("SOFTSDF_STORE"), 0);
  EXPECT_EQ(sdf_.OpenDevice(&device), SDR_OPENDEVICE);

  // SOFTSDF_CONF names a configuration file instead.
  const std::string conf = *tmp_ + "/softsdf.conf";
  WriteFile(conf, "# test\nstore = " + *store_ + "\n", 0644);
  ASSERT_EQ(setenv("SOFTSDF_CONF", conf.c_str(), 1), 0);
  ASSERT_EQ(sdf_.OpenDevice(&device), SDR_OK);
  EXPECT_EQ(sdf_.CloseDevice(device), SDR_OK);
  WriteFile(conf, "store = relative/dir\n", 0644);
  EXPECT_EQ(sdf_.OpenDevice(&device), SDR_OPENDEVICE);
  ASSERT_EQ(unsetenv("SOFTSDF_CONF"), 0);

  // A private key readable by others is refused.
  const std::string path = *store_ + "/sign-1.pem";
  ASSERT_EQ(setenv("SOFTSDF_STORE", store_->c_str(), 1), 0);
  ASSERT_EQ(chmod(path.c_str(), 0644), 0);
  EXPECT_EQ(sdf_.OpenDevice(&device), SDR_OPENDEVICE);
  ASSERT_EQ(chmod(path.c_str(), 0600), 0);
  ASSERT_EQ(sdf_.OpenDevice(&device), SDR_OK);
  EXPECT_EQ(sdf_.CloseDevice(device), SDR_OK);

  ASSERT_EQ(setenv("SOFTSDF_STORE", (*tmp_ + "/no-such-dir").c_str(), 1), 0);
  EXPECT_EQ(sdf_.OpenDevice(&device), SDR_OPENDEVICE);
  ASSERT_EQ(setenv("SOFTSDF_STORE", store_->c_str(), 1), 0);
}

TEST_F(SoftSdfTest, InitRejectsBadInput) {
  const std::string pw = *tmp_ + "/init-passwords";
  std::string err;
  WriteFile(pw, "1:secret\n", 0644);
  EXPECT_EQ(RunInit({"--store", *tmp_ + "/s1", "--sign-keys", "1",
                     "--password-file", pw},
                    *tmp_, &err),
            1);
  EXPECT_TRUE(absl::StrContains(err, "chmod 600")) << err;

  ASSERT_EQ(chmod(pw.c_str(), 0600), 0);
  EXPECT_EQ(RunInit({"--store", *tmp_ + "/s2", "--sign-keys", "1,2",
                     "--password-file", pw},
                    *tmp_, &err),
            1);
  EXPECT_TRUE(absl::StrContains(err, "no password for key index 2")) << err;

  EXPECT_EQ(
      RunInit({"--store", *tmp_ + "/s3", "--sign-keys", "1"}, *tmp_, &err), 1);
  EXPECT_TRUE(absl::StrContains(err, "--password-file")) << err;

  // Passwords are never taken from the command line.
  EXPECT_EQ(RunInit({"--store", *tmp_ + "/s4", "--sign-keys", "1", "--password",
                     "secret"},
                    *tmp_, &err),
            2);
  EXPECT_TRUE(absl::StrContains(err, "unknown flag --password")) << err;

  EXPECT_EQ(RunInit({"--store", *tmp_ + "/s5", "--sign-keys", "0",
                     "--password-file", pw},
                    *tmp_, &err),
            2);
  EXPECT_EQ(RunInit({"--store", *tmp_ + "/s6", "--import-sm4", "1=" + pw},
                    *tmp_, &err),
            1);
  EXPECT_TRUE(absl::StrContains(err, "hex")) << err;

  // An existing store is not overwritten without --force.
  EXPECT_EQ(RunInit({"--store", *store_, "--sm4-keys", "9"}, *tmp_, &err), 1);
  EXPECT_TRUE(absl::StrContains(err, "--force")) << err;
  const std::string forced = *tmp_ + "/forced";
  ASSERT_EQ(RunInit({"--store", forced, "--sm4-keys", "4"}, *tmp_, &err), 0)
      << err;
  ASSERT_EQ(
      RunInit({"--store", forced, "--sm4-keys", "5", "--force"}, *tmp_, &err),
      0)
      << err;
  struct stat st;
  EXPECT_NE(stat((forced + "/sm4-4.key").c_str(), &st), 0);
  ASSERT_EQ(stat((forced + "/sm4-5.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace hsmd::softsdf

int main(int argc, char** argv) {
  // A hang fails the test instead of blocking the run.
  alarm(50);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
