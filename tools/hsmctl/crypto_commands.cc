#include "tools/hsmctl/crypto_commands.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "tools/hsmctl/algorithms.h"
#include "tools/hsmctl/io.h"
#include "tools/hsmctl/key_commands.h"
#include "tools/hsmctl/local_crypto.h"

namespace hsmd::hsmctl {
namespace {

// hsmd's documented GenerateRandom limit.
constexpr uint32_t kMaxRandomBytes = 65536;

SignFlags SignFlagsFrom(const ParsedArgs& args) {
  SignFlags flags;
  flags.alg = args.GetOr("alg", "");
  flags.hash = args.Get("hash");
  flags.salt_len = args.Get("salt-len");
  flags.mgf1 = args.Get("mgf1");
  flags.digest_input = args.Has("digest-input");
  return flags;
}

CipherFlags CipherFlagsFrom(const ParsedArgs& args) {
  CipherFlags flags;
  flags.alg = args.GetOr("alg", "");
  flags.hash = args.Get("hash");
  flags.mgf1 = args.Get("mgf1");
  flags.label_hex = args.Get("label");
  return flags;
}

// Where binary output goes: --out, or nowhere when --json prints it instead.
// Binary and JSON on the same stdout would be unusable.
absl::StatusOr<absl::optional<std::string>> BinaryOutputPath(
    CommandContext& ctx, const ParsedArgs& args) {
  absl::optional<std::string> out = args.Get("out");
  if (!ctx.json()) {
    if (!out.has_value()) return UsageError("--out is required");
    return out;
  }
  if (out.has_value() && *out == "-") {
    return UsageError(
        "--out - cannot be combined with --json (both use "
        "stdout); give a file");
  }
  return out;
}

absl::Status RunSign(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  RETURN_IF_ERROR(RequiredOption(args, "alg").status());
  ASSIGN_OR_RETURN(SignOptions options,
                   AsUsageError(ParseSignOptions(SignFlagsFrom(args))));
  if (options.salt.kind == SaltLength::kAuto) {
    return UsageError(
        "--salt-len auto is only meaningful for verify; sign "
        "with digest, max or a byte count");
  }
  ASSIGN_OR_RETURN(std::string in_path, RequiredOption(args, "in"));
  ASSIGN_OR_RETURN(absl::optional<std::string> out_path,
                   BinaryOutputPath(ctx, args));
  ASSIGN_OR_RETURN(std::string input, ReadInput("--in", in_path, ctx.in()));
  RETURN_IF_ERROR(CheckDigestInput(options, input));
  if (options.salt.kind == SaltLength::kMax) {
    ASSIGN_OR_RETURN(v1::Key key, FetchKey(ctx, ref));
    if (key.key_type() != v1::KEY_TYPE_RSA) {
      return UsageError(absl::StrCat("rsa-pss cannot be used with ",
                                     DescribeKeyType(key), " key ", key.uri()));
    }
    v1::RsaPssSignature* pss = options.algorithm.mutable_rsa_pss();
    ASSIGN_OR_RETURN(uint32_t max, AsUsageError(MaxPssSaltLength(
                                       key.size_bits(), pss->hash())));
    pss->set_salt_length(max);
  }

  v1::SignRequest request;
  *request.mutable_key() = ref;
  *request.mutable_algorithm() = options.algorithm;
  if (options.digest_input) {
    request.set_digest(std::move(input));
  } else {
    request.set_message(std::move(input));
  }
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::SignResponse response, client->Sign(request));
  if (out_path.has_value()) {
    RETURN_IF_ERROR(
        WriteOutput("--out", *out_path, response.signature(), ctx.out()));
  }
  if (ctx.json()) return ctx.PrintJson(response);
  return absl::OkStatus();
}

absl::Status RunVerify(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  RETURN_IF_ERROR(RequiredOption(args, "alg").status());
  ASSIGN_OR_RETURN(SignOptions options,
                   AsUsageError(ParseSignOptions(SignFlagsFrom(args))));
  ASSIGN_OR_RETURN(std::string in_path, RequiredOption(args, "in"));
  ASSIGN_OR_RETURN(std::string sig_path, RequiredOption(args, "sig"));
  if (in_path == "-" && sig_path == "-") {
    return UsageError("--in and --sig cannot both be stdin");
  }
  ASSIGN_OR_RETURN(std::string input, ReadInput("--in", in_path, ctx.in()));
  ASSIGN_OR_RETURN(std::string signature,
                   ReadInput("--sig", sig_path, ctx.in()));
  // Only the public key comes from hsmd; the signature never leaves here.
  ASSIGN_OR_RETURN(v1::Key key, FetchKey(ctx, ref));
  ASSIGN_OR_RETURN(EvpPkeyPtr public_key,
                   ParsePublicKeyDer(key.public_key_der()));
  ASSIGN_OR_RETURN(
      bool ok, VerifySignature(public_key.get(), options, input, signature));
  if (!ok) ctx.set_exit_code(kExitVerificationFailed);
  if (ctx.json()) {
    google::protobuf::Struct result;
    auto& fields = *result.mutable_fields();
    fields["verified"].set_bool_value(ok);
    fields["keyId"].set_string_value(key.key_id());
    fields["algorithm"].set_string_value(
        DescribeSignatureAlgorithm(options.algorithm));
    return ctx.PrintJson(result);
  }
  ctx.out() << (ok ? "Signature OK\n" : "Signature verification FAILED\n");
  return absl::OkStatus();
}

absl::Status RunEncrypt(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  RETURN_IF_ERROR(RequiredOption(args, "alg").status());
  ASSIGN_OR_RETURN(v1::DecryptionAlgorithm alg,
                   AsUsageError(ParseCipherAlgorithm(CipherFlagsFrom(args))));
  ASSIGN_OR_RETURN(std::string in_path, RequiredOption(args, "in"));
  ASSIGN_OR_RETURN(std::string out_path, RequiredOption(args, "out"));
  ASSIGN_OR_RETURN(std::string plaintext, ReadInput("--in", in_path, ctx.in()));
  ASSIGN_OR_RETURN(v1::Key key, FetchKey(ctx, ref));
  ASSIGN_OR_RETURN(EvpPkeyPtr public_key,
                   ParsePublicKeyDer(key.public_key_der()));
  ASSIGN_OR_RETURN(std::string ciphertext,
                   EncryptWithPublicKey(public_key.get(), alg, plaintext));
  return WriteOutput("--out", out_path, ciphertext, ctx.out());
}

absl::Status RunDecrypt(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  RETURN_IF_ERROR(RequiredOption(args, "alg").status());
  ASSIGN_OR_RETURN(v1::DecryptionAlgorithm alg,
                   AsUsageError(ParseCipherAlgorithm(CipherFlagsFrom(args))));
  ASSIGN_OR_RETURN(std::string in_path, RequiredOption(args, "in"));
  ASSIGN_OR_RETURN(absl::optional<std::string> out_path,
                   BinaryOutputPath(ctx, args));
  v1::DecryptRequest request;
  *request.mutable_key() = ref;
  *request.mutable_algorithm() = alg;
  ASSIGN_OR_RETURN(*request.mutable_ciphertext(),
                   ReadInput("--in", in_path, ctx.in()));
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::DecryptResponse response, client->Decrypt(request));
  if (out_path.has_value()) {
    // Plaintext may be a secret: readable by the owner only.
    RETURN_IF_ERROR(
        WriteOutput("--out", *out_path, response.plaintext(), ctx.out(), 0600));
  }
  if (ctx.json()) return ctx.PrintJson(response);
  return absl::OkStatus();
}

absl::Status RunRandom(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(
      uint32_t length,
      AsUsageError(ParseUint("N", args.positional()[0], 1, kMaxRandomBytes)));
  absl::optional<std::string> out_path = args.Get("out");
  if (out_path.has_value() && args.Has("hex")) {
    return UsageError("--hex and --out are exclusive");
  }
  if (out_path.has_value() && *out_path == "-" && ctx.json()) {
    return UsageError("--out - cannot be combined with --json");
  }
  v1::GenerateRandomRequest request;
  request.set_length(length);
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::GenerateRandomResponse response,
                   client->GenerateRandom(request));
  if (response.data().size() != length) {
    return absl::InternalError(absl::StrCat("hsmd returned ",
                                            response.data().size(),
                                            " random bytes, not ", length));
  }
  if (out_path.has_value()) {
    RETURN_IF_ERROR(
        WriteOutput("--out", *out_path, response.data(), ctx.out(), 0600));
  }
  if (ctx.json()) return ctx.PrintJson(response);
  if (!out_path.has_value()) {
    ctx.out() << absl::BytesToHexString(response.data()) << "\n";
  }
  return absl::OkStatus();
}

std::vector<OptionSpec> SignOptionSpecs(bool verify) {
  std::vector<OptionSpec> specs = {
      {"alg", "ALG",
       "rsa-pkcs1, rsa-pss, ecdsa or ed25519 (aliases: rsa-pkcs1-sha256, "
       "ecdsa-sha384, ...)"},
      {"hash", "HASH",
       "sha1, sha224, sha256 (default), sha384, sha512; rsa-pkcs1 also "
       "md5-sha1 and none"},
      {"salt-len", "N",
       verify ? "rsa-pss salt: bytes, digest (default), max or auto"
              : "rsa-pss salt: bytes, digest (default) or max"},
      {"mgf1", "HASH", "rsa-pss MGF1 hash (default: --hash)"},
      {"in", "FILE", "message (or digest with --digest-input); - for stdin"},
  };
  if (verify) {
    specs.push_back({"sig", "FILE", "signature to check"});
  } else {
    specs.push_back({"out", "FILE", "signature output; - for stdout"});
  }
  specs.push_back({"digest-input", "",
                   "--in holds a precomputed digest (for rsa-pkcs1 with "
                   "--hash none: a DER DigestInfo)"});
  return specs;
}

std::vector<OptionSpec> CipherOptionSpecs(absl::string_view in_help,
                                          absl::string_view out_help) {
  return {
      {"alg", "ALG", "rsa-pkcs1 or rsa-oaep"},
      {"hash", "HASH", "rsa-oaep hash (default sha1, as in OpenSSL)"},
      {"mgf1", "HASH", "rsa-oaep MGF1 hash (default: --hash)"},
      {"label", "HEX", "rsa-oaep label in hex (default empty)"},
      {"in", "FILE", std::string(in_help)},
      {"out", "FILE", std::string(out_help)},
  };
}

}  // namespace

std::vector<CommandSpec> CryptoCommands() {
  return {
      {
          "sign",
          "URI|KEY_ID --alg ALG [--hash H] [--salt-len N] [--mgf1 H] --in "
          "FILE --out FILE [--digest-input]",
          "Sign a message or digest with an HSM key",
          "The message is hashed by hsmd (or, with --digest-input, the input "
          "is the digest).\nECDSA signatures are DER-encoded; the output is "
          "the raw signature, as\n`openssl pkeyutl -verify` and `openssl dgst "
          "-verify` expect.",
          SignOptionSpecs(false),
          1,
          1,
          RunSign,
      },
      {
          "verify",
          "URI|KEY_ID --alg ALG [--hash H] [--salt-len N] [--mgf1 H] --in "
          "FILE --sig FILE [--digest-input]",
          "Verify a signature locally with the key's public half",
          "Fetches the public key from hsmd and verifies with OpenSSL; the "
          "signature is\nnever sent to hsmd. Prints \"Signature OK\" (exit 0) "
          "or \"Signature verification\nFAILED\" (exit 1).",
          SignOptionSpecs(true),
          1,
          1,
          RunVerify,
      },
      {
          "encrypt",
          "URI|KEY_ID --alg rsa-pkcs1|rsa-oaep [--hash H] [--mgf1 H] "
          "[--label HEX] --in FILE --out FILE",
          "Encrypt locally with an RSA key's public half",
          "",
          CipherOptionSpecs("plaintext; - for stdin",
                            "ciphertext output; - for stdout"),
          1,
          1,
          RunEncrypt,
      },
      {
          "decrypt",
          "URI|KEY_ID --alg rsa-pkcs1|rsa-oaep [--hash H] [--mgf1 H] "
          "[--label HEX] --in FILE --out FILE",
          "Decrypt with an HSM RSA key",
          "A file written with --out is created with mode 0600. A padding "
          "failure is\nreported only as \"decryption failed\".",
          CipherOptionSpecs("ciphertext; - for stdin",
                            "plaintext output; - for stdout"),
          1,
          1,
          RunDecrypt,
      },
      {
          "random",
          "N [--hex | --out FILE]",
          "Get N random bytes (1..65536) from the HSM",
          "Prints hex by default; --out writes the raw bytes (- for stdout).",
          {
              {"hex", "", "print as hex (the default)"},
              {"out", "FILE", "write the raw bytes to FILE"},
          },
          1,
          1,
          RunRandom,
      },
  };
}

}  // namespace hsmd::hsmctl
