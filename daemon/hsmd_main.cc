#include "daemon/hsmd_main.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "daemon/config/config_loader.h"
#include "daemon/config/pin_source.h"
#include "daemon/demo.h"
#include "daemon/logging.h"
#include "daemon/openssl_init.h"
#include "daemon/policy/policy.h"
#include "daemon/server.h"
#include "daemon/systemd.h"
#include "daemon/unix_socket.h"
#include "daemon/version.h"

namespace hsmd {
namespace {

constexpr char kUsage[] =
    R"(Usage:
  hsmd --config FILE [--check-config]
  hsmd --demo DIR [--socket PATH] [--softsdf-library PATH]
  hsmd --version | --help

hsmd serves private-key operations on HSM keys (PKCS#11, and SDF / GM/T 0018
for 国密 SM2 / SM4) to local clients
over gRPC on a Unix socket. It is the only process that opens the HSM.

Options:
  --config FILE    run with this configuration (protobuf text format; the
                   reference is daemon/config/config.proto)
  --check-config   validate the configuration and that each PIN, SDF key
                   password, module, SDF library and the socket group are
                   usable, print "config OK", and exit
  --demo DIR       create (first run) or reuse a SoftHSM token with demo keys
                   in DIR, write DIR/hsmd.conf, and serve it
  --socket PATH    with --demo: listen on PATH instead of DIR/hsmd.sock
  --softsdf-library PATH
                   with --demo: the software SDF device (libsoftsdf.so) to
                   serve as "soft0" with SM2 and SM4 keys (default: found
                   next to hsmd in bazel-bin or its runfiles; without it the
                   demo serves the SoftHSM token only)
  --version        print the version
  --help           print this help

systemd: with Type=notify hsmd reports READY=1 once every backend serves,
pings the watchdog (WatchdogSec=), and takes its listening socket from
socket activation (hsmd.socket, or systemd-socket-activate -l PATH) when
one is passed. The socket must be listen.socket_path.

Signals: SIGTERM or SIGINT shut down gracefully (in-flight requests finish
within limits.shutdown_grace_ms); a second one exits at once; SIGHUP is
ignored.

Exit codes:
  0  clean shutdown; --check-config OK; --version; --help
  1  usage error or process set-up failure
  2  configuration error (parse, validation; with --check-config also an
     unusable PIN, module or socket group)
  3  a backend failed to start (module, token, login)
  4  the socket could not be prepared or bound (e.g. hsmd already running)
  5  --demo could not set up its directory, token or keys
  6  a second SIGTERM/SIGINT during shutdown forced an immediate exit
)";

struct Flags {
  std::string config;
  std::string demo;
  std::string socket;
  std::string softsdf_library;
  bool check_config = false;
  bool version = false;
  bool help = false;
};

// Accepts "--flag VALUE" and "--flag=VALUE".
std::optional<std::string> ParseFlags(int argc, char** argv, Flags& flags) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    std::optional<std::string> inline_value;
    if (size_t eq = arg.find('=');
        absl::StartsWith(arg, "--") && eq != std::string::npos) {
      inline_value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    }
    auto value = [&](std::string& out) -> std::optional<std::string> {
      if (inline_value.has_value()) {
        out = *inline_value;
      } else if (i + 1 < args.size()) {
        out = args[++i];
      } else {
        return absl::StrCat(arg, " needs a value");
      }
      if (out.empty()) return absl::StrCat(arg, " needs a non-empty value");
      return std::nullopt;
    };
    auto no_value = [&](bool& out) -> std::optional<std::string> {
      if (inline_value.has_value()) {
        return absl::StrCat(arg, " takes no value");
      }
      out = true;
      return std::nullopt;
    };
    std::optional<std::string> error;
    if (arg == "--config") {
      error = value(flags.config);
    } else if (arg == "--demo") {
      error = value(flags.demo);
    } else if (arg == "--socket") {
      error = value(flags.socket);
    } else if (arg == "--softsdf-library") {
      error = value(flags.softsdf_library);
    } else if (arg == "--check-config") {
      error = no_value(flags.check_config);
    } else if (arg == "--version") {
      error = no_value(flags.version);
    } else if (arg == "--help" || arg == "-h") {
      error = no_value(flags.help);
    } else {
      error = absl::StrCat("unknown argument \"", arg, "\"");
    }
    if (error.has_value()) return error;
  }
  if (flags.help || flags.version) return std::nullopt;
  if (flags.config.empty() == flags.demo.empty()) {
    return "give exactly one of --config FILE and --demo DIR";
  }
  if (!flags.socket.empty() && flags.demo.empty()) {
    return "--socket is only for --demo (set listen.socket_path in the config)";
  }
  if (!flags.softsdf_library.empty() && flags.demo.empty()) {
    return "--softsdf-library is only for --demo (configure an sdf backend)";
  }
  if (flags.check_config && flags.config.empty()) {
    return "--check-config needs --config FILE";
  }
  return std::nullopt;
}

void Fail(absl::string_view what, const absl::Status& status) {
  log::Error(what, {{"error", status.message()}});
}

// Core dumps could hold the PIN or session secrets.
void HardenProcess() {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  rlimit no_core = {0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
}

log::Level ToLogLevel(config::Logging::Level level) {
  switch (level) {
    case config::Logging::DEBUG:
      return log::Level::kDebug;
    case config::Logging::INFO:
      return log::Level::kInfo;
    case config::Logging::WARNING:
      return log::Level::kWarning;
    case config::Logging::ERROR:
      return log::Level::kError;
  }
  return log::Level::kInfo;
}

// What --check-config verifies beyond the syntax: things that depend on the
// machine, without touching the HSM or the socket.
absl::Status CheckEnvironment(const config::Config& config) {
  if (config.listen().has_socket_group()) {
    absl::StatusOr<gid_t> gid =
        policy::ResolveGroup(config.listen().socket_group());
    if (!gid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("listen.socket_group: ", gid.status().message()));
    }
  }
  for (int i = 0; i < config.backends_size(); ++i) {
    const config::Backend& b = config.backends(i);
    if (b.has_sdf()) {
      const std::string field = absl::StrCat("backends[", i, "].sdf");
      if (access(b.sdf().library_path().c_str(), R_OK) != 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".library_path: cannot read ",
                         b.sdf().library_path(), ": ", std::strerror(errno)));
      }
      for (int k = 0; k < b.sdf().keys_size(); ++k) {
        if (!b.sdf().keys(k).has_password()) continue;
        absl::StatusOr<SecretString> password =
            config::ReadPin(b.sdf().keys(k).password());
        if (!password.ok()) {
          return absl::InvalidArgumentError(absl::StrCat(
              field, ".keys[", k, "].password: ", password.status().message()));
        }
      }
      continue;
    }
    if (!b.has_pkcs11()) continue;
    const std::string field = absl::StrCat("backends[", i, "].pkcs11");
    if (access(b.pkcs11().module_path().c_str(), R_OK) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".module_path: cannot read ",
                       b.pkcs11().module_path(), ": ", std::strerror(errno)));
    }
    absl::StatusOr<SecretString> pin = config::ReadPin(b.pkcs11().pin());
    if (!pin.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".pin: ", pin.status().message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int RunHsmd(int argc, char** argv, const BackendFactory& factory) {
  // Before anything can initialise OpenSSL (the PKCS#11 module does).
  if (absl::Status s = UseCleanOpenSslConfig(); !s.ok()) {
    Fail("OpenSSL set-up failed", s);
    return kExitUsage;
  }
  HardenProcess();
  signal(SIGPIPE, SIG_IGN);
  // Blocked in every thread (threads inherit the mask); one thread takes
  // them with sigwait, so no work happens in a signal handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  if (pthread_sigmask(SIG_BLOCK, &signals, nullptr) != 0) {
    log::Error("cannot block signals");
    return kExitUsage;
  }

  Flags flags;
  if (std::optional<std::string> error = ParseFlags(argc, argv, flags)) {
    std::cerr << "hsmd: " << *error << "\n\n" << kUsage;
    return kExitUsage;
  }
  if (flags.help) {
    std::cout << kUsage;
    return kExitOk;
  }
  if (flags.version) {
    std::cout << "hsmd " << kVersion << "\n";
    return kExitOk;
  }

  std::optional<DemoSetup> demo;
  std::string config_path = flags.config;
  if (!flags.demo.empty()) {
    absl::StatusOr<std::string> softsdf =
        FindSoftSdfLibrary(flags.softsdf_library, argc > 0 ? argv[0] : "");
    if (!softsdf.ok()) {
      Fail("demo set-up failed", softsdf.status());
      return kExitDemo;
    }
    if (softsdf->empty()) {
      log::Warning(
          "demo: libsoftsdf.so not found, serving the SoftHSM token without "
          "the SDF device soft0 (bazel build //tools/softsdf:libsoftsdf.so, "
          "or pass --softsdf-library PATH)");
    }
    absl::StatusOr<DemoSetup> setup =
        PrepareDemo(flags.demo, flags.socket, *softsdf);
    if (!setup.ok()) {
      Fail("demo set-up failed", setup.status());
      return kExitDemo;
    }
    demo = *setup;
    config_path = demo->config_path;
  }

  absl::StatusOr<config::Config> config = config::LoadConfigFile(config_path);
  if (!config.ok()) {
    // Multi-line "FILE:LINE:COL: message" text reads best unformatted.
    std::cerr << "hsmd: configuration error:\n"
              << config.status().message() << "\n";
    return kExitConfig;
  }
  if (config->logging().format() == config::Logging::JSON) {
    log::Configure(ToLogLevel(config->logging().level()), log::Format::kJson);
  } else {
    log::Configure(ToLogLevel(config->logging().level()), log::Format::kText);
  }

  if (flags.check_config) {
    if (absl::Status s = CheckEnvironment(*config); !s.ok()) {
      std::cerr << "hsmd: " << config_path << ": " << s.message() << "\n";
      return kExitConfig;
    }
    std::cout << "config OK\n";
    return kExitOk;
  }

  log::Info(
      "hsmd starting",
      {{"version", kVersion}, {"config", config_path}, {"pid", getpid()}});

  absl::StatusOr<std::optional<int>> activated =
      TakeActivatedSocket(config->listen().socket_path());
  if (!activated.ok()) {
    Fail("cannot use the activated socket", activated.status());
    NotifySystemd(absl::StrCat("STATUS=", activated.status().message()));
    return kExitSocket;
  }
  // Refuse early (before opening the HSM) when another daemon owns the path.
  // A socket-activated daemon leaves the path to systemd.
  std::unique_ptr<SocketPath> socket;
  if (!activated->has_value()) {
    std::optional<gid_t> group;
    if (config->listen().has_socket_group()) {
      absl::StatusOr<gid_t> gid =
          policy::ResolveGroup(config->listen().socket_group());
      if (!gid.ok()) {
        Fail("cannot use the socket group", gid.status());
        return kExitSocket;
      }
      group = *gid;
    }
    absl::StatusOr<std::unique_ptr<SocketPath>> prepared =
        SocketPath::Prepare(config->listen().socket_path(), group);
    if (!prepared.ok()) {
      Fail("cannot use the socket", prepared.status());
      return kExitSocket;
    }
    socket = *std::move(prepared);
  }
  // Owned until the server takes it.
  auto close_activated = [&activated] {
    if (activated->has_value()) close(**activated);
  };

  std::vector<std::unique_ptr<backend::Backend>> backends;
  for (const config::Backend& b : config->backends()) {
    absl::StatusOr<std::unique_ptr<backend::Backend>> backend = factory(b);
    if (!backend.ok()) {
      log::Error(
          "backend failed to start",
          {{"backend", b.name()}, {"error", backend.status().message()}});
      NotifySystemd(
          absl::StrCat("STATUS=backend ", b.name(),
                       " failed to start: ", backend.status().message()));
      for (auto& started : backends) started->Shutdown();
      close_activated();
      return kExitBackend;
    }
    log::Info("backend started", {{"backend", b.name()}});
    backends.push_back(*std::move(backend));
  }

  std::vector<v1::Key> demo_keys;
  std::vector<v1::Key> sdf_keys;
  if (demo.has_value()) {
    absl::StatusOr<std::vector<v1::Key>> keys = EnsureDemoKeys(*backends[0]);
    if (!keys.ok()) {
      Fail("demo keys could not be created", keys.status());
      for (auto& started : backends) started->Shutdown();
      close_activated();
      return kExitDemo;
    }
    demo_keys = *std::move(keys);
    for (auto& b : backends) {
      if (b->kind() != "sdf") continue;
      absl::StatusOr<std::vector<v1::Key>> listed =
          b->ListKeys(v1::ListKeysRequest(),
                      backend::RequestContext{absl::Now() + absl::Minutes(1)});
      if (!listed.ok()) {
        Fail("demo SDF keys could not be listed", listed.status());
        for (auto& started : backends) started->Shutdown();
        close_activated();
        return kExitDemo;
      }
      for (v1::Key& key : *listed) sdf_keys.push_back(std::move(key));
    }
  }

  ServerOptions options;
  options.config = *config;
  options.config_path = config_path;
  options.socket = std::move(socket);
  options.listen_fd = *activated;
  if (SystemdNotifyEnabled()) {
    options.notify = [](const std::string& state) { NotifySystemd(state); };
    options.watchdog_interval = WatchdogPingInterval();
  }
  absl::StatusOr<std::unique_ptr<Server>> server =
      Server::New(std::move(options), std::move(backends));
  if (!server.ok()) {
    Fail("cannot create the server", server.status());
    return kExitSocket;
  }
  if (absl::Status s = (*server)->Start(); !s.ok()) {
    Fail("cannot start the server", s);
    (*server)->Shutdown(absl::ZeroDuration());
    return kExitSocket;
  }
  if (demo.has_value()) {
    std::cout << DemoUsage((*server)->socket_path(), demo_keys, sdf_keys)
              << std::flush;
  }

  const absl::Duration grace =
      absl::Milliseconds(config->limits().shutdown_grace_ms());
  Server* raw_server = server->get();
  // The first SIGTERM/SIGINT starts a graceful shutdown (in its own thread,
  // so this one keeps listening); a second one ends the process at once,
  // for when a backend call hangs past the grace period.
  std::atomic<bool> done{false};
  std::thread shutdown_thread;
  std::thread signal_thread([&] {
    bool shutting_down = false;
    for (;;) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (done.load()) return;
      if (sig == SIGHUP) {
        log::Info("SIGHUP ignored (restart hsmd to reload the config)");
        continue;
      }
      if (shutting_down) {
        log::Error("second signal during shutdown: exiting now",
                   {{"signal", strsignal(sig)}});
        _exit(kExitForced);
      }
      shutting_down = true;
      log::Info("signal received", {{"signal", strsignal(sig)}});
      shutdown_thread =
          std::thread([raw_server, grace] { raw_server->Shutdown(grace); });
    }
  });
  (*server)->Wait();
  done.store(true);
  pthread_kill(signal_thread.native_handle(), SIGHUP);
  signal_thread.join();
  if (shutdown_thread.joinable()) shutdown_thread.join();
  if (raw_server->left_requests_running()) {
    // Request threads are still blocked in the HSM and use the server:
    // nothing may be destroyed under them. The clients already had their
    // calls cancelled.
    _exit(kExitOk);
  }
  server->reset();
  return kExitOk;
}

}  // namespace hsmd
