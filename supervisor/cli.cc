#include "supervisor/cli.h"

#include <boost/program_options.hpp>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <vector>

namespace keepalive {
namespace {

namespace po = boost::program_options;

struct FlagOption {
  const char* flag;
  Option option;
};

constexpr FlagOption kFlags[] = {
    {"keepidle", Option::kKeepIdle},
    {"keepcnt", Option::kKeepCnt},
    {"keepintvl", Option::kKeepIntvl},
    {"user-timeout", Option::kUserTimeout},
    {"syncnt", Option::kSynCnt},
    {"defer-accept", Option::kDeferAccept},
    {"maxseg", Option::kMaxSeg},
    {"window-clamp", Option::kWindowClamp},
};

po::options_description make_options() {
  po::options_description opts("Options");
  opts.add_options()
      ("mode", po::value<std::string>()->value_name("MODE"),
       "which sockets get options: socket (every TCP socket, default), "
       "connect (client sockets), listen (server sockets; accepted ones "
       "inherit)")
      ("strategy", po::value<std::string>()->value_name("STRATEGY"),
       "auto (default), emulate (create TCP sockets in the supervisor and "
       "inject them; needs no ptrace permission) or continue (set options on "
       "the target's socket at connect/listen via pidfd_getfd)")
      ("keepidle", po::value<std::string>()->value_name("S"),
       "TCP_KEEPIDLE: idle seconds before the first probe (15)")
      ("keepcnt", po::value<std::string>()->value_name("N"),
       "TCP_KEEPCNT: unanswered probes before the connection drops (9)")
      ("keepintvl", po::value<std::string>()->value_name("S"),
       "TCP_KEEPINTVL: seconds between probes (15)")
      ("user-timeout", po::value<std::string>()->value_name("MS"),
       "TCP_USER_TIMEOUT in ms; -1 derives it from the three above "
       "(default), 0 leaves the system default")
      ("syncnt", po::value<std::string>()->value_name("N"),
       "TCP_SYNCNT: SYN retries (connect and socket modes; 0 = system)")
      ("defer-accept", po::value<std::string>()->value_name("S"),
       "TCP_DEFER_ACCEPT seconds (listen and socket modes; 0 = off)")
      ("maxseg", po::value<std::string>()->value_name("BYTES"),
       "TCP_MAXSEG (0 = system default)")
      ("window-clamp", po::value<std::string>()->value_name("BYTES"),
       "TCP_WINDOW_CLAMP (0 = system default)")
      ("deny-io-uring",
       "make io_uring_setup fail with ENOSYS, so that programs fall back to "
       "plain socket calls (io_uring bypasses seccomp)")
      ("init", "act as an init: reap orphaned processes (implied when "
               "running as PID 1, e.g. as a container's entrypoint)")
      ("signal-group,g", "run the command in its own process group and "
                         "forward signals to the whole group")
      ("fail-open", "if the seccomp filter cannot be installed (e.g. "
                    "another seccomp listener is already in place), run the "
                    "command without keepalive options after one warning "
                    "instead of exiting 125")
      ("debug,v", "say which strategy was chosen and print one line per "
                  "socket given options")
      ("check", "probe the kernel and this environment, print what the "
                "supervisor can do here, exit 0 if it can work, 1 if not")
      ("help,h", "print this help and exit")
      ("version", "print the version and exit");
  return opts;
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

std::string help_text(const po::options_description& opts) {
  std::ostringstream out;
  out << "Usage: keepalive-supervise [OPTIONS] -- COMMAND [ARG...]\n"
         "       keepalive-supervise --check [--mode MODE] [--strategy S]\n\n"
         "Runs COMMAND under a seccomp filter and puts TCP keepalive and\n"
         "TCP_USER_TIMEOUT on its TCP sockets, including those of static\n"
         "binaries, Go programs and every descendant.\n\n"
      << opts
      << "\nThe options also come from the environment, as for libkeepalive:\n"
         "TCP_KEEPIDLE, TCP_KEEPCNT, TCP_KEEPINTVL, TCP_USER_TIMEOUT, "
         "TCP_SYNCNT,\nTCP_DEFER_ACCEPT, TCP_MAXSEG, TCP_WINDOW_CLAMP, "
         "KEEPALIVE=off,\nLIBKEEPALIVE_DEBUG. Flags override the "
         "environment.\n\n"
         "Exit status: COMMAND's, or 128+N if it was killed by signal N;\n"
         "2 bad usage, 125 could not supervise, 126 COMMAND not executable,\n"
         "127 COMMAND not found.\n";
  return out.str();
}

}  // namespace

CliResult parse_command_line(int argc, const char* const* argv, EnvLookup env,
                             void* env_ctx, WarningSink warn, void* warn_ctx) {
  // Everything after the first "--" is the command, untouched.
  std::vector<std::string> ours;
  std::vector<std::string> command;
  bool in_command = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (!in_command && arg == "--") {
      in_command = true;
    } else if (in_command) {
      command.push_back(arg);
    } else {
      ours.push_back(arg);
    }
  }

  po::options_description opts = make_options();
  // Stray words before "--" are collected only to be refused with a hint.
  po::options_description hidden;
  hidden.add_options()("stray", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description positional;
  positional.add("stray", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(ours)
                  .options(all)
                  .positional(positional)
                  .style(po::command_line_style::unix_style ^
                         po::command_line_style::allow_guessing)
                  .run(),
              vm);
  } catch (const po::error& e) {
    return usage_error(std::string(e.what()) +
                       " (see keepalive-supervise --help)");
  }

  if (vm.count("stray")) {
    const std::string& word = vm["stray"].as<std::vector<std::string>>()[0];
    return usage_error("unexpected argument '" + word +
                       "' (put the command after --: keepalive-supervise "
                       "[OPTIONS] -- " + word + " ...)");
  }

  CliResult result;
  if (vm.count("help")) {
    result.action = CliAction::kHelp;
    result.text = help_text(opts);
    return result;
  }
  if (vm.count("version")) {
    result.action = CliAction::kVersion;
    result.text = "keepalive-supervise " KEEPALIVE_VERSION "\n";
    return result;
  }

  Config& config = result.config;
  config.settings = parse_settings(env, env_ctx, warn, warn_ctx);
  for (const FlagOption& flag : kFlags) {
    if (!vm.count(flag.flag)) continue;
    const std::string& text = vm[flag.flag].as<std::string>();
    ParsedValue parsed = parse_option_value(flag.option, text.c_str());
    if (!parsed.ok) {
      return usage_error(std::string("--") + flag.flag + ": invalid value '" +
                         text + "' (expected " + parsed.expected + ")");
    }
    config.settings = config.settings.with_value(flag.option, parsed.value);
  }
  if (vm.count("mode")) {
    const std::string& text = vm["mode"].as<std::string>();
    std::optional<Mode> mode = by_name(
        text, {Mode::kSocket, Mode::kConnect, Mode::kListen}, mode_name);
    if (!mode) {
      return usage_error("--mode: invalid value '" + text +
                         "' (expected socket, connect or listen)");
    }
    config.mode = *mode;
  }
  if (vm.count("strategy")) {
    const std::string& text = vm["strategy"].as<std::string>();
    std::optional<Strategy> strategy = by_name(
        text, {Strategy::kAuto, Strategy::kEmulate, Strategy::kContinue},
        strategy_name);
    if (!strategy) {
      return usage_error("--strategy: invalid value '" + text +
                         "' (expected auto, emulate or continue)");
    }
    config.strategy = *strategy;
  }
  config.verbose = vm.count("debug") > 0 || config.settings.debug();
  config.deny_io_uring = vm.count("deny-io-uring") > 0;
  config.init = vm.count("init") > 0;
  config.signal_group = vm.count("signal-group") > 0;
  config.fail_open = vm.count("fail-open") > 0;
  config.command = std::move(command);

  if (vm.count("check")) {
    if (!config.command.empty()) {
      return usage_error("--check takes no command");
    }
    result.action = CliAction::kCheck;
    return result;
  }
  if (config.command.empty()) {
    return usage_error("no command given (usage: keepalive-supervise "
                       "[OPTIONS] -- COMMAND [ARG...])");
  }
  return result;
}

}  // namespace keepalive
