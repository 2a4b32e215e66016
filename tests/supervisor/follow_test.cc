// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise --pid PID --follow (experimental) on clients that
// never stop connecting: a static multi-threaded C program and a Go
// program (its own raw calls from many threads, SIGURG preemption). The
// filter goes into them while they connect; none of their calls may fail,
// and the connections made after it carry SO_KEEPALIVE (each client reads
// it back from the kernel itself). Then: the supervisor, stopped with
// SIGTERM, hands the listener to a background process and the client goes
// on without a failure; a process that already has a listener is refused
// and left working.
#include <errno.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

std::string connect_loop_path() { return KEEPALIVE_CONNECT_LOOP_PATH; }
std::string go_connect_loop_path() { return KEEPALIVE_GO_CONNECT_LOOP_PATH; }

// A loopback server that accepts and closes every connection, on a
// thread of its own, until destroyed.
class ClosingServer {
 public:
  ClosingServer()
      : thread_([this] {
          while (!stop_) {
            pollfd ready{listener_.fd(), POLLIN, 0};
            if (poll(&ready, 1, 50) != 1) continue;
            int fd = accept4(listener_.fd(), nullptr, nullptr, SOCK_CLOEXEC);
            if (fd >= 0) close(fd);
          }
        }) {}
  ~ClosingServer() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return listener_.port(); }

 private:
  Listener listener_{2, 1024};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Totals {
  long made = -1, failed = -1, keepalive = -1;
};

// "made=N failed=N keepalive=N" in a client's output.
Totals totals_of(const std::string& out) {
  Totals t;
  for (const std::string& line : split_lines(out)) {
    Options pairs = parse_pairs(line);
    if (pairs.count("made") != 0) {
      t.made = pairs["made"];
      t.failed = pairs["failed"];
      t.keepalive = pairs["keepalive"];
    }
  }
  return t;
}

// Runs `client` against a closing server, puts the filter into it after
// 300 ms, lets it go on for `after`, then stops it; `middle` runs once the
// supervisor says it follows. Returns the client's totals; the supervisor
// is left in `supervisor`.
Totals follow_while_connecting(
    const std::string& client, std::unique_ptr<Child>* supervisor,
    const std::function<void(Child&)>& middle = [](Child&) {}) {
  ClosingServer server;
  Child program({client, std::to_string(server.port()), "4"});
  std::optional<std::string> started = program.wait_line("started", 10s);
  EXPECT_TRUE(started) << program.transcript();
  if (!started) return {};
  pid_t pid = word_as_int(*started, 2);
  std::this_thread::sleep_for(300ms);  // calls before the filter
  *supervisor = std::make_unique<Child>(std::vector<std::string>{
      supervise_path(), "--pid", std::to_string(pid), "--follow"});
  Child& follower = **supervisor;
  EXPECT_TRUE(follower.wait_for_output("following", 10s))
      << follower.transcript();
  middle(follower);
  std::this_thread::sleep_for(700ms);  // calls after it
  program.close_stdin();
  Outcome outcome = program.wait(20s);
  EXPECT_EQ(outcome.shell_status(), 0) << outcome;
  return totals_of(outcome.out);
}

void expect_no_failure_and_options_after(const Totals& t,
                                         const std::string& transcript) {
  EXPECT_EQ(t.failed, 0) << transcript;
  EXPECT_GT(t.keepalive, 0) << "no connection carried SO_KEEPALIVE\n"
                            << transcript;
  EXPECT_GT(t.made, t.keepalive)
      << "the connections made before the filter carried it too\n"
      << transcript;
}

TEST(Follow, StaticMultiThreadedClientLosesNoCall) {
  std::unique_ptr<Child> follower;
  Totals t = follow_while_connecting(connect_loop_path(), &follower);
  ASSERT_TRUE(follower);
  // The client has exited: so does the supervisor, with its summary.
  std::optional<int> code = follower->wait_exit(10s);
  ASSERT_TRUE(code) << follower->transcript();
  EXPECT_EQ(*code, 0) << follower->transcript();
  EXPECT_NE(follower->err().find("has exited"), std::string::npos)
      << follower->transcript();
  EXPECT_NE(follower->out().find("new sockets given options by the filter"),
            std::string::npos)
      << follower->transcript();
  expect_no_failure_and_options_after(t, follower->transcript());
  RecordProperty("made", std::to_string(t.made));
  RecordProperty("keepalive", std::to_string(t.keepalive));
}

TEST(Follow, GoClientLosesNoCall) {
  if (go_connect_loop_path().empty()) {
    GTEST_SKIP() << "the Go client was not built: go is missing (Debian "
                    "package golang-go)";
  }
  std::unique_ptr<Child> follower;
  Totals t = follow_while_connecting(go_connect_loop_path(), &follower);
  ASSERT_TRUE(follower);
  EXPECT_EQ(follower->wait_exit(10s), 0) << follower->transcript();
  expect_no_failure_and_options_after(t, follower->transcript());
}

TEST(Follow, SigtermHandsTheListenerToABackgroundProcess) {
  std::unique_ptr<Child> follower;
  pid_t background = -1;
  Totals t = follow_while_connecting(
      connect_loop_path(), &follower, [&](Child& supervisor) {
        kill(supervisor.pid(), SIGTERM);
        std::optional<int> code = supervisor.wait_exit(10s);
        ASSERT_TRUE(code) << supervisor.transcript();
        EXPECT_EQ(*code, 0) << supervisor.transcript();
        const std::string& err = supervisor.err();
        size_t at = err.find("in the background by pid ");
        ASSERT_NE(at, std::string::npos) << supervisor.transcript();
        background = atoi(err.c_str() + at + 25);
        EXPECT_EQ(::kill(background, 0), 0) << "no background server";
      });
  expect_no_failure_and_options_after(t, follower->transcript());
  // It ends with the client it served.
  for (int i = 0; i < 500 && background > 0 && ::kill(background, 0) == 0;
       ++i) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(::kill(background, 0), 0) << "the background server outlived "
                                         "its client";
}

TEST(Follow, ProcessWithAListenerIsRefusedAndGoesOn) {
  ClosingServer server;
  Child program(supervised({}, {connect_loop_path(),
                                std::to_string(server.port()), "2"}));
  std::optional<std::string> started = program.wait_line("started", 10s);
  ASSERT_TRUE(started) << program.transcript();
  pid_t pid = word_as_int(*started, 2);
  Outcome refused =
      run({supervise_path(), "--pid", std::to_string(pid), "--follow"});
  EXPECT_EQ(refused.shell_status(), 1) << refused;
  EXPECT_NE(refused.err.find("already runs under seccomp"),
            std::string::npos)
      << refused;
  std::this_thread::sleep_for(200ms);
  program.close_stdin();
  Outcome outcome = program.wait(20s);
  Totals t = totals_of(outcome.out);
  EXPECT_EQ(t.failed, 0) << outcome;
  EXPECT_EQ(t.made, t.keepalive) << "every call was already supervised\n"
                                 << outcome;
}

TEST(Follow, WhatItCannotDoIsRefusedBeforeTouchingAnything) {
  Outcome outcome = run({supervise_path(), "--pid", "1,2", "--follow"});
  EXPECT_EQ(outcome.shell_status(), 2) << outcome;
  EXPECT_NE(outcome.err.find("--follow takes exactly one --pid"),
            std::string::npos)
      << outcome;
  outcome = run({supervise_path(), "--cgroup", "/sys/fs/cgroup", "--follow"});
  EXPECT_EQ(outcome.shell_status(), 2) << outcome;
}

}  // namespace
}  // namespace keepalive::tests
