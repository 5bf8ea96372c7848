#include "daemon/policy/key_pattern.h"

#include <string>

#include "absl/strings/str_cat.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::policy {
namespace {

using ::testing::HasSubstr;

KeyAttributes Key(std::string token, std::string label, std::string id = "") {
  KeyAttributes k;
  k.backend = "hsm";
  k.token_label = std::move(token);
  k.label = std::move(label);
  k.id = std::move(id);
  k.key_id = "00112233445566778899aabbccddeeff";
  return k;
}

bool Matches(const std::string& pattern, const KeyAttributes& key) {
  absl::StatusOr<KeyPattern> p = KeyPattern::Parse(pattern);
  EXPECT_TRUE(p.ok()) << pattern << ": " << p.status();
  return p.ok() && p->Matches(key);
}

TEST(GlobTest, StarsAndQuestionMarks) {
  auto glob = [](const std::string& text) {
    std::vector<Glob::Element> e;
    for (char c : text) {
      if (c == '*') {
        e.push_back({Glob::Element::kAnyRun, 0});
      } else if (c == '?') {
        e.push_back({Glob::Element::kAnyOne, 0});
      } else {
        e.push_back({Glob::Element::kLiteral, c});
      }
    }
    return Glob(e);
  };
  EXPECT_TRUE(glob("web-*").Matches("web-1"));
  EXPECT_TRUE(glob("web-*").Matches("web-"));
  EXPECT_FALSE(glob("web-*").Matches("web"));
  EXPECT_TRUE(glob("*-p256").Matches("ec-p256"));
  EXPECT_TRUE(glob("a*b*c").Matches("aXXbYYbc"));
  EXPECT_FALSE(glob("a*b*c").Matches("aXXbYYb"));
  EXPECT_TRUE(glob("ec-p???").Matches("ec-p384"));
  EXPECT_FALSE(glob("ec-p???").Matches("ec-p38"));
  EXPECT_TRUE(glob("").Matches(""));
  EXPECT_FALSE(glob("").Matches("x"));
  EXPECT_TRUE(glob("*").Matches(""));
  // Pathological patterns stay fast (no exponential backtracking).
  EXPECT_FALSE(glob("*a*a*a*a*a*a*a*a*a*a*b").Matches(std::string(5000, 'a')));
}

TEST(KeyPatternTest, Star) {
  EXPECT_TRUE(Matches("*", Key("demo", "ec-p256")));
  EXPECT_TRUE(Matches("*", Key("", "")));
}

TEST(KeyPatternTest, UriAttributes) {
  const KeyAttributes web = Key("demo", "web-1", std::string("\x01\x02", 2));
  EXPECT_TRUE(Matches("pkcs11:token=demo", web));
  EXPECT_FALSE(Matches("pkcs11:token=prod", web));
  EXPECT_TRUE(Matches("pkcs11:token=demo;object=web-*", web));
  EXPECT_FALSE(Matches("pkcs11:token=demo;object=db-*", web));
  EXPECT_TRUE(Matches("pkcs11:object=web-1;id=%01%02", web));
  EXPECT_FALSE(Matches("pkcs11:object=web-1;id=%01", web));
  EXPECT_TRUE(Matches("pkcs11:token=de*;object=*;type=private", web));
  EXPECT_TRUE(Matches("PKCS11:Token=demo", web));
  // Percent escapes are literal, also for '*'.
  EXPECT_TRUE(Matches("pkcs11:object=a%2Ab", Key("demo", "a*b")));
  EXPECT_FALSE(Matches("pkcs11:object=a%2Ab", Key("demo", "aXb")));
  EXPECT_TRUE(Matches("pkcs11:object=my%20key", Key("demo", "my key")));
  // An id pattern never matches a key whose id is unknown.
  EXPECT_FALSE(Matches("pkcs11:id=%01", Key("demo", "k")));
}

KeyAttributes SdfKey(std::string device, std::string label, uint32_t index,
                     std::string usage) {
  KeyAttributes k = Key(device, std::move(label));
  k.backend = "card";
  k.uri = absl::StrCat("sdf:device=", device, ";index=", index,
                       ";usage=", usage);
  return k;
}

TEST(KeyPatternTest, SdfAttributes) {
  const KeyAttributes sign = SdfKey("card0", "server", 1, "sign");
  const KeyAttributes sm4 = SdfKey("card0", "data", 12, "sm4");
  EXPECT_TRUE(Matches("sdf:device=card0", sign));
  EXPECT_TRUE(Matches("sdf:device=card*;usage=sign", sign));
  EXPECT_FALSE(Matches("sdf:device=card0;usage=sign", sm4));
  EXPECT_TRUE(Matches("sdf:index=12", sm4));
  EXPECT_FALSE(Matches("sdf:index=1", sm4));
  EXPECT_TRUE(Matches("sdf:device=card0;index=1;usage=sign;object=serv*",
                      sign));
  EXPECT_FALSE(Matches("sdf:device=card1", sign));
  EXPECT_TRUE(Matches("SDF:usage=sm4", sm4));
  // Schemes do not cross: an sdf: pattern never covers a PKCS#11 key, a
  // pkcs11: pattern never an SDF key (even with the same labels).
  const KeyAttributes token = Key("card0", "server");
  EXPECT_FALSE(Matches("sdf:device=card0", token));
  EXPECT_FALSE(Matches("pkcs11:token=card0", sign));
  EXPECT_FALSE(Matches("pkcs11:object=server", sign));
  EXPECT_TRUE(Matches("pkcs11:object=server", token));
  // A label pattern and "*" cover both.
  EXPECT_TRUE(Matches("serv*", sign));
  EXPECT_TRUE(Matches("serv*", token));
  EXPECT_TRUE(Matches("*", sign));
}

TEST(KeyPatternTest, LabelShorthand) {
  EXPECT_TRUE(Matches("ec-*", Key("demo", "ec-p256")));
  EXPECT_TRUE(Matches("ec-p???", Key("other", "ec-p384")));
  EXPECT_FALSE(Matches("ec-*", Key("demo", "rsa-2048")));
}

TEST(KeyPatternTest, ErrorsNameTheProblem) {
  auto error = [](const std::string& pattern) {
    absl::StatusOr<KeyPattern> p = KeyPattern::Parse(pattern);
    EXPECT_FALSE(p.ok()) << pattern;
    return std::string(p.status().message());
  };
  EXPECT_THAT(error(""), HasSubstr("empty key pattern"));
  EXPECT_THAT(error("pkcs11:"), HasSubstr("names no attribute"));
  EXPECT_THAT(error("pkcs11:serial=1234"),
              HasSubstr("attribute \"serial\" is not supported"));
  EXPECT_THAT(error("pkcs11:object=a;object=b"), HasSubstr("given twice"));
  EXPECT_THAT(error("pkcs11:object=a?pin-value=1"), HasSubstr("query"));
  EXPECT_THAT(error("pkcs11:object=%zz"), HasSubstr("bad percent escape"));
  EXPECT_THAT(error("pkcs11:object"), HasSubstr("has no '='"));
  EXPECT_THAT(error("pkcs11:type=public"), HasSubstr("type=private"));
  EXPECT_THAT(error("file:key.pem"), HasSubstr("neither"));
  EXPECT_THAT(error("sdf:"), HasSubstr("names no attribute"));
  EXPECT_THAT(error("sdf:slot=1"),
              HasSubstr("attribute \"slot\" is not supported in sdf:"));
  EXPECT_THAT(error("sdf:index=x"), HasSubstr("want a decimal key index"));
  EXPECT_THAT(error("sdf:index=4294967296"),
              HasSubstr("want a decimal key index"));
  EXPECT_THAT(error("sdf:index=-1"), HasSubstr("want a decimal key index"));
  EXPECT_THAT(error("sdf:usage=decrypt"), HasSubstr("want sign, enc or sm4"));
  EXPECT_THAT(error("sdf:usage=sign;usage=enc"), HasSubstr("given twice"));
  EXPECT_THAT(error("sdf:device=a?x=1"), HasSubstr("query"));
  EXPECT_THAT(error("sdf:device"), HasSubstr("has no '='"));
  EXPECT_THAT(error("sdf:object=%z1"), HasSubstr("bad percent escape"));
}

}  // namespace
}  // namespace hsmd::policy
