// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise and keepalive-agent at `ulimit -n` from 3 upward.
// The supervisor either runs its target, whose calls then behave as they
// do bare under the same limit (same exit status; with SO_KEEPALIVE where
// they succeed), or refuses with one line and 125; below the dynamic
// loader's own need nothing of ours runs (the loader's line, 127). The
// agent either refuses to start with one line, or serves: a container
// then gets its options, or the agent says on stderr that it ran out of
// descriptors; a container never hangs.
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

// `text` without what UBSan says when the process is out of descriptors:
// its vptr check probes memory through a pipe, and without a free fd it
// takes every object for invalid ("runtime error: ... invalid vptr").
std::string without_sanitizer_noise(const std::string& text) {
  if (!kSanitized) return text;
  std::string kept;
  for (const std::string& line : split_lines(text)) {
    if (line.find("runtime error: ") != std::string::npos ||
        line.find(": note: object has invalid vptr") != std::string::npos ||
        line == "<memory cannot be printed>") {
      continue;
    }
    kept += line + "\n";
  }
  return kept;
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

TEST_F(soak, agent_fd_limit) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  if (access(kPrlimit, X_OK) != 0) GTEST_SKIP() << kPrlimit << " is missing";
  Outcome check = run({KEEPALIVE_AGENT, "check"});
  if (check.exit_code() != 0) {
    GTEST_SKIP() << "keepalive-agent cannot work here:\n" << check.transcript();
  }
  std::vector<int> limits =
      *is_long ? std::vector<int>{}
               : std::vector<int>{3, 4, 6, 8, 10, 12, 14, 16, 20};
  for (int n = 3; *is_long && n <= 32; ++n) limits.push_back(n);
  // The first container makes the agent open what it keeps for good (its
  // fds are counted from the second on).
  const int containers = static_cast<int>(scaled(*is_long, 2, 4));
  const milliseconds container_bound = *is_long ? 3s : 500ms;

  std::vector<int> refused, served, hung, unexplained;
  std::string first_hang, first_unexplained;
  // Each limit once in the figures, however many containers it had.
  auto note = [](std::vector<int>& list, int n) {
    if (list.empty() || list.back() != n) list.push_back(n);
  };
  auto start = std::chrono::steady_clock::now();
  for (int n : limits) {
    SCOPED_TRACE("nofile " + std::to_string(n));
    std::string dir = path("n" + std::to_string(n));
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    const std::string sock = dir + "/agent.sock";
    const std::string control = dir + "/control.sock";
    Child agent(limited(n, n, {KEEPALIVE_AGENT, "--socket", sock, "--control",
                               control}));
    // Not "listening on PATH: open: Too many open files".
    if (!agent.wait_for_output("listening on " + sock + "\n", 3s) ||
        !agent.running()) {
      std::optional<int> status = agent.wait_exit(3s);
      ASSERT_TRUE(status) << "neither listening nor gone\n"
                          << agent.transcript();
      refused.push_back(n);
      std::string said = without_sanitizer_noise(agent.err());
      EXPECT_TRUE(one_line(said)) << agent.transcript();
      if (*status != 127 || n != 3) {
        EXPECT_EQ(*status, 1) << agent.transcript();
        EXPECT_TRUE(said.starts_with("keepalive-agent: "))
            << agent.transcript();
      }
      continue;
    }
    Sample before;
    for (int i = 1; i <= containers; ++i) {
      if (i == 2) {
        wait_until_idle(control, 500ms);
        before = sample_of(agent.pid());
      }
      Outcome c = run({KEEPALIVE_OCI_RUNTIME, sock,
                       "n" + std::to_string(n) + "-" + std::to_string(i), "--",
                       KEEPALIVE_SOAK_TARGET, "listen"},
                      {}, container_bound);
      if (c.exit_code() == 0 && c.out == "keepalive=1\n") {
        note(served, n);
        continue;
      }
      std::string what = "nofile " + std::to_string(n) + ", container " +
                         std::to_string(i) + ": ";
      if (c.timed_out) {
        note(hung, n);
        if (first_hang.empty()) {
          first_hang = what + "still in listen() after " +
                          std::to_string(container_bound.count()) + " ms\n";
        }
        continue;
      }
      // Without its options (keepalive=0) or failed (listen errno=38):
      // the agent must have said why, naming the descriptor limit.
      bool said = agent.wait_for_output("Too many open files", 200ms) ||
                  agent.err().find("RLIMIT_NOFILE") != std::string::npos;
      if (!said) {
        note(unexplained, n);
        if (first_unexplained.empty()) {
          first_unexplained = what + c.transcript() +
                          "and the agent said nothing about it:\n" +
                          agent.transcript();
        }
      }
    }
    // The agent's own descriptors come back (500 ms for the last
    // container's exit to reach it; an agent that cannot accept never
    // answers).
    wait_until_idle(control, 500ms);
    Sample after = sample_of(agent.pid());
    EXPECT_EQ(after.fds, before.fds) << "the agent's fds before and after";
    EXPECT_TRUE(agent.running()) << agent.transcript();
    agent.signal_group(SIGTERM);
    EXPECT_EQ(agent.wait_exit(5s), 0) << agent.transcript();
  }
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  std::ostringstream figures;
  figures << "soak.agent_fd_limit: form=" << (*is_long ? "long" : "short")
          << " limits=" << limits.size() << " containers_each=" << containers
          << " seconds=" << seconds << " refused_at=" << join(refused)
          << " served_at=" << join(served) << " hung_at=" << join(hung)
          << " unexplained_at=" << join(unexplained);
  std::cout << figures.str() << std::endl;
  EXPECT_TRUE(hung.empty()) << "containers hung in a trapped listen(): "
                            << first_hang;
  EXPECT_TRUE(unexplained.empty())
      << "containers ran without options and nothing said why: "
      << first_unexplained;
}

}  // namespace
}  // namespace keepalive::tests
