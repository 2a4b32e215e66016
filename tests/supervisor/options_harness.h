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

namespace keepalive::tests {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

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

// A child in its own process group, with stdin, stdout and stderr on pipes.
// Its environment is the test's own minus every variable that steers the
// option model (TCP_*, KEEP*, LIBKEEPALIVE_DEBUG, LD_PRELOAD), plus `env`
// ("NAME=VALUE"), so that a developer's shell cannot skew a test. The
// destructor SIGKILLs the whole group and reaps the child: nothing a test
// starts outlives it.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv,
                 const std::vector<std::string>& env = {});
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }

  // The first stdout line starting with `prefix` not returned before,
  // waiting up to `timeout`; nullopt on timeout or when stdout closes.
  std::optional<std::string> wait_line(const std::string& prefix,
                                       milliseconds timeout);
  // Closes the child's stdin (the helpers exit on EOF).
  void close_stdin();
  // Waits up to `timeout` for the child to exit; returns its exit code as
  // a shell reports it (128 + signal when killed), or nullopt if it is
  // still running at the deadline (it is left running).
  std::optional<int> wait_exit(milliseconds timeout);
  // Whether the child has not exited yet (reaps it if it has).
  bool running();
  // Sends `sig` to the whole process group.
  void signal_group(int sig);

  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }
  // stdout and stderr, for failure messages.
  std::string transcript() const;

 private:
  // Reads what the pipes hold, waiting at most `timeout` for something.
  void pump(milliseconds timeout);

  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  UniqueFd in_, out_fd_, err_fd_;
  std::string out_, err_;
  size_t consumed_ = 0;  // stdout lines already returned by wait_line
};

// Runs a program to completion within `timeout` (killed at the deadline).
struct RunOutcome {
  std::optional<int> exit_code;  // nullopt: killed at the deadline
  std::string out, err;
};
RunOutcome run(const std::vector<std::string>& argv,
               const std::vector<std::string>& env = {},
               milliseconds timeout = 20s);

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

}  // namespace keepalive::tests
