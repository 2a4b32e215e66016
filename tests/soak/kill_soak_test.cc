// SPDX-License-Identifier: Apache-2.0
// Targets killed with SIGKILL at random points while their threads make
// trapped calls: containers served by keepalive-agent (the agent's fds
// must stay flat). The same for keepalive-supervise's command waits for
// a fix: a command killed mid-call sometimes makes the supervisor warn
// wrongly that the caller is in other cgroups (it reads the cgroup of a
// dying task).
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

// "running pid PID calls=N errors=E no_keepalive=M": every call made so
// far by the target made a TCP socket with SO_KEEPALIVE.
void expect_running_kept_alive(const std::string& running) {
  Options got = parse_pairs(running);
  EXPECT_GT(got["calls"], 0) << running;
  EXPECT_EQ(got["errors"], 0) << running;
  EXPECT_EQ(got["no_keepalive"], 0) << running;
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
