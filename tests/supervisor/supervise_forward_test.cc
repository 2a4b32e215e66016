// SPDX-License-Identifier: Apache-2.0
// Signals sent to keepalive-supervise reach the command exactly once, as
// under tini: every catchable signal but SIGCHLD and the synchronous
// faults, real-time ones included. A stop signal stops the command and
// then the supervisor, so that a shell sees the job stopped; SIGCONT goes
// on to the command. The supervisor survives each, and the command's exit
// status passes through.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

// The state letter of `pid` in /proc/PID/stat ('T': stopped), or '?'.
char state_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)),
                   std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');
  return paren == std::string::npos || paren + 2 >= text.size()
             ? '?'
             : text[paren + 2];
}

// Waits up to `bound` for `pid` to be (or not be) stopped.
bool wait_state(pid_t pid, bool stopped, milliseconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < deadline) {
    if ((state_of(pid) == 'T') == stopped) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

size_t count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

class ForwardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/keepalive-forward-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    unlink((dir_ + "/stop").c_str());
    rmdir(dir_.c_str());
  }
  std::string dir_;
};

TEST_F(ForwardTest, EachSignalReachesTheCommandOnce) {
  const int rt = SIGRTMIN + 2;
  const std::vector<std::pair<int, std::string>> signals = {
      {SIGALRM, "ALRM"},     {SIGPWR, "PWR"},   {SIGURG, "URG"},
      {SIGVTALRM, "VTALRM"}, {SIGPROF, "PROF"}, {rt, std::to_string(rt)}};
  // The shell runs a trap between commands: a short sleep loop.
  std::string script;
  for (const auto& [sig, name] : signals) {
    script += "trap 'echo got-" + name + "' " + name + "\n";
  }
  script +=
      "trap 'echo got-TSTP' TSTP\n"
      "trap 'echo got-CONT' CONT\n"
      "echo ready\n"
      "while [ ! -e \"$1\" ]; do sleep 0.02; done\n"
      "echo done\n"
      "exit 7\n";
  std::string stop = dir_ + "/stop";
  Child child(supervised({}, {"/bin/sh", "-c", script, "sh", stop}));
  ASSERT_TRUE(child.wait_line("ready", 10s)) << child.transcript();
  for (const auto& [sig, name] : signals) {
    SCOPED_TRACE(name);
    ASSERT_EQ(kill(child.pid(), sig), 0);
    // One at a time, so that none can merge with another.
    ASSERT_TRUE(child.wait_line("got-" + name, 5s)) << child.transcript();
  }

  // A stop signal: forwarded, then, once the command has taken it, the
  // supervisor stops itself. While it is stopped the command's trapped
  // calls (the shell's next exec of sleep) wait for it, as in a stopped
  // job: the trap's output may come only once SIGCONT has resumed both.
  // The command must have taken SIGTSTP before: SIGCONT discards a stop
  // signal still pending.
  ASSERT_EQ(kill(child.pid(), SIGTSTP), 0);
  EXPECT_TRUE(wait_state(child.pid(), true, 5s))
      << "the supervisor did not stop: " << state_of(child.pid());
  ASSERT_EQ(kill(child.pid(), SIGCONT), 0);
  EXPECT_TRUE(wait_state(child.pid(), false, 5s));
  // Both traps run at the shell's next step, in either order.
  std::set<std::string> traps;
  for (int i = 0; i < 2; ++i) {
    std::optional<std::string> line = child.wait_line("got-", 5s);
    ASSERT_TRUE(line) << child.transcript();
    traps.insert(*line);
  }
  EXPECT_EQ(traps, (std::set<std::string>{"got-CONT", "got-TSTP"}));

  std::ofstream(stop).close();
  std::optional<int> code = child.wait_exit(10s);
  ASSERT_TRUE(code) << child.transcript();
  EXPECT_EQ(*code, 7) << child.transcript();
  for (const auto& [sig, name] : signals) {
    EXPECT_EQ(count(child.out(), "got-" + name + "\n"), 1u) << name << "\n"
                                                             << child.out();
  }
  EXPECT_EQ(count(child.out(), "got-TSTP\n"), 1u) << child.out();
  EXPECT_EQ(count(child.out(), "got-CONT\n"), 1u) << child.out();
  EXPECT_EQ(child.err(), "");
}

}  // namespace
}  // namespace keepalive::tests
