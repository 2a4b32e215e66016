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
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <thread>

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

// keepalive-agent at hard and soft RLIMIT_NOFILE `n`, its sockets in
// `dir`: listening (true), or refused with one line and 1 (false; 127 and
// the loader's line at 3).
bool start_limited_agent(int n, const std::string& dir,
                         std::unique_ptr<Child>& agent) {
  const std::string sock = dir + "/agent.sock";
  agent = std::make_unique<Child>(
      limited(n, n, {KEEPALIVE_AGENT, "--socket", sock, "--control",
                     dir + "/control.sock"}));
  // Not "listening on PATH: open: Too many open files".
  if (agent->wait_for_output("listening on " + sock + "\n", 3s) &&
      agent->running()) {
    return true;
  }
  std::optional<int> status = agent->wait_exit(3s);
  EXPECT_TRUE(status) << "neither listening nor gone\n" << agent->transcript();
  std::string said = without_sanitizer_noise(agent->err());
  EXPECT_TRUE(one_line(said)) << agent->transcript();
  if (status && (*status != 127 || n != 3)) {
    EXPECT_EQ(*status, 1) << agent->transcript();
    EXPECT_TRUE(said.starts_with("keepalive-agent: RLIMIT_NOFILE: "))
        << agent->transcript();
  }
  return false;
}

// The CPU time `pid` has used so far (user and system), in seconds.
double cpu_seconds(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)),
                   std::istreambuf_iterator<char>());
  // The fields after the command's ")": state is the 3rd, utime the 14th.
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Whether `agent` said that it ran out of descriptors (a container went
// without its options, or failed its trapped call, because of it).
bool said_out_of_descriptors(Child& agent) {
  return agent.wait_for_output("Too many open files", 200ms) ||
         agent.err().find("RLIMIT_NOFILE") != std::string::npos;
}

TEST_F(soak, agent_fd_limit) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  if (access(kPrlimit, X_OK) != 0) GTEST_SKIP() << kPrlimit << " is missing";
  Outcome check = run({KEEPALIVE_AGENT, "check"});
  if (check.exit_code() != 0) {
    GTEST_SKIP() << "keepalive-agent cannot work here:\n" << check.transcript();
  }
  // The agent needs 32 descriptors beside the 3 it inherits here
  // (kAgentDescriptors): the limits around that, and far below.
  std::vector<int> limits =
      *is_long ? std::vector<int>{}
               : std::vector<int>{3, 8, 16, 24, 32, 34, 35, 36, 37, 40, 64};
  for (int n = 3; *is_long && n <= 64; ++n) limits.push_back(n);
  // The first container makes the agent open what it keeps for good (its
  // fds are counted from the second on).
  const int containers = static_cast<int>(scaled(*is_long, 2, 4));
  const milliseconds container_bound = 5s;

  // 1. Containers one after the other, at each limit.
  std::vector<int> refused, served, hung, unexplained;
  std::string first_hang, first_unexplained;
  // Each limit once in the figures, however many containers it had.
  auto note = [](std::vector<int>& list, int n) {
    if (list.empty() || list.back() != n) list.push_back(n);
  };
  // A container that neither got its options nor failed with the agent
  // saying why.
  auto judge = [&](int n, const std::string& what, const Outcome& c,
                   Child& agent) {
    if (c.timed_out) {
      note(hung, n);
      if (first_hang.empty()) {
        first_hang = what + "still in listen() after " +
                     std::to_string(container_bound.count()) + " ms\n";
      }
      return;
    }
    // Without its options (keepalive=0) or failed (listen errno=38): the
    // agent must have said why, naming the descriptor limit.
    if (!said_out_of_descriptors(agent)) {
      note(unexplained, n);
      if (first_unexplained.empty()) {
        first_unexplained = what + c.transcript() +
                            "and the agent said nothing about it:\n" +
                            agent.transcript();
      }
    }
  };
  auto start = std::chrono::steady_clock::now();
  for (int n : limits) {
    SCOPED_TRACE("nofile " + std::to_string(n));
    std::string dir = path("n" + std::to_string(n));
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    std::unique_ptr<Child> agent;
    if (!start_limited_agent(n, dir, agent)) {
      refused.push_back(n);
      continue;
    }
    // An agent started serves its first container.
    bool first_served = false;
    Sample before;
    for (int i = 1; i <= containers; ++i) {
      if (i == 2) {
        wait_until_idle(dir + "/control.sock", 5s);
        before = sample_of(agent->pid());
      }
      Outcome c = run({KEEPALIVE_OCI_RUNTIME, dir + "/agent.sock",
                       "n" + std::to_string(n) + "-" + std::to_string(i), "--",
                       KEEPALIVE_SOAK_TARGET, "listen"},
                      {}, container_bound);
      if (c.exit_code() == 0 && c.out == "keepalive=1\n") {
        note(served, n);
        first_served = first_served || i == 1;
        continue;
      }
      judge(n, "nofile " + std::to_string(n) + ", container " +
                   std::to_string(i) + ": ",
            c, *agent);
    }
    EXPECT_TRUE(first_served) << agent->transcript();
    // The agent's own descriptors come back (5 s at most for the last
    // container's exit to reach it; an agent that cannot accept never
    // answers).
    wait_until_idle(dir + "/control.sock", 5s);
    Sample after = sample_of(agent->pid());
    EXPECT_EQ(after.fds, before.fds) << "the agent's fds before and after";
    EXPECT_TRUE(agent->running()) << agent->transcript();
    agent->signal_group(SIGTERM);
    EXPECT_EQ(agent->wait_exit(5s), 0) << agent->transcript();
  }

  // 2. A crowd at the lowest limit served: containers that stay, each
  // costing the agent a few descriptors, until it has none. Each gets its
  // options, or goes without them or fails (its listen() with ENOSYS, or
  // its runtime's hand-over) with the agent saying why;
  // none waits. Once they are gone, the agent serves again with the
  // descriptors it had.
  ASSERT_FALSE(served.empty()) << "the agent served at no limit";
  const int n = served.front();
  SCOPED_TRACE("crowd at nofile " + std::to_string(n));
  const std::string dir = path("crowd");
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  std::unique_ptr<Child> agent;
  ASSERT_TRUE(start_limited_agent(n, dir, agent));
  auto one_container = [&](const std::string& id) {
    return run({KEEPALIVE_OCI_RUNTIME, dir + "/agent.sock", id, "--",
                KEEPALIVE_SOAK_TARGET, "listen"},
               {}, container_bound);
  };
  Outcome warm = one_container("crowd-first");
  EXPECT_EQ(warm.out, "keepalive=1\n") << warm.transcript();
  wait_until_idle(dir + "/control.sock", 5s);
  Sample before = sample_of(agent->pid());
  const int crowd_size = static_cast<int>(scaled(*is_long, 16, 40));
  std::vector<std::unique_ptr<Child>> crowd;
  int crowd_served = 0, crowd_failed = 0;
  for (int i = 1; i <= crowd_size; ++i) {
    std::string what = "crowd container " + std::to_string(i) + ": ";
    crowd.push_back(std::make_unique<Child>(std::vector<std::string>{
        KEEPALIVE_OCI_RUNTIME, dir + "/agent.sock",
        "crowd-" + std::to_string(i), "--", KEEPALIVE_SOAK_TARGET, "listen",
        "--hold"}));
    Child& c = *crowd.back();
    std::optional<std::string> line = c.wait_line("", container_bound);
    if (line == "keepalive=1") {
      ++crowd_served;
      continue;
    }
    // No line: the output ended (the runtime failed) or never came.
    if (!line && !c.wait_exit(container_bound)) {
      note(hung, n);
      if (first_hang.empty()) {
        first_hang = what + "still in listen() after " +
                     std::to_string(container_bound.count()) + " ms\n";
      }
      continue;
    }
    // Without its options (keepalive=0), its listen() failed (errno=38),
    // or the runtime's message cut short (the runtime fails: SIGPIPE).
    ++crowd_failed;
    if (!said_out_of_descriptors(*agent)) {
      note(unexplained, n);
      if (first_unexplained.empty()) {
        first_unexplained = what + c.transcript() +
                            "and the agent said nothing about it:\n" +
                            agent->transcript();
      }
    }
  }
  // Its table full, the agent waits for a descriptor without spinning on
  // accept (which fails at once then, connection or not): a status query
  // more is closed unanswered, and says so in one line.
  Outcome status = run({KEEPALIVE_AGENT, "status", "--control",
                        dir + "/control.sock"},
                       {}, 5s);
  if (status.exit_code() != 0) {
    EXPECT_EQ(status.exit_code(), 1) << status.transcript();
    EXPECT_TRUE(one_line(status.err)) << status.transcript();
  }
  double cpu_before = cpu_seconds(agent->pid());
  std::this_thread::sleep_for(1s);
  double cpu_busy = cpu_seconds(agent->pid()) - cpu_before;
  EXPECT_LT(cpu_busy, 0.2) << "the agent used " << cpu_busy
                           << " s of CPU in 1 s, out of descriptors";
  for (auto& c : crowd) c->close_stdin();
  for (auto& c : crowd) EXPECT_TRUE(c->wait_exit(5s)) << c->transcript();
  EXPECT_EQ(wait_until_idle(dir + "/control.sock", 2s), "")
      << "the agent still serves the crowd after it exited";
  Sample after = settled_sample(agent->pid(), before.fds);
  EXPECT_EQ(after.fds, before.fds) << "the agent's fds before and after";
  Outcome again = one_container("crowd-after");
  EXPECT_EQ(again.out, "keepalive=1\n")
      << "the agent serves no more after running out of descriptors\n"
      << again.transcript() << agent->transcript();
  EXPECT_TRUE(agent->running()) << agent->transcript();
  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(5s), 0) << agent->transcript();

  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  std::ostringstream figures;
  figures << "soak.agent_fd_limit: form=" << (*is_long ? "long" : "short")
          << " limits=" << limits.size() << " containers_each=" << containers
          << " seconds=" << seconds << " refused_at=" << join(refused)
          << " served_at=" << join(served) << " hung_at=" << join(hung)
          << " unexplained_at=" << join(unexplained) << "; crowd at nofile "
          << n << ": " << crowd_served << " served, " << crowd_failed
          << " failed of " << crowd_size << ", agent fds " << before.fds
          << " before and " << after.fds << " after, agent CPU "
          << cpu_busy << " s in 1 s while out of descriptors, status exit "
          << status.exit_code();
  std::cout << figures.str() << std::endl;
  EXPECT_TRUE(hung.empty()) << "containers hung in a trapped call: "
                            << first_hang;
  EXPECT_TRUE(unexplained.empty())
      << "containers ran without options and nothing said why: "
      << first_unexplained;
  EXPECT_GT(crowd_failed, 0) << "the crowd never used up the agent's "
                                "descriptors: the shedding went untested";
}

}  // namespace
}  // namespace keepalive::tests
