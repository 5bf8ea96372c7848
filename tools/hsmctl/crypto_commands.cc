#include "tools/hsmctl/crypto_commands.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "client_lib/client.h"
#include "common/sm2.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "tools/hsmctl/algorithms.h"
#include "tools/hsmctl/io.h"
#include "tools/hsmctl/key_commands.h"
#include "tools/hsmctl/local_crypto.h"
#include "tools/hsmctl/sm4.h"

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
  flags.id = args.Get("id");
  flags.id_hex = args.Get("id-hex");
  flags.digest_input = args.Has("digest-input");
  return flags;
}

CipherFlags CipherFlagsFrom(const ParsedArgs& args) {
  CipherFlags flags;
  flags.alg = args.GetOr("alg", "");
  flags.hash = args.Get("hash");
  flags.mgf1 = args.Get("mgf1");
  flags.label_hex = args.Get("label");
  flags.iv_hex = args.Get("iv");
  flags.padding = args.Get("padding");
  return flags;
}

// The key `ref` names, which `what` needs to be an SM2 key allowing `op`.
// Checked here because hsmctl uses the public key locally (Z, encryption),
// where hsmd would never see the mistake.
absl::StatusOr<v1::Key> FetchSm2Key(CommandContext& ctx, const v1::KeyRef& ref,
                                    absl::string_view what, v1::Operation op,
                                    absl::string_view usage) {
  ASSIGN_OR_RETURN(v1::Key key, FetchKey(ctx, ref));
  if (key.key_type() != v1::KEY_TYPE_SM2) {
    return UsageError(absl::StrCat(what, " needs an SM2 key; ", key.uri(),
                                   " is ", DescribeKeyType(key)));
  }
  if (!AllowsOperation(key, op)) {
    return UsageError(absl::StrCat(what, " needs an SM2 key that allows ",
                                   OperationName(op), "; ", key.uri(),
                                   " allows ", DescribeOperations(key),
                                   " (use usage=", usage, ")"));
  }
  return key;
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
  if (options.algorithm.has_sm2()) {
    std::string e = std::move(input);
    if (!options.digest_input) {
      // Only e = SM3(Z || M) goes to hsmd, whatever the message's size.
      ASSIGN_OR_RETURN(v1::Key key, FetchSm2Key(ctx, ref, "sm2 signing",
                                                v1::OPERATION_SIGN, "sign"));
      ASSIGN_OR_RETURN(EvpPkeyPtr public_key, PublicKeyOf(key));
      ASSIGN_OR_RETURN(e, Sm2Digest(public_key.get(), options.sm2_id, e));
    }
    ASSIGN_OR_RETURN(request, client::Sm2SignDigestRequest(ref, std::move(e)));
  } else {
    *request.mutable_key() = ref;
    *request.mutable_algorithm() = options.algorithm;
    if (options.digest_input) {
      request.set_digest(std::move(input));
    } else {
      request.set_message(std::move(input));
    }
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
  ASSIGN_OR_RETURN(EvpPkeyPtr public_key, PublicKeyOf(key));
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

// SM4 through hsmd: the whole of `input` with PKCS#7 padding unless
// --padding none, and for CBC the IV from --iv or, when encrypting without
// one, a fresh IV from the HSM's generator written in front of the
// ciphertext (decrypt then takes it from there).
absl::StatusOr<Sm4Result> RunSm4(CommandContext& ctx, const v1::KeyRef& ref,
                                 const CipherOptions& options,
                                 std::string input, bool encrypt) {
  const v1::Sm4Cipher& sm4 = options.algorithm.sm4();
  const bool pad = options.padding == Sm4Padding::kPkcs7;
  const absl::string_view what = encrypt ? "plaintext" : "ciphertext";
  std::string iv = sm4.iv();
  std::string prefix;
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  if (sm4.mode() == v1::CIPHER_MODE_CBC && iv.empty()) {
    if (encrypt) {
      v1::GenerateRandomRequest random;
      random.set_length(client::kSm4BlockBytes);
      ASSIGN_OR_RETURN(v1::GenerateRandomResponse response,
                       client->GenerateRandom(random));
      if (response.data().size() != client::kSm4BlockBytes) {
        return absl::InternalError(
            absl::StrCat("hsmd returned ", response.data().size(),
                         " random bytes, not ", client::kSm4BlockBytes));
      }
      iv = response.data();
      prefix = iv;
    } else {
      if (input.size() < client::kSm4BlockBytes) {
        return UsageError(absl::StrCat(
            "the input is ", input.size(),
            " bytes, too short to start with "
            "the 16-byte IV (give --iv HEX if the IV is kept elsewhere)"));
      }
      iv = input.substr(0, client::kSm4BlockBytes);
      input.erase(0, client::kSm4BlockBytes);
    }
  }
  if (encrypt && pad) input = Pkcs7Pad(input);
  if (input.empty() || input.size() % client::kSm4BlockBytes != 0) {
    return UsageError(absl::StrCat(
        "the ", what, " is ", input.size(),
        " bytes; SM4 needs a non-zero multiple of 16",
        encrypt ? " with --padding none (leave it out for PKCS#7 padding)"
                : " (is this SM4 ciphertext, and was it written with --iv?)"));
  }
  ASSIGN_OR_RETURN(Sm4Result result, Sm4ThroughHsmd(*client, ref, sm4.mode(),
                                                    iv, input, encrypt));
  if (!encrypt && pad) {
    ASSIGN_OR_RETURN(result.output, Pkcs7Unpad(result.output));
  }
  result.output.insert(0, prefix);
  return result;
}

absl::Status RunEncrypt(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  RETURN_IF_ERROR(RequiredOption(args, "alg").status());
  ASSIGN_OR_RETURN(CipherOptions options,
                   AsUsageError(ParseCipherOptions(CipherFlagsFrom(args))));
  ASSIGN_OR_RETURN(std::string in_path, RequiredOption(args, "in"));
  ASSIGN_OR_RETURN(absl::optional<std::string> out_path,
                   BinaryOutputPath(ctx, args));
  ASSIGN_OR_RETURN(std::string plaintext, ReadInput("--in", in_path, ctx.in()));
  v1::EncryptResponse response;
  if (options.algorithm.has_sm4()) {
    ASSIGN_OR_RETURN(Sm4Result result,
                     RunSm4(ctx, ref, options, std::move(plaintext),
                            /*encrypt=*/true));
    response.set_ciphertext(std::move(result.output));
    response.set_key_id(std::move(result.key_id));
  } else {
    // Public-key encryption needs no HSM: only the public key is fetched.
    v1::Key key;
    if (options.algorithm.has_sm2()) {
      ASSIGN_OR_RETURN(key, FetchSm2Key(ctx, ref, "sm2 encryption",
                                        v1::OPERATION_DECRYPT, "enc"));
    } else {
      ASSIGN_OR_RETURN(key, FetchKey(ctx, ref));
    }
    ASSIGN_OR_RETURN(EvpPkeyPtr public_key, PublicKeyOf(key));
    ASSIGN_OR_RETURN(
        *response.mutable_ciphertext(),
        EncryptWithPublicKey(public_key.get(), options.algorithm, plaintext));
    response.set_key_id(key.key_id());
  }
  if (out_path.has_value()) {
    RETURN_IF_ERROR(
        WriteOutput("--out", *out_path, response.ciphertext(), ctx.out()));
  }
  if (ctx.json()) return ctx.PrintJson(response);
  return absl::OkStatus();
}

absl::Status RunDecrypt(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  RETURN_IF_ERROR(RequiredOption(args, "alg").status());
  ASSIGN_OR_RETURN(CipherOptions options,
                   AsUsageError(ParseCipherOptions(CipherFlagsFrom(args))));
  ASSIGN_OR_RETURN(std::string in_path, RequiredOption(args, "in"));
  ASSIGN_OR_RETURN(absl::optional<std::string> out_path,
                   BinaryOutputPath(ctx, args));
  ASSIGN_OR_RETURN(std::string ciphertext,
                   ReadInput("--in", in_path, ctx.in()));
  v1::DecryptResponse response;
  if (options.algorithm.has_sm4()) {
    ASSIGN_OR_RETURN(Sm4Result result,
                     RunSm4(ctx, ref, options, std::move(ciphertext),
                            /*encrypt=*/false));
    response.set_plaintext(std::move(result.output));
    response.set_key_id(std::move(result.key_id));
  } else {
    v1::DecryptRequest request;
    if (options.algorithm.has_sm2()) {
      ASSIGN_OR_RETURN(request, AsUsageError(client::Sm2DecryptRequest(
                                    ref, std::move(ciphertext))));
    } else {
      *request.mutable_key() = ref;
      *request.mutable_algorithm() = options.algorithm;
      request.set_ciphertext(std::move(ciphertext));
    }
    ASSIGN_OR_RETURN(client::Client * client, ctx.client());
    ASSIGN_OR_RETURN(response, client->Decrypt(request));
  }
  if (out_path.has_value()) {
    // Plaintext may be a secret: readable by the owner only.
    RETURN_IF_ERROR(
        WriteOutput("--out", *out_path, response.plaintext(), ctx.out(), 0600));
  }
  if (ctx.json()) return ctx.PrintJson(response);
  return absl::OkStatus();
}

absl::Status RunDerive(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  ASSIGN_OR_RETURN(std::string peer_path, RequiredOption(args, "peer"));
  ASSIGN_OR_RETURN(absl::optional<std::string> out_path,
                   BinaryOutputPath(ctx, args));
  ASSIGN_OR_RETURN(std::string peer, ReadInput("--peer", peer_path, ctx.in()));
  ASSIGN_OR_RETURN(std::string peer_der, PublicKeyDerFromFile("--peer", peer));
  v1::DeriveRequest request;
  *request.mutable_key() = ref;
  request.mutable_ecdh()->set_peer_public_key(std::move(peer_der));
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::DeriveResponse response, client->Derive(request));
  if (out_path.has_value()) {
    // A shared secret: readable by the owner only.
    RETURN_IF_ERROR(WriteOutput("--out", *out_path, response.shared_secret(),
                                ctx.out(), 0600));
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
       "rsa-pkcs1, rsa-pss, ecdsa, ed25519 or sm2 (aliases: "
       "rsa-pkcs1-sha256, ecdsa-sha384, sm2-sm3, ...)"},
      {"hash", "HASH",
       "sha1, sha224, sha256 (default), sha384, sha512; rsa-pkcs1 also "
       "md5-sha1 and none; sm2: sm3 only"},
      {"salt-len", "N",
       verify ? "rsa-pss salt: bytes, digest (default), max or auto"
              : "rsa-pss salt: bytes, digest (default) or max"},
      {"mgf1", "HASH", "rsa-pss MGF1 hash (default: --hash)"},
      {"id", "ID",
       "sm2 distinguishing ID (default 1234567812345678, GM/T 0009)"},
      {"id-hex", "HEX", "sm2 distinguishing ID in hex"},
      {"in", "FILE", "message (or digest with --digest-input); - for stdin"},
  };
  if (verify) {
    specs.push_back({"sig", "FILE", "signature to check"});
  } else {
    specs.push_back({"out", "FILE", "signature output; - for stdout"});
  }
  specs.push_back({"digest-input", "",
                   "--in holds a precomputed digest (for rsa-pkcs1 with "
                   "--hash none: a DER DigestInfo; for sm2: e = SM3(Z || M))"});
  return specs;
}

std::vector<OptionSpec> CipherOptionSpecs(absl::string_view in_help,
                                          absl::string_view out_help) {
  return {
      {"alg", "ALG", "rsa-pkcs1, rsa-oaep, sm2, sm4-ecb or sm4-cbc"},
      {"hash", "HASH", "rsa-oaep hash (default sha1, as in OpenSSL)"},
      {"mgf1", "HASH", "rsa-oaep MGF1 hash (default: --hash)"},
      {"label", "HEX", "rsa-oaep label in hex (default empty)"},
      {"iv", "HEX",
       "sm4-cbc IV, 32 hex digits (default: encrypt draws one from the HSM "
       "and writes it before the ciphertext; decrypt reads it from there)"},
      {"padding", "P", "sm4: pkcs7 (default, as openssl enc) or none"},
      {"in", "FILE", std::string(in_help)},
      {"out", "FILE", std::string(out_help)},
  };
}

}  // namespace

std::vector<CommandSpec> CryptoCommands() {
  return {
      {
          "sign",
          "URI|KEY_ID --alg ALG [--hash H] [--salt-len N] [--mgf1 H] [--id ID] "
          "--in FILE --out FILE [--digest-input]",
          "Sign a message or digest with an HSM key",
          "The message is hashed by hsmd (or, with --digest-input, the input "
          "is the digest).\nECDSA and SM2 signatures are DER-encoded; the "
          "output is the raw signature, as\n`openssl pkeyutl -verify` and "
          "`openssl dgst -verify` expect. sm2: hsmctl computes\nZ from the "
          "key's public key and --id and e = SM3(Z || M) itself, and sends\n"
          "only e; check with `openssl pkeyutl -verify -pubin -inkey PUB "
          "-rawin -digest sm3\n-pkeyopt distid:ID`.",
          SignOptionSpecs(false),
          1,
          1,
          RunSign,
      },
      {
          "verify",
          "URI|KEY_ID --alg ALG [--hash H] [--salt-len N] [--mgf1 H] [--id ID] "
          "--in FILE --sig FILE [--digest-input]",
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
          "URI|KEY_ID --alg rsa-pkcs1|rsa-oaep|sm2|sm4-ecb|sm4-cbc [--hash H] "
          "[--mgf1 H] [--label HEX] [--iv HEX] [--padding P] --in FILE "
          "--out FILE",
          "Encrypt: RSA / SM2 locally with the public key, SM4 in the HSM",
          "rsa-pkcs1, rsa-oaep and sm2 encrypt locally with the key's public "
          "half (sm2: the\nDER ciphertext `openssl pkeyutl -encrypt` writes, "
          "to a usage=enc key). sm4-ecb\nand sm4-cbc encrypt in the HSM with "
          "an SM4 key, PKCS#7-padded unless\n--padding none. With --iv the "
          "output is exactly `openssl enc -sm4-cbc -K KEY\n-iv IV`'s; without "
          "it a random IV from the HSM is written before the\nciphertext.",
          CipherOptionSpecs("plaintext; - for stdin",
                            "ciphertext output; - for stdout"),
          1,
          1,
          RunEncrypt,
      },
      {
          "decrypt",
          "URI|KEY_ID --alg rsa-pkcs1|rsa-oaep|sm2|sm4-ecb|sm4-cbc [--hash H] "
          "[--mgf1 H] [--label HEX] [--iv HEX] [--padding P] --in FILE "
          "--out FILE",
          "Decrypt with an HSM key (RSA, SM2 encryption key, SM4)",
          "A file written with --out is created with mode 0600. A padding "
          "failure is\nreported only as \"decryption failed\". sm2 takes "
          "OpenSSL's DER ciphertext; sm4-cbc\nwithout --iv takes the IV from "
          "the first 16 bytes of the input, as encrypt\nwrites it.",
          CipherOptionSpecs("ciphertext; - for stdin",
                            "plaintext output; - for stdout"),
          1,
          1,
          RunDecrypt,
      },
      {
          "derive",
          "URI|KEY_ID --peer FILE --out FILE",
          "ECDH key agreement with an HSM EC key",
          "Writes the raw shared secret (the x-coordinate, as `openssl pkeyutl "
          "-derive`\nreturns it; no KDF) with mode 0600. --peer is the other "
          "side's public key,\nPEM or DER, on the key's curve.",
          {
              {"peer", "FILE", "the peer's public key; - for stdin"},
              {"out", "FILE", "shared secret output; - for stdout"},
          },
          1,
          1,
          RunDerive,
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
