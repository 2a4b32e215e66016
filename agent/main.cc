// SPDX-License-Identifier: Apache-2.0
// keepalive-agent: serves the seccomp listeners that OCI runtimes (runc,
// crun, containerd, newer Docker) hand over for containers whose seccomp
// profile names the agent's socket as its listenerPath, and puts the TCP
// keepalive options on those containers' sockets.
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <exception>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/agent.h"
#include "agent/check.h"
#include "agent/fd_store.h"
#include "agent/profile.h"
#include "common/settings.h"
#include "supervisor/exit_codes.h"
#include "supervisor/fd_limit.h"
#include "supervisor/log.h"
#include "supervisor/setting_flags.h"
#include "supervisor/target.h"

namespace keepalive::agent {
namespace {

constexpr char kDefaultSocket[] = "/run/keepalive/agent.sock";

constexpr char kHelp[] =
    "Usage: keepalive-agent [OPTION]...\n"
    "  or:  keepalive-agent profile [--base=FILE] [--metadata=OPTIONS]...\n"
    "  or:  keepalive-agent status [--control=PATH]\n"
    "  or:  keepalive-agent check   (what the agent can do here; exit 0 if\n"
    "                               it can work, 1 if not)\n"
    "Serve the seccomp listeners that OCI runtimes hand over for containers\n"
    "whose seccomp profile names this agent's socket (listenerPath), and\n"
    "give those containers' TCP sockets keepalive and TCP_USER_TIMEOUT. The\n"
    "options go on each container's own socket at connect() or listen(),\n"
    "which the profile traps (SCMP_ACT_NOTIFY).\n"
    "\n"
    "      --socket=PATH        where runtimes connect\n"
    "                             (default /run/keepalive/agent.sock)\n"
    "      --control=PATH       where keepalive-agent status asks (default:\n"
    "                             control.sock beside the socket)\n"
    "      --metrics=HOST:PORT  serve the counters of status in the\n"
    "                             Prometheus text format (off by default)\n"
    "      --group=GROUP        let this group (a process's primary group)\n"
    "                             use both sockets too; default: root only\n"
    "\n"
    "Node-wide settings (a container's own come from its profile's\n"
    "listenerMetadata and then its annotation org.keepalive.options, in the\n"
    "same syntax, e.g. \"--keepidle=30 --mode=connect\"):\n"
    "      --mode=MODE          socket (default): every TCP socket the\n"
    "                             profile traps; connect: client sockets;\n"
    "                             listen: server "
    "sockets\n" KEEPALIVE_SETTING_FLAGS_HELP
    "      --strict             a container whose own settings are invalid\n"
    "                             gets no options (by default: the node's)\n"
    "\n"
    "  -v, --debug              one line per container and per socket\n"
    "  -h, --help               display this help and exit\n"
    "      --version            output version information and exit\n"
    "\n"
    "The settings also come from the environment, as for keepalive-supervise.\n"
    "SIGHUP makes the agent re-execute its program (an upgraded one, say),\n"
    "which serves every container on. SIGTERM or SIGINT stops it; the\n"
    "containers' trapped calls then wait for the next agent if the service\n"
    "manager keeps their listeners (systemd's fd store, see\n"
    "keepalive-agent(8)), and fail with ENOSYS otherwise.\n"
    "\n"
    "Exit status: 0 stopped by a signal, 1 could not serve, 2 bad usage.\n";

enum Key : int {
  kSocket = 256,
  kControl,
  kGroup,
  kMetrics,
  kMode,
  kStrict,
  kVersion,
  kSetting,  // kSetting + i: kSettingFlags[i]
  kDebug = 'v',
  kHelpKey = 'h',
};

// getopt_long's table: ours, then one entry per setting flag.
std::vector<option> long_options() {
  std::vector<option> options = {
      {"socket", required_argument, nullptr, kSocket},
      {"control", required_argument, nullptr, kControl},
      {"group", required_argument, nullptr, kGroup},
      {"metrics", required_argument, nullptr, kMetrics},
      {"mode", required_argument, nullptr, kMode},
      {"strict", no_argument, nullptr, kStrict},
      {"debug", no_argument, nullptr, kDebug},
      {"help", no_argument, nullptr, kHelpKey},
      {"version", no_argument, nullptr, kVersion},
  };
  int i = 0;
  for (const SettingFlag& flag : kSettingFlags) {
    options.push_back({flag.name, required_argument, nullptr, kSetting + i++});
  }
  options.push_back({nullptr, 0, nullptr, 0});
  return options;
}

const char* lookup_env(const char* name, void*) { return getenv(name); }

int usage(const std::string& what) {
  log_line(what + " (see keepalive-agent --help)");
  return kExitUsage;
}

constexpr char kProfileHelp[] =
    "Usage: keepalive-agent profile [--base=FILE] [--metadata=OPTIONS]\n"
    "                               [--socket=PATH] [--wait-killable-recv]\n"
    "Print the seccomp profile that hands a container to the agent: FILE\n"
    "(your runtime's default profile, say; without it everything else is\n"
    "allowed) with connect() and listen() sent to the agent\n"
    "(SCMP_ACT_NOTIFY), listenerPath and the container's own settings as\n"
    "listenerMetadata (e.g. \"--keepidle=30 --mode=connect\").\n"
    "\n"
    "      --socket=PATH          the agent's socket\n"
    "                               (default /run/keepalive/agent.sock)\n"
    "      --wait-killable-recv   add SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV\n"
    "                               (Linux 5.19; runtimes that know it)\n"
    "\n"
    "A base that already notifies or names a listener is refused: a filter\n"
    "has one listener.\n"
    "Exit status: 0 printed, 1 base refused, 2 bad usage.\n";

// keepalive-agent profile ...
int run_profile(int argc, char** argv) {
  enum { kBase = 256, kMetadata, kProfileSocket, kKillable, kProfileHelpKey };
  const option table[] = {
      {"base", required_argument, nullptr, kBase},
      {"metadata", required_argument, nullptr, kMetadata},
      {"socket", required_argument, nullptr, kProfileSocket},
      {"wait-killable-recv", no_argument, nullptr, kKillable},
      {"help", no_argument, nullptr, kProfileHelpKey},
      {nullptr, 0, nullptr, 0},
  };
  ProfileOptions options;
  options.socket_path = kDefaultSocket;
  std::optional<std::string> base_path;
  optind = 0;
  opterr = 0;
  for (;;) {
    int word = optind == 0 ? 1 : optind;
    int key = getopt_long(argc, argv, "+:h", table, nullptr);
    if (key == -1) break;
    switch (key) {
      case 'h':
      case kProfileHelpKey:
        fputs(kProfileHelp, stdout);
        return 0;
      case kBase:
        base_path = optarg;
        break;
      case kMetadata:
        options.metadata = optarg;
        break;
      case kProfileSocket:
        if (*optarg == '\0') return usage("--socket: empty path");
        options.socket_path = optarg;
        break;
      case kKillable:
        options.wait_killable_recv = true;
        break;
      case ':':
        return usage(std::string("option ") + quoted(argv[word]) +
                     " needs a value");
      default:
        return usage("profile: unknown option " + quoted(argv[word]));
    }
  }
  if (optind < argc) {
    return usage("profile: unexpected argument " + quoted(argv[optind]));
  }
  nlohmann::json base = permissive_base();
  if (base_path) {
    std::ifstream in(*base_path);
    if (!in) {
      log_line("profile: cannot read " + keepalive::quoted(*base_path) + ": " +
               strerror(errno));
      return 1;
    }
    base = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (base.is_discarded()) {
      log_line("profile: " + keepalive::quoted(*base_path) + " is not JSON");
      return 1;
    }
  }
  auto profile = make_profile(base, options);
  if (!profile) {
    bool usage_error = profile.error().starts_with("--metadata");
    log_line("profile: " + profile.error());
    return usage_error ? kExitUsage : 1;
  }
  std::string text = profile->dump(2) + "\n";
  fputs(text.c_str(), stdout);
  return fflush(stdout) == 0 ? 0 : 1;
}

// The control socket beside `socket_path`: DIR/control.sock.
std::string control_beside(const std::string& socket_path) {
  std::string dir = directory_of(socket_path);
  return dir == "/" ? "/control.sock" : dir + "/control.sock";
}

// keepalive-agent status [--control=PATH]
int run_status(int argc, char** argv) {
  std::string path = control_beside(kDefaultSocket);
  for (int i = 1; i < argc; ++i) {
    std::string_view word = argv[i];
    if (word.starts_with("--control=") && word.size() > 10) {
      path = word.substr(10);
    } else if (word == "--control" && i + 1 < argc) {
      path = argv[++i];
    } else if (word == "--help" || word == "-h") {
      fputs(
          "Usage: keepalive-agent status [--control=PATH]\n"
          "Print what the running agent serves: one line per container\n"
          "(pid, sockets given options, failures, settings).\n"
          "PATH defaults to /run/keepalive/control.sock.\n",
          stdout);
      return 0;
    } else {
      return usage("status: unexpected argument " + quoted(word));
    }
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return usage("status: --control: path too long");
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid() || connect(sock.get(), reinterpret_cast<sockaddr*>(&addr),
                               sizeof addr) != 0) {
    log_line("status: no agent answers on " + keepalive::quoted(path) + ": " +
             strerror(errno));
    return 1;
  }
  char buf[16 * 1024];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(sock.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      log_line("status: reading from " + keepalive::quoted(path) + ": " +
               strerror(errno));
      return 1;
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
    fwrite(buf, 1, static_cast<size_t>(n), stdout);
  }
  if (got == 0) {
    // An agent out of descriptors closes the connection unanswered.
    log_line("status: the agent on " + keepalive::quoted(path) +
             " closed the connection without answering (out of file "
             "descriptors? see its log)");
    return 1;
  }
  return fflush(stdout) == 0 ? 0 : 1;
}

// What the command line and the environment say to serve with.
struct ServeConfig {
  ServeConfig() {
    options.socket_path = kDefaultSocket;
    settings = parse_settings(lookup_env, nullptr, log_warning_sink, nullptr);
    verbose = settings.debug();
  }
  AgentOptions options;
  Settings settings;
  Mode mode = Mode::kSocket;
  bool verbose = false;
  std::optional<std::string> metrics_address;
};

// Reads the serving command line into `config`; an exit status if the
// program is to stop there (--help, --version, a usage error, said).
std::optional<int> parse_serve_args(int argc, char** argv,
                                    ServeConfig& config) {
  AgentOptions& options = config.options;
  Settings& settings = config.settings;
  Mode& mode = config.mode;
  bool& verbose = config.verbose;
  std::vector<option> options_table = long_options();
  std::optional<std::string>& metrics_address = config.metrics_address;
  optind = 0;
  opterr = 0;
  for (;;) {
    int word = optind == 0 ? 1 : optind;
    int key = getopt_long(argc, argv, "+:hv", options_table.data(), nullptr);
    if (key == -1) break;
    switch (key) {
      case kHelpKey:
        fputs(kHelp, stdout);
        return 0;
      case kVersion:
        fputs("keepalive-agent " KEEPALIVE_VERSION "\n", stdout);
        return 0;
      case kDebug:
        verbose = true;
        break;
      case kSocket:
        if (*optarg == '\0') return usage("--socket: empty path");
        options.socket_path = optarg;
        break;
      case kControl:
        if (*optarg == '\0') return usage("--control: empty path");
        options.control_path = optarg;
        break;
      case kMetrics:
        metrics_address = optarg;
        break;
      case kGroup: {
        errno = 0;
        const group* found = getgrnam(optarg);
        if (found == nullptr) {
          return usage("--group: no group named " + quoted(optarg));
        }
        options.group = found->gr_gid;
        break;
      }
      case kMode: {
        auto named = mode_flag_value(optarg);
        if (!named) return usage(named.error());
        mode = *named;
        break;
      }
      case kStrict:
        options.strict = true;
        break;
      case ':':
        return usage(std::string("option ") + quoted(argv[word]) +
                     " needs a value");
      default: {
        size_t index = static_cast<size_t>(key - kSetting);
        if (key < kSetting || index >= std::size(kSettingFlags)) {
          return usage("unknown option " + quoted(argv[word]));
        }
        auto with = with_flag_value(settings, kSettingFlags[index], optarg);
        if (!with) return usage(with.error());
        settings = *with;
        break;
      }
    }
  }
  if (optind < argc) {
    return usage("unexpected argument " + quoted(argv[optind]));
  }
  return std::nullopt;
}

int run(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "profile") == 0) {
    return run_profile(argc - 1, argv + 1);
  }
  if (argc > 1 && strcmp(argv[1], "status") == 0) {
    return run_status(argc - 1, argv + 1);
  }
  if (argc > 1 && strcmp(argv[1], "check") == 0) {
    if (argc > 2) return usage("check: unexpected argument " + quoted(argv[2]));
    AgentCheck check = run_agent_check();
    fputs(check.text.c_str(), stdout);
    return check.can_work ? 0 : 1;
  }
  // Serving from here on. A SIGHUP waits until the loop handles it (a
  // re-executing agent comes with it blocked already).
  sigset_t hangup_set;
  sigemptyset(&hangup_set);
  sigaddset(&hangup_set, SIGHUP);
  sigprocmask(SIG_BLOCK, &hangup_set, nullptr);
  // What an earlier agent left, taken before this process opens any fd: a
  // name for an fd that was never passed must not land on one of ours.
  std::vector<NamedFd> inherited = inherited_fds();
  raise_fd_limit();
  DescriptorBudget budget = reserve_descriptors(kAgentDescriptors);
  size_t kept = static_cast<size_t>(std::ranges::count_if(
      inherited,
      [](const NamedFd& fd) { return fd.name.starts_with(kListenerPrefix); }));

  ServeConfig config;
  // Accepting no new containers: only serving those taken over.
  bool taken_over_only = false;
  if (std::optional<int> done = parse_serve_args(argc, argv, config)) {
    if (*done != kExitUsage || kept == 0) return *done;
    // A re-executed agent whose new program refuses the old command line:
    // exiting would fail those containers' calls.
    log_line(
        "serving the containers taken over with the environment's "
        "settings, accepting no new ones; start a program that takes "
        "this command line (SIGHUP) to accept again");
    config = ServeConfig();
    taken_over_only = true;
    std::erase_if(inherited, [](const NamedFd& fd) {
      return !fd.name.starts_with(kListenerPrefix) &&
             !fd.name.starts_with(kRecordPrefix);
    });
  }
  if (!budget.enough) {
    // Refused now rather than later, when a container would wait on a
    // connection the agent cannot take.
    std::string why = describe_shortfall(budget, "the agent");
    if (kept == 0) {
      log_line(why);
      return 1;
    }
    log_line(why + "; serving the " + std::to_string(kept) +
             " containers taken over, and new ones while descriptors last");
  }
  AgentOptions& options = config.options;
  if (options.control_path.empty()) {
    options.control_path = control_beside(options.socket_path);
  }
  Result<Identity> own = own_identity();
  if (!own) {
    log_line(own.error().message());
    return 1;
  }
  options.handler = HandlerOptions{.settings = config.settings,
                                   .mode = config.mode,
                                   .verbose = config.verbose,
                                   .log_label = {},  // one per container
                                   .own = *own,
                                   .wait_killable_recv = true};
  // The program to re-execute on SIGHUP: the file now at the path this
  // one was started from, so that an upgraded binary takes over.
  char exe[4096];
  ssize_t exe_length = readlink("/proc/self/exe", exe, sizeof exe - 1);
  std::string program = exe_length > 0 ? std::string(exe, exe_length) : "";
  if (program.ends_with(" (deleted)")) {
    program.resize(program.size() - strlen(" (deleted)"));
  }

  boost::asio::io_context io(1);
  Agent agent(io, options);
  agent.adopt(std::move(inherited));
  // What stops a first start must not stop an agent that holds containers'
  // listeners (a re-exec, or a start with the fd store's): without the
  // store, its exit would fail their calls for good. It serves them on,
  // and says what it goes without.
  bool holding = agent.containers() > 0;
  if (config.metrics_address) {
    Result<std::string> serving = agent.serve_metrics(*config.metrics_address);
    if (serving) {
      log_line("metrics on http://" + *serving + "/metrics");
    } else if (holding) {
      log_line(serving.error().message() + "; serving on without metrics");
    } else {
      log_line(serving.error().message());
      return serving.error().context.find("invalid address") !=
                     std::string::npos
                 ? kExitUsage
                 : 1;
    }
  }
  if (Result<void> control = agent.listen_control(); !control) {
    log_line(control.error().message() +
             (holding ? "; serving on without `keepalive-agent status`" : ""));
    if (!holding) return 1;
  }
  std::string serving_line;
  if (!taken_over_only) {
    Result<std::string> listening = agent.listen();
    if (listening) {
      serving_line = "listening on " + *listening;
    } else {
      log_line(listening.error().message());
      if (!holding) return 1;
      taken_over_only = true;
    }
  }
  if (taken_over_only) {
    serving_line = "serving " + std::to_string(agent.containers()) +
                   (agent.containers() == 1 ? " container" : " containers") +
                   " taken over, accepting no new ones";
  }
  boost::asio::signal_set stop(io, SIGTERM, SIGINT);
  stop.async_wait([&io, &agent](const boost::system::error_code&, int) {
    agent.service_manager().stopping();
    io.stop();
  });
  // SIGHUP: replace this process with a fresh one of the program, which
  // takes every listener over; calls wait in the kernel meanwhile. The
  // runtimes' messages being read go first: their fds would not pass.
  boost::asio::signal_set hangup(io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& error, int) {
        if (error) return;
        size_t reading = agent.drain([&] {
          agent.flush_warnings();
          log_line("re-executing " + program);
          SysError failed = reexec(program, argv, agent.passable_fds());
          log_line(failed.message() + "; serving on");
          agent.resume();
          hangup.async_wait(on_hangup);
        });
        if (reading > 0) {
          log_line("re-executing once " + std::to_string(reading) +
                   (reading == 1 ? " runtime's message is"
                                 : " runtimes' messages are") +
                   " in");
        }
      };
  hangup.async_wait(on_hangup);
  sigprocmask(SIG_UNBLOCK, &hangup_set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  log_line(serving_line);
  agent.service_manager().ready(serving_line);
  io.run();
  agent.flush_warnings();
  return 0;
}

}  // namespace
}  // namespace keepalive::agent

int main(int argc, char** argv) {
  keepalive::set_log_prefix("keepalive-agent: ");
  try {
    return keepalive::agent::run(argc, argv);
  } catch (const std::exception& e) {
    keepalive::log_line_noexcept({"internal error: ", e.what()});
  } catch (...) {
    keepalive::log_line_noexcept({"internal error: unknown exception"});
  }
  return 1;
}
