// SPDX-License-Identifier: Apache-2.0
#include "supervisor/cli.h"

#include <getopt.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

#include "supervisor/setting_flags.h"

namespace keepalive {
namespace {

// Values of the options without a short name; the short ones are their
// letter.
enum Key : int {
  kMode = 256,
  kStrategy,
  kKeepIdle,
  kKeepCnt,
  kKeepIntvl,
  kUserTimeout,
  kSynCnt,
  kDeferAccept,
  kMaxSeg,
  kWindowClamp,
  kDenyIoUring,
  kInit,
  kFailOpen,
  kExitWithCommand,
  kCheck,
  kPid,
  kCgroup,
  kDryRun,
  kWatch,
  kFollow,
  kAgent,
  kVersion,
  kSignalGroup = 'g',
  kDebug = 'v',
  kHelp = 'h',
};

// getopt_long's table, in the order of --help. "+" stops at the first word
// that is not an option (the command must follow "--", see below); ":"
// tells a missing value apart from an unknown option.
constexpr char kShortOptions[] = "+:ghv";
constexpr option kLongOptions[] = {
    {"mode", required_argument, nullptr, kMode},
    {"strategy", required_argument, nullptr, kStrategy},
    {"keepidle", required_argument, nullptr, kKeepIdle},
    {"keepcnt", required_argument, nullptr, kKeepCnt},
    {"keepintvl", required_argument, nullptr, kKeepIntvl},
    {"user-timeout", required_argument, nullptr, kUserTimeout},
    {"syncnt", required_argument, nullptr, kSynCnt},
    {"defer-accept", required_argument, nullptr, kDeferAccept},
    {"maxseg", required_argument, nullptr, kMaxSeg},
    {"window-clamp", required_argument, nullptr, kWindowClamp},
    {"deny-io-uring", no_argument, nullptr, kDenyIoUring},
    {"init", no_argument, nullptr, kInit},
    {"signal-group", no_argument, nullptr, kSignalGroup},
    {"fail-open", no_argument, nullptr, kFailOpen},
    {"exit-with-command", no_argument, nullptr, kExitWithCommand},
    {"pid", required_argument, nullptr, kPid},
    {"cgroup", required_argument, nullptr, kCgroup},
    {"dry-run", no_argument, nullptr, kDryRun},
    {"watch", optional_argument, nullptr, kWatch},
    {"follow", no_argument, nullptr, kFollow},
    {"agent", optional_argument, nullptr, kAgent},
    {"debug", no_argument, nullptr, kDebug},
    {"check", no_argument, nullptr, kCheck},
    {"help", no_argument, nullptr, kHelp},
    {"version", no_argument, nullptr, kVersion},
    {nullptr, 0, nullptr, 0},
};


constexpr char kHelpText[] =
    "Usage: keepalive-supervise [OPTION]... -- COMMAND [ARG]...\n"
    "  or:  keepalive-supervise [OPTION]... --pid=PID[,PID]... | --cgroup=DIR\n"
    "  or:  keepalive-supervise --check [--mode=MODE] [--strategy=STRATEGY]\n"
    "Run COMMAND under a seccomp filter that gives its TCP sockets keepalive\n"
    "and TCP_USER_TIMEOUT, including those of static binaries, Go programs\n"
    "and every descendant; or give the TCP sockets that running processes\n"
    "already have those options.\n"
    "\n"
    "Which sockets, and how:\n"
    "      --mode=MODE          socket: every TCP socket (default); connect:\n"
    "                             client sockets; listen: server sockets\n"
    "                             (accepted ones inherit)\n"
    "      --strategy=STRATEGY  auto (default); emulate: create TCP sockets\n"
    "                             here and inject them (no ptrace permission\n"
    "                             needed); continue: set options on the\n"
    "                             program's own socket at connect or listen\n"
    "\n"
    "Socket options (default in parentheses; 0 leaves the system's):\n"
    KEEPALIVE_SETTING_FLAGS_HELP
    "\n"
    "Running processes (instead of -- COMMAND):\n"
    "      --pid=PID[,PID]...   the sockets of these processes\n"
    "      --cgroup=DIR         the sockets of every process in this cgroup\n"
    "                             directory and those below it\n"
    "      --dry-run            print what each socket has and what would be\n"
    "                             set; change nothing\n"
    "      --watch[=SECONDS]    keep looking, every SECONDS (default 1), for\n"
    "                             new sockets and, with --cgroup, processes;\n"
    "                             until they are all gone, or SIGINT/SIGTERM\n"
    "      --follow             (experimental) with one --pid: then put the\n"
    "                             filter into the process, so that its new\n"
    "                             sockets get options as under -- COMMAND\n"
    "      --agent[=SOCKET]     with --follow: hand the filter to\n"
    "                             keepalive-agent (default socket\n"
    "                             /run/keepalive/agent.sock), which serves it\n"
    "                             across its own restarts\n"
    "    MODE picks sockets by role: connect: those the process connected;\n"
    "    listen: listening ones and those accepted from them; socket: all.\n"
    "\n"
    "Supervision:\n"
    "      --deny-io-uring      make io_uring_setup fail with ENOSYS, so that\n"
    "                             programs fall back to plain socket calls\n"
    "                             (io_uring bypasses seccomp)\n"
    "      --init               reap orphaned processes, as an init does\n"
    "                             (implied as PID 1, e.g. as an entrypoint)\n"
    "  -g, --signal-group       run COMMAND in a process group of its own and\n"
    "                             forward signals to the whole group\n"
    "      --fail-open          if the filter cannot be installed, or the\n"
    "                             supervisor lacks descriptors or memory, run\n"
    "                             COMMAND without options after one warning\n"
    "                             instead of exiting 125\n"
    "      --exit-with-command  exit with COMMAND even if processes it left in\n"
    "                             the background still run (their socket\n"
    "                             calls then fail with ENOSYS); by default a\n"
    "                             detached supervisor serves them until the\n"
    "                             last one exits\n"
    "  -v, --debug              say which strategy was chosen, and one line\n"
    "                             per socket given options\n"
    "      --check              probe the kernel and this environment, print\n"
    "                             what the supervisor can do here, exit 0 if\n"
    "                             it can work, 1 if not\n"
    "  -h, --help               display this help and exit\n"
    "      --version            output version information and exit\n"
    "\n"
    "The options also come from the environment, as for libkeepalive:\n"
    "TCP_KEEPIDLE, TCP_KEEPCNT, TCP_KEEPINTVL, TCP_USER_TIMEOUT, TCP_SYNCNT,\n"
    "TCP_DEFER_ACCEPT, TCP_MAXSEG, TCP_WINDOW_CLAMP, KEEPALIVE=off,\n"
    "LIBKEEPALIVE_DEBUG. Options on the command line override them.\n"
    "\n"
    "Exit status: COMMAND's, or 128+N if it was killed by signal N;\n"
    "2 bad usage, 125 could not supervise, 126 COMMAND not executable,\n"
    "127 COMMAND not found. With --pid or --cgroup: 0 when every TCP\n"
    "socket found has its options, 1 when a process or socket could not\n"
    "be reached or set, 2 bad usage.\n";

const option* long_option(int key) {
  for (const option* o = kLongOptions; o->name != nullptr; ++o) {
    if (o->val == key) return o;
  }
  return nullptr;
}

// The key of the long option `name`.
int key_named(std::string_view name) {
  for (const option* o = kLongOptions; o->name != nullptr; ++o) {
    if (name == o->name) return o->val;
  }
  return 0;
}

// The value among `values` whose name (as mode_name or strategy_name give
// it) is `text`.
template <typename Value>
std::optional<Value> by_name(const std::string& text,
                             std::initializer_list<Value> values,
                             const char* (*name)(Value)) {
  for (Value value : values) {
    if (text == name(value)) return value;
  }
  return std::nullopt;
}

CliResult usage_error(std::string text) {
  CliResult result;
  result.action = CliAction::kUsageError;
  result.text = std::move(text);
  return result;
}

// A mistake in the shape of the command line, refused before any value is
// looked at.
CliResult syntax_error(const std::string& what) {
  return usage_error(what + " (see keepalive-supervise --help)");
}

// What the words before "--" said: each option at most once, with its value.
struct Given {
  std::optional<std::string> values[kVersion + 1];  // by Key

  bool has(int key) const { return values[key].has_value(); }
  const std::string* value(int key) const {
    const std::optional<std::string>& given = values[key];
    return given.has_value() ? &*given : nullptr;
  }
};

// "1234,5678": process IDs, each a plain positive decimal number.
std::optional<std::vector<pid_t>> parse_pids(const std::string& text) {
  std::vector<pid_t> pids;
  size_t start = 0;
  for (;;) {
    size_t comma = text.find(',', start);
    std::string word = text.substr(start, comma - start);
    if (word.empty() || word.size() > 10 ||
        word.find_first_not_of("0123456789") != std::string::npos) {
      return std::nullopt;
    }
    long value = strtol(word.c_str(), nullptr, 10);
    if (value <= 0 || value > INT_MAX) return std::nullopt;
    pids.push_back(static_cast<pid_t>(value));
    if (comma == std::string::npos) return pids;
    start = comma + 1;
  }
}

// "1", "0.5": seconds from 0.01 to a day, as milliseconds.
std::optional<int> parse_interval_ms(const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789.") !=
                          std::string::npos) {
    return std::nullopt;
  }
  errno = 0;
  char* end = nullptr;
  double seconds = strtod(text.c_str(), &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(seconds) ||
      seconds < 0.01 || seconds > 86400) {
    return std::nullopt;
  }
  // Rounded by hand, as std::lround would make the program need libm: for
  // a positive value (0.01 s to a day here) adding 0.5 and truncating
  // rounds to the nearest.
  return static_cast<int>(seconds * 1000 + 0.5);  // NOLINT(bugprone-incorrect-roundings)
}

}  // namespace

CliResult parse_command_line(int argc, const char* const* argv, EnvLookup env,
                             void* env_ctx, WarningSink warn, void* warn_ctx) {
  // getopt_long wants char**; with "+" it neither permutes nor writes.
  std::vector<char*> args;
  args.reserve(static_cast<size_t>(argc) + 1);
  for (int i = 0; i < argc; ++i) args.push_back(const_cast<char*>(argv[i]));
  args.push_back(nullptr);

  // The shape first: unknown options, missing or unwanted values, then
  // repeats. No abbreviations: "--keep" could be three options.
  Given given;
  const char* repeated = nullptr;  // the first option given twice
  optind = 0;  // a full restart: the tests parse many command lines
  opterr = 0;  // our messages, not getopt's
  for (;;) {
    int word = optind == 0 ? 1 : optind;  // the word being looked at
    int index = -1;
    int key = getopt_long(argc, args.data(), kShortOptions, kLongOptions,
                          &index);
    if (key == -1) break;
    if (key == '?' || key == ':') {
      const option* known = optopt != 0 ? long_option(optopt) : nullptr;
      std::string name = known != nullptr && optopt > 255
                             ? std::string("--") + known->name
                             : std::string("-") + static_cast<char>(optopt);
      if (known == nullptr) {
        return syntax_error("unknown option " + quoted(argv[word]));
      }
      if (key == ':') {
        return syntax_error("option '" + name + "' needs a value");
      }
      return syntax_error("option '" + name + "' takes no value");
    }
    if (index >= 0) {
      std::string_view typed = argv[word];
      size_t equals = typed.find('=');
      if (typed.substr(2, equals - 2) != kLongOptions[index].name) {
        return syntax_error("unknown option " + quoted(argv[word]));
      }
      if (equals != std::string_view::npos && equals + 1 == typed.size()) {
        return syntax_error("option '--" +
                            std::string(typed.substr(2, equals - 2)) +
                            "' needs a value after '='");
      }
    }
    if (given.has(key)) {
      if (repeated == nullptr) repeated = long_option(key)->name;
      continue;
    }
    given.values[key] = optarg != nullptr ? optarg : "";
  }

  // The command follows "--"; a word before it is a mistake, even if a
  // command follows too.
  bool dash_dash = optind > 1 && optind <= argc &&
                   std::string_view(argv[optind - 1]) == "--";
  if (repeated != nullptr) {
    return syntax_error(std::string("option '--") + repeated +
                        "' given more than once");
  }
  if (optind < argc && !dash_dash) {
    std::string_view word = argv[optind];
    // The hint repeats the word only when it is short and plain.
    std::string shown = quoted(word);
    bool plain = shown == "'" + std::string(word) + "'";
    return usage_error("unexpected argument " + shown +
                       " (put the command after --: keepalive-supervise "
                       "[OPTION]... -- " +
                       (plain ? std::string(word) : std::string("COMMAND")) +
                       " ...)");
  }

  CliResult result;
  if (given.has(kHelp)) {
    result.action = CliAction::kHelp;
    result.text = kHelpText;
    return result;
  }
  if (given.has(kVersion)) {
    result.action = CliAction::kVersion;
    result.text = "keepalive-supervise " KEEPALIVE_VERSION "\n";
    return result;
  }

  Config& config = result.config;
  config.settings = parse_settings(env, env_ctx, warn, warn_ctx);
  for (const SettingFlag& flag : kSettingFlags) {
    const std::string* text = given.value(key_named(flag.name));
    if (text == nullptr) continue;
    auto settings = with_flag_value(config.settings, flag, text->c_str());
    if (!settings) return usage_error(settings.error());
    config.settings = *settings;
  }
  if (const std::string* text = given.value(kMode)) {
    auto mode = mode_flag_value(*text);
    if (!mode) return usage_error(mode.error());
    config.mode = *mode;
  }
  if (const std::string* text = given.value(kStrategy)) {
    std::optional<Strategy> strategy = by_name(
        *text, {Strategy::kAuto, Strategy::kEmulate, Strategy::kContinue},
        strategy_name);
    if (!strategy) {
      return usage_error("--strategy: invalid value " + quoted(*text) +
                         " (expected auto, emulate or continue)");
    }
    config.strategy = *strategy;
  }
  config.verbose = given.has(kDebug) || config.settings.debug();
  config.deny_io_uring = given.has(kDenyIoUring);
  config.init = given.has(kInit);
  config.signal_group = given.has(kSignalGroup);
  config.fail_open = given.has(kFailOpen);
  config.exit_with_command = given.has(kExitWithCommand);
  if (dash_dash) config.command.assign(argv + optind, argv + argc);
  if (const std::string* text = given.value(kPid)) {
    auto pids = parse_pids(*text);
    if (!pids) {
      return usage_error("--pid: invalid value " + quoted(*text) +
                         " (expected process IDs, e.g. 1234 or 1234,5678)");
    }
    config.attach.pids = std::move(*pids);
  }
  if (const std::string* text = given.value(kCgroup)) {
    if (text->empty()) {
      return usage_error("--cgroup: empty path (expected a cgroup directory, "
                         "e.g. /sys/fs/cgroup/system.slice/app.service)");
    }
    config.attach.cgroup = *text;
  }
  config.attach.dry_run = given.has(kDryRun);
  if (const std::string* text = given.value(kWatch)) {
    if (text->empty()) {
      config.attach.watch_ms = 1000;
    } else if (auto ms = parse_interval_ms(*text)) {
      config.attach.watch_ms = *ms;
    } else {
      return usage_error("--watch: invalid value " + quoted(*text) +
                         " (expected seconds from 0.01 to 86400, e.g. 1 or "
                         "0.5)");
    }
  }

  if (given.has(kCheck)) {
    if (!config.command.empty()) {
      return usage_error("--check takes no command");
    }
    if (config.attach.requested()) {
      return usage_error("--check takes no --pid or --cgroup");
    }
    result.action = CliAction::kCheck;
    return result;
  }
  if (given.has(kPid) || given.has(kCgroup)) {
    if (given.has(kPid) && given.has(kCgroup)) {
      return usage_error("--pid and --cgroup exclude each other");
    }
    const char* which = given.has(kPid) ? "--pid" : "--cgroup";
    if (!config.command.empty()) {
      return usage_error(std::string(which) +
                         " attaches to running processes: it takes no "
                         "command");
    }
    // What only a command run under the filter can use.
    for (int key : {int{kStrategy}, int{kDenyIoUring}, int{kInit},
                    int{kSignalGroup}, int{kFailOpen},
                    int{kExitWithCommand}}) {
      if (given.has(key)) {
        return usage_error(std::string("--") + long_option(key)->name +
                           " applies to a command run under the filter, "
                           "not to " + which);
      }
    }
    if (given.has(kFollow)) {
      if (config.attach.pids.size() != 1) {
        return usage_error("--follow takes exactly one --pid");
      }
      for (int key : {int{kDryRun}, int{kWatch}}) {
        if (given.has(key)) {
          return usage_error(std::string("--") + long_option(key)->name +
                             " and --follow exclude each other");
        }
      }
      config.attach.follow = true;
      if (const std::string* text = given.value(kAgent)) {
        config.attach.agent =
            text->empty() ? "/run/keepalive/agent.sock" : *text;
      }
    } else if (given.has(kAgent)) {
      return usage_error("--agent needs --follow");
    }
    result.action = CliAction::kAttach;
    return result;
  }
  for (int key : {int{kDryRun}, int{kWatch}, int{kFollow}, int{kAgent}}) {
    if (given.has(key)) {
      return usage_error(std::string("--") + long_option(key)->name +
                         " needs --pid or --cgroup");
    }
  }
  if (config.command.empty()) {
    return usage_error(
        "no command given (usage: keepalive-supervise [OPTION]... -- "
        "COMMAND [ARG]...)");
  }
  return result;
}

}  // namespace keepalive
