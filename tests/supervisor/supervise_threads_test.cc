// SPDX-License-Identifier: Apache-2.0
// Targets that are more than one thread of one process: notifications
// from non-leader threads (also once the leader has exited), descendants
// made by fork, vfork and exec (the filter is inherited), and targets that
// exit or are killed while their calls are in flight, which the supervisor
// must survive and report with the right status.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>

#include "supervisor/syscalls.h"
#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

struct Case {
  std::string mode;
  std::string strategy;
  std::string role;  // "connect" or "listen": what the target's threads do
};

void PrintTo(const Case& c, std::ostream* out) {
  *out << "--mode " << c.mode << " --strategy " << c.strategy << " (" << c.role
       << ")";
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.mode + "_" + info.param.strategy + "_" + info.param.role;
}

std::vector<std::string> flags_of(const Case& c) {
  return {"--mode", c.mode, "--strategy", c.strategy};
}

const auto kThreadCases = ::testing::Values(
    Case{"socket", "emulate", "connect"}, Case{"socket", "continue", "connect"},
    Case{"connect", "continue", "connect"},
    Case{"connect", "emulate", "connect"}, Case{"socket", "emulate", "listen"},
    Case{"listen", "continue", "listen"}, Case{"listen", "emulate", "listen"});

constexpr int kThreads = 8;

bool pidfd_thread_supported() {
  UniqueFd fd(sys::pidfd_open(getpid(), PIDFD_THREAD));
  return fd.valid();
}

// ---- threads -------------------------------------------------------------

class ThreadedTarget : public ::testing::TestWithParam<Case> {
 protected:
  // Starts `raw_tcp threads`, collects one line per thread and checks
  // that each thread's socket carries the defaults (unless not
  // `reachable`). Returns the lines.
  std::vector<std::string> run_threads(Child& target, bool leader_exit,
                                       bool reachable = true) {
    std::optional<std::string> header = target.wait_line("threads pid", 10s);
    EXPECT_TRUE(header) << target.transcript();
    if (!header) return {};
    pid_t pid = word_as_int(*header, 2);
    pid_ = pid;
    std::vector<std::string> lines;
    std::set<int> tids;
    for (int i = 0; i < kThreads; ++i) {
      std::optional<std::string> line = target.wait_line("thread ", 10s);
      EXPECT_TRUE(line) << "thread " << i << " never reported\n"
                        << target.transcript();
      if (!line) return lines;
      lines.push_back(*line);
      int tid = word_as_int(*line, 1);
      tids.insert(tid);
      EXPECT_NE(tid, pid) << "the call came from the leader: " << *line;
      // What the thread read back itself with getsockopt.
      if (reachable) {
        EXPECT_TRUE(carries(parse_pairs(*line), Expectation{})) << *line;
      }
      EXPECT_EQ(word_as_int(*line, 4), leader_exit ? 1 : 0) << *line;
    }
    EXPECT_EQ(tids.size(), static_cast<size_t>(kThreads));
    return lines;
  }

  pid_t pid_ = -1;  // the target, from its first line
};

TEST_P(ThreadedTarget, EveryThreadsSocketCarriesOptions) {
  const Case& c = GetParam();
  Listener server(AF_INET, 2 * kThreads);
  std::vector<std::string> command = {raw_tcp_path(), "threads",
                                      std::to_string(kThreads), c.role};
  if (c.role == "connect") command.push_back(std::to_string(server.port()));
  Child target(supervised(flags_of(c), command));
  std::vector<std::string> lines = run_threads(target, false);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads));

  // The same, read from outside the process.
  for (const std::string& line : lines) {
    int port = word_as_int(line, 2);
    std::string detail;
    EXPECT_TRUE(carries(probe_options(pid_, port, 5s, &detail), Expectation{}))
        << line << "\n"
        << detail;
  }
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
}

// Once the thread group leader has exited, its pid has no fd table: the
// supervisor must reach the calling thread's (PIDFD_THREAD, Linux 6.9+).
// Before that, continue cannot: the calls still work, and the supervisor
// says why, once.
TEST_P(ThreadedTarget, OptionsStillArriveAfterTheLeaderExited) {
  const Case& c = GetParam();
  const bool reachable =
      c.strategy != "continue" || pidfd_thread_supported();
  Listener server(AF_INET, 2 * kThreads);
  std::vector<std::string> command = {raw_tcp_path(), "threads",
                                      std::to_string(kThreads), c.role};
  if (c.role == "connect") command.push_back(std::to_string(server.port()));
  command.push_back("--leader-exit");
  Child target(supervised(flags_of(c), command));
  std::vector<std::string> lines = run_threads(target, true, reachable);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads));
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
  if (!reachable) {
    const std::string said = "goes on after its main thread exited";
    size_t at = target.err().find(said);
    EXPECT_NE(at, std::string::npos) << target.transcript();
    EXPECT_EQ(target.err().find(said, at + 1), std::string::npos)
        << "said more than once\n" << target.transcript();
  }
}

// A thread with a file descriptor table of its own (unshare(CLONE_FILES)):
// the socket exists only there, not in the leader's table.
TEST_P(ThreadedTarget, OptionsReachThreadsWithTheirOwnFdTable) {
  const Case& c = GetParam();
  if (c.strategy == "continue" && !pidfd_thread_supported()) {
    GTEST_SKIP() << "continue reaches a thread's own fd table only with "
                    "PIDFD_THREAD (Linux 6.9+)";
  }
  Listener server(AF_INET, 2 * kThreads);
  std::vector<std::string> command = {raw_tcp_path(), "threads",
                                      std::to_string(kThreads), c.role};
  if (c.role == "connect") command.push_back(std::to_string(server.port()));
  command.push_back("--unshare-files");
  Child target(supervised(flags_of(c), command));
  std::vector<std::string> lines = run_threads(target, false);
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads));
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
}

INSTANTIATE_TEST_SUITE_P(Strategies, ThreadedTarget, kThreadCases, case_name);

// ---- descendants ---------------------------------------------------------

struct SpawnCase {
  Case supervision;
  std::string how;  // fork, vfork, fork-noexec, nested
};

void PrintTo(const SpawnCase& c, std::ostream* out) {
  PrintTo(c.supervision, out);
  *out << " via " << c.how;
}

class Descendants : public ::testing::TestWithParam<SpawnCase> {};

TEST_P(Descendants, DescendantsSocketCarriesOptions) {
  const SpawnCase& c = GetParam();
  Listener server;
  std::string port = std::to_string(server.port());
  std::vector<std::string> command = {raw_tcp_path(), "spawn"};
  if (c.how == "fork-noexec") {
    command.insert(command.end(), {"fork-noexec", "connect", port});
  } else if (c.how == "nested") {
    // fork + exec a second spawner, which vforks + execs the client.
    command.insert(command.end(), {"fork", raw_tcp_path(), "spawn", "vfork",
                                   raw_tcp_path(), "connect", port});
  } else {
    command.insert(command.end(), {c.how, raw_tcp_path(), "connect", port});
  }
  Child target(supervised(flags_of(c.supervision), command));
  std::optional<std::string> line = target.wait_line("connected", 10s);
  ASSERT_TRUE(line) << target.transcript();
  UniqueFd peer = server.accept(5s);
  pid_t client = word_as_int(*line, 3);
  std::optional<pid_t> direct = first_child_of(target.pid(), 5s);
  ASSERT_TRUE(direct);
  EXPECT_NE(client, *direct) << "the client is not a descendant";

  std::string detail;
  EXPECT_TRUE(
      carries(probe_options(client, server.port(), 5s, &detail), Expectation{}))
      << detail << "\n"
      << target.transcript();
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
}

std::vector<SpawnCase> spawn_cases() {
  std::vector<SpawnCase> cases;
  for (const Case& c : {Case{"socket", "emulate", "connect"},
                        Case{"connect", "continue", "connect"}}) {
    for (const char* how : {"fork", "vfork", "fork-noexec", "nested"}) {
      cases.push_back({c, how});
    }
  }
  return cases;
}

std::string spawn_case_name(const ::testing::TestParamInfo<SpawnCase>& p) {
  std::string how = p.param.how;
  for (char& ch : how) {
    if (ch == '-') ch = '_';
  }
  return p.param.supervision.mode + "_" + p.param.supervision.strategy + "_" +
         how;
}

INSTANTIATE_TEST_SUITE_P(Spawns, Descendants,
                         ::testing::ValuesIn(spawn_cases()), spawn_case_name);

// ---- the target dies mid-call --------------------------------------------

class DyingTarget : public ::testing::TestWithParam<Case> {
 protected:
  // `raw_tcp storm` with 4 threads making the mode's calls in a loop.
  std::vector<std::string> storm_command(const std::vector<std::string>& tail) {
    std::vector<std::string> command = {raw_tcp_path(), "storm", "4"};
    if (GetParam().role == "connect") {
      command.insert(command.end(),
                     {"--connect", std::to_string(refused_port_)});
    } else if (GetParam().role == "listen") {
      command.push_back("--listen");
    }
    command.insert(command.end(), tail.begin(), tail.end());
    return command;
  }

  void SetUp() override {
    // Bound but not listening: connects to it are refused at once, and no
    // one else can take the port while the test runs.
    reserved_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(
        bind(reserved_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr),
        0);
    refused_port_ = local_port_of(reserved_.get());
  }

  UniqueFd reserved_;
  int refused_port_ = 0;
};

TEST_P(DyingTarget, ExitWhileCallsInFlightPassesStatusOn) {
  for (int round = 0; round < 5; ++round) {
    Child target(supervised(flags_of(GetParam()),
                            storm_command({"--exit-after", "300", "7"})));
    ASSERT_TRUE(target.wait_line("storming", 10s)) << target.transcript();
    EXPECT_EQ(target.wait_exit(20s), 7) << "round " << round << "\n"
                                        << target.transcript();
  }
}

TEST_P(DyingTarget, SigkillWhileCallsInFlightGives137) {
  for (int round = 0; round < 5; ++round) {
    Child target(supervised(flags_of(GetParam()), storm_command({})));
    std::optional<std::string> line = target.wait_line("storming", 10s);
    ASSERT_TRUE(line) << target.transcript();
    std::this_thread::sleep_for(200ms);
    ASSERT_EQ(kill(word_as_int(*line, 2), SIGKILL), 0);
    EXPECT_EQ(target.wait_exit(20s), 128 + SIGKILL) << "round " << round << "\n"
                                                    << target.transcript();
  }
}

// exec from one thread kills the others mid-call (their notifications are
// withdrawn); the new program's sockets must still get options.
TEST_P(DyingTarget, ExecWhileOtherThreadsAreInCalls) {
  for (int round = 0; round < 3; ++round) {
    Listener server;
    Child target(supervised(
        flags_of(GetParam()),
        storm_command({"--exec-after", "300", std::to_string(server.port())})));
    std::optional<std::string> line = target.wait_line("connected", 10s);
    ASSERT_TRUE(line) << "round " << round << "\n" << target.transcript();
    UniqueFd peer = server.accept(5s);
    // A client gets no options in listen mode: there only the survival of
    // target and supervisor is checked.
    if (GetParam().mode != "listen") {
      std::string detail;
      EXPECT_TRUE(carries(
          probe_options(word_as_int(*line, 3), server.port(), 5s, &detail),
          Expectation{}))
          << "round " << round << " " << detail << "\n"
          << target.transcript();
    }
    target.close_stdin();
    EXPECT_EQ(target.wait_exit(20s), 0) << "round " << round << "\n"
                                        << target.transcript();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Strategies, DyingTarget,
    ::testing::Values(Case{"socket", "emulate", "socket"},
                      Case{"connect", "continue", "connect"},
                      Case{"listen", "continue", "listen"},
                      Case{"socket", "continue", "connect"}),
    case_name);

}  // namespace
}  // namespace keepalive::tests
