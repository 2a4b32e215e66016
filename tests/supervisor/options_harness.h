// SPDX-License-Identifier: Apache-2.0
// What the supervisor integration tests share: real child processes with a
// hard time bound, loopback listeners on ephemeral ports, and reading a
// target's TCP options back from the kernel with sockopt_probe.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "tests/support/process.h"

namespace keepalive::tests {

// How many fds emulation may leave in a target before it stops emulating,
// without WAIT_KILLABLE_RECV: kMaxLeakedFds in
// supervisor/notification_handler.h (these tests build as C++20, the
// supervisor's headers need C++23).
inline constexpr long long kMaxLeakedFds = 32;
// What a target may really be left with: a signal that interrupts the
// target's wait just as the answer lands withdraws the call although the
// answer succeeded, so the supervisor cannot count that leak (rare: about
// one in thousands of interrupted calls).
inline constexpr long long kLeakedFdsBound = kMaxLeakedFds + 4;

// Paths of the programs under test, fixed at build time.
std::string supervise_path();
std::string raw_tcp_path();
std::string sockopt_probe_path();
// The library that, preloaded into the supervisor, fakes an older kernel
// (see tests/helpers/fake_old_kernel.c).
std::string fake_old_kernel_path();

// The programs of these suites run with stdin held open: the helpers
// (raw_tcp) run until its EOF (Process::close_stdin).
class Child : public Process {
 public:
  explicit Child(const std::vector<std::string>& argv,
                 std::vector<std::string> env = {})
      : Process(argv, held_stdin(std::move(env))) {}

 private:
  static ProcessOptions held_stdin(std::vector<std::string> env) {
    ProcessOptions options(std::move(env));
    options.keep_stdin = true;
    return options;
  }
};

// The argv that runs `command` under keepalive-supervise with `flags`.
std::vector<std::string> supervised(const std::vector<std::string>& flags,
                                    const std::vector<std::string>& command);

// A listening TCP socket on an ephemeral loopback port (IPv4 or IPv6),
// made by the test itself, never under the supervisor.
class Listener {
 public:
  explicit Listener(int family = 2 /* AF_INET */, int backlog = 64);
  int port() const { return port_; }
  int fd() const { return fd_.get(); }
  // Accepts one connection within `timeout`; an invalid fd on timeout.
  UniqueFd accept(milliseconds timeout);

 private:
  UniqueFd fd_;
  int port_ = 0;
};

// A connection from the test to loopback:`port`, retried until `timeout`
// (a server under test may not be listening yet). Invalid on failure.
UniqueFd connect_to(int port, milliseconds timeout, int family = 2);
int local_port_of(int fd);

// The options the kernel holds on the TCP socket of `pid` whose local or
// peer port is `port`, read by sockopt_probe (pidfd_getfd + getsockopt):
// "SO_KEEPALIVE" -> 1, "TCP_KEEPIDLE" -> 15, ... Empty when not found
// within `wait`; `detail` then says why.
using Options = std::map<std::string, long long>;
Options probe_options(pid_t pid, int port, milliseconds wait = 5s,
                      std::string* detail = nullptr);

// "NAME=VALUE" pairs in a helper's output line, as Options.
Options parse_pairs(const std::string& line);

// The whitespace-separated word at `index` of `line`, as an int (-1 if
// there is none).
int word_as_int(const std::string& line, size_t index);

// How many times `needle` occurs in `text` (overlaps included).
size_t count_of(const std::string& text, const std::string& needle);

// The first child of `pid` (from /proc/PID/task/PID/children), waiting up
// to `timeout` for it to appear: the target a supervisor started.
std::optional<pid_t> first_child_of(pid_t pid, milliseconds timeout);

// The kernel's values for options nobody set, read from a fresh socket of
// the test's own (e.g. TCP_SYNCNT is net.ipv4.tcp_syn_retries).
Options system_defaults();

// What a socket should carry. `applied`: SO_KEEPALIVE=1 and the keepalive
// values below; otherwise SO_KEEPALIVE=0, no user timeout and the system's
// keepalive values. The optional fields are checked only when set.
struct Expectation {
  bool applied = true;
  int keepidle = 15;
  int keepintvl = 15;
  int keepcnt = 9;
  int user_timeout = 150000;
  std::optional<int> syncnt;
  std::optional<int> defer_accept;
  std::optional<int> maxseg;
  std::optional<int> window_clamp;
};
// Compares what the kernel reported with `want`, naming every mismatch.
::testing::AssertionResult carries(const Options& got, const Expectation& want);

// The uid owning the TCP connection from local port `local_port` to
// remote port `remote_port` (sk_uid, the uid column of /proc/net/tcp and
// tcp6); nullopt if there is none. Both ports, since connect() can give
// the same ephemeral port to connections to different peers.
std::optional<uid_t> socket_uid(int local_port, int remote_port);

// The running test program's own path (/proc/self/exe).
std::string self_path();

// `ip link set lo up` in the current network namespace, without iproute2.
bool bring_up_loopback();

// For tests whose body needs namespaces of its own (a private network
// namespace for an nftables rule, say): runs the current test again, alone
// (--gtest_filter), under `unshare UNSHARE_FLAGS --`, with `variable`=1 in
// its environment so that the inner run knows to do the work, and reports
// the inner run's result as this test's: passed, failed with its
// transcript, or skipped with its reason. Skips when unshare is refused.
void rerun_in_namespaces(const std::vector<std::string>& unshare_flags,
                         const char* variable, milliseconds timeout);

}  // namespace keepalive::tests
