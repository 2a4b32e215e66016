// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise in a cgroup of its own with its target: frozen and
// thawed at random (as `docker pause` does, with cgroup v2's cgroup.freeze
// and with the v1 freezer), and held under a small memory limit. Either
// way the target's sockets must all be made, with their options (read
// back by the target), the supervisor's fds must stay flat, and nothing
// must be killed or crash.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "tests/soak/cgroup_box.h"
#include "tests/soak/soak_harness.h"
#include "tests/soak/soak_runs.h"

namespace keepalive::tests {
namespace {

// What the fds of `pid` name, one "N -> TARGET" a line.
std::string fd_targets(pid_t pid) {
  std::string text;
  std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  std::error_code error;
  for (std::filesystem::directory_iterator it(dir, error), end;
       !error && it != end; it.increment(error)) {
    std::error_code ignored;
    text += it->path().filename().string() + " -> " +
            std::filesystem::read_symlink(it->path(), ignored).string() + "\n";
  }
  return text;
}

// Thaws `box` when the scope ends, before the supervisor (declared
// earlier) is killed: a task frozen by the v1 freezer cannot die.
struct ThawAtExit {
  CgroupBox& box;
  ~ThawAtExit() { box.thaw(); }
};

// The target loops on socket() in `box` with its supervisor while the box
// is frozen and thawed `cycles` times, each state held for 50 us to 2 ms
// at random. The supervisor's fds and memory are looked at before and
// after, with no call in flight.
void freeze_storm(CgroupBox& box, int cycles, std::mt19937& random) {
  SCOPED_TRACE(box.describe());
  Child supervisor(
      box.enter(soak_loop(2, 2, {"--until-eof", "--warmup", "200"})));
  ThawAtExit thaw_at_exit{box};
  std::optional<std::string> started = supervisor.wait_line("started", 10s);
  ASSERT_TRUE(started) << supervisor.transcript();
  pid_t target = target_pid(*started);
  ASSERT_TRUE(supervisor.wait_line("checkpoint 1", 20s))
      << supervisor.transcript();
  std::vector<pid_t> inside = box.processes();
  EXPECT_EQ(inside.size(), 4u)
      << "the supervisor, the target and its 2 workers should be in the box";
  std::vector<Sample> samples = {settled_sample(supervisor.pid(), -1)};
  std::string fds_before = fd_targets(supervisor.pid());
  ASSERT_EQ(kill(target, SIGUSR1), 0) << strerror(errno);

  std::uniform_int_distribution<int> pause_us(50, 2000);
  int frozen = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < cycles; ++i) {
    ASSERT_TRUE(box.freeze());
    // Frozen at last, or not within the pause (a task in a killable wait
    // for its frozen supervisor's answer cannot freeze until the thaw).
    if (box.wait_frozen(std::chrono::microseconds(pause_us(random)))) {
      ++frozen;
    }
    ASSERT_TRUE(box.thaw());
    std::this_thread::sleep_for(std::chrono::microseconds(pause_us(random)));
  }
  double storm_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  supervisor.close_stdin();
  std::optional<std::string> line = supervisor.wait_line("checkpoint 2", 20s);
  ASSERT_TRUE(line) << supervisor.transcript();
  samples.push_back(settled_sample(supervisor.pid(), samples[0].fds));
  std::string fds_after = fd_targets(supervisor.pid());
  ASSERT_EQ(kill(target, SIGUSR1), 0) << strerror(errno);
  std::optional<std::string> result = supervisor.wait_line("result", 20s);
  std::optional<int> code = supervisor.wait_exit(20s);
  ASSERT_TRUE(result) << supervisor.transcript();
  Options got = parse_pairs(*result);
  std::ostringstream figures;
  figures << "soak.supervisor_freeze_storm: "
          << (box.describe().starts_with("cgroup v2") ? "v2" : "v1")
          << " frozen and thawed " << cycles << " times (" << frozen
          << " seen frozen) in " << storm_seconds
          << " s, calls=" << got["calls"] << " supervisor "
          << describe(samples);
  std::cout << figures.str() << std::endl;

  EXPECT_EQ(code, 0) << supervisor.transcript();
  EXPECT_EQ(supervisor.err(), "") << "the supervisor warned";
  EXPECT_GT(got["calls"], 2 * 2 * 200) << "no calls during the storm";
  EXPECT_GT(frozen, 0) << "the box was never seen frozen";
  expect_every_socket_kept_alive(got);
  expect_same_before_after(
      samples, "keepalive-supervise",
      "\nbefore:\n" + fds_before + "after:\n" + fds_after);
}

TEST_F(soak, supervisor_freeze_storm) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  if (std::string why = why_no_emulation(); !why.empty()) GTEST_SKIP() << why;
  std::mt19937 random(seed_for("supervisor_freeze_storm"));
  const int cycles = static_cast<int>(scaled(*is_long, 100, 3000));
  std::string skipped;
  int ran = 0;
  for (CgroupBox::Kind kind :
       {CgroupBox::Kind::kFreezerV2, CgroupBox::Kind::kFreezerV1}) {
    std::string why;
    std::unique_ptr<CgroupBox> box = CgroupBox::make(kind, &why);
    if (!box) {
      std::cout << "soak.supervisor_freeze_storm: skipped: " << why
                << std::endl;
      skipped += why + "\n";
      continue;
    }
    ++ran;
    freeze_storm(*box, cycles, random);
  }
  if (ran == 0) GTEST_SKIP() << "no freezer usable here:\n" << skipped;
}

// What a supervised run in a memory box came to.
struct BoxedRun {
  std::optional<int> status;  // the supervisor's, as a shell shows it
  std::string transcript;
  Options result;             // the target's result line
  std::vector<Sample> samples;  // the supervisor at each checkpoint
  long long peak = -1;        // the box's peak memory use, bytes
  long long oom_kills = -1;
  double seconds = 0;
};

// Runs `supervise -- soak_target loop 2 2 CALLS --checkpoints 5` in a new
// memory box with `limit` bytes (none if 0).
BoxedRun run_in_memory_box(long long limit, long calls, std::string* why) {
  BoxedRun run;
  auto start = std::chrono::steady_clock::now();
  std::unique_ptr<CgroupBox> box =
      CgroupBox::make(CgroupBox::Kind::kMemory, why);
  if (!box) return run;
  if (limit > 0 && !box->limit_memory(limit, why)) return run;
  Child supervisor(box->enter(
      soak_loop(2, 2, {std::to_string(calls), "--checkpoints", "5"})));
  std::optional<std::string> started = supervisor.wait_line("started", 10s);
  if (started) {
    pid_t target = target_pid(*started);
    for (int k = 1; k <= 5; ++k) {
      if (!supervisor.wait_line("checkpoint", 20s)) break;
      run.samples.push_back(sample_of(supervisor.pid()));
      kill(target, SIGUSR1);
    }
    if (std::optional<std::string> line = supervisor.wait_line("result", 20s)) {
      run.result = parse_pairs(*line);
    }
  }
  run.status = supervisor.wait_exit(20s);
  run.transcript = supervisor.transcript();
  run.peak = box->peak_memory();
  run.oom_kills = box->oom_kills();
  run.seconds = std::chrono::duration<double>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  return run;
}

TEST_F(soak, supervisor_memory_cgroup) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  if (std::string why = why_no_emulation(); !why.empty()) GTEST_SKIP() << why;
  const long calls = scaled(*is_long, 10'000, 200'000);
  const int runs = static_cast<int>(scaled(*is_long, 1, 10));
  constexpr long long kMiB = 1 << 20;
  constexpr long long kHeadroom = 4 * kMiB;

  // What the supervisor and the target use together, measured here.
  std::string why;
  BoxedRun free_run = run_in_memory_box(0, calls, &why);
  if (!why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(free_run.status, 0) << free_run.transcript;
  ASSERT_GT(free_run.peak, 0) << "the box's peak use is unreadable";

  // Twice the peak: a burst of closed sockets charges kernel memory that is
  // freed only after an RCU grace period or a deferred fput, and under CPU
  // contention that transient alone has varied fivefold between runs.
  const long long limit = 2 * free_run.peak + kHeadroom;
  std::vector<long long> peaks;
  long long oom_kills = 0;
  for (int i = 0; i < runs; ++i) {
    SCOPED_TRACE("limited run " + std::to_string(i + 1));
    BoxedRun limited = run_in_memory_box(limit, calls, &why);
    ASSERT_EQ(why, "");
    peaks.push_back(limited.peak);
    oom_kills += std::max(limited.oom_kills, 0LL);
    EXPECT_EQ(limited.status, 0) << limited.transcript;
    EXPECT_EQ(limited.oom_kills, 0) << "the OOM killer killed in the box";
    ASSERT_EQ(limited.samples.size(), 5u) << limited.transcript;
    ASSERT_FALSE(limited.result.empty()) << limited.transcript;
    EXPECT_EQ(limited.result["calls"], calls);
    expect_every_socket_kept_alive(limited.result);
    // The first checkpoint comes while the supervisor still starts up:
    // the fds count from the second.
    expect_flat({limited.samples.begin() + 1, limited.samples.end()},
                "keepalive-supervise");
  }

  // Far too little memory: the OOM killer may end the run, or the
  // supervisor may refuse to start; it must not crash or hang.
  const long long tight = free_run.peak / 4;
  BoxedRun starved = run_in_memory_box(tight, calls, &why);
  ASSERT_EQ(why, "");
  ASSERT_TRUE(starved.status) << "still running at the deadline under "
                              << tight << " bytes\n"
                              << starved.transcript;

  std::ostringstream figures;
  figures << "soak.supervisor_memory_cgroup: form="
          << (*is_long ? "long" : "short") << " calls=" << calls
          << " peak_unlimited_kib=" << free_run.peak / 1024
          << " limit_kib=" << limit / 1024 << " runs=" << runs
          << " peaks_kib=[";
  for (size_t i = 0; i < peaks.size(); ++i) {
    figures << (i ? "," : "") << peaks[i] / 1024;
  }
  figures << "] oom_kills=" << oom_kills << " starved_limit_kib="
          << tight / 1024 << " starved_status=" << *starved.status
          << " starved_oom_kills=" << starved.oom_kills
          << " starved_seconds=" << starved.seconds;
  std::cout << figures.str() << std::endl;

  EXPECT_NE(*starved.status, 128 + SIGSEGV) << starved.transcript;
  EXPECT_NE(*starved.status, 128 + SIGABRT) << starved.transcript;
  if (*starved.status == 0) {
    expect_every_socket_kept_alive(starved.result);
  } else if (*starved.status == 128 + SIGKILL) {
    EXPECT_GT(starved.oom_kills, 0) << "SIGKILL, but not from the OOM killer";
  } else {
    // The supervisor's own refusal: 125 and one line.
    EXPECT_EQ(*starved.status, 125) << starved.transcript;
  }
}

}  // namespace
}  // namespace keepalive::tests
