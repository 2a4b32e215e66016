// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise under tight resource limits: at any RLIMIT_NOFILE
// and under a small RLIMIT_AS the outcome is either the target working
// with its options (read back by the target itself) or exit 125 with
// exactly one line. Never an abort (134), a crash (139), or a second,
// misleading line (a target whose trapped exec failed with ENOSYS after
// the supervisor died). The command keeps the limits it was started with.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

std::string static_supervise_path() {
#ifdef KEEPALIVE_SUPERVISE_STATIC_PATH
  return KEEPALIVE_SUPERVISE_STATIC_PATH;
#else
  return "";
#endif
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// What a user may see from `supervise -- raw_tcp connect PORT` under a
// limit: the target connected with the options, or exactly one line and
// 125. `loader_may_fail`: a dynamically linked supervisor may not start at
// all (the dynamic loader's own one line, exit 127): none of our code ran.
void expect_works_or_one_line(const Outcome& o, const std::string& what,
                              bool loader_may_fail = false) {
  SCOPED_TRACE(what);
  ASSERT_TRUE(o.shell_status()) << "still running at the deadline\n"
                           << o.out << o.err;
  EXPECT_NE(*o.shell_status(), 128 + SIGABRT) << o.err;
  EXPECT_NE(*o.shell_status(), 128 + SIGSEGV) << o.err;
  if (*o.shell_status() == 0) {
    size_t at = o.out.find("connected ");
    ASSERT_NE(at, std::string::npos) << o.out << o.err;
    Options got = parse_pairs(o.out.substr(at, o.out.find('\n', at) - at));
    EXPECT_TRUE(carries(got, Expectation{})) << o.out;
    EXPECT_EQ(o.err, "");
    return;
  }
  std::vector<std::string> lines = split_lines(o.err);
  ASSERT_EQ(lines.size(), 1u) << o.err;
  if (loader_may_fail && *o.shell_status() == 127 &&
      lines[0].find("error while loading shared libraries") !=
          std::string::npos) {
    return;
  }
  EXPECT_EQ(*o.shell_status(), 125) << o.out << o.err;
  EXPECT_EQ(lines[0].rfind("keepalive-supervise: ", 0), 0u) << o.err;
  EXPECT_EQ(o.out.find("connected"), std::string::npos) << o.out;
}

struct FdCase {
  bool static_binary;
  int soft;
  int hard;
};

void PrintTo(const FdCase& c, std::ostream* out) {
  *out << (c.static_binary ? "static" : "dynamic") << " nofile " << c.soft
       << ":" << c.hard;
}

class FdLimit : public ::testing::TestWithParam<FdCase> {};

TEST_P(FdLimit, TargetWorksOrOneLineAndExit125) {
  const FdCase& c = GetParam();
  std::string supervise =
      c.static_binary ? static_supervise_path() : supervise_path();
  if (supervise.empty()) {
    GTEST_SKIP() << "no keepalive-supervise-static in this build "
                    "(sanitizer builds make none)";
  }
  Listener server;
  std::string limits = std::to_string(c.soft) + ":" + std::to_string(c.hard);
  std::vector<std::string> target = {raw_tcp_path(), "connect",
                                     std::to_string(server.port())};
  std::vector<std::string> argv = {"/usr/bin/prlimit", "--nofile=" + limits,
                                   "--", supervise, "--"};
  argv.insert(argv.end(), target.begin(), target.end());
  Outcome o = run(argv, {}, 20s);
  if (c.hard < 64) {
    expect_works_or_one_line(o, "nofile " + limits, !c.static_binary);
    return;
  }
  // Room under the hard limit: the supervisor raises its own soft limit and
  // the command behaves as it does bare under the same limits (it works,
  // with options; or at a soft limit too low for its own socket, it fails
  // the same way).
  std::vector<std::string> bare = {"/usr/bin/prlimit", "--nofile=" + limits,
                                   "--"};
  bare.insert(bare.end(), target.begin(), target.end());
  Outcome alone = run(bare, {}, 20s);
  ASSERT_TRUE(alone.shell_status());
  if (*alone.shell_status() == 0) {
    expect_works_or_one_line(o, "nofile " + limits);
    EXPECT_EQ(o.shell_status().value_or(-1), 0) << o.err;
  } else {
    EXPECT_EQ(o.shell_status(), alone.shell_status()) << o.out << o.err;
    EXPECT_EQ(o.out, alone.out);
    EXPECT_EQ(o.err, alone.err);
  }
}

std::vector<FdCase> fd_cases() {
  std::vector<FdCase> cases;
  for (bool static_binary : {true, false}) {
    // At 3 the dynamic loader cannot open libc: its own one line, exit
    // 127, before any of the supervisor's code runs.
    for (int n = static_binary ? 3 : 4; n <= 20; ++n) {
      cases.push_back({static_binary, n, n});
    }
    for (auto [soft, hard] : {std::pair{3, 4096}, {5, 64}, {8, 1024},
                              {16, 64}}) {
      // The dynamic loader needs a free descriptor below the soft limit,
      // and the test may inherit some: its own failure is not ours.
      if (!static_binary && soft < 8) continue;
      cases.push_back({static_binary, soft, hard});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(
    Limits, FdLimit, ::testing::ValuesIn(fd_cases()),
    [](const ::testing::TestParamInfo<FdCase>& param) {
      return std::string(param.param.static_binary ? "static" : "dynamic") +
             "_" + std::to_string(param.param.soft) + "_" +
             std::to_string(param.param.hard);
    });

TEST(FdLimitOfTheCommand, IsTheOneTheSupervisorWasStartedWith) {
  // The supervisor raises its own soft limit; the command must not see it.
  for (std::string limits : {"5:4096", "8:64", "1024:4096"}) {
    SCOPED_TRACE(limits);
    Outcome o = run({"/usr/bin/prlimit", "--nofile=" + limits, "--",
                        supervise_path(), "--", "/bin/sh", "-c",
                        "ulimit -Sn; ulimit -Hn"},
                       {}, 20s);
    ASSERT_TRUE(o.shell_status()) << o.err;
    EXPECT_EQ(*o.shell_status(), 0) << o.err;
    std::string soft = limits.substr(0, limits.find(':'));
    std::string hard = limits.substr(limits.find(':') + 1);
    EXPECT_EQ(o.out, soft + "\n" + hard + "\n") << o.err;
  }
}

TEST(FdLimitTooLow, FailOpenRunsTheCommandAfterOneWarning) {
  Outcome o =
      run({"/usr/bin/prlimit", "--nofile=8:8", "--", supervise_path(),
           "--fail-open", "--", "/bin/sh", "-c", "echo ran; exit 3"},
          {}, 20s);
  ASSERT_TRUE(o.shell_status()) << o.err;
  EXPECT_EQ(*o.shell_status(), 3) << o.err;
  EXPECT_EQ(o.out, "ran\n");
  std::vector<std::string> lines = split_lines(o.err);
  ASSERT_EQ(lines.size(), 1u) << o.err;
  EXPECT_NE(lines[0].find("WITHOUT keepalive options"), std::string::npos)
      << o.err;
  EXPECT_NE(lines[0].find("RLIMIT_NOFILE"), std::string::npos) << o.err;
  EXPECT_NE(lines[0].find("ulimit -n"), std::string::npos) << o.err;
}

Outcome run_under(const std::vector<std::string>& argv, long kib) {
  std::vector<std::string> full = {"/usr/bin/prlimit",
                                   "--as=" + std::to_string(kib * 1024), "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return run(full, {}, 20s);
}

// The smallest limit (to 64 KiB) under which `argv` gets past `started`,
// or -1.
template <typename Started>
long smallest_limit_for(const std::vector<std::string>& argv,
                        Started started) {
  long low = 256, high = 256 * 1024;
  if (!started(run_under(argv, high))) return -1;
  while (high - low > 64) {
    long mid = (low + high) / 2;
    (started(run_under(argv, mid)) ? high : low) = mid;
  }
  return high;
}

class AddressSpaceLimit : public ::testing::TestWithParam<bool> {};

TEST_P(AddressSpaceLimit, TargetWorksOrOneLineAndExit125) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer reserves terabytes of address space: "
                  "no RLIMIT_AS test in a sanitizer build";
#endif
  bool static_binary = GetParam();
  std::string supervise =
      static_binary ? static_supervise_path() : supervise_path();
  if (supervise.empty()) GTEST_SKIP() << "no keepalive-supervise-static";
  Listener server;
  std::string port = std::to_string(server.port());
  // The target must work bare. And below some limit the supervisor cannot
  // start at all: the dynamic loader says so (127), or a static program
  // dies in the kernel's or libc's start-up (SIGSEGV, "Fatal glibc
  // error", 127). Nothing of ours has run there. Anything else from
  // --version (the version, our own line, an abort) comes from our code.
  long floor = smallest_limit_for(
      {raw_tcp_path(), "connect", port},
      [](const Outcome& o) { return o.shell_status() && *o.shell_status() == 0; });
  ASSERT_GT(floor, 0);
  long started = smallest_limit_for(
      {supervise, "--version"}, [](const Outcome& o) {
        return o.shell_status() && *o.shell_status() != 127 &&
               *o.shell_status() != 128 + SIGSEGV;
      });
  ASSERT_GT(started, 0);
  floor = std::max(floor, started);
  RecordProperty("floor_kib", std::to_string(floor));
  std::vector<long> limits;
  for (long extra = 0; extra <= 4096; extra += 128) limits.push_back(extra);
  limits.insert(limits.end(), {8192, 16384});
  for (long extra : limits) {
    long kib = floor + extra;
    Outcome o = run_under(
        {supervise, "--", raw_tcp_path(), "connect", port}, kib);
    expect_works_or_one_line(o, "RLIMIT_AS " + std::to_string(kib) + " KiB",
                             !static_binary);
  }
}

INSTANTIATE_TEST_SUITE_P(Limits, AddressSpaceLimit, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return std::string(param.param ? "static"
                                                          : "dynamic");
                         });

}  // namespace
}  // namespace keepalive::tests
