#include "supervisor/cli.h"

#include <algorithm>
#include <initializer_list>
#include <optional>
#include <string_view>
#include <vector>

#include "common/quote.h"

namespace keepalive {
namespace {

// The flags, in the order --help lists them. Parsed here rather than with
// Boost.Program_options: linking it cost every start its iostream and
// locale initialisation and its relocations (start-up is the benchmark of a
// wrapper). The rules are those it had with unix_style minus guessing:
// "--name VALUE" or "--name=VALUE" (the value may start with '-'), short
// switches that combine ("-vg"), no abbreviations, each flag at most once.
struct Flag {
  const char* name;        // without "--"
  char short_name;         // 0 if none
  const char* value_name;  // null for a switch
  const char* help;
};

constexpr Flag kFlagTable[] = {
    {"mode", 0, "MODE",
     "which sockets get options: socket (every TCP socket, default), "
     "connect (client sockets), listen (server sockets; accepted ones "
     "inherit)"},
    {"strategy", 0, "STRATEGY",
     "auto (default), emulate (create TCP sockets in the supervisor and "
     "inject them; needs no ptrace permission) or continue (set options on "
     "the target's socket at connect/listen via pidfd_getfd)"},
    {"keepidle", 0, "S",
     "TCP_KEEPIDLE: idle seconds before the first probe (15)"},
    {"keepcnt", 0, "N",
     "TCP_KEEPCNT: unanswered probes before the connection drops (9)"},
    {"keepintvl", 0, "S", "TCP_KEEPINTVL: seconds between probes (15)"},
    {"user-timeout", 0, "MS",
     "TCP_USER_TIMEOUT in ms; -1 derives it from the three above "
     "(default), 0 leaves the system default"},
    {"syncnt", 0, "N",
     "TCP_SYNCNT: SYN retries (connect and socket modes; 0 = system)"},
    {"defer-accept", 0, "S",
     "TCP_DEFER_ACCEPT seconds (listen and socket modes; 0 = off)"},
    {"maxseg", 0, "BYTES", "TCP_MAXSEG (0 = system default)"},
    {"window-clamp", 0, "BYTES", "TCP_WINDOW_CLAMP (0 = system default)"},
    {"deny-io-uring", 0, nullptr,
     "make io_uring_setup fail with ENOSYS, so that programs fall back to "
     "plain socket calls (io_uring bypasses seccomp)"},
    {"init", 0, nullptr,
     "act as an init: reap orphaned processes (implied when running as PID "
     "1, e.g. as a container's entrypoint)"},
    {"signal-group", 'g', nullptr,
     "run the command in its own process group and forward signals to the "
     "whole group"},
    {"fail-open", 0, nullptr,
     "if the seccomp filter cannot be installed (e.g. another seccomp "
     "listener is already in place) or the supervisor lacks the descriptors "
     "or memory to start, run the command without keepalive options after "
     "one warning instead of exiting 125"},
    {"exit-with-command", 0, nullptr,
     "exit when the command exits even if processes it started in the "
     "background still run (their socket calls then fail with ENOSYS); by "
     "default a detached supervisor serves them until the last one exits"},
    {"debug", 'v', nullptr,
     "say which strategy was chosen and print one line per socket given "
     "options"},
    {"check", 0, nullptr,
     "probe the kernel and this environment, print what the supervisor can "
     "do here, exit 0 if it can work, 1 if not"},
    {"help", 'h', nullptr, "print this help and exit"},
    {"version", 0, nullptr, "print the version and exit"},
};

struct SettingFlag {
  const char* flag;
  Option option;
};

constexpr SettingFlag kSettingFlags[] = {
    {"keepidle", Option::kKeepIdle},
    {"keepcnt", Option::kKeepCnt},
    {"keepintvl", Option::kKeepIntvl},
    {"user-timeout", Option::kUserTimeout},
    {"syncnt", Option::kSynCnt},
    {"defer-accept", Option::kDeferAccept},
    {"maxseg", Option::kMaxSeg},
    {"window-clamp", Option::kWindowClamp},
};

// What the words before "--" said: each flag at most once, with its value.
class GivenFlags {
 public:
  bool has(std::string_view name) const { return find(name) != nullptr; }
  // The value of a flag that takes one; null if it was not given.
  const std::string* value(std::string_view name) const {
    const Given* given = find(name);
    return given != nullptr ? &given->value : nullptr;
  }
  // Records `flag`; false if it was given before.
  bool add(const Flag& flag, std::string value) {
    if (has(flag.name)) return false;
    given_.push_back({&flag, std::move(value)});
    return true;
  }

 private:
  struct Given {
    const Flag* flag;
    std::string value;
  };
  const Given* find(std::string_view name) const {
    for (const Given& given : given_) {
      if (name == given.flag->name) return &given;
    }
    return nullptr;
  }
  std::vector<Given> given_;
};

const Flag* long_flag(std::string_view name) {
  for (const Flag& flag : kFlagTable) {
    if (name == flag.name) return &flag;
  }
  return nullptr;
}

const Flag* short_flag(char name) {
  for (const Flag& flag : kFlagTable) {
    if (flag.short_name != 0 && flag.short_name == name) return &flag;
  }
  return nullptr;
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

// A word of the user's, in single quotes, as a message shows it: bounded
// in length and on one line whatever it holds (see quote_value).
std::string quoted(std::string_view word) {
  char text[kQuoteBufferSize];
  quote_value(word.data(), word.size(), text, sizeof text);
  return std::string("'") + text + "'";
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

// The flag column of --help: "--mode MODE", "-g [ --signal-group ]".
std::string flag_column(const Flag& flag) {
  std::string text = "  ";
  if (flag.short_name != 0) {
    text += std::string("-") + flag.short_name + " [ --" + flag.name + " ]";
  } else {
    text += std::string("--") + flag.name;
  }
  if (flag.value_name != nullptr) text += std::string(" ") + flag.value_name;
  return text;
}

std::string flags_help() {
  constexpr size_t kLineLength = 79;  // characters at most
  size_t column = 0;
  for (const Flag& flag : kFlagTable) {
    column = std::max(column, flag_column(flag).size() + 2);
  }
  std::string out = "Options:\n";
  for (const Flag& flag : kFlagTable) {
    std::string line = flag_column(flag);
    line.resize(column, ' ');
    // Words wrapped to the line length, continuation lines indented.
    std::string_view words = flag.help;
    bool first_word = true;
    while (!words.empty()) {
      size_t end = words.find(' ');
      std::string_view word = words.substr(0, end);
      words = end == std::string_view::npos ? "" : words.substr(end + 1);
      if (!first_word && line.size() + 1 + word.size() > kLineLength) {
        out += line + "\n";
        line.assign(column, ' ');
        first_word = true;
      }
      if (!first_word) line += ' ';
      line += word;
      first_word = false;
    }
    out += line + "\n";
  }
  return out;
}

std::string help_text() {
  return "Usage: keepalive-supervise [OPTIONS] -- COMMAND [ARG...]\n"
         "       keepalive-supervise --check [--mode MODE] [--strategy S]\n\n"
         "Runs COMMAND under a seccomp filter and puts TCP keepalive and\n"
         "TCP_USER_TIMEOUT on its TCP sockets, including those of static\n"
         "binaries, Go programs and every descendant.\n\n" +
         flags_help() +
         "\nThe options also come from the environment, as for libkeepalive:\n"
         "TCP_KEEPIDLE, TCP_KEEPCNT, TCP_KEEPINTVL, TCP_USER_TIMEOUT, "
         "TCP_SYNCNT,\nTCP_DEFER_ACCEPT, TCP_MAXSEG, TCP_WINDOW_CLAMP, "
         "KEEPALIVE=off,\nLIBKEEPALIVE_DEBUG. Flags override the "
         "environment.\n\n"
         "Exit status: COMMAND's, or 128+N if it was killed by signal N;\n"
         "2 bad usage, 125 could not supervise, 126 COMMAND not executable,\n"
         "127 COMMAND not found.\n";
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

  // The shape first: unknown flags, missing or unwanted values, then
  // repeats.
  GivenFlags given;
  std::vector<std::string> stray;
  std::string repeated;  // the first flag given twice
  for (size_t i = 0; i < ours.size(); ++i) {
    const std::string& word = ours[i];
    if (word.size() > 2 && word.starts_with("--")) {
      size_t equals = word.find('=');
      const Flag* flag = long_flag(std::string_view(word).substr(
          2, equals == std::string::npos ? std::string::npos : equals - 2));
      if (flag == nullptr) {
        return syntax_error("unrecognised option " + quoted(word));
      }
      std::string option = std::string("--") + flag->name;
      std::string value;
      if (equals != std::string::npos) {
        value = word.substr(equals + 1);
        if (value.empty()) {
          return syntax_error("the argument for option '" + option +
                              "' should follow immediately after the equal "
                              "sign");
        }
        if (flag->value_name == nullptr) {
          return syntax_error("option '" + option +
                              "' does not take any arguments");
        }
      } else if (flag->value_name != nullptr) {
        // The next word, whatever it looks like: "--user-timeout -1".
        if (i + 1 == ours.size()) {
          return syntax_error("the required argument for option '" + option +
                              "' is missing");
        }
        value = ours[++i];
      }
      if (!given.add(*flag, std::move(value)) && repeated.empty()) {
        repeated = option;
      }
    } else if (word.size() > 1 && word[0] == '-') {
      // Short switches, combinable: "-vg".
      for (char c : std::string_view(word).substr(1)) {
        if (short_flag(c) == nullptr) {
          return syntax_error("unrecognised option " + quoted(word));
        }
      }
      for (char c : std::string_view(word).substr(1)) {
        const Flag& flag = *short_flag(c);
        if (!given.add(flag, "") && repeated.empty()) {
          repeated = std::string("--") + flag.name;
        }
      }
    } else {
      stray.push_back(word);
    }
  }

  if (!repeated.empty()) {
    return syntax_error("option '" + repeated +
                        "' cannot be specified more than once");
  }

  // Stray words before "--" are refused with a hint.
  if (!stray.empty()) {
    const std::string& word = stray[0];
    // The hint repeats the word only when it is short and plain.
    std::string shown = quoted(word);
    bool plain = shown == "'" + word + "'";
    return usage_error("unexpected argument " + shown +
                       " (put the command after --: keepalive-supervise "
                       "[OPTIONS] -- " +
                       (plain ? word : std::string("COMMAND")) + " ...)");
  }

  CliResult result;
  if (given.has("help")) {
    result.action = CliAction::kHelp;
    result.text = help_text();
    return result;
  }
  if (given.has("version")) {
    result.action = CliAction::kVersion;
    result.text = "keepalive-supervise " KEEPALIVE_VERSION "\n";
    return result;
  }

  Config& config = result.config;
  config.settings = parse_settings(env, env_ctx, warn, warn_ctx);
  for (const SettingFlag& flag : kSettingFlags) {
    const std::string* text = given.value(flag.flag);
    if (text == nullptr) continue;
    ParsedValue parsed = parse_option_value(flag.option, text->c_str());
    if (!parsed.ok) {
      return usage_error(std::string("--") + flag.flag + ": invalid value " +
                         quoted(*text) + " (expected " + parsed.expected +
                         ")");
    }
    config.settings = config.settings.with_value(flag.option, parsed.value);
  }
  if (const std::string* text = given.value("mode")) {
    std::optional<Mode> mode = by_name(
        *text, {Mode::kSocket, Mode::kConnect, Mode::kListen}, mode_name);
    if (!mode) {
      return usage_error("--mode: invalid value " + quoted(*text) +
                         " (expected socket, connect or listen)");
    }
    config.mode = *mode;
  }
  if (const std::string* text = given.value("strategy")) {
    std::optional<Strategy> strategy = by_name(
        *text, {Strategy::kAuto, Strategy::kEmulate, Strategy::kContinue},
        strategy_name);
    if (!strategy) {
      return usage_error("--strategy: invalid value " + quoted(*text) +
                         " (expected auto, emulate or continue)");
    }
    config.strategy = *strategy;
  }
  config.verbose = given.has("debug") || config.settings.debug();
  config.deny_io_uring = given.has("deny-io-uring");
  config.init = given.has("init");
  config.signal_group = given.has("signal-group");
  config.fail_open = given.has("fail-open");
  config.exit_with_command = given.has("exit-with-command");
  config.command = std::move(command);

  if (given.has("check")) {
    if (!config.command.empty()) {
      return usage_error("--check takes no command");
    }
    result.action = CliAction::kCheck;
    return result;
  }
  if (config.command.empty()) {
    return usage_error(
        "no command given (usage: keepalive-supervise "
        "[OPTIONS] -- COMMAND [ARG...])");
  }
  return result;
}

}  // namespace keepalive
