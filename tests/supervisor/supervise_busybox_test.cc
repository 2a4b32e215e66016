// SPDX-License-Identifier: Apache-2.0
// busybox's nc from Debian's busybox-static, a real third-party static
// program, gets the options under keepalive-supervise as a client and as a
// server, in every mode that covers its role and under every strategy. The
// options are read from outside the process, from the kernel.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

constexpr const char* kBusybox = "/bin/busybox";

struct Case {
  std::string mode;
  std::string strategy;
};

void PrintTo(const Case& c, std::ostream* out) {
  *out << "--mode " << c.mode << " --strategy " << c.strategy;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.mode + "_" + info.param.strategy;
}

std::vector<Case> cases_for(std::initializer_list<const char*> modes) {
  std::vector<Case> cases;
  for (const char* mode : modes) {
    for (const char* strategy : {"emulate", "continue", "auto"}) {
      cases.push_back({mode, strategy});
    }
  }
  return cases;
}

void require_busybox() {
  if (access(kBusybox, X_OK) != 0) {
    GTEST_SKIP() << kBusybox << " is missing (Debian package busybox-static)";
  }
}

// A loopback port nobody listens on right now, for `nc -l -p PORT`.
int free_port() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return -1;
  }
  return local_port_of(fd.get());
}

class BusyboxClient : public ::testing::TestWithParam<Case> {};

TEST_P(BusyboxClient, ConnectionCarriesDefaults) {
  require_busybox();
  if (IsSkipped()) return;
  Listener server;
  Child supervisor(
      supervised({"--mode", GetParam().mode, "--strategy", GetParam().strategy},
                 {kBusybox, "nc", "127.0.0.1", std::to_string(server.port())}));
  UniqueFd peer = server.accept(10s);
  ASSERT_TRUE(peer.valid()) << supervisor.transcript();
  std::optional<pid_t> nc = first_child_of(supervisor.pid(), 5s);
  ASSERT_TRUE(nc);
  std::string detail;
  Options got = probe_options(*nc, server.port(), 5s, &detail);
  EXPECT_TRUE(carries(got, Expectation{})) << detail << supervisor.transcript();

  // nc exits when the peer closes; the supervisor passes its status on.
  peer.reset();
  EXPECT_EQ(supervisor.wait_exit(10s), 0) << supervisor.transcript();
}

INSTANTIATE_TEST_SUITE_P(ClientModes, BusyboxClient,
                         ::testing::ValuesIn(cases_for({"socket", "connect"})),
                         case_name);

class BusyboxServer : public ::testing::TestWithParam<Case> {};

TEST_P(BusyboxServer, AcceptedConnectionCarriesDefaults) {
  require_busybox();
  if (IsSkipped()) return;
  // The port is free when picked; should another process take it before
  // nc binds, nc fails and the attempt is repeated with another port.
  for (int attempt = 0; attempt < 3; ++attempt) {
    int port = free_port();
    ASSERT_GT(port, 0);
    Child supervisor(supervised(
        {"--mode", GetParam().mode, "--strategy", GetParam().strategy},
        {kBusybox, "nc", "-l", "-p", std::to_string(port)}));
    UniqueFd client = connect_to(port, 10s);
    if (!client.valid() && !supervisor.running()) continue;
    ASSERT_TRUE(client.valid()) << supervisor.transcript();
    std::optional<pid_t> nc = first_child_of(supervisor.pid(), 5s);
    ASSERT_TRUE(nc);
    // nc's accepted socket: the one whose peer is our client. Inherited
    // from the listening socket, which nc closes after accepting.
    std::string detail;
    Options got = probe_options(*nc, local_port_of(client.get()), 5s, &detail);
    EXPECT_TRUE(carries(got, Expectation{}))
        << detail << supervisor.transcript();

    client.reset();
    EXPECT_EQ(supervisor.wait_exit(10s), 0) << supervisor.transcript();
    return;
  }
  FAIL() << "busybox nc -l never came up on a free port";
}

INSTANTIATE_TEST_SUITE_P(ServerModes, BusyboxServer,
                         ::testing::ValuesIn(cases_for({"socket", "listen"})),
                         case_name);

}  // namespace
}  // namespace keepalive::tests
