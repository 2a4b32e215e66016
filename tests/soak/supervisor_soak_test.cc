// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise over a long run: a target of several processes and
// threads makes TCP sockets as fast as it can, each checked from inside
// (SO_KEEPALIVE read back from the kernel), while the test samples the
// supervisor's descriptors and memory at checkpoints where no call is in
// flight; and the same target while the supervisor, then the target, is
// stopped and continued at random.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/soak/soak_harness.h"
#include "tests/soak/soak_runs.h"
#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

TEST_F(soak, supervisor_calls) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  if (std::string why = why_no_emulation(); !why.empty()) GTEST_SKIP() << why;
  const long calls = scaled(*is_long, 100'000, 1'000'000);
  const int procs = 3, threads = 4;
  const auto checkpoint_bound = *is_long ? 60s : 10s;

  Child supervisor(soak_loop(procs, threads, {std::to_string(calls)}));
  std::optional<std::string> started = supervisor.wait_line("started", 10s);
  ASSERT_TRUE(started) << supervisor.transcript();
  pid_t target = target_pid(*started);
  std::vector<Sample> samples;
  for (int k = 1; k <= 10; ++k) {
    std::optional<std::string> line =
        supervisor.wait_line("checkpoint", checkpoint_bound);
    ASSERT_TRUE(line) << "no checkpoint " << k << "\n"
                      << supervisor.transcript();
    samples.push_back(settled_sample(supervisor.pid(),
                                     samples.empty() ? -1 : samples[0].fds));
    ASSERT_EQ(kill(target, SIGUSR1), 0) << strerror(errno);
  }
  std::optional<std::string> result = supervisor.wait_line("result", 30s);
  std::optional<int> code = supervisor.wait_exit(30s);
  ASSERT_TRUE(result) << supervisor.transcript();
  Options got = parse_pairs(*result);
  double seconds = figure(*result, "seconds");
  std::ostringstream figures;
  figures << "soak.supervisor_calls: form=" << (*is_long ? "long" : "short")
          << " procs=" << procs << " threads=" << threads
          << " calls=" << got["calls"] << " seconds=" << seconds
          << " calls_per_s=" << static_cast<long>(static_cast<double>(got["calls"]) / seconds)
          << " supervisor " << describe(samples);
  std::cout << figures.str() << std::endl;
  RecordProperty("figures", figures.str());

  EXPECT_EQ(code, 0) << supervisor.transcript();
  EXPECT_EQ(got["calls"], calls);
  expect_every_socket_kept_alive(got);
  expect_flat(samples, "keepalive-supervise");
}

// The target's processes: the first one and its children.
std::vector<pid_t> processes_of(pid_t target) {
  std::vector<pid_t> pids = {target};
  std::ifstream children("/proc/" + std::to_string(target) + "/task/" +
                         std::to_string(target) + "/children");
  for (pid_t child; children >> child;) pids.push_back(child);
  return pids;
}

// The target loops on socket() while `cycles` times, at random intervals
// of 50 us to 2 ms, every process of `victim` ("supervisor" or "target")
// is stopped and then continued. The supervisor's fds (and memory) are
// looked at before and after, with no call in flight.
void stop_storm(const std::string& victim, int cycles, std::mt19937& random) {
  SCOPED_TRACE("stopping the " + victim);
  Child supervisor(soak_loop(2, 2, {"--until-eof", "--warmup", "200"}));
  std::optional<std::string> started = supervisor.wait_line("started", 10s);
  ASSERT_TRUE(started) << supervisor.transcript();
  pid_t target = target_pid(*started);
  ASSERT_TRUE(supervisor.wait_line("checkpoint 1", 20s))
      << supervisor.transcript();
  std::vector<Sample> samples = {settled_sample(supervisor.pid(), -1)};
  std::vector<pid_t> victims = victim == "supervisor"
                                   ? std::vector<pid_t>{supervisor.pid()}
                                   : processes_of(target);
  ASSERT_EQ(kill(target, SIGUSR1), 0) << strerror(errno);

  std::uniform_int_distribution<int> pause_us(50, 2000);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < cycles; ++i) {
    for (pid_t pid : victims) kill(pid, SIGSTOP);
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us(random)));
    for (pid_t pid : victims) kill(pid, SIGCONT);
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us(random)));
  }
  double storm_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  supervisor.close_stdin();
  std::optional<std::string> line = supervisor.wait_line("checkpoint 2", 20s);
  ASSERT_TRUE(line) << supervisor.transcript();
  samples.push_back(settled_sample(supervisor.pid(), samples[0].fds));
  ASSERT_EQ(kill(target, SIGUSR1), 0) << strerror(errno);
  std::optional<std::string> result = supervisor.wait_line("result", 20s);
  std::optional<int> code = supervisor.wait_exit(20s);
  ASSERT_TRUE(result) << supervisor.transcript();
  Options got = parse_pairs(*result);
  std::ostringstream figures;
  figures << "soak.supervisor_stop_storm: " << victim << " stopped " << cycles
          << " times in " << storm_seconds << " s, calls=" << got["calls"]
          << " supervisor " << describe(samples);
  std::cout << figures.str() << std::endl;
  ::testing::Test::RecordProperty("figures_" + victim, figures.str());

  EXPECT_EQ(code, 0) << supervisor.transcript();
  EXPECT_GT(got["calls"], 2 * 2 * 200) << "no calls during the storm";
  expect_every_socket_kept_alive(got);
  expect_same_before_after(samples, "keepalive-supervise");
}

TEST_F(soak, supervisor_stop_storm) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  if (std::string why = why_no_emulation(); !why.empty()) GTEST_SKIP() << why;
  // KEEPALIVE_SOAK_SEED repeats the intervals of an earlier run.
  unsigned seed = seed_for("supervisor_stop_storm");
  SCOPED_TRACE("KEEPALIVE_SOAK_SEED=" + std::to_string(seed));
  std::mt19937 random(seed);
  const int cycles = static_cast<int>(scaled(*is_long, 200, 2000));
  stop_storm("supervisor", cycles, random);
  stop_storm("target", cycles, random);
}

}  // namespace
}  // namespace keepalive::tests
