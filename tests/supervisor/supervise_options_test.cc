// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise puts the options on the sockets of a static target
// that makes raw socket/connect/listen syscalls, in every mode and under
// every strategy; the options are read back from the kernel from outside
// the target (sockopt_probe: pidfd_getfd + getsockopt), never taken from
// the supervisor's own log.
//
// What each (mode, strategy) does, as documented in supervisor/strategy.h
// and notification_handler.cc:
//  - continue puts options on the sockets the mode names, at connect() or
//    listen(): connect mode leaves server sockets alone, listen mode client
//    sockets;
//  - emulate traps only socket(), so it cannot tell a client from a server:
//    in connect or listen mode every TCP socket gets the mode's options at
//    creation, and the supervisor says so on stderr ("degraded: ...");
//  - auto is emulate in socket mode and continue in the other two where
//    pidfd_getfd is permitted, as it is here (root, own child);
//  - TCP_SYNCNT goes on in connect and socket modes, TCP_DEFER_ACCEPT in
//    listen and socket modes, whatever the socket's role;
//  - an accepted socket inherits the keepalive options and the user
//    timeout from its listening socket.
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <sstream>
#include <string>
#include <tuple>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

struct Case {
  std::string mode;
  std::string strategy;

  std::string effective_strategy() const {
    if (strategy != "auto") return strategy;
    return mode == "socket" ? "emulate" : "continue";
  }
  bool client_gets_options() const {
    return mode != "listen" || effective_strategy() == "emulate";
  }
  bool server_gets_options() const {
    return mode != "connect" || effective_strategy() == "emulate";
  }
  bool syncnt_applies() const { return mode != "listen"; }
  bool defer_accept_applies() const { return mode != "connect"; }
  std::vector<std::string> flags() const {
    return {"--mode", mode, "--strategy", strategy};
  }
};

void PrintTo(const Case& c, std::ostream* out) {
  *out << "--mode " << c.mode << " --strategy " << c.strategy;
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.mode + "_" + info.param.strategy;
}

std::vector<Case> all_cases() {
  std::vector<Case> cases;
  for (const char* mode : {"socket", "connect", "listen"}) {
    for (const char* strategy : {"emulate", "continue", "auto"}) {
      cases.push_back({mode, strategy});
    }
  }
  return cases;
}

// Custom values, chosen to differ from the defaults and from this system's
// own values. TCP_DEFER_ACCEPT 10 reads back as 15: the kernel stores it
// as a number of SYN-ACK retransmissions (1+2+4+8 s).
constexpr int kSynCnt = 3;
constexpr int kDeferAccept = 10;
constexpr int kDeferAcceptReadBack = 15;
constexpr int kMaxSeg = 1000;
constexpr int kWindowClamp = 20000;
const std::vector<std::string> kCustomFlags = {
    "--keepidle",     "30",   "--keepintvl",    "5",  "--keepcnt", "4",
    "--syncnt",       "3",    "--defer-accept", "10", "--maxseg",  "1000",
    "--window-clamp", "20000"};
const std::vector<std::string> kCustomEnv = {
    "TCP_KEEPIDLE=30", "TCP_KEEPINTVL=5",       "TCP_KEEPCNT=4",
    "TCP_SYNCNT=3",    "TCP_DEFER_ACCEPT=10",   "TCP_USER_TIMEOUT=12345",
    "TCP_MAXSEG=1000", "TCP_WINDOW_CLAMP=20000"};

class StaticTarget : public ::testing::TestWithParam<Case> {
 protected:
  // What a socket in `role` carries under this case with defaults.
  Expectation defaults(bool gets_options) const {
    Expectation want;
    want.applied = gets_options;
    want.syncnt = system_defaults().at("TCP_SYNCNT");
    want.defer_accept = 0;
    return want;
  }
  // What it carries with the custom values (flags or environment).
  Expectation custom(bool gets_options, int user_timeout) const {
    const Case& c = GetParam();
    Expectation want;
    want.applied = gets_options;
    want.keepidle = 30;
    want.keepintvl = 5;
    want.keepcnt = 4;
    want.user_timeout = user_timeout;
    want.syncnt = gets_options && c.syncnt_applies()
                      ? kSynCnt
                      : system_defaults().at("TCP_SYNCNT");
    want.defer_accept =
        gets_options && c.defer_accept_applies() ? kDeferAcceptReadBack : 0;
    return want;
  }

  // Runs the static client under the supervisor against a listener of the
  // test's and checks its socket from outside.
  void check_client(const std::vector<std::string>& extra_flags,
                    const std::vector<std::string>& env,
                    const Expectation& want) {
    Listener server;
    std::vector<std::string> flags = GetParam().flags();
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    Child target(supervised(flags, {raw_tcp_path(), "connect",
                                    std::to_string(server.port())}),
                 env);
    std::optional<std::string> line = target.wait_line("connected", 10s);
    ASSERT_TRUE(line) << target.transcript();
    UniqueFd peer = server.accept(5s);
    ASSERT_TRUE(peer.valid());
    pid_t pid = word_as_int(*line, 3);
    std::string detail;
    Options got = probe_options(pid, server.port(), 5s, &detail);
    EXPECT_TRUE(carries(got, want)) << detail << "\n" << target.transcript();
    target.close_stdin();
    EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
    check_degraded_note(target);
  }

  // Runs the static server under the supervisor, checks its listening
  // socket, connects to it and checks the accepted socket.
  void check_server(const std::vector<std::string>& extra_flags,
                    const std::vector<std::string>& env,
                    const Expectation& want_listening,
                    const Expectation& want_accepted) {
    std::vector<std::string> flags = GetParam().flags();
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    Child target(supervised(flags, {raw_tcp_path(), "serve"}), env);
    std::optional<std::string> line = target.wait_line("listening", 10s);
    ASSERT_TRUE(line) << target.transcript();
    int port = word_as_int(*line, 1);
    pid_t pid = word_as_int(*line, 3);
    std::string detail;
    Options listening = probe_options(pid, port, 5s, &detail);
    EXPECT_TRUE(carries(listening, want_listening))
        << "listening socket: " << detail << "\n"
        << target.transcript();

    UniqueFd client = connect_to(port, 5s);
    ASSERT_TRUE(client.valid());
    // With TCP_DEFER_ACCEPT the server only sees the connection once data
    // arrives.
    ASSERT_EQ(send(client.get(), "x", 1, MSG_NOSIGNAL), 1);
    ASSERT_TRUE(target.wait_line("accepted", 10s)) << target.transcript();
    // The accepted socket is the one whose peer is our client.
    Options accepted =
        probe_options(pid, local_port_of(client.get()), 5s, &detail);
    EXPECT_TRUE(carries(accepted, want_accepted))
        << "accepted socket: " << detail << "\n"
        << target.transcript();
    target.close_stdin();
    EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
    check_degraded_note(target);
  }

  // Emulation outside socket mode says once what it loses; nothing else
  // does.
  void check_degraded_note(const Child& target) {
    const Case& c = GetParam();
    bool degraded = c.mode != "socket" && c.effective_strategy() == "emulate";
    EXPECT_EQ(target.err().find("degraded:") != std::string::npos, degraded)
        << target.err();
  }
};

TEST_P(StaticTarget, ClientSocketCarriesDefaults) {
  check_client({}, {}, defaults(GetParam().client_gets_options()));
}

TEST_P(StaticTarget, ServerSocketsCarryDefaults) {
  Expectation want = defaults(GetParam().server_gets_options());
  Expectation inherited = want;
  inherited.syncnt.reset();  // not inherited; the listener's is checked
  inherited.defer_accept.reset();
  check_server({}, {}, want, inherited);
}

TEST_P(StaticTarget, ClientSocketCarriesValuesFromFlags) {
  // User timeout derived from what is applied: (30 + 5 * 4) s.
  check_client(kCustomFlags, {},
               custom(GetParam().client_gets_options(), 50000));
}

TEST_P(StaticTarget, ServerSocketsCarryValuesFromFlags) {
  bool gets = GetParam().server_gets_options();
  Expectation want = custom(gets, 50000);
  Expectation inherited = want;
  inherited.syncnt.reset();
  inherited.defer_accept.reset();
  if (gets) {
    // Read back as set only while listening; a connection's own values
    // are negotiated.
    want.maxseg = kMaxSeg;
    want.window_clamp = kWindowClamp;
  }
  check_server(kCustomFlags, {}, want, inherited);
}

TEST_P(StaticTarget, ClientSocketCarriesValuesFromEnvironment) {
  check_client({}, kCustomEnv, custom(GetParam().client_gets_options(), 12345));
}

TEST_P(StaticTarget, ServerSocketsCarryValuesFromEnvironment) {
  bool gets = GetParam().server_gets_options();
  Expectation want = custom(gets, 12345);
  Expectation inherited = want;
  inherited.syncnt.reset();
  inherited.defer_accept.reset();
  if (gets) {
    want.maxseg = kMaxSeg;
    want.window_clamp = kWindowClamp;
  }
  check_server({}, kCustomEnv, want, inherited);
}

INSTANTIATE_TEST_SUITE_P(AllModes, StaticTarget,
                         ::testing::ValuesIn(all_cases()), case_name);

// Flags override the environment, option by option.
TEST(StaticTargetSettings, FlagsOverrideEnvironment) {
  Listener server;
  Child target(
      supervised({"--keepidle", "40"},
                 {raw_tcp_path(), "connect", std::to_string(server.port())}),
      {"TCP_KEEPIDLE=30", "TCP_KEEPCNT=4"});
  std::optional<std::string> line = target.wait_line("connected", 10s);
  ASSERT_TRUE(line) << target.transcript();
  UniqueFd peer = server.accept(5s);
  Expectation want;
  want.keepidle = 40;
  want.keepcnt = 4;
  want.user_timeout = (40 + 15 * 4) * 1000;
  EXPECT_TRUE(
      carries(probe_options(word_as_int(*line, 3), server.port()), want))
      << target.transcript();
}

// KEEPALIVE=off (the original libkeepalive's switch) leaves sockets alone.
TEST(StaticTargetSettings, KeepaliveOffLeavesSocketsAlone) {
  for (const char* strategy : {"emulate", "continue"}) {
    Listener server;
    Child target(
        supervised({"--strategy", strategy},
                   {raw_tcp_path(), "connect", std::to_string(server.port())}),
        {"KEEPALIVE=off"});
    std::optional<std::string> line = target.wait_line("connected", 10s);
    ASSERT_TRUE(line) << target.transcript();
    UniqueFd peer = server.accept(5s);
    Expectation want;
    want.applied = false;
    EXPECT_TRUE(
        carries(probe_options(word_as_int(*line, 3), server.port()), want))
        << strategy << "\n"
        << target.transcript();
  }
}

// A client that connects the way Go's runtime does: SOCK_NONBLOCK |
// SOCK_CLOEXEC, connect() answering EINPROGRESS, poll, SO_ERROR.
TEST_P(StaticTarget, NonBlockingClientCarriesDefaults) {
  Listener server;
  Child target(supervised(GetParam().flags(),
                          {raw_tcp_path(), "connect",
                           std::to_string(server.port()), "--nonblock"}));
  std::optional<std::string> line = target.wait_line("connected", 10s);
  ASSERT_TRUE(line) << target.transcript();
  UniqueFd peer = server.accept(5s);
  std::string detail;
  EXPECT_TRUE(
      carries(probe_options(word_as_int(*line, 3), server.port(), 5s, &detail),
              defaults(GetParam().client_gets_options())))
      << detail << "\n"
      << target.transcript();
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
}

// Multipath TCP sockets are trapped and covered too (the filter matches
// IPPROTO_MPTCP), as far as the kernel supports the options on them: the
// keepalive ones yes; TCP_USER_TIMEOUT, TCP_SYNCNT and TCP_WINDOW_CLAMP not
// (as of Linux 6.18: ENOPROTOOPT), which the supervisor reports on stderr.
TEST_P(StaticTarget, MultipathClientCarriesKeepalive) {
  // Whether this kernel makes MPTCP sockets at all (net.mptcp.enabled).
  UniqueFd probe(socket(AF_INET, SOCK_STREAM, 262 /* IPPROTO_MPTCP */));
  if (!probe.valid()) GTEST_SKIP() << "no MPTCP here: " << strerror(errno);
  Listener server;
  Child target(supervised(
      GetParam().flags(),
      {raw_tcp_path(), "connect", std::to_string(server.port()), "--mptcp"}));
  std::optional<std::string> line = target.wait_line("connected", 10s);
  ASSERT_TRUE(line) << target.transcript();
  UniqueFd peer = server.accept(5s);
  std::string detail;
  Options got =
      probe_options(word_as_int(*line, 3), server.port(), 5s, &detail);
  ASSERT_FALSE(got.empty()) << detail;
  bool gets = GetParam().client_gets_options();
  EXPECT_EQ(got["SO_KEEPALIVE"], gets ? 1 : 0) << *line;
  if (gets) {
    EXPECT_EQ(got["TCP_KEEPIDLE"], 15) << *line;
    EXPECT_EQ(got["TCP_KEEPINTVL"], 15) << *line;
    EXPECT_EQ(got["TCP_KEEPCNT"], 9) << *line;
  }
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
}

// An option every MPTCP socket refuses is reported once, not once per
// socket: a program making many would flood stderr.
TEST(MultipathFailures, EachIsReportedOnce) {
  UniqueFd probe(socket(AF_INET, SOCK_STREAM, 262 /* IPPROTO_MPTCP */));
  if (!probe.valid()) GTEST_SKIP() << "no MPTCP here: " << strerror(errno);
  int one = 1;
  if (setsockopt(probe.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &one,
                 sizeof one) == 0) {
    GTEST_SKIP() << "this kernel takes TCP_USER_TIMEOUT on MPTCP sockets";
  }
  Listener server;
  std::string client = raw_tcp_path() + " connect " +
                       std::to_string(server.port()) + " --mptcp </dev/null";
  Outcome outcome =
      run(supervised({"--strategy", "emulate"},
                     {"/bin/sh", "-c", client + " && " + client + " && " + client}));
  ASSERT_EQ(outcome.shell_status(), 0) << outcome.err;
  size_t lines = 0;
  for (size_t at = outcome.err.find("setsockopt(TCP_USER_TIMEOUT");
       at != std::string::npos;
       at = outcome.err.find("setsockopt(TCP_USER_TIMEOUT", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 1u) << outcome.err;
}

// IPv6 sockets are covered like IPv4 ones (the filter matches AF_INET6).
class StaticTargetIpv6 : public ::testing::TestWithParam<Case> {};

TEST_P(StaticTargetIpv6, ClientAndServerCarryDefaults) {
  const Case& c = GetParam();
  Listener server(AF_INET6);
  Child client(supervised(
      c.flags(),
      {raw_tcp_path(), "connect", std::to_string(server.port()), "--ipv6"}));
  std::optional<std::string> line = client.wait_line("connected", 10s);
  ASSERT_TRUE(line) << client.transcript();
  UniqueFd peer = server.accept(5s);
  Expectation want;
  want.applied = c.client_gets_options();
  EXPECT_TRUE(
      carries(probe_options(word_as_int(*line, 3), server.port()), want))
      << client.transcript();

  Child listener(supervised(c.flags(), {raw_tcp_path(), "serve", "--ipv6"}));
  line = listener.wait_line("listening", 10s);
  ASSERT_TRUE(line) << listener.transcript();
  want.applied = c.server_gets_options();
  EXPECT_TRUE(carries(
      probe_options(word_as_int(*line, 3), word_as_int(*line, 1)), want))
      << listener.transcript();
}

INSTANTIATE_TEST_SUITE_P(Modes, StaticTargetIpv6,
                         ::testing::Values(Case{"socket", "emulate"},
                                           Case{"socket", "continue"},
                                           Case{"connect", "continue"},
                                           Case{"listen", "continue"}),
                         case_name);

// Emulation hands out a socket made by the supervisor: it must honour
// SOCK_CLOEXEC and SOCK_NONBLOCK, and UDP and UNIX sockets never get
// options (they are not even trapped).
class SocketKinds : public ::testing::TestWithParam<Case> {};

TEST_P(SocketKinds, FlagsHonouredAndOnlyTcpTouched) {
  const Case& c = GetParam();
  Outcome outcome =
      run(supervised(c.flags(), {raw_tcp_path(), "flags"}), {}, 20s);
  ASSERT_EQ(outcome.shell_status(), 0) << outcome.out << outcome.err;
  // flags makes sockets but never connects or listens: only emulation
  // gives them options.
  int want_keepalive = c.effective_strategy() == "emulate" ? 1 : 0;
  int tcp_lines = 0;
  std::istringstream lines(outcome.out);
  for (std::string line; std::getline(lines, line);) {
    Options got = parse_pairs(line);
    if (line.rfind("tcp ", 0) == 0) {
      ++tcp_lines;
      EXPECT_EQ(got["cloexec"], got["asked-cloexec"]) << line;
      EXPECT_EQ(got["nonblock"], got["asked-nonblock"]) << line;
      EXPECT_EQ(got["keepalive"], want_keepalive) << line;
    } else {
      EXPECT_EQ(got["keepalive"], 0) << line;
    }
  }
  EXPECT_EQ(tcp_lines, 5) << outcome.out;
}

INSTANTIATE_TEST_SUITE_P(Strategies, SocketKinds,
                         ::testing::Values(Case{"socket", "emulate"},
                                           Case{"socket", "continue"},
                                           Case{"connect", "emulate"}),
                         case_name);

// Whatever the supervisor does, the target's calls must return what they
// would without it: failing calls fail with the same errno, sockets that
// are not plain TCP are left alone, socket() returns the lowest free fd.
class Transparency : public ::testing::TestWithParam<Case> {};

TEST_P(Transparency, CallsReturnWhatTheyWouldWithoutSupervisor) {
  Outcome bare = run({raw_tcp_path(), "errnos"}, {}, 20s);
  ASSERT_EQ(bare.shell_status(), 0) << bare.out << bare.err;
  Outcome under =
      run(supervised(GetParam().flags(), {raw_tcp_path(), "errnos"}), {}, 20s);
  ASSERT_EQ(under.shell_status(), 0) << under.out << under.err;
  EXPECT_EQ(under.out, bare.out) << under.err;
}

// At the target's RLIMIT_NOFILE the supervisor cannot inject a socket:
// the target must get EMFILE, as without it, and the next socket() after
// an fd is freed must land on that fd.
TEST_P(Transparency, FileDescriptorLimitIsTheTargets) {
  Outcome under =
      run(supervised(GetParam().flags(), {raw_tcp_path(), "fdlimit"}), {}, 20s);
  ASSERT_EQ(under.shell_status(), 0) << under.out << under.err;
  Options got = parse_pairs(under.out);
  EXPECT_EQ(got["emfile_errno"], EMFILE) << under.out;
  EXPECT_EQ(got["reused"], 10) << under.out;
  // fdlimit never connects or listens: only emulation gives options.
  EXPECT_EQ(got["keepalive"],
            GetParam().effective_strategy() == "emulate" ? 1 : 0)
      << under.out;
}

INSTANTIATE_TEST_SUITE_P(AllModes, Transparency,
                         ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace keepalive::tests
