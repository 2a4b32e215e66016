// SPDX-License-Identifier: Apache-2.0
// The behaviour the project exists for, on a path that silently drops
// packets: a private network namespace where an nftables rule black-holes one
// loopback port. With the library a stuck connection fails within the
// configured time; without it, nc keeps waiting.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/preload/fixtures.h"
#include "tests/support/process.h"

namespace keepalive::tests {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Moves the calling thread, and every process it starts from then on, into
// a new network namespace with lo up; moves back on destruction. The
// namespace, and its nftables rules, vanish with the last process in it.
class PrivateNetwork {
 public:
  PrivateNetwork()
      : original_(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)) {
    if (unshare(CLONE_NEWNET) != 0) {
      refused_ = std::string("unshare(CLONE_NEWNET): ") + strerror(errno) +
                 " (network namespaces refused here)";
      return;
    }
    Outcome r = run({"ip", "link", "set", "lo", "up"});
    EXPECT_EQ(r.exit_code(), 0) << "ip link set lo up: " << r.err;
  }
  ~PrivateNetwork() {
    if (refused_.empty()) {
      EXPECT_EQ(setns(original_.get(), CLONE_NEWNET), 0) << strerror(errno);
    }
  }

  // Empty when inside; otherwise why the namespace could not be made.
  const std::string& refused() const { return refused_; }

  // Drops every TCP segment sent to `port` on this namespace's loopback.
  void drop_tcp_to(int port) {
    const std::vector<std::vector<std::string>> commands = {
        {"nft", "add", "table", "inet", "blackhole"},
        {"nft", "add", "chain", "inet", "blackhole", "output",
         "{ type filter hook output priority 0; policy accept; }"},
        {"nft", "add", "rule", "inet", "blackhole", "output", "tcp", "dport",
         std::to_string(port), "drop"},
    };
    for (const auto& command : commands) {
      Outcome r = run(command);
      ASSERT_EQ(r.exit_code(), 0)
          << command[2] << " " << command[3] << ": " << r.err;
    }
  }

 private:
  UniqueFd original_;
  std::string refused_;
};

TEST(BlackholeTest, ConnectGivesUpAfterUserTimeout) {
  PrivateNetwork net;
  if (!net.refused().empty()) GTEST_SKIP() << net.refused();
  int port = free_port();
  ASSERT_NO_FATAL_FAILURE(net.drop_tcp_to(port));
  // -v only makes nc say why it failed.
  std::vector<std::string> nc = {"nc", "-v", "127.0.0.1", std::to_string(port)};

  Process plain(nc, {});
  auto plain_start = Clock::now();
  Outcome hooked =
      run(nc, {preload({kConnectLibrary}), "TCP_USER_TIMEOUT=2000"},
          milliseconds(15000));
  EXPECT_FALSE(hooked.timed_out) << "still connecting after 15 s";
  EXPECT_EQ(hooked.exit_code(), 1);
  EXPECT_NE(hooked.err.find("Connection timed out"), std::string::npos)
      << hooked.err;
  EXPECT_GE(hooked.seconds, 1.5);
  EXPECT_LT(hooked.seconds, 10.0);

  // Without the library the SYN retransmissions go on for about 2 minutes
  // (tcp_syn_retries); 5 s is enough to tell the difference.
  std::this_thread::sleep_until(plain_start + std::chrono::seconds(5));
  EXPECT_TRUE(plain.running())
      << "nc without the library gave up after " << seconds_since(plain_start)
      << " s: " << plain.wait(milliseconds(0)).err;
}

TEST(BlackholeTest, IdleConnectionDiesAfterKeepaliveProbes) {
  PrivateNetwork net;
  if (!net.refused().empty()) GTEST_SKIP() << net.refused();
  LoopbackListener server;
  std::vector<std::string> nc = {"nc", "127.0.0.1",
                                 std::to_string(server.port())};
  // Derived user timeout: (1 + 1 * 2) s = 3 s.
  Process hooked(nc, {preload({kConnectLibrary}), "TCP_KEEPIDLE=1",
                         "TCP_KEEPINTVL=1", "TCP_KEEPCNT=2"});
  Process plain(nc, {});
  UniqueFd first = server.accept_one(5000);
  UniqueFd second = server.accept_one(5000);
  ASSERT_TRUE(first.valid() && second.valid()) << "nc never connected";

  // From now on the client's segments (keepalive probes included) vanish.
  ASSERT_NO_FATAL_FAILURE(net.drop_tcp_to(server.port()));
  auto dropped = Clock::now();
  // nc says nothing: its read fails with ETIMEDOUT, and with stdin already
  // at EOF it has nothing left to do and exits.
  Outcome r = hooked.wait(milliseconds(15000));
  double took = seconds_since(dropped);
  EXPECT_FALSE(r.timed_out) << "connection still up after 15 s";
  EXPECT_GE(took, 1.5);
  EXPECT_LT(took, 10.0);
  EXPECT_TRUE(plain.running()) << "without keepalive nc cannot notice";
}

}  // namespace
}  // namespace keepalive::tests
