// SPDX-License-Identifier: Apache-2.0
// Targets killed with SIGKILL at random points while their threads make
// trapped calls: the command of keepalive-supervise itself (the
// supervisor must exit 137, promptly, leaving no process behind),
// children of a long-lived supervised command (the supervisor's fds must
// stay flat), and containers served by keepalive-agent (the agent's fds
// must stay flat).
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/soak/soak_harness.h"
#include "tests/soak/soak_runs.h"

namespace keepalive::tests {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Whether any process is left in process group `group`, waiting up to
// `bound` for the last to go.
bool group_lingers(pid_t group, milliseconds bound) {
  auto deadline = Clock::now() + bound;
  while (kill(-group, 0) == 0 || errno != ESRCH) {
    if (Clock::now() >= deadline) return true;
    std::this_thread::sleep_for(1ms);
  }
  return false;
}

// "running pid PID calls=N errors=E no_keepalive=M": every call made so
// far by the target made a TCP socket with SO_KEEPALIVE.
void expect_running_kept_alive(const std::string& running) {
  Options got = parse_pairs(running);
  EXPECT_GT(got["calls"], 0) << running;
  EXPECT_EQ(got["errors"], 0) << running;
  EXPECT_EQ(got["no_keepalive"], 0) << running;
}

TEST_F(soak, supervisor_target_killed) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  if (std::string why = why_no_emulation(); !why.empty()) GTEST_SKIP() << why;
  std::mt19937 random(seed_for("supervisor_target_killed"));
  const int commands = static_cast<int>(scaled(*is_long, 20, 500));
  const int children = static_cast<int>(scaled(*is_long, 20, 500));
  const int threads = 4;
  std::uniform_int_distribution<int> delay_us(0, 20'000);

  // 1. The command itself, killed while its threads make sockets.
  double slowest_exit = 0;
  int wrong_status = 0, lingered = 0, warned = 0;
  std::string first_problem, first_warning;
  auto start = Clock::now();
  for (int i = 0; i < commands; ++i) {
    Child supervisor(supervised(
        {"--strategy", "emulate"},
        soak_target("spin", {std::to_string(threads), "--forever"})));
    std::optional<std::string> running = supervisor.wait_line("running", 10s);
    ASSERT_TRUE(running) << supervisor.transcript();
    expect_running_kept_alive(*running);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));
    pid_t target = target_pid(*running);
    ASSERT_EQ(kill(target, SIGKILL), 0) << strerror(errno);
    auto killed = Clock::now();
    std::optional<int> status = supervisor.wait_exit(10s);
    slowest_exit = std::max(slowest_exit, seconds_since(killed));
    ASSERT_TRUE(status) << "the supervisor still runs 10 s after its command "
                           "was killed\n"
                        << supervisor.transcript();
    bool lingers = group_lingers(supervisor.pid(), 2s);
    bool zombie = std::filesystem::exists("/proc/" + std::to_string(target));
    if (!supervisor.err().empty() && warned++ == 0) {
      first_warning = "command " + std::to_string(i + 1) + ":\n" +
                      supervisor.transcript();
    }
    if (*status != 128 + SIGKILL) ++wrong_status;
    if (lingers || zombie) ++lingered;
    if ((*status != 128 + SIGKILL || lingers || zombie) &&
        first_problem.empty()) {
      first_problem = "command " + std::to_string(i + 1) + ": status " +
                      std::to_string(*status) +
                      (lingers ? ", processes left in its group" : "") +
                      (zombie ? ", the target still in /proc" : "") + "\n" +
                      supervisor.transcript();
    }
  }
  double command_seconds = seconds_since(start);

  // 2. Children of a long-lived command, each killed likewise; the
  // supervisor's fds looked at after each death, ten times.
  Child nursery(supervised(
      {"--strategy", "emulate"},
      soak_target("nursery", {std::to_string(children),
                              std::to_string(threads)})));
  std::optional<std::string> first = nursery.wait_line("nursery pid", 10s);
  ASSERT_TRUE(first) << nursery.transcript();
  pid_t parent = target_pid(*first);
  std::vector<Sample> samples;
  int baseline = -1;
  start = Clock::now();
  for (int k = 1; k <= children; ++k) {
    std::optional<std::string> running = nursery.wait_line("running", 10s);
    ASSERT_TRUE(running) << "child " << k << "\n" << nursery.transcript();
    expect_running_kept_alive(*running);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));
    ASSERT_EQ(kill(target_pid(*running), SIGKILL), 0) << strerror(errno);
    std::optional<std::string> reaped = nursery.wait_line("reaped", 10s);
    ASSERT_TRUE(reaped) << "child " << k << "\n" << nursery.transcript();
    if (k == 1 || k % std::max(1, children / 10) == 0) {
      if (baseline < 0) baseline = settled_sample(nursery.pid(), -1).fds;
      samples.push_back(settled_sample(nursery.pid(), baseline));
    }
    ASSERT_EQ(kill(parent, SIGUSR1), 0) << strerror(errno);
  }
  std::optional<std::string> result = nursery.wait_line("result", 10s);
  std::optional<int> code = nursery.wait_exit(10s);
  double nursery_seconds = seconds_since(start);

  std::ostringstream figures;
  figures << "soak.supervisor_target_killed: form="
          << (*is_long ? "long" : "short") << " commands=" << commands
          << " in " << command_seconds << " s, slowest_exit_after_kill_ms="
          << static_cast<long>(slowest_exit * 1000)
          << " wrong_status=" << wrong_status << " lingered=" << lingered
          << " warned=" << warned << "; children=" << children << " in " << nursery_seconds
          << " s, supervisor " << describe(samples);
  std::cout << figures.str() << std::endl;

  EXPECT_EQ(wrong_status, 0) << first_problem;
  EXPECT_EQ(lingered, 0) << first_problem;
  // Its command killed, the supervisor has nothing to say.
  EXPECT_EQ(warned, 0) << first_warning;
  ASSERT_TRUE(result) << nursery.transcript();
  EXPECT_EQ(parse_pairs(*result)["killed"], children) << *result;
  EXPECT_EQ(code, 0) << nursery.transcript();
  EXPECT_EQ(nursery.err(), "") << "the supervisor warned";
  expect_flat(samples, "keepalive-supervise");
}

TEST_F(soak, agent_target_killed) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  Outcome check = run({KEEPALIVE_AGENT, "check"});
  if (check.exit_code() != 0) {
    GTEST_SKIP() << "keepalive-agent cannot work here:\n" << check.transcript();
  }
  std::mt19937 random(seed_for("agent_target_killed"));
  const int containers = static_cast<int>(scaled(*is_long, 40, 1000));
  std::uniform_int_distribution<int> delay_us(0, 20'000);
  const std::string sock = path("run/agent.sock");
  const std::string control = path("run/control.sock");
  Child agent({KEEPALIVE_AGENT, "--socket", sock, "--control", control});
  ASSERT_TRUE(agent.wait_for_output("listening on", 10s)) << agent.transcript();

  std::vector<Sample> samples;
  int wrong_status = 0;
  std::string first_problem;
  auto start = Clock::now();
  for (int i = 1; i <= containers; ++i) {
    // oci_runtime execs the target: the container's pid is the Child's.
    Child container({KEEPALIVE_OCI_RUNTIME, sock, "killed-" + std::to_string(i),
                     "--", KEEPALIVE_SOAK_TARGET, "spin", "3", "--forever",
                     "--listen"});
    std::optional<std::string> running = container.wait_line("running", 10s);
    ASSERT_TRUE(running) << "container " << i << "\n"
                         << container.transcript();
    expect_running_kept_alive(*running);
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(random)));
    ASSERT_EQ(kill(container.pid(), SIGKILL), 0) << strerror(errno);
    std::optional<int> status = container.wait_exit(10s);
    if (status != 128 + SIGKILL && wrong_status++ == 0) {
      first_problem = "container " + std::to_string(i) + ": " +
                      container.transcript();
    }
    if (i % std::max(1, containers / 10) == 0) {
      std::string busy = wait_until_idle(control);
      EXPECT_EQ(busy, "") << "after container " << i
                          << " the agent still serves a container";
      samples.push_back(sample_of(agent.pid()));
    }
  }
  double seconds = seconds_since(start);
  std::ostringstream figures;
  figures << "soak.agent_target_killed: form="
          << (*is_long ? "long" : "short") << " containers=" << containers
          << " seconds=" << seconds << " wrong_status=" << wrong_status
          << " agent " << describe(samples);
  std::cout << figures.str() << std::endl;

  EXPECT_EQ(wrong_status, 0) << first_problem;
  expect_flat(samples, "keepalive-agent");
  EXPECT_TRUE(agent.running()) << agent.transcript();
  agent.signal_group(SIGTERM);
  EXPECT_EQ(agent.wait_exit(10s), 0) << agent.transcript();
  // Only the start-up line: a container killed mid-call is no failure.
  EXPECT_EQ(count_of(agent.err(), "\n"), 1u) << agent.transcript();
}

}  // namespace
}  // namespace keepalive::tests
