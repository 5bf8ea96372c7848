#include "tools/hsmctl/key_commands.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "tools/hsmctl/algorithms.h"
#include "tools/hsmctl/io.h"
#include "tools/hsmctl/local_crypto.h"
#include "tools/hsmctl/output.h"
#include "tools/hsmctl/pem_uri.h"

namespace hsmd::hsmctl {
namespace {

absl::Status RunList(CommandContext& ctx, const ParsedArgs& args) {
  v1::ListKeysRequest request;
  request.set_uri_filter(args.GetOr("uri", ""));
  request.set_label(args.GetOr("label", ""));
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::ListKeysResponse response, client->ListKeys(request));
  if (ctx.json()) return ctx.PrintJson(response);
  ctx.out() << FormatKeyTable(response);
  return absl::OkStatus();
}

absl::Status RunShow(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  absl::optional<std::string> pubout = args.Get("pubout");
  if (pubout.has_value() && *pubout == "-" && ctx.json()) {
    return UsageError(
        "--pubout - cannot be combined with --json (both use "
        "stdout); give a file");
  }
  ASSIGN_OR_RETURN(v1::Key key, FetchKey(ctx, ref));
  if (pubout.has_value()) {
    if (key.public_key_der().empty()) {
      return UsageError(absl::StrCat("--pubout: ", key.uri(), " is ",
                                     DescribeKeyType(key),
                                     ", a key without a public half"));
    }
    ASSIGN_OR_RETURN(std::string pem, PublicKeyDerToPem(key.public_key_der()));
    RETURN_IF_ERROR(WriteOutput("--pubout", *pubout, pem, ctx.out()));
    // The PEM went to stdout: nothing else may follow it there.
    if (*pubout == "-") return absl::OkStatus();
  }
  if (ctx.json()) {
    v1::GetKeyResponse response;
    *response.mutable_key() = key;
    return ctx.PrintJson(response);
  }
  ASSIGN_OR_RETURN(std::string text, FormatKeyDetails(key));
  ctx.out() << text;
  return absl::OkStatus();
}

absl::StatusOr<v1::GenerateKeyRequest> BuildGenerateKeyRequest(
    const ParsedArgs& args) {
  v1::GenerateKeyRequest request;
  ASSIGN_OR_RETURN(std::string label, RequiredOption(args, "label"));
  if (label.empty()) return UsageError("--label must not be empty");
  request.set_label(label);
  ASSIGN_OR_RETURN(std::string type, RequiredOption(args, "type"));
  ASSIGN_OR_RETURN(v1::KeyType key_type, AsUsageError(ParseKeyType(type)));
  request.set_key_type(key_type);
  if (key_type != v1::KEY_TYPE_RSA && args.Has("bits")) {
    return UsageError("--bits applies only to --type rsa");
  }
  if (key_type != v1::KEY_TYPE_EC && args.Has("curve")) {
    return UsageError("--curve applies only to --type ec");
  }
  if (key_type == v1::KEY_TYPE_RSA) {
    ASSIGN_OR_RETURN(uint32_t bits,
                     AsUsageError(ParseUint(
                         "--bits", args.GetOr("bits", "2048"), 1024, 16384)));
    request.set_rsa_bits(bits);
  }
  if (key_type == v1::KEY_TYPE_EC) {
    ASSIGN_OR_RETURN(v1::Curve curve,
                     AsUsageError(ParseCurve(args.GetOr("curve", "p256"))));
    request.set_curve(curve);
  }
  if (absl::optional<std::string> id = args.Get("id")) {
    ASSIGN_OR_RETURN(std::string bytes, AsUsageError(ParseHex("--id", *id)));
    request.set_id(bytes);
  }
  if (absl::optional<std::string> ops = args.Get("ops")) {
    ASSIGN_OR_RETURN(std::vector<v1::Operation> list,
                     AsUsageError(ParseOperations(*ops)));
    for (v1::Operation op : list) request.add_allowed_operations(op);
  }
  request.set_backend(args.GetOr("backend", ""));
  return request;
}

absl::Status RunGenKey(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::GenerateKeyRequest request,
                   BuildGenerateKeyRequest(args));
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::GenerateKeyResponse response,
                   client->GenerateKey(request));
  if (ctx.json()) return ctx.PrintJson(response);
  ASSIGN_OR_RETURN(std::string text, FormatKeyDetails(response.key()));
  ctx.out() << "Generated key:\n" << text;
  return absl::OkStatus();
}

// Asks on the terminal; only called when stdin is one.
absl::Status Confirm(CommandContext& ctx, const v1::Key& key) {
  ctx.err() << "Delete key '" << key.label() << "' (" << DescribeKeyType(key)
            << ", " << key.uri() << ")? This cannot be undone. [y/N] ";
  ctx.err().flush();
  std::string answer;
  std::getline(ctx.in(), answer);
  answer = absl::AsciiStrToLower(absl::StripAsciiWhitespace(answer));
  if (answer != "y" && answer != "yes") {
    return UsageError("not confirmed; nothing was deleted");
  }
  return absl::OkStatus();
}

absl::Status RunDelete(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  if (!args.Has("yes")) {
    if (!ctx.stdin_is_tty()) {
      return UsageError(
          "refusing to delete without --yes (stdin is not a terminal to ask)");
    }
    ASSIGN_OR_RETURN(v1::Key key, FetchKey(ctx, ref));
    RETURN_IF_ERROR(Confirm(ctx, key));
  }
  v1::DeleteKeyRequest request;
  *request.mutable_key() = ref;
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::DeleteKeyResponse response, client->DeleteKey(request));
  if (ctx.json()) return ctx.PrintJson(response);
  ctx.out() << "Deleted " << DescribeKeyRef(ref) << " ("
            << response.objects_deleted() << " token objects)\n";
  return absl::OkStatus();
}

absl::Status RunExportUriPem(CommandContext& ctx, const ParsedArgs& args) {
  ASSIGN_OR_RETURN(v1::KeyRef ref,
                   AsUsageError(ParseKeyRef(args.positional()[0])));
  // The file holds hsmd's canonical URI: it names exactly this key even if
  // the reference given here was a key id or a looser URI.
  ASSIGN_OR_RETURN(v1::Key key, FetchKey(ctx, ref));
  ASSIGN_OR_RETURN(std::string pem, EncodePemUriFile(key.uri()));
  const std::string out_path = args.GetOr("out", "-");
  if (ctx.json()) {
    if (out_path != "-") {
      RETURN_IF_ERROR(WriteOutput("--out", out_path, pem, ctx.out()));
    }
    google::protobuf::Struct result;
    auto& fields = *result.mutable_fields();
    fields["keyId"].set_string_value(key.key_id());
    fields["uri"].set_string_value(key.uri());
    fields["pem"].set_string_value(pem);
    return ctx.PrintJson(result);
  }
  return WriteOutput("--out", out_path, pem, ctx.out());
}

const OptionSpec kYes{"yes", "", "delete without asking", 'y'};

}  // namespace

absl::StatusOr<v1::Key> FetchKey(CommandContext& ctx, const v1::KeyRef& ref) {
  v1::GetKeyRequest request;
  *request.mutable_key() = ref;
  ASSIGN_OR_RETURN(client::Client * client, ctx.client());
  ASSIGN_OR_RETURN(v1::GetKeyResponse response, client->GetKey(request));
  return response.key();
}

std::vector<CommandSpec> KeyCommands() {
  return {
      {
          "list",
          "[--uri FILTER] [--label LABEL]",
          "List the keys hsmd can use",
          "FILTER is a pkcs11: or sdf: URI; only keys matching all its "
          "attributes are\nlisted (e.g. sdf:usage=sign for every SDF signing "
          "key).",
          {
              {"uri", "FILTER", "only keys matching this pkcs11: or sdf: URI"},
              {"label", "LABEL", "only keys with this label"},
          },
          0,
          0,
          RunList,
      },
      {
          "show",
          "URI|KEY_ID [--pubout FILE]",
          "Show one key: attributes, URI, public key (PEM), certificate",
          "",
          {
              {"pubout", "FILE",
               "also write the public key PEM to FILE (- "
               "for stdout, alone)"},
          },
          1,
          1,
          RunShow,
      },
      {
          "genkey",
          "--label LABEL --type rsa|ec|ed25519 [--bits N] [--curve C] "
          "[--id HEX] [--ops LIST]",
          "Generate a key pair inside the HSM",
          "The private key is created non-extractable. Defaults: --bits 2048, "
          "--curve p256,\n--ops sign (plus decrypt for RSA, derive for EC), "
          "CKA_ID "
          "derived "
          "from the public key.",
          {
              {"label", "LABEL", "CKA_LABEL of the new key pair (required)"},
              {"type", "TYPE", "rsa, ec or ed25519 (required)"},
              {"bits", "N", "RSA modulus size: 2048, 3072 or 4096"},
              {"curve", "CURVE", "EC curve: p256, p384 or p521"},
              {"id", "HEX", "CKA_ID in hex"},
              {"ops", "LIST",
               "allowed operations: sign, decrypt or "
               "sign,decrypt"},
              {"backend", "NAME",
               "backend to create the key on (default: "
               "the first)"},
          },
          0,
          0,
          RunGenKey,
      },
      {
          "delete",
          "URI|KEY_ID [--yes]",
          "Delete a key pair (and its certificate) from the HSM",
          "Without --yes, asks for confirmation when stdin is a terminal and "
          "refuses\notherwise.",
          {kYes},
          1,
          1,
          RunDelete,
      },
      {
          "export-uri-pem",
          "URI|KEY_ID [--out FILE]",
          "Write a PKCS#11 PROVIDER URI PEM key file naming the key",
          "The file (\"-----BEGIN PKCS#11 PROVIDER URI-----\") stands in for "
          "a private key file\nin programs that only take key files (nginx "
          "ssl_certificate_key, Python\nssl.load_cert_chain) when OpenSSL "
          "loads hsmproxy (or pkcs11-provider). It holds\nhsmd's canonical "
          "URI for the key, never key material. Checks the key exists\n"
          "first.",
          {
              {"out", "FILE", "write to FILE instead of stdout"},
          },
          1,
          1,
          RunExportUriPem,
      },
  };
}

}  // namespace hsmd::hsmctl
