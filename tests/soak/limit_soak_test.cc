// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise and keepalive-agent at `ulimit -n` from 3 upward.
// The supervisor either runs its target, whose calls then behave as they
// do bare under the same limit (same exit status; with SO_KEEPALIVE where
// they succeed), or refuses with one line and 125; below the dynamic
// loader's own need nothing of ours runs (the loader's line, 127).
// keepalive-agent's test waits for a fix: at hard limits of 10 to 16 it
// starts, then leaves a container hanging or without options unsaid (it
// reserves no descriptors as the supervisor does).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <sstream>

#include "tests/soak/soak_harness.h"
#include "tests/soak/soak_runs.h"

namespace keepalive::tests {
namespace {

constexpr const char* kPrlimit = "/usr/bin/prlimit";

std::vector<std::string> limited(int soft, int hard,
                                 const std::vector<std::string>& argv) {
  std::vector<std::string> full = {
      kPrlimit,
      "--nofile=" + std::to_string(soft) + ":" + std::to_string(hard), "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

bool one_line(const std::string& text) {
  return !text.empty() && text.back() == '\n' &&
         text.find('\n') == text.size() - 1;
}

bool loader_line(const Outcome& o) {
  return o.shell_status() == 127 && one_line(o.err) &&
         o.err.find("error while loading shared libraries") !=
             std::string::npos;
}

// The line starting with `prefix` in `text` ("" if none).
std::string line_of(const std::string& text, const std::string& prefix) {
  for (const std::string& line : split_lines(text)) {
    if (line.starts_with(prefix)) return line;
  }
  return "";
}

std::string join(const std::vector<int>& values) {
  std::string text;
  for (int value : values) {
    text += (text.empty() ? "" : ",") + std::to_string(value);
  }
  return "[" + text + "]";
}

TEST_F(soak, supervisor_fd_limit) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  if (access(kPrlimit, X_OK) != 0) GTEST_SKIP() << kPrlimit << " is missing";
  if (std::string why = why_no_emulation(); !why.empty()) GTEST_SKIP() << why;
  const long calls = scaled(*is_long, 1'000, 50'000);
  const int top = static_cast<int>(scaled(*is_long, 22, 40));
  // Two threads: from 5 up, two sockets at once always fit in the target
  // (at 4 they race for the one free descriptor, bare or not).
  std::vector<std::pair<int, int>> limits;
  for (int n = 3; n <= top; ++n) limits.push_back({n, n});
  for (int soft : {3, 5, 6, 8, 16}) limits.push_back({soft, 4096});
  limits.push_back({5, 64});
  const std::vector<std::string> target =
      soak_target("spin", {"2", std::to_string(calls)});

  std::vector<int> refused, loader, ran;
  auto start = std::chrono::steady_clock::now();
  for (auto [soft, hard] : limits) {
    std::string what =
        "nofile " + std::to_string(soft) + ":" + std::to_string(hard);
    SCOPED_TRACE(what);
    Outcome o = run(
        limited(soft, hard, supervised({"--strategy", "emulate"}, target)), {},
        20s);
    ASSERT_TRUE(o.shell_status()) << "still running at the deadline\n" << o;
    int status = *o.shell_status();
    EXPECT_NE(status, 128 + SIGSEGV) << o;
    EXPECT_NE(status, 128 + SIGABRT) << o;
    if (status == 125) {
      refused.push_back(hard);
      EXPECT_TRUE(one_line(o.err)) << o;
      EXPECT_TRUE(o.err.starts_with("keepalive-supervise: RLIMIT_NOFILE")) << o;
      EXPECT_NE(o.err.find("ulimit -n"), std::string::npos) << o;
      EXPECT_EQ(o.out, "") << "the target ran after all";
      // With room under the hard limit the supervisor raises its own.
      EXPECT_LT(hard, 64) << o;
      continue;
    }
    Outcome bare = run(limited(soft, hard, target), {}, 20s);
    ASSERT_TRUE(bare.shell_status()) << "bare: still running\n" << bare;
    if (loader_line(o)) {
      // The supervisor is a dynamic program: at 3 the loader cannot open
      // a library, and neither can the bare target's.
      loader.push_back(soft);
      EXPECT_EQ(soft, 3) << o;
      EXPECT_EQ(bare.shell_status(), 127) << bare;
      continue;
    }
    ran.push_back(hard);
    EXPECT_EQ(status, *bare.shell_status())
        << "supervised:\n" << o << "\nbare:\n" << bare;
    EXPECT_EQ(o.err, "") << o;
    Options got = parse_pairs(line_of(o.out, "result"));
    Options alone = parse_pairs(line_of(bare.out, "result"));
    EXPECT_EQ(got["errors"], alone["errors"]) << o << bare;
    EXPECT_EQ(got["first_errno"], alone["first_errno"]) << o << bare;
    if (status == 0) {
      EXPECT_EQ(got["calls"], calls) << o;
      EXPECT_EQ(got["keepalive"], calls) << "sockets without SO_KEEPALIVE\n"
                                         << o;
    }
  }
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  // Where the supervisor runs at soft = hard = N, it runs at every N above.
  int lowest_run = 0;
  for (auto [soft, hard] : limits) {
    if (soft == hard &&
        std::find(ran.begin(), ran.end(), hard) != ran.end() &&
        (lowest_run == 0 || hard < lowest_run)) {
      lowest_run = hard;
    }
  }
  for (int hard : refused) {
    EXPECT_LT(hard, lowest_run) << "refused at " << hard << " but ran at "
                                << lowest_run;
  }
  std::ostringstream figures;
  figures << "soak.supervisor_fd_limit: form="
          << (*is_long ? "long" : "short") << " cases=" << limits.size()
          << " calls=" << calls << " seconds=" << seconds
          << " lowest_hard_limit_run=" << lowest_run
          << " refused_125_at_hard=" << join(refused)
          << " loader_127_at_soft=" << join(loader) << " ran=" << ran.size();
  std::cout << figures.str() << std::endl;
  EXPECT_GT(lowest_run, 0) << "the supervisor never ran";
}

}  // namespace
}  // namespace keepalive::tests
