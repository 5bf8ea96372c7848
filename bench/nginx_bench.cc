#include "bench/nginx_bench.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "bench/process.h"
#include "bench/tls_load.h"
#include "common/status_macros.h"

namespace hsmd::bench {
namespace {

struct Certificate {
  const char* name;   // "ecdsa-p256"
  const char* label;  // demo key label
  // `openssl req -newkey` for the PEM twin, and its -pkeyopt ("": none).
  const char* newkey;
  const char* pkeyopt;
};

constexpr Certificate kCertificates[] = {
    {"ecdsa-p256", "ec-p256", "ec", "ec_paramgen_curve:P-256"},
    {"rsa-2048", "rsa-2048", "rsa:2048", ""},
};

// DER length octets.
std::string DerLength(size_t n) {
  if (n < 128) return std::string(1, static_cast<char>(n));
  std::string bytes;
  while (n > 0) {
    bytes.insert(bytes.begin(), static_cast<char>(n & 0xff));
    n >>= 8;
  }
  return std::string(1, static_cast<char>(0x80 | bytes.size())) + bytes;
}

// pkcs11-provider's key file: PEM "PKCS#11 PROVIDER URI" around DER
// SEQUENCE { VisibleString description, UTF8String uri }.
std::string UriPem(const std::string& uri) {
  const std::string desc = "PKCS#11 Provider URI v1.0";
  std::string body = absl::StrCat("\x1a", DerLength(desc.size()), desc, "\x0c",
                                  DerLength(uri.size()), uri);
  const std::string der = absl::StrCat("\x30", DerLength(body.size()), body);
  std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                      reinterpret_cast<const unsigned char*>(der.data()),
                      static_cast<int>(der.size()));
  b64.resize(n);
  std::string pem = "-----BEGIN PKCS#11 PROVIDER URI-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) {
    absl::StrAppend(&pem, b64.substr(i, 64), "\n");
  }
  return pem + "-----END PKCS#11 PROVIDER URI-----\n";
}

absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError("cannot find a free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

struct Instance {
  std::string name;  // "hsmproxy" / "pem"
  std::string prefix;
  std::string openssl_conf;
  // Per certificate (kCertificates order).
  std::vector<int> ports;
  std::vector<std::string> cert_files;
  std::vector<std::string> key_files;
  pid_t pid = -1;
};

std::string NginxConf(const Instance& in) {
  std::string servers;
  for (size_t i = 0; i < in.ports.size(); ++i) {
    absl::StrAppend(&servers, "  server {\n    listen 127.0.0.1:", in.ports[i],
                    " ssl reuseport;\n    ssl_certificate ", in.cert_files[i],
                    ";\n    ssl_certificate_key ", in.key_files[i],
                    ";\n    location / { return 200 \"ok\\n\"; }\n  }\n");
  }
  const std::string tmp = in.prefix + "/tmp";
  return absl::StrCat(
      geteuid() == 0 ? "user root;\n" : "",
      "worker_processes 2;\n"
      "daemon off;\n"
      "master_process on;\n"
      "pid ",
      in.prefix, "/nginx.pid;\nerror_log ", in.prefix,
      "/error.log warn;\n"
      "# Workers keep the variable (nginx clears the environment).\n"
      "env OPENSSL_CONF;\n"
      "events { worker_connections 1024; }\n"
      "http {\n"
      "  access_log off;\n"
      "  client_body_temp_path ",
      tmp, "/body;\n  proxy_temp_path ", tmp, "/proxy;\n  fastcgi_temp_path ",
      tmp, "/fastcgi;\n  uwsgi_temp_path ", tmp, "/uwsgi;\n  scgi_temp_path ",
      tmp,
      "/scgi;\n"
      "  ssl_protocols TLSv1.3;\n"
      "  ssl_session_cache off;\n"
      "  ssl_session_tickets off;\n",
      servers, "}\n");
}

constexpr char kReqSections[] =
    "[req]\n"
    "distinguished_name = dn\n"
    "prompt = no\n"
    "[dn]\n"
    "CN = localhost\n";

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("cannot create ", path));
  }
  return absl::OkStatus();
}

absl::Status Prepare(const NginxOptions& o, Instance& hsm, Instance& pem) {
  hsm.name = "hsmproxy";
  pem.name = "pem";
  hsm.prefix = o.work_dir + "/nginx-hsm";
  pem.prefix = o.work_dir + "/nginx-pem";
  for (Instance* in : {&hsm, &pem}) {
    RETURN_IF_ERROR(MakeDir(in->prefix));
    RETURN_IF_ERROR(MakeDir(in->prefix + "/tmp"));
  }
  hsm.openssl_conf = hsm.prefix + "/openssl.cnf";
  RETURN_IF_ERROR(
      WriteFile(hsm.openssl_conf,
                absl::StrCat("openssl_conf = openssl_init\n"
                             "[openssl_init]\n"
                             "providers = provider_sect\n"
                             "[provider_sect]\n"
                             "default = default_sect\n"
                             "hsmproxy = hsmproxy_sect\n"
                             "[default_sect]\n"
                             "activate = 1\n"
                             "[hsmproxy_sect]\n"
                             "module = ",
                             o.hsmproxy_module, "\nsocket = ", o.socket_path,
                             "\nactivate = 1\n", kReqSections)));
  pem.openssl_conf = pem.prefix + "/openssl.cnf";
  RETURN_IF_ERROR(WriteFile(pem.openssl_conf, kReqSections));

  for (const Certificate& cert : kCertificates) {
    const std::string uri =
        absl::StrCat("pkcs11:token=demo;object=", cert.label, ";type=private");
    const std::string hsm_key =
        absl::StrCat(hsm.prefix, "/", cert.name, ".key");
    const std::string hsm_crt =
        absl::StrCat(hsm.prefix, "/", cert.name, ".crt");
    RETURN_IF_ERROR(WriteFile(hsm_key, UriPem(uri), 0644));
    Command req;
    req.argv = {o.openssl,        "req",  "-new",  "-x509", "-config",
                hsm.openssl_conf, "-key", hsm_key, "-days", "2",
                "-out",           hsm_crt};
    req.env = {{"OPENSSL_CONF", hsm.openssl_conf}};
    req.unset = {"HSMPROXY_SOCKET"};
    absl::StatusOr<std::string> out = RunProgram(req, absl::Seconds(60));
    if (!out.ok()) {
      return absl::Status(out.status().code(),
                          absl::StrCat("certificate for the HSM key ", uri,
                                       ": ", out.status().message()));
    }
    hsm.key_files.push_back(hsm_key);
    hsm.cert_files.push_back(hsm_crt);

    const std::string pem_key =
        absl::StrCat(pem.prefix, "/", cert.name, ".key");
    const std::string pem_crt =
        absl::StrCat(pem.prefix, "/", cert.name, ".crt");
    Command gen;
    gen.argv = {o.openssl,        "req",     "-x509",    "-config",
                pem.openssl_conf, "-newkey", cert.newkey};
    if (cert.pkeyopt[0] != '\0') {
      gen.argv.insert(gen.argv.end(), {"-pkeyopt", cert.pkeyopt});
    }
    gen.argv.insert(gen.argv.end(), {"-nodes", "-keyout", pem_key, "-days", "2",
                                     "-out", pem_crt});
    gen.env = {{"OPENSSL_CONF", pem.openssl_conf}};
    RETURN_IF_ERROR(RunProgram(gen, absl::Seconds(60)).status());
    pem.key_files.push_back(pem_key);
    pem.cert_files.push_back(pem_crt);
  }
  for (Instance* in : {&hsm, &pem}) {
    for (size_t i = 0; i < std::size(kCertificates); ++i) {
      ASSIGN_OR_RETURN(int port, FreePort());
      in->ports.push_back(port);
    }
    RETURN_IF_ERROR(WriteFile(in->prefix + "/nginx.conf", NginxConf(*in)));
  }
  return absl::OkStatus();
}

absl::Status Start(const NginxOptions& o, Instance& in) {
  Command nginx;
  nginx.argv = {o.nginx,
                "-p",
                in.prefix,
                "-c",
                in.prefix + "/nginx.conf",
                "-e",
                in.prefix + "/error.log"};
  nginx.env = {{"OPENSSL_CONF", in.openssl_conf}};
  nginx.unset = {"HSMPROXY_SOCKET"};
  nginx.stdout_path = in.prefix + "/stdout.log";
  nginx.stderr_path = in.prefix + "/error.log";
  ASSIGN_OR_RETURN(in.pid, Spawn(nginx));
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  for (;;) {
    int status = 0;
    if (waitpid(in.pid, &status, WNOHANG) == in.pid) {
      in.pid = -1;
      absl::StatusOr<std::string> log = ReadFile(in.prefix + "/error.log");
      return absl::InternalError(absl::StrCat(
          "nginx (", in.name, ") exited at start-up: ", log.ok() ? *log : ""));
    }
    bool all_up = true;
    absl::Status last;
    for (int port : in.ports) {
      absl::StatusOr<std::string> response = TlsGet(port);
      if (!response.ok()) {
        all_up = false;
        last = response.status();
        break;
      }
    }
    if (all_up) return absl::OkStatus();
    if (absl::Now() > deadline) {
      absl::StatusOr<std::string> log = ReadFile(in.prefix + "/error.log");
      return absl::DeadlineExceededError(absl::StrCat(
          "nginx (", in.name, ") does not serve TLS: ", last.message(), "; ",
          log.ok() ? *log : ""));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

int64_t RunNanos(pid_t pid) {
  if (pid <= 0) return 0;
  absl::StatusOr<int64_t> ns = ProcessRunNanos(pid);
  return ns.ok() ? *ns : 0;
}

}  // namespace

absl::StatusOr<std::vector<NginxResult>> RunNginxBench(const NginxOptions& o) {
  if (access(o.nginx.c_str(), X_OK) != 0) {
    return absl::UnavailableError(
        absl::StrCat(o.nginx, " not found (apt-get install nginx-light)"));
  }
  Instance hsm;
  Instance pem;
  RETURN_IF_ERROR(Prepare(o, hsm, pem));
  absl::Cleanup stop = [&] {
    StopChild(hsm.pid, SIGTERM, absl::Seconds(15));
    StopChild(pem.pid, SIGTERM, absl::Seconds(15));
  };
  RETURN_IF_ERROR(Start(o, hsm));
  RETURN_IF_ERROR(Start(o, pem));

  std::vector<NginxResult> results;
  for (size_t c = 0; c < std::size(kCertificates); ++c) {
    NginxResult by_source[2];
    Instance* instances[2] = {&hsm, &pem};
    for (int i = 0; i < 2; ++i) {
      by_source[i].certificate = kCertificates[c].name;
      by_source[i].key_source = instances[i]->name;
    }
    for (int round = 0; round < o.rounds; ++round) {
      for (int k = 0; k < 2; ++k) {
        const int i = (k + round) % 2;
        uint64_t signatures_before = 0;
        if (i == 0 && o.hsmd_signatures) {
          ASSIGN_OR_RETURN(signatures_before,
                           o.hsmd_signatures(kCertificates[c].label));
        }
        const int64_t hsmd_before = RunNanos(o.hsmd_pid);
        ASSIGN_OR_RETURN(
            TlsLoadResult load,
            RunTlsLoad(instances[i]->ports[c], o.client_threads, o.round_time));
        NginxResult& r = by_source[i];
        r.hsmd_cpu_ns += RunNanos(o.hsmd_pid) - hsmd_before;
        r.handshakes += load.handshakes;
        r.seconds += load.seconds;
        r.latency.Merge(load.latency);
        if (i == 0 && o.hsmd_signatures) {
          ASSIGN_OR_RETURN(uint64_t after,
                           o.hsmd_signatures(kCertificates[c].label));
          r.hsmd_signatures += after - signatures_before;
        }
      }
    }
    if (o.hsmd_signatures &&
        by_source[0].hsmd_signatures < by_source[0].handshakes) {
      return absl::InternalError(absl::StrCat(
          "nginx with the HSM key made ", by_source[0].handshakes,
          " handshakes but hsmd made only ", by_source[0].hsmd_signatures,
          " signatures with ", kCertificates[c].label));
    }
    results.push_back(std::move(by_source[0]));
    results.push_back(std::move(by_source[1]));
  }
  return results;
}

}  // namespace hsmd::bench
