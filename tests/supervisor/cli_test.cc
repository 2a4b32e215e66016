// SPDX-License-Identifier: Apache-2.0
// parse_command_line: every flag, flags over the environment, and the one
// line a bad command line gets.
#include "supervisor/cli.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace keepalive {
namespace {

struct Parsed {
  CliResult result;
  std::vector<std::string> warnings;
};

using Env = std::map<std::string, std::string>;

const char* lookup(const char* name, void* ctx) {
  const Env& env = *static_cast<const Env*>(ctx);
  auto it = env.find(name);
  return it == env.end() ? nullptr : it->second.c_str();
}

void collect(const char* line, void* ctx) {
  static_cast<std::vector<std::string>*>(ctx)->push_back(line);
}

// Parses `args` as if given after the program name, with `env` as the
// whole environment.
Parsed parse(const std::vector<std::string>& args, const Env& env = {}) {
  std::vector<const char*> argv = {"keepalive-supervise"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  argv.push_back(nullptr);
  Parsed parsed;
  parsed.result =
      parse_command_line(static_cast<int>(argv.size() - 1), argv.data(), lookup,
                         const_cast<Env*>(&env), collect, &parsed.warnings);
  return parsed;
}

// A usage error is exactly one line (main adds the prefix and newline).
void expect_usage_error(const Parsed& parsed, const std::string& names,
                        const std::string& expected = "") {
  EXPECT_EQ(parsed.result.action, CliAction::kUsageError);
  const std::string& text = parsed.result.text;
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(text.find('\n'), std::string::npos) << text;
  EXPECT_NE(text.find(names), std::string::npos)
      << "'" << text << "' does not name " << names;
  if (!expected.empty()) {
    EXPECT_NE(text.find(expected), std::string::npos)
        << "'" << text << "' does not say what was expected: " << expected;
  }
}

TEST(CliTest, DefaultsWithACommand) {
  Parsed p = parse({"--", "nc", "-l", "80"});
  ASSERT_EQ(p.result.action, CliAction::kRun) << p.result.text;
  const Config& c = p.result.config;
  EXPECT_EQ(c.mode, Mode::kSocket);
  EXPECT_EQ(c.strategy, Strategy::kAuto);
  EXPECT_FALSE(c.verbose);
  EXPECT_FALSE(c.deny_io_uring);
  EXPECT_FALSE(c.init);
  EXPECT_FALSE(c.signal_group);
  EXPECT_FALSE(c.fail_open);
  EXPECT_FALSE(c.exit_with_command);
  EXPECT_EQ(c.command, (std::vector<std::string>{"nc", "-l", "80"}));
  EXPECT_EQ(c.settings.value(Option::kKeepAlive), 1);
  EXPECT_EQ(c.settings.value(Option::kKeepIdle), 15);
  EXPECT_EQ(c.settings.value(Option::kKeepCnt), 9);
  EXPECT_EQ(c.settings.value(Option::kKeepIntvl), 15);
  EXPECT_EQ(c.settings.value(Option::kUserTimeout), kDeriveUserTimeout);
  EXPECT_TRUE(p.warnings.empty());
}

TEST(CliTest, TheCommandIsTakenVerbatim) {
  // Flags, a second "--" and empty words after the first "--" belong to
  // the command.
  Parsed p = parse({"-v", "--", "prog", "--keepidle", "5", "--", "", "-v"});
  ASSERT_EQ(p.result.action, CliAction::kRun) << p.result.text;
  EXPECT_EQ(
      p.result.config.command,
      (std::vector<std::string>{"prog", "--keepidle", "5", "--", "", "-v"}));
  EXPECT_EQ(p.result.config.settings.value(Option::kKeepIdle), 15);
}

struct ValueFlag {
  const char* flag;
  Option option;
  const char* good;  // a valid non-default value
  int good_value;
  const char* out_of_range;
};

const ValueFlag kValueFlags[] = {
    {"--keepidle", Option::kKeepIdle, "40", 40, "32768"},
    {"--keepcnt", Option::kKeepCnt, "3", 3, "128"},
    {"--keepintvl", Option::kKeepIntvl, "7", 7, "32768"},
    {"--user-timeout", Option::kUserTimeout, "2000", 2000, "2147483648"},
    {"--syncnt", Option::kSynCnt, "2", 2, "128"},
    {"--defer-accept", Option::kDeferAccept, "10", 10, "2147483648"},
    {"--maxseg", Option::kMaxSeg, "1200", 1200, "87"},
    {"--window-clamp", Option::kWindowClamp, "65536", 65536, "2147483648"},
};

class ValueFlagTest : public ::testing::TestWithParam<ValueFlag> {};

TEST_P(ValueFlagTest, SeparateValue) {
  const ValueFlag& f = GetParam();
  Parsed p = parse({f.flag, f.good, "--", "true"});
  ASSERT_EQ(p.result.action, CliAction::kRun) << p.result.text;
  EXPECT_EQ(p.result.config.settings.value(f.option), f.good_value);
}

TEST_P(ValueFlagTest, EqualsValue) {
  const ValueFlag& f = GetParam();
  Parsed p = parse({std::string(f.flag) + "=" + f.good, "--", "true"});
  ASSERT_EQ(p.result.action, CliAction::kRun) << p.result.text;
  EXPECT_EQ(p.result.config.settings.value(f.option), f.good_value);
}

TEST_P(ValueFlagTest, ZeroMeansSystemDefault) {
  const ValueFlag& f = GetParam();
  Parsed p = parse({f.flag, "0", "--", "true"});
  ASSERT_EQ(p.result.action, CliAction::kRun) << p.result.text;
  EXPECT_EQ(p.result.config.settings.value(f.option), 0);
}

TEST_P(ValueFlagTest, OverridesTheEnvironment) {
  const ValueFlag& f = GetParam();
  const char* var = option_info(f.option).env_name;
  // The environment alone is used...
  Parsed from_env = parse({"--", "true"}, {{var, f.good}});
  ASSERT_EQ(from_env.result.action, CliAction::kRun);
  EXPECT_EQ(from_env.result.config.settings.value(f.option), f.good_value);
  // ...and the flag wins over it, even over an invalid value (which still
  // warns, once).
  Parsed both = parse({f.flag, "0", "--", "true"}, {{var, f.good}});
  ASSERT_EQ(both.result.action, CliAction::kRun);
  EXPECT_EQ(both.result.config.settings.value(f.option), 0);
  Parsed bad_env = parse({f.flag, f.good, "--", "true"}, {{var, "junk"}});
  ASSERT_EQ(bad_env.result.action, CliAction::kRun);
  EXPECT_EQ(bad_env.result.config.settings.value(f.option), f.good_value);
  EXPECT_EQ(bad_env.warnings.size(), 1u);
}

TEST_P(ValueFlagTest, BadValuesAreRefusedNamingTheFlag) {
  const ValueFlag& f = GetParam();
  const std::string expected =
      std::string("expected ") + parse_option_value(f.option, "junk").expected;
  for (std::string bad : {"abc", "12x", " 5", "+5", "0x10", "", "-2", "5.0",
                          "99999999999999999999"}) {
    SCOPED_TRACE(std::string(f.flag) + " '" + bad + "'");
    expect_usage_error(parse({f.flag, bad, "--", "true"}), f.flag, expected);
    // "--flag=" with nothing after it is refused by the parser itself,
    // which names the flag but not the range.
    expect_usage_error(parse({std::string(f.flag) + "=" + bad, "--", "true"}),
                       f.flag, bad.empty() ? "" : expected);
  }
  SCOPED_TRACE(f.out_of_range);
  expect_usage_error(parse({f.flag, f.out_of_range, "--", "true"}), f.flag,
                     expected);
}

TEST_P(ValueFlagTest, MissingValueIsRefusedNamingTheFlag) {
  const ValueFlag& f = GetParam();
  expect_usage_error(parse({f.flag}), f.flag);
}

INSTANTIATE_TEST_SUITE_P(Flags, ValueFlagTest, ::testing::ValuesIn(kValueFlags),
                         [](const ::testing::TestParamInfo<ValueFlag>& param) {
                           std::string name;
                           for (const char* c = param.param.flag + 2; *c; ++c) {
                             if (*c != '-') name += *c;
                           }
                           return name;
                         });

TEST(CliTest, UserTimeoutMinusOneDerives) {
  // "-1" looks like a short option; both spellings must reach the value,
  // and override an explicit value from the environment.
  const Env env = {{"TCP_USER_TIMEOUT", "5000"}};
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--user-timeout", "-1", "--", "true"},
        std::vector<std::string>{"--user-timeout=-1", "--", "true"}}) {
    Parsed p = parse(args, env);
    ASSERT_EQ(p.result.action, CliAction::kRun) << p.result.text;
    EXPECT_EQ(p.result.config.settings.value(Option::kUserTimeout),
              kDeriveUserTimeout);
  }
  // Only the user timeout has a "derive" value.
  expect_usage_error(parse({"--keepidle", "-1", "--", "true"}), "--keepidle");
}

TEST(CliTest, Mode) {
  const std::pair<const char*, Mode> modes[] = {{"socket", Mode::kSocket},
                                                {"connect", Mode::kConnect},
                                                {"listen", Mode::kListen}};
  for (const auto& [word, mode] : modes) {
    Parsed p = parse({"--mode", word, "--", "true"});
    ASSERT_EQ(p.result.action, CliAction::kRun) << p.result.text;
    EXPECT_EQ(p.result.config.mode, mode) << word;
    Parsed eq = parse({std::string("--mode=") + word, "--", "true"});
    EXPECT_EQ(eq.result.config.mode, mode) << word;
  }
  for (const char* bad : {"Socket", "accept", "", "connect,listen"}) {
    SCOPED_TRACE(bad);
    expect_usage_error(parse({"--mode", bad, "--", "true"}), "--mode",
                       "expected socket, connect or listen");
  }
  expect_usage_error(parse({"--mode"}), "--mode");
}

TEST(CliTest, Strategy) {
  const std::pair<const char*, Strategy> strategies[] = {
      {"auto", Strategy::kAuto},
      {"emulate", Strategy::kEmulate},
      {"continue", Strategy::kContinue}};
  for (const auto& [word, strategy] : strategies) {
    Parsed p = parse({"--strategy", word, "--", "true"});
    ASSERT_EQ(p.result.action, CliAction::kRun) << p.result.text;
    EXPECT_EQ(p.result.config.strategy, strategy) << word;
  }
  for (const char* bad : {"fast", "", "AUTO"}) {
    SCOPED_TRACE(bad);
    expect_usage_error(parse({"--strategy", bad, "--", "true"}), "--strategy",
                       "expected auto, emulate or continue");
  }
  expect_usage_error(parse({"--strategy"}), "--strategy");
}

TEST(CliTest, SwitchFlags) {
  for (const char* verbose : {"-v", "--debug"}) {
    Parsed p = parse({verbose, "--", "true"});
    ASSERT_EQ(p.result.action, CliAction::kRun) << verbose;
    EXPECT_TRUE(p.result.config.verbose) << verbose;
  }
  // LIBKEEPALIVE_DEBUG, as for the preload libraries, turns it on too.
  Parsed env_debug = parse({"--", "true"}, {{"LIBKEEPALIVE_DEBUG", ""}});
  EXPECT_TRUE(env_debug.result.config.verbose);

  Parsed deny = parse({"--deny-io-uring", "--", "true"});
  ASSERT_EQ(deny.result.action, CliAction::kRun);
  EXPECT_TRUE(deny.result.config.deny_io_uring);

  Parsed init = parse({"--init", "--", "true"});
  ASSERT_EQ(init.result.action, CliAction::kRun);
  EXPECT_TRUE(init.result.config.init);

  for (const char* group : {"-g", "--signal-group"}) {
    Parsed p = parse({group, "--", "true"});
    ASSERT_EQ(p.result.action, CliAction::kRun) << group;
    EXPECT_TRUE(p.result.config.signal_group) << group;
  }

  Parsed fail_open = parse({"--fail-open", "--", "true"});
  ASSERT_EQ(fail_open.result.action, CliAction::kRun);
  EXPECT_TRUE(fail_open.result.config.fail_open);

  Parsed tied = parse({"--exit-with-command", "--", "true"});
  ASSERT_EQ(tied.result.action, CliAction::kRun) << tied.result.text;
  EXPECT_TRUE(tied.result.config.exit_with_command);

  // Short switches combine.
  Parsed combined = parse({"-vg", "--", "true"});
  ASSERT_EQ(combined.result.action, CliAction::kRun) << combined.result.text;
  EXPECT_TRUE(combined.result.config.verbose);
  EXPECT_TRUE(combined.result.config.signal_group);

  // Switches take no value.
  expect_usage_error(parse({"--deny-io-uring=yes", "--", "true"}),
                     "deny-io-uring");
}

TEST(CliTest, UnknownFlagsAreRefusedNamingThem) {
  expect_usage_error(parse({"--bogus", "--", "true"}), "--bogus");
  expect_usage_error(parse({"-x", "--", "true"}), "-x");
  // No guessing from a prefix: "--keep" could be three flags.
  expect_usage_error(parse({"--keep", "5", "--", "true"}), "--keep");
  expect_usage_error(parse({"--keepi", "5", "--", "true"}), "--keepi");
}

TEST(CliTest, RepeatedValueFlagIsRefused) {
  expect_usage_error(
      parse({"--keepidle", "5", "--keepidle", "6", "--", "true"}), "keepidle");
}

TEST(CliTest, StrayWordBeforeDashDashIsRefusedWithAHint) {
  Parsed p = parse({"nc", "127.0.0.1", "80"});
  expect_usage_error(p, "'nc'");
  EXPECT_NE(p.result.text.find("-- nc"), std::string::npos) << p.result.text;
  // Also after valid flags, and also when a command follows.
  expect_usage_error(parse({"-v", "nc", "--", "true"}), "'nc'");
}

// Whatever the user typed, a usage error is one line of bounded length
// that shows the start of the input and says how long it was.
TEST(CliTest, AHugeWordGivesOneShortLine) {
  const std::string huge(131072, 'x');
  struct Case {
    std::vector<std::string> args;
    const char* length;  // of the word the message shows
  };
  const Case cases[] = {
      {{"--keepidle", huge, "--", "true"}, "131072 bytes"},
      {{"--keepidle=" + huge, "--", "true"}, "131072 bytes"},
      {{"--mode", huge, "--", "true"}, "131072 bytes"},
      {{"--strategy", huge, "--", "true"}, "131072 bytes"},
      {{"--" + huge, "--", "true"}, "131074 bytes"},
      {{"-" + huge, "--", "true"}, "131073 bytes"},
      {{huge, "--", "true"}, "131072 bytes"},
  };
  for (const Case& c : cases) {
    Parsed p = parse(c.args);
    SCOPED_TRACE(c.args[0].substr(0, 20));
    expect_usage_error(p, c.length);
    EXPECT_LT(p.result.text.size(), 1024u) << p.result.text.substr(0, 300);
  }
}

TEST(CliTest, AWordWithANewlineGivesOneLine) {
  const std::string forged = "1\nkeepalive-supervise: forged";
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{
           {"--keepidle", forged, "--", "true"},
           {"--mode", forged, "--", "true"},
           {"--" + forged, "--", "true"},
           {forged, "--", "true"},
       }) {
    Parsed p = parse(args);
    expect_usage_error(p, "1\\nkeepalive-supervise: forged");
  }
}

TEST(CliTest, NoCommandIsRefused) {
  expect_usage_error(parse({}), "no command");
  expect_usage_error(parse({"--"}), "no command");
  expect_usage_error(parse({"-v", "--keepidle", "5"}), "no command");
}

TEST(CliTest, Check) {
  Parsed p = parse({"--check"});
  EXPECT_EQ(p.result.action, CliAction::kCheck);
  Parsed with_mode =
      parse({"--check", "--mode", "listen", "--strategy", "emulate"});
  ASSERT_EQ(with_mode.result.action, CliAction::kCheck);
  EXPECT_EQ(with_mode.result.config.mode, Mode::kListen);
  EXPECT_EQ(with_mode.result.config.strategy, Strategy::kEmulate);
  // --check runs no command: one given is refused, not ignored.
  expect_usage_error(parse({"--check", "--", "true"}), "--check");
  // A bad value is still refused under --check.
  expect_usage_error(parse({"--check", "--mode", "x"}), "--mode");
}

TEST(CliTest, Help) {
  for (const char* flag : {"--help", "-h"}) {
    Parsed p = parse({flag});
    ASSERT_EQ(p.result.action, CliAction::kHelp) << flag;
    const std::string& text = p.result.text;
    EXPECT_NE(text.find("Usage: keepalive-supervise"), std::string::npos);
    for (const char* mentioned : {"--mode",
                                  "--strategy",
                                  "--keepidle",
                                  "--keepcnt",
                                  "--keepintvl",
                                  "--user-timeout",
                                  "--syncnt",
                                  "--defer-accept",
                                  "--maxseg",
                                  "--window-clamp",
                                  "--deny-io-uring",
                                  "--init",
                                  "--signal-group",
                                  "--fail-open",
                                  "--debug",
                                  "--check",
                                  "--version",
                                  "TCP_KEEPIDLE",
                                  "127",
                                  "126",
                                  "125"}) {
      EXPECT_NE(text.find(mentioned), std::string::npos)
          << "help does not mention " << mentioned;
    }
  }
  // Help wins over everything else, even a missing command.
  EXPECT_EQ(parse({"-v", "--help"}).result.action, CliAction::kHelp);
}

TEST(CliTest, Version) {
  Parsed p = parse({"--version"});
  ASSERT_EQ(p.result.action, CliAction::kVersion);
  EXPECT_EQ(p.result.text, std::string("keepalive-supervise ") +
                               KEEPALIVE_TEST_VERSION + "\n");
}

TEST(CliTest, EnvironmentWarningsPassThroughAndTheRunGoesOn) {
  Parsed p = parse({"--", "true"}, {{"TCP_KEEPIDLE", "abc"}});
  ASSERT_EQ(p.result.action, CliAction::kRun);
  ASSERT_EQ(p.warnings.size(), 1u);
  EXPECT_NE(p.warnings[0].find("TCP_KEEPIDLE"), std::string::npos);
  EXPECT_EQ(p.result.config.settings.value(Option::kKeepIdle), 0);
}

TEST(CliTest, KeepaliveOffFromTheEnvironment) {
  Parsed p = parse({"--", "true"}, {{"KEEPALIVE", "off"}});
  ASSERT_EQ(p.result.action, CliAction::kRun);
  EXPECT_FALSE(p.result.config.settings.enabled());
}

}  // namespace
}  // namespace keepalive

namespace keepalive {
namespace {

TEST(CliAttachTest, PidsAndCgroupAttachWithoutACommand) {
  Parsed parsed = parse({"--pid", "12,345", "--mode", "connect"});
  ASSERT_EQ(parsed.result.action, CliAction::kAttach) << parsed.result.text;
  const Config& config = parsed.result.config;
  EXPECT_EQ(config.attach.pids, (std::vector<pid_t>{12, 345}));
  EXPECT_EQ(config.mode, Mode::kConnect);
  EXPECT_TRUE(config.command.empty());
  EXPECT_FALSE(config.attach.dry_run);
  EXPECT_EQ(config.attach.watch_ms, 0);

  parsed = parse({"--cgroup=/sys/fs/cgroup/x.service", "--dry-run",
                  "--keepidle", "5"});
  ASSERT_EQ(parsed.result.action, CliAction::kAttach) << parsed.result.text;
  EXPECT_EQ(parsed.result.config.attach.cgroup, "/sys/fs/cgroup/x.service");
  EXPECT_TRUE(parsed.result.config.attach.dry_run);
  EXPECT_EQ(parsed.result.config.settings.value(Option::kKeepIdle), 5);
}

TEST(CliAttachTest, WatchTakesAnOptionalInterval) {
  EXPECT_EQ(parse({"--pid=1", "--watch"}).result.config.attach.watch_ms, 1000);
  EXPECT_EQ(parse({"--pid=1", "--watch=0.25"}).result.config.attach.watch_ms,
            250);
  EXPECT_EQ(parse({"--pid=1", "--watch=3"}).result.config.attach.watch_ms,
            3000);
  for (const char* bad : {"--watch=0", "--watch=-1", "--watch=1s",
                          "--watch=100000", "--watch=nan", "--watch=1e3"}) {
    expect_usage_error(parse({"--pid=1", bad}), "--watch", "seconds");
  }
  // "--watch 2": the value must be attached; a lone word is an argument.
  expect_usage_error(parse({"--pid=1", "--watch", "2"}), "'2'");
}

TEST(CliAttachTest, BadPidsAreNamed) {
  for (const char* bad : {"0", "-1", "1,", ",1", "1,,2", "x", "1 2",
                          "99999999999", "+5", "0x10"}) {
    expect_usage_error(parse({std::string("--pid=") + bad}), "--pid",
                       "process IDs");
  }
}

TEST(CliAttachTest, WhatCannotGoTogetherIsRefused) {
  expect_usage_error(parse({"--pid=1", "--cgroup=/x"}), "--cgroup");
  expect_usage_error(parse({"--cgroup", ""}), "--cgroup", "cgroup directory");
  expect_usage_error(parse({"--pid=1", "--", "true"}), "takes no command");
  expect_usage_error(parse({"--check", "--pid=1"}), "--check");
  for (const char* flag : {"--strategy=emulate", "--deny-io-uring", "--init",
                           "-g", "--fail-open", "--exit-with-command"}) {
    expect_usage_error(parse({"--pid=1", flag}), "not to --pid");
  }
  expect_usage_error(parse({"--dry-run", "--", "true"}), "--dry-run",
                     "--pid or --cgroup");
  expect_usage_error(parse({"--watch", "--", "true"}), "--watch",
                     "--pid or --cgroup");
  expect_usage_error(parse({"--pid=1", "--pid=2"}), "more than once");
}

TEST(CliAttachTest, FollowTakesOnePidAlone) {
  Parsed parsed = parse({"--pid=7", "--follow", "--mode=connect"});
  ASSERT_EQ(parsed.result.action, CliAction::kAttach) << parsed.result.text;
  EXPECT_TRUE(parsed.result.config.attach.follow);
  EXPECT_FALSE(parse({"--pid=7"}).result.config.attach.follow);
  expect_usage_error(parse({"--pid=7,8", "--follow"}), "--follow",
                     "exactly one --pid");
  expect_usage_error(parse({"--cgroup=/x", "--follow"}), "--follow",
                     "exactly one --pid");
  expect_usage_error(parse({"--pid=7", "--follow", "--dry-run"}),
                     "--dry-run and --follow");
  expect_usage_error(parse({"--pid=7", "--follow", "--watch"}),
                     "--watch and --follow");
  expect_usage_error(parse({"--follow", "--", "true"}), "--follow",
                     "--pid or --cgroup");
}

}  // namespace
}  // namespace keepalive
