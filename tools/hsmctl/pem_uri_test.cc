#include "tools/hsmctl/pem_uri.h"

#include <openssl/asn1.h>
#include <openssl/pem.h>

#include "common/openssl_ptr.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::hsmctl {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

using Asn1SequenceAnyPtr =
    std::unique_ptr<ASN1_SEQUENCE_ANY, void (*)(ASN1_SEQUENCE_ANY*)>;

void FreeSequence(ASN1_SEQUENCE_ANY* seq) {
  sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}

// Parses the DER with OpenSSL's generic ASN.1 decoder (independent of the
// encoder under test) and returns {desc type, desc, uri type, uri}.
struct Decoded {
  int desc_type = -1;
  std::string desc;
  int uri_type = -1;
  std::string uri;
};

Decoded DecodeWithOpenSsl(const std::string& der) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  Asn1SequenceAnyPtr seq(
      d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(der.size())),
      FreeSequence);
  Decoded out;
  EXPECT_NE(seq, nullptr);
  if (seq == nullptr) return out;
  // The whole input is consumed: nothing trails the SEQUENCE.
  EXPECT_EQ(p, reinterpret_cast<const unsigned char*>(der.data()) + der.size());
  EXPECT_EQ(sk_ASN1_TYPE_num(seq.get()), 2);
  if (sk_ASN1_TYPE_num(seq.get()) != 2) return out;
  const ASN1_TYPE* desc = sk_ASN1_TYPE_value(seq.get(), 0);
  const ASN1_TYPE* uri = sk_ASN1_TYPE_value(seq.get(), 1);
  out.desc_type = desc->type;
  out.uri_type = uri->type;
  const ASN1_STRING* d = desc->value.asn1_string;
  const ASN1_STRING* u = uri->value.asn1_string;
  out.desc.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(d)),
                  ASN1_STRING_length(d));
  out.uri.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(u)),
                 ASN1_STRING_length(u));
  return out;
}

TEST(PemUriTest, DerIsSequenceOfVisibleAndUtf8String) {
  const std::string uri = "pkcs11:token=demo;object=ec-p256;type=private";
  auto der = EncodePemUriDer(uri);
  ASSERT_TRUE(der.ok()) << der.status();
  // Short-form lengths: 0x30 len 0x1a 25 "PKCS#11 Provider URI v1.0" 0x0c len.
  EXPECT_EQ(static_cast<uint8_t>((*der)[0]), 0x30);
  EXPECT_EQ(static_cast<uint8_t>((*der)[2]), 0x1a);
  EXPECT_EQ(static_cast<uint8_t>((*der)[3]), 25);
  Decoded decoded = DecodeWithOpenSsl(*der);
  EXPECT_EQ(decoded.desc_type, V_ASN1_VISIBLESTRING);
  EXPECT_EQ(decoded.desc, "PKCS#11 Provider URI v1.0");
  EXPECT_EQ(decoded.uri_type, V_ASN1_UTF8STRING);
  EXPECT_EQ(decoded.uri, uri);
}

TEST(PemUriTest, LongUriUsesLongFormLengths) {
  // 300 bytes of URI: both the string and the SEQUENCE need 2 length bytes.
  const std::string uri =
      "pkcs11:token=demo;object=" + std::string(275, 'k') + ";type=private";
  auto der = EncodePemUriDer(uri);
  ASSERT_TRUE(der.ok());
  EXPECT_EQ(static_cast<uint8_t>((*der)[1]), 0x82);
  Decoded decoded = DecodeWithOpenSsl(*der);
  EXPECT_EQ(decoded.uri, uri);
  EXPECT_EQ(decoded.desc, "PKCS#11 Provider URI v1.0");

  // 130 bytes: one long-form length byte (0x81) for the string.
  const std::string medium = "pkcs11:object=" + std::string(116, 'm');
  der = EncodePemUriDer(medium);
  ASSERT_TRUE(der.ok());
  EXPECT_EQ(DecodeWithOpenSsl(*der).uri, medium);
}

TEST(PemUriTest, PemArmourAndRoundTripThroughOpenSslPemReader) {
  const std::string uri = "pkcs11:token=demo;object=rsa-2048;type=private";
  auto pem = EncodePemUriFile(uri);
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_THAT(*pem, StartsWith("-----BEGIN PKCS#11 PROVIDER URI-----\n"));
  EXPECT_THAT(*pem, HasSubstr("-----END PKCS#11 PROVIDER URI-----\n"));

  BioPtr bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  char* name = nullptr;
  char* header = nullptr;
  unsigned char* data = nullptr;
  long length = 0;
  ASSERT_EQ(PEM_read_bio(bio.get(), &name, &header, &data, &length), 1);
  EXPECT_STREQ(name, "PKCS#11 PROVIDER URI");
  EXPECT_STREQ(header, "");
  std::string der(reinterpret_cast<char*>(data), static_cast<size_t>(length));
  OPENSSL_free(name);
  OPENSSL_free(header);
  OPENSSL_free(data);
  EXPECT_EQ(der, *EncodePemUriDer(uri));
  EXPECT_EQ(DecodeWithOpenSsl(der).uri, uri);
}

TEST(PemUriTest, SdfUrisUseTheSameFormat) {
  const std::string uri = "sdf:device=soft0;index=1;usage=sign";
  absl::StatusOr<std::string> der = EncodePemUriDer(uri);
  ASSERT_TRUE(der.ok()) << der.status();
  EXPECT_EQ(DecodeWithOpenSsl(*der).uri, uri);
  absl::StatusOr<std::string> pem = EncodePemUriFile(uri);
  ASSERT_TRUE(pem.ok()) << pem.status();
  EXPECT_THAT(*pem, HasSubstr("-----BEGIN PKCS#11 PROVIDER URI-----\n"));
}

TEST(PemUriTest, RejectsWhatIsNotAPkcs11Uri) {
  EXPECT_THAT(EncodePemUriDer("file:/etc/key.pem").status().message(),
              HasSubstr("is not a pkcs11: or sdf: URI"));
  EXPECT_FALSE(EncodePemUriDer("").ok());
  EXPECT_THAT(EncodePemUriDer("pkcs11:object=a b").status().message(),
              HasSubstr("percent-encode"));
  EXPECT_FALSE(EncodePemUriDer("pkcs11:object=\xc3\xa9").ok());
  EXPECT_FALSE(EncodePemUriFile("pkcs11:object=a\n").ok());
}

}  // namespace
}  // namespace hsmd::hsmctl
