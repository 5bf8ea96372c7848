#include "client_lib/grpc_framing.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hsmd::client {
namespace {

using ::testing::HasSubstr;

std::string Frame(absl::string_view message) {
  absl::StatusOr<std::string> framed = EncodeGrpcMessage(message);
  EXPECT_TRUE(framed.ok()) << framed.status();
  return framed.value_or("");
}

TEST(EncodeGrpcMessageTest, WritesFlagAndBigEndianLength) {
  std::string message(0x010203, 'x');
  const std::string framed = Frame(message);
  ASSERT_EQ(framed.size(), message.size() + 5);
  EXPECT_EQ(framed.substr(0, 5), std::string("\0\0\x01\x02\x03", 5));
  EXPECT_EQ(framed.substr(5), message);
}

TEST(EncodeGrpcMessageTest, EmptyMessage) {
  EXPECT_EQ(Frame(""), std::string(5, '\0'));
}

TEST(GrpcMessageDecoderTest, WholeMessage) {
  GrpcMessageDecoder decoder(1024);
  ASSERT_TRUE(decoder.Feed(Frame("hello")).ok());
  absl::StatusOr<absl::string_view> message = decoder.Finish();
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_EQ(*message, "hello");
}

TEST(GrpcMessageDecoderTest, EveryByteSeparately) {
  const std::string framed = Frame("split across many DATA frames");
  GrpcMessageDecoder decoder(1024);
  for (char c : framed) {
    ASSERT_TRUE(decoder.Feed(absl::string_view(&c, 1)).ok());
  }
  EXPECT_EQ(decoder.Finish().value_or("?"), "split across many DATA frames");
}

TEST(GrpcMessageDecoderTest, EmptyMessageIsAMessage) {
  GrpcMessageDecoder decoder(1024);
  ASSERT_TRUE(decoder.Feed(Frame("")).ok());
  absl::StatusOr<absl::string_view> message = decoder.Finish();
  ASSERT_TRUE(message.ok()) << message.status();
  EXPECT_TRUE(message->empty());
}

TEST(GrpcMessageDecoderTest, MessageAtTheLimitIsAccepted) {
  GrpcMessageDecoder decoder(10);
  ASSERT_TRUE(decoder.Feed(Frame("0123456789")).ok());
  EXPECT_TRUE(decoder.Finish().ok());
}

TEST(GrpcMessageDecoderTest, MessageOverTheLimitIsResourceExhausted) {
  GrpcMessageDecoder decoder(10);
  // Only the header is needed to reject it.
  absl::Status status = decoder.Feed(Frame("0123456789A").substr(0, 5));
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(status.message(), HasSubstr("11 bytes"));
  EXPECT_THAT(status.message(), HasSubstr("max_response_bytes"));
  // Sticky.
  EXPECT_EQ(decoder.Feed("x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(decoder.Finish().status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(GrpcMessageDecoderTest, CompressedFlagIsRejected) {
  std::string framed = Frame("zzz");
  framed[0] = 1;
  GrpcMessageDecoder decoder(1024);
  absl::Status status = decoder.Feed(framed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("compressed"));
}

TEST(GrpcMessageDecoderTest, UnknownFlagsAreRejected) {
  std::string framed = Frame("zzz");
  framed[0] = static_cast<char>(0x80);
  GrpcMessageDecoder decoder(1024);
  absl::Status status = decoder.Feed(framed);
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("0x80"));
}

TEST(GrpcMessageDecoderTest, SecondMessageIsRejected) {
  GrpcMessageDecoder decoder(1024);
  absl::Status status = decoder.Feed(Frame("one") + Frame("two"));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("more than one"));
}

TEST(GrpcMessageDecoderTest, TruncatedPayload) {
  GrpcMessageDecoder decoder(1024);
  ASSERT_TRUE(decoder.Feed(Frame("truncated").substr(0, 8)).ok());
  absl::Status status = decoder.Finish().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("3 of 9 bytes"));
}

TEST(GrpcMessageDecoderTest, TruncatedHeader) {
  GrpcMessageDecoder decoder(1024);
  ASSERT_TRUE(decoder.Feed(std::string(3, '\0')).ok());
  absl::Status status = decoder.Finish().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("message header"));
}

TEST(GrpcMessageDecoderTest, NoMessage) {
  GrpcMessageDecoder decoder(1024);
  absl::Status status = decoder.Finish().status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("no response message"));
}

TEST(GrpcMessageDecoderTest, ResetAllowsReuse) {
  GrpcMessageDecoder decoder(4);
  EXPECT_FALSE(decoder.Feed(Frame("too long")).ok());
  decoder.Reset();
  ASSERT_TRUE(decoder.Feed(Frame("ok")).ok());
  EXPECT_EQ(decoder.Finish().value_or("?"), "ok");
}

TEST(GrpcTimeoutTest, ChoosesExactCoarseUnit) {
  EXPECT_EQ(EncodeGrpcTimeout(absl::Milliseconds(1500)), "1500m");
  EXPECT_EQ(EncodeGrpcTimeout(absl::Seconds(30)), "30S");
  EXPECT_EQ(EncodeGrpcTimeout(absl::Minutes(2)), "2M");
  EXPECT_EQ(EncodeGrpcTimeout(absl::Hours(3)), "3H");
  EXPECT_EQ(EncodeGrpcTimeout(absl::Microseconds(250)), "250u");
  EXPECT_EQ(EncodeGrpcTimeout(absl::Nanoseconds(7)), "7n");
}

TEST(GrpcTimeoutTest, RoundsUpToFitEightDigits) {
  // 1.234567891 s does not fit in 8 digits of ns; in us it rounds up.
  EXPECT_EQ(EncodeGrpcTimeout(absl::Nanoseconds(1234567891)), "1234568u");
  EXPECT_EQ(EncodeGrpcTimeout(absl::Nanoseconds(99999999)), "99999999n");
  EXPECT_EQ(EncodeGrpcTimeout(absl::Nanoseconds(100000001)), "100001u");
}

TEST(GrpcTimeoutTest, ValueNeverExceedsEightDigits) {
  for (absl::Duration d : {absl::Nanoseconds(1), absl::Milliseconds(99999999),
                           absl::Seconds(123456789), absl::Hours(100000),
                           absl::Hours(2000000), absl::InfiniteDuration()}) {
    const std::string encoded = EncodeGrpcTimeout(d);
    EXPECT_LE(encoded.size(), kMaxGrpcTimeoutChars) << encoded;
    absl::StatusOr<absl::Duration> parsed = ParseGrpcTimeout(encoded);
    ASSERT_TRUE(parsed.ok()) << encoded;
    if (d != absl::InfiniteDuration()) {
      EXPECT_GE(*parsed, d) << encoded;
    }
  }
}

TEST(GrpcTimeoutTest, NonPositiveEncodesAsMinimum) {
  EXPECT_EQ(EncodeGrpcTimeout(absl::ZeroDuration()), "1n");
  EXPECT_EQ(EncodeGrpcTimeout(absl::Seconds(-1)), "1n");
}

TEST(GrpcTimeoutTest, ParseRejectsMalformed) {
  for (absl::string_view bad :
       {"", "S", "10", "123456789S", "1x", "-1S", "1 S", "1.5S"}) {
    absl::StatusOr<absl::Duration> parsed = ParseGrpcTimeout(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    if (!parsed.ok()) {
      EXPECT_THAT(parsed.status().message(), HasSubstr("grpc-timeout"));
    }
  }
  EXPECT_EQ(ParseGrpcTimeout("1500m").value_or(absl::ZeroDuration()),
            absl::Milliseconds(1500));
}

TEST(PercentDecodeTest, DecodesEscapes) {
  EXPECT_EQ(PercentDecodeGrpcMessage("a%20b%25c%0A"), "a b%c\n");
  EXPECT_EQ(PercentDecodeGrpcMessage("%D0%BA%d0%bb"), "кл");
  EXPECT_EQ(PercentDecodeGrpcMessage("plain"), "plain");
}

TEST(PercentDecodeTest, KeepsMalformedEscapesVerbatim) {
  EXPECT_EQ(PercentDecodeGrpcMessage("100%"), "100%");
  EXPECT_EQ(PercentDecodeGrpcMessage("%4"), "%4");
  EXPECT_EQ(PercentDecodeGrpcMessage("%zz%4g"), "%zz%4g");
  EXPECT_EQ(PercentDecodeGrpcMessage("%%41"), "%A");
}

TEST(PercentDecodeTest, RoundTripsEncode) {
  const std::string message = "ключ %/\n\x01 done";
  const std::string encoded = PercentEncodeGrpcMessage(message);
  for (char c : encoded) {
    EXPECT_TRUE(c >= 0x20 && c <= 0x7e);
  }
  EXPECT_EQ(PercentDecodeGrpcMessage(encoded), message);
}

TEST(Base64DecodeTest, PaddedAndUnpadded) {
  EXPECT_EQ(Base64Decode("aGVsbG8=").value_or("?"), "hello");
  EXPECT_EQ(Base64Decode("aGVsbG8").value_or("?"), "hello");
  EXPECT_EQ(Base64Decode("aGk=").value_or("?"), "hi");
  EXPECT_EQ(Base64Decode("aGk").value_or("?"), "hi");
  EXPECT_EQ(Base64Decode("aGV5").value_or("?"), "hey");
  EXPECT_EQ(Base64Decode("").value_or("?"), "");
  EXPECT_EQ(Base64Decode("+/8=").value_or("?"), "\xfb\xff");
}

TEST(Base64DecodeTest, RejectsMalformed) {
  for (absl::string_view bad : {"a", "aGVsb", "aG=k", "a===", "aGk==", "aG-k",
                                "aG_k", "aGk\n", "===="}) {
    absl::StatusOr<std::string> decoded = Base64Decode(bad);
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    if (!decoded.ok()) {
      EXPECT_THAT(decoded.status().message(), HasSubstr("malformed base64"));
    }
  }
}

TEST(ParseGrpcStatusTest, KnownCodes) {
  EXPECT_EQ(ParseGrpcStatus("0").value(), absl::StatusCode::kOk);
  EXPECT_EQ(ParseGrpcStatus("5").value(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ParseGrpcStatus("16").value(), absl::StatusCode::kUnauthenticated);
}

TEST(ParseGrpcStatusTest, UnknownNumbersMapToUnknown) {
  EXPECT_EQ(ParseGrpcStatus("17").value(), absl::StatusCode::kUnknown);
  EXPECT_EQ(ParseGrpcStatus("999999999").value(), absl::StatusCode::kUnknown);
}

TEST(ParseGrpcStatusTest, RejectsNonNumbers) {
  for (absl::string_view bad : {"", "-1", "1a", " 1", "1234567890", "OK"}) {
    absl::StatusOr<absl::StatusCode> code = ParseGrpcStatus(bad);
    EXPECT_EQ(code.status().code(), absl::StatusCode::kInternal) << bad;
    if (!code.ok()) {
      EXPECT_THAT(code.status().message(), HasSubstr("malformed grpc-status"));
    }
  }
}

TEST(StatusMappingTest, HttpStatus) {
  EXPECT_EQ(GrpcCodeFromHttpStatus(400), absl::StatusCode::kInternal);
  EXPECT_EQ(GrpcCodeFromHttpStatus(401), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(GrpcCodeFromHttpStatus(403), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(GrpcCodeFromHttpStatus(404), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(GrpcCodeFromHttpStatus(429), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GrpcCodeFromHttpStatus(502), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GrpcCodeFromHttpStatus(503), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GrpcCodeFromHttpStatus(504), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GrpcCodeFromHttpStatus(500), absl::StatusCode::kUnknown);
}

TEST(StatusMappingTest, Http2ErrorCodes) {
  EXPECT_EQ(GrpcCodeFromHttp2Error(0x0), absl::StatusCode::kInternal);
  EXPECT_EQ(GrpcCodeFromHttp2Error(0x1), absl::StatusCode::kInternal);
  EXPECT_EQ(GrpcCodeFromHttp2Error(0x7), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GrpcCodeFromHttp2Error(0x8), absl::StatusCode::kCancelled);
  EXPECT_EQ(GrpcCodeFromHttp2Error(0xb), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GrpcCodeFromHttp2Error(0xc), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(GrpcCodeFromHttp2Error(0x99), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace hsmd::client
