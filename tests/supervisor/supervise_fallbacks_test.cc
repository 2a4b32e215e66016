// SPDX-License-Identifier: Apache-2.0
// The supervisor's fallbacks for older kernels, run on this one: the
// supervisor is started with fake_old_kernel.so preloaded, which refuses
// (with EINVAL, as an older kernel does) the newer features it has
// fallbacks for:
//  - no PIDFD_THREAD (before 6.9): a notification from a non-leader thread
//    reaches the fd table through the thread group leader (Tgid from
//    /proc); once the leader has exited there is none, and a continue-mode
//    call goes through without options;
//  - no WAIT_KILLABLE_RECV (before 5.19): signals interrupt notifications
//    the supervisor has already received, so ADDFD and SEND answer ENOENT
//    and the restarted call arrives again (an fd added before a failed
//    SEND stays in the target: a few, then emulation stops), and auto
//    prefers continue;
//  - no ADDFD_FLAG_SEND (before 5.14): nothing changes for emulation,
//    which never uses it (the fd is added, then the call answered).
// `keepalive-supervise --check` must report the faked kernel truthfully,
// which also shows that the fake took effect.
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>

#include "supervisor/syscalls.h"
#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

struct FakeKernel {
  std::string name;  // which kernel it imitates
  bool pidfd_thread;
  bool wait_killable_recv;
  bool addfd_send;

  // The environment that makes the supervisor see this kernel.
  std::vector<std::string> env() const {
    std::vector<std::string> vars = {"LD_PRELOAD=" + fake_old_kernel_path(),
                                     // A sanitized supervisor must accept a
                                     // library loaded before its runtime.
                                     "ASAN_OPTIONS=verify_asan_link_order=0"};
    if (!pidfd_thread) vars.push_back("FAKE_NO_PIDFD_THREAD=1");
    if (!wait_killable_recv) vars.push_back("FAKE_NO_WAIT_KILLABLE_RECV=1");
    if (!addfd_send) vars.push_back("FAKE_NO_ADDFD_SEND=1");
    return vars;
  }
};

void PrintTo(const FakeKernel& k, std::ostream* out) {
  *out << "like " << k.name << " (PIDFD_THREAD " << k.pidfd_thread
       << ", WAIT_KILLABLE_RECV " << k.wait_killable_recv
       << ", ADDFD_FLAG_SEND " << k.addfd_send << ")";
}

const auto kKernels =
    ::testing::Values(FakeKernel{"linux_6_8", false, true, true},
                      FakeKernel{"linux_5_18", false, false, true},
                      FakeKernel{"linux_5_13", false, false, false});

std::string kernel_name(const ::testing::TestParamInfo<FakeKernel>& info) {
  return info.param.name;
}

// The value --check prints after `label`, up to the end of the line.
std::string check_line(const std::string& report, const std::string& label) {
  size_t at = report.find(label);
  if (at == std::string::npos) return "(missing)";
  at += label.size();
  return report.substr(at, report.find('\n', at) - at);
}

class OlderKernel : public ::testing::TestWithParam<FakeKernel> {};

TEST_P(OlderKernel, CheckReportsTheMissingFeatures) {
  const FakeKernel& k = GetParam();
  Outcome check = run({supervise_path(), "--check"}, k.env(), 30s);
  ASSERT_EQ(check.shell_status(), 0) << check.out << check.err;
  EXPECT_EQ(check_line(check.out, "PIDFD_THREAD (Linux 6.9+): "),
            k.pidfd_thread ? "yes" : "no");
  EXPECT_EQ(check_line(check.out, "WAIT_KILLABLE_RECV (Linux 5.19+): "),
            k.wait_killable_recv ? "yes" : "no");
  EXPECT_EQ(check_line(check.out, "ADDFD (emulation, Linux 5.9+): "), "yes");
  EXPECT_EQ(check_line(check.out, "ADDFD_FLAG_SEND (Linux 5.14+): ")
                .substr(0, k.addfd_send ? 4 : 3),
            k.addfd_send ? "yes " : "no ");
  EXPECT_EQ(check_line(check.out, "emulated socket carried the options: "),
            "yes");
  std::string leak = check_line(check.out, "emulation leaves no fd behind: ");
  if (k.wait_killable_recv) {
    EXPECT_EQ(leak, "yes");
  } else {
    EXPECT_EQ(leak.substr(0, 3), "no ") << leak;
    EXPECT_NE(leak.find("WAIT_KILLABLE_RECV"), std::string::npos) << leak;
  }
}

// Where emulation can leak (no WAIT_KILLABLE_RECV), auto prefers continue
// in socket mode too, and says why; --check gives the same reason. Options
// reach the socket either way.
TEST_P(OlderKernel, AutoPrefersContinueWhereEmulationCanLeak) {
  const FakeKernel& k = GetParam();
  const std::string want = k.wait_killable_recv ? "emulate" : "continue";
  Outcome check = run({supervise_path(), "--check"}, k.env(), 30s);
  std::string socket_mode = check_line(check.out, "mode socket: ");
  EXPECT_EQ(socket_mode.substr(0, want.size() + 2), want + " (")
      << check.out;
  if (!k.wait_killable_recv) {
    EXPECT_NE(socket_mode.find("WAIT_KILLABLE_RECV"), std::string::npos)
        << socket_mode;
  }

  Listener server;
  Child client(supervised({"-v"}, {raw_tcp_path(), "connect",
                                   std::to_string(server.port())}),
               k.env());
  std::optional<std::string> line = client.wait_line("connected", 10s);
  ASSERT_TRUE(line) << client.transcript();
  UniqueFd peer = server.accept(5s);
  EXPECT_TRUE(carries(probe_options(word_as_int(*line, 3), server.port()),
                      Expectation{}))
      << client.transcript();
  client.close_stdin();
  EXPECT_EQ(client.wait_exit(10s), 0) << client.transcript();
  EXPECT_NE(client.err().find("mode socket, strategy " + want + " ("),
            std::string::npos)
      << client.err();
}

TEST_P(OlderKernel, ClientAndServerCarryOptions) {
  const FakeKernel& k = GetParam();
  for (const auto& [mode, strategy] :
       std::vector<std::pair<std::string, std::string>>{
           {"socket", "emulate"},
           {"connect", "continue"},
           {"listen", "continue"}}) {
    SCOPED_TRACE(mode + " " + strategy);
    std::vector<std::string> flags = {"--mode", mode, "--strategy", strategy};
    if (mode != "listen") {
      Listener server;
      Child client(supervised(flags, {raw_tcp_path(), "connect",
                                      std::to_string(server.port())}),
                   k.env());
      std::optional<std::string> line = client.wait_line("connected", 10s);
      ASSERT_TRUE(line) << client.transcript();
      UniqueFd peer = server.accept(5s);
      EXPECT_TRUE(carries(probe_options(word_as_int(*line, 3), server.port()),
                          Expectation{}))
          << client.transcript();
    }
    if (mode != "connect") {
      Child listener(supervised(flags, {raw_tcp_path(), "serve"}), k.env());
      std::optional<std::string> line = listener.wait_line("listening", 10s);
      ASSERT_TRUE(line) << listener.transcript();
      UniqueFd client = connect_to(word_as_int(*line, 1), 5s);
      ASSERT_TRUE(listener.wait_line("accepted", 10s)) << listener.transcript();
      EXPECT_TRUE(carries(
          probe_options(word_as_int(*line, 3), local_port_of(client.get())),
          Expectation{}))
          << listener.transcript();
    }
  }
}

// Threads: without PIDFD_THREAD the supervisor finds the fd table through
// the thread group leader.
TEST_P(OlderKernel, EveryThreadsSocketCarriesOptions) {
  const FakeKernel& k = GetParam();
  for (const char* strategy : {"emulate", "continue"}) {
    SCOPED_TRACE(strategy);
    Listener server(AF_INET, 32);
    Child target(supervised({"--mode", "connect", "--strategy", strategy},
                            {raw_tcp_path(), "threads", "8", "connect",
                             std::to_string(server.port())}),
                 k.env());
    std::set<int> tids;
    for (int i = 0; i < 8; ++i) {
      std::optional<std::string> line = target.wait_line("thread ", 10s);
      ASSERT_TRUE(line) << target.transcript();
      tids.insert(word_as_int(*line, 1));
      EXPECT_TRUE(carries(parse_pairs(*line), Expectation{})) << *line;
    }
    EXPECT_EQ(tids.size(), 8u);
    target.close_stdin();
    EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
  }
}

// Once the leader has exited, a kernel without PIDFD_THREAD offers no way
// to the threads' fd table: a continue-mode call then goes through without
// options (documented in supervisor/target.h), and nothing fails or
// hangs. Emulation does not need the table and still covers them.
TEST_P(OlderKernel, AfterTheLeaderExitedCallsStillSucceed) {
  const FakeKernel& k = GetParam();
  for (const char* strategy : {"emulate", "continue"}) {
    SCOPED_TRACE(strategy);
    Listener server(AF_INET, 32);
    Child target(supervised({"--mode", "connect", "--strategy", strategy},
                            {raw_tcp_path(), "threads", "4", "connect",
                             std::to_string(server.port()), "--leader-exit"}),
                 k.env());
    Expectation want;
    want.applied = std::string(strategy) == "emulate" || k.pidfd_thread;
    for (int i = 0; i < 4; ++i) {
      std::optional<std::string> line = target.wait_line("thread ", 10s);
      ASSERT_TRUE(line) << target.transcript();
      EXPECT_TRUE(carries(parse_pairs(*line), want)) << *line;
    }
    target.close_stdin();
    EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
  }
}

// Signals interrupting calls the supervisor has received already: every
// call must still succeed once and carry options. Emulation adds the fd,
// then answers; without WAIT_KILLABLE_RECV (before Linux 5.19; Debian 11's
// 5.10 among them) a signal between the two leaves the added fd behind in
// the target, and the restarted call gets another: a kernel limitation.
// There the leak is bounded (emulation stops after a few, saying so; see
// supervise_addfd_test), and only continue is held to no leak at all.
TEST_P(OlderKernel, SignalStormsLeaveCallsIntact) {
  const FakeKernel& k = GetParam();
  for (const auto& [strategy, follow, count] :
       std::vector<std::tuple<std::string, std::string, int>>{
           {"emulate", "", 2000}, {"continue", "connect", 500}}) {
    for (const std::vector<std::string>& storm :
         {std::vector<std::string>{"--timer-us", "100"},
          std::vector<std::string>{"--urg"}}) {
      SCOPED_TRACE(strategy + " " + storm[0]);
      Listener server(AF_INET, 4096);
      std::vector<std::string> command = {raw_tcp_path(), "signals",
                                          std::to_string(count),
                                          "--min-signals", "50"};
      command.insert(command.end(), storm.begin(), storm.end());
      if (follow == "connect") {
        command.insert(command.end(),
                       {"--connect", std::to_string(server.port())});
      }
      Outcome outcome =
          run(supervised({"--strategy", strategy}, command), k.env(), 120s);
      ASSERT_TRUE(outcome.shell_status()) << "still running after 120 s\n"
                                     << outcome.out << outcome.err;
      size_t at = outcome.out.find("result ");
      ASSERT_NE(at, std::string::npos) << outcome.out << outcome.err;
      std::string line =
          outcome.out.substr(at, outcome.out.find('\n', at) - at);
      Options result = parse_pairs(line);
      EXPECT_GE(result["calls"], count) << line;
      EXPECT_GT(result["signals"], 10) << line;
      EXPECT_EQ(result["errors"], 0) << line;
      if (k.wait_killable_recv || strategy != "emulate") {
        EXPECT_EQ(result["fdleak"], 0) << line;
        EXPECT_EQ(result["missing"], 0) << line;
      } else {
        EXPECT_LE(result["fdleak"],
                  kLeakedFdsBound)
            << line;
        RecordProperty("without_wait_killable_recv", line);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fakes, OlderKernel, kKernels, kernel_name);

// pidfd_open(tid, PIDFD_THREAD) can fail with EINVAL for a task that is
// exiting. When that happens to the very first notification, it must not
// be taken for a kernel without PIDFD_THREAD: the other threads' sockets
// must still get their options.
TEST(TransientPidfdFailure, DoesNotDisableThreadPidfds) {
  UniqueFd self(sys::pidfd_open(getpid(), PIDFD_THREAD));
  if (!self.valid()) GTEST_SKIP() << "this kernel has no PIDFD_THREAD";
  Listener server(AF_INET, 32);
  Child target(supervised({"--mode", "connect", "--strategy", "continue"},
                          {raw_tcp_path(), "threads", "8", "connect",
                           std::to_string(server.port())}),
               {"LD_PRELOAD=" + fake_old_kernel_path(),
                "ASAN_OPTIONS=verify_asan_link_order=0",
                "FAKE_PIDFD_THREAD_EINVAL_ONCE=1"});
  int with_options = 0;
  for (int i = 0; i < 8; ++i) {
    std::optional<std::string> line = target.wait_line("thread ", 10s);
    ASSERT_TRUE(line) << target.transcript();
    if (carries(parse_pairs(*line), Expectation{})) ++with_options;
  }
  // The one call that met the failure goes through without options.
  EXPECT_GE(with_options, 7) << target.transcript();
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
}

}  // namespace
}  // namespace keepalive::tests
