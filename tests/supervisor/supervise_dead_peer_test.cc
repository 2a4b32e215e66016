// SPDX-License-Identifier: Apache-2.0
// The scenario the project exists for. A static client holds an idle
// connection to a local server; then an nftables rule drops every packet
// of that connection, as a dead peer or a vanished NAT entry would. Under
// keepalive-supervise with --keepidle 1 --keepintvl 1 --keepcnt 2 the
// kernel gives up on the connection within a few seconds and the client's
// blocked read() fails with ETIMEDOUT; the same client run bare is still
// hung long after that. The same for a static server whose client
// vanishes (its accepted socket inherits the options).
//
// The body runs in a private network namespace, so that the rule cannot
// touch anything else on the machine: the test re-runs itself (this one
// test, selected with --gtest_filter) under `unshare -n`, and the inner run
// brings up its loopback interface and does the work.
#include <errno.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

constexpr const char* kInnerVariable = "SUPERVISE_TEST_IN_NETNS";

using Clock = std::chrono::steady_clock;

struct Case {
  std::string mode;
  std::string strategy;  // "attach": started bare, then --pid
  std::string role;  // which side runs under the supervisor: client, server
};

void PrintTo(const Case& c, std::ostream* out) {
  if (c.strategy == "attach") {
    *out << c.role << " started bare, then keepalive-supervise --pid --mode "
         << c.mode;
    return;
  }
  *out << c.role << " under --mode " << c.mode << " --strategy " << c.strategy;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.role + "_" + info.param.mode + "_" + info.param.strategy;
}

std::string find_program(std::initializer_list<const char*> candidates) {
  for (const char* path : candidates) {
    if (access(path, X_OK) == 0) return path;
  }
  return "";
}

class DeadPeer : public ::testing::TestWithParam<Case> {
 protected:
  void run_outside();
  void run_inside();
};

void DeadPeer::run_outside() {
  rerun_in_namespaces({"-n"}, kInnerVariable, 90s);
}

// One side of an idle connection: the program under test (supervised or
// bare) and the test's end of its connection.
struct Endpoint {
  std::unique_ptr<Child> program;
  pid_t pid = -1;
  int probe_port = 0;  // finds the program's socket (local or peer port)
  int drop_port = 0;   // the port the nftables rule black-holes
  UniqueFd test_side;
};

// Starts raw_tcp in `role` (with `flags` under the supervisor, bare when
// empty) and connects it with the test: the client to `server`, or the
// test to the server.
void start_endpoint(const std::string& role,
                    const std::optional<std::vector<std::string>>& flags,
                    Listener& server, Endpoint* end) {
  std::vector<std::string> command =
      role == "client"
          ? std::vector<std::string>{raw_tcp_path(), "connect",
                                     std::to_string(server.port()), "--read"}
          : std::vector<std::string>{raw_tcp_path(), "serve", "--read"};
  end->program =
      std::make_unique<Child>(flags ? supervised(*flags, command) : command);
  Child& program = *end->program;
  if (role == "client") {
    std::optional<std::string> line = program.wait_line("connected", 10s);
    ASSERT_TRUE(line) << program.transcript();
    end->pid = word_as_int(*line, 3);
    end->test_side = server.accept(5s);
    ASSERT_TRUE(end->test_side.valid());
    end->probe_port = end->drop_port = server.port();
    return;
  }
  std::optional<std::string> line = program.wait_line("listening", 10s);
  ASSERT_TRUE(line) << program.transcript();
  end->pid = word_as_int(*line, 3);
  end->drop_port = word_as_int(*line, 1);
  end->test_side = connect_to(end->drop_port, 5s);
  ASSERT_TRUE(end->test_side.valid());
  ASSERT_TRUE(program.wait_line("accepted", 10s)) << program.transcript();
  end->probe_port = local_port_of(end->test_side.get());
}

void DeadPeer::run_inside() {
  std::string nft = find_program({"/usr/sbin/nft", "/sbin/nft"});
  if (nft.empty()) GTEST_SKIP() << "nft is missing (Debian package nftables)";
  ASSERT_TRUE(bring_up_loopback()) << strerror(errno);

  const Case& c = GetParam();
  Listener server;
  Endpoint supervised_end, bare_end;
  std::vector<std::string> fast_flags = {"--mode",      c.mode, "--keepidle",
                                         "1",           "--keepintvl", "1",
                                         "--keepcnt",   "2"};
  if (c.strategy == "attach") {
    // The connection exists, idle, before keepalive-supervise is run.
    start_endpoint(c.role, std::nullopt, server, &supervised_end);
    if (HasFatalFailure()) return;
    std::vector<std::string> attach = {supervise_path(), "--pid",
                                       std::to_string(supervised_end.pid)};
    attach.insert(attach.end(), fast_flags.begin(), fast_flags.end());
    Outcome attached = run(attach, {}, 10s);
    ASSERT_EQ(attached.shell_status(), 0) << attached;
  } else {
    fast_flags.insert(fast_flags.end(), {"--strategy", c.strategy});
    start_endpoint(c.role, fast_flags, server, &supervised_end);
    if (HasFatalFailure()) return;
  }
  start_endpoint(c.role, std::nullopt, server, &bare_end);
  if (HasFatalFailure()) return;

  // What the kernel holds on each program's socket before the drop (for a
  // server, the accepted socket, inherited from the listening one).
  Expectation fast;
  fast.keepidle = 1;
  fast.keepintvl = 1;
  fast.keepcnt = 2;
  fast.user_timeout = 3000;
  EXPECT_TRUE(carries(
      probe_options(supervised_end.pid, supervised_end.probe_port), fast));
  Expectation untouched;
  untouched.applied = false;
  EXPECT_TRUE(
      carries(probe_options(bare_end.pid, bare_end.probe_port), untouched));

  // Both connections are idle (the supervised one already exchanging
  // keepalive probes). Now black-hole them, both directions.
  std::string rules =
      "add table inet dead_peer; "
      "add chain inet dead_peer out "
      "{ type filter hook output priority 0; policy accept; }";
  for (int port : {supervised_end.drop_port, bare_end.drop_port}) {
    rules += "; add rule inet dead_peer out tcp dport " + std::to_string(port) +
             " drop";
    rules += "; add rule inet dead_peer out tcp sport " + std::to_string(port) +
             " drop";
  }
  Outcome rule = run({nft, rules}, {}, 10s);
  ASSERT_EQ(rule.shell_status(), 0) << rule.err;
  auto dropped_at = Clock::now();

  // keepidle + keepintvl * keepcnt = 3 s; generous bound for a busy host.
  Child& supervised_program = *supervised_end.program;
  std::optional<int> code = supervised_program.wait_exit(15s);
  double seconds =
      std::chrono::duration<double>(Clock::now() - dropped_at).count();
  ASSERT_TRUE(code) << "the supervised " << c.role
                    << " still hangs 15 s after the drop\n"
                    << supervised_program.transcript();
  EXPECT_EQ(*code, 3) << supervised_program.transcript();
  EXPECT_NE(supervised_program.out().find("read-error errno=" +
                                          std::to_string(ETIMEDOUT)),
            std::string::npos)
      << supervised_program.transcript();
  RecordProperty("seconds_after_drop", std::to_string(seconds));

  // The bare program, with the system's 2-hour keepalive off, is still
  // blocked in read() well after the supervised one gave up.
  auto check_at = dropped_at + 8s;
  if (Clock::now() < check_at) std::this_thread::sleep_until(check_at);
  Child& bare_program = *bare_end.program;
  EXPECT_TRUE(bare_program.running())
      << "the bare " << c.role << " did not hang:\n"
      << bare_program.transcript();
  EXPECT_FALSE(bare_program.wait_line("read-error", 100ms))
      << bare_program.transcript();
}

TEST_P(DeadPeer, IdleConnectionDiesUnderSupervisorOnly) {
  if (getenv(kInnerVariable) != nullptr) {
    run_inside();
  } else {
    run_outside();
  }
}

INSTANTIATE_TEST_SUITE_P(Strategies, DeadPeer,
                         ::testing::Values(Case{"socket", "emulate", "client"},
                                           Case{"connect", "continue",
                                                "client"},
                                           Case{"socket", "continue", "client"},
                                           Case{"listen", "continue", "server"},
                                           Case{"socket", "emulate", "server"},
                                           Case{"connect", "attach", "client"},
                                           Case{"listen", "attach", "server"}),
                         case_name);

}  // namespace
}  // namespace keepalive::tests
