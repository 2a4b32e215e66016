// SPDX-License-Identifier: Apache-2.0
// Real programs run with each library preloaded; every value is what the
// kernel reports on the program's own socket (read by the program itself,
// or from outside it by sockopt_probe).
#include <gtest/gtest.h>
#include <stdio.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/preload/fixtures.h"
#include "tests/support/process.h"

namespace keepalive::tests {
namespace {

const std::vector<std::string> kEveryVariable = {
    "TCP_KEEPIDLE=40",       "TCP_KEEPCNT=4",        "TCP_KEEPINTVL=7",
    "TCP_USER_TIMEOUT=2000", "TCP_SYNCNT=3",         "TCP_DEFER_ACCEPT=10",
    "TCP_MAXSEG=1400",       "TCP_WINDOW_CLAMP=9999"};

std::vector<std::string> with(std::vector<std::string> env,
                              const std::string& extra) {
  env.push_back(extra);
  return env;
}

// Asserts upstream's defaults: keepalive on, 15/9/15, 150 s user timeout.
void expect_defaults(const OptionValues& v) {
  EXPECT_EQ(v.at("SO_KEEPALIVE"), 1);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), 15);
  EXPECT_EQ(v.at("TCP_KEEPCNT"), 9);
  EXPECT_EQ(v.at("TCP_KEEPINTVL"), 15);
  EXPECT_EQ(v.at("TCP_USER_TIMEOUT"), 150000);
}

void expect_untouched(const OptionValues& v) {
  EXPECT_EQ(v.at("SO_KEEPALIVE"), 0);
  EXPECT_EQ(v.at("TCP_USER_TIMEOUT"), 0);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), system_default(Option::kKeepIdle));
}

// The keepalive values of kEveryVariable (inherited by accepted sockets).
void expect_every_keepalive_variable(const OptionValues& v) {
  EXPECT_EQ(v.at("SO_KEEPALIVE"), 1);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), 40);
  EXPECT_EQ(v.at("TCP_KEEPCNT"), 4);
  EXPECT_EQ(v.at("TCP_KEEPINTVL"), 7);
  EXPECT_EQ(v.at("TCP_USER_TIMEOUT"), 2000);
  EXPECT_EQ(v.at("TCP_WINDOW_CLAMP"), 9999);
}

Outcome connect_report(const std::vector<std::string>& env) {
  LoopbackListener server;
  return run({helper("connect_report"), std::to_string(server.port())}, env);
}

TEST(ConnectLibraryTest, ClientSocketGetsUpstreamDefaults) {
  Outcome r = connect_report({preload({kConnectLibrary})});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.err, "") << "quiet unless LIBKEEPALIVE_DEBUG is set";
  OptionValues v = parse_options(r.out_lines());
  expect_defaults(v);
  EXPECT_EQ(v.at("TCP_SYNCNT"), system_default(Option::kSynCnt));
}

TEST(ConnectLibraryTest, EveryVariableButDeferAccept) {
  Outcome r =
      connect_report(with(kEveryVariable, preload({kConnectLibrary})));
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  OptionValues v = parse_options(r.out_lines());
  expect_every_keepalive_variable(v);
  EXPECT_EQ(v.at("TCP_SYNCNT"), 3);
  EXPECT_EQ(v.at("TCP_DEFER_ACCEPT"), 0);
  // On a connected socket the kernel reports the MSS in use, which is the
  // clamp minus TCP options; without the clamp loopback gives about 32K.
  EXPECT_LE(v.at("TCP_MAXSEG"), 1400);
  EXPECT_GT(v.at("TCP_MAXSEG"), 1000);
}

TEST(ConnectLibraryTest, ServerSocketsAreNotTouched) {
  Outcome r = run({helper("listen_report")}, {preload({kConnectLibrary})});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  expect_untouched(parse_options(r.out_lines(), "listener"));
  expect_untouched(parse_options(r.out_lines(), "accepted"));
  expect_defaults(parse_options(r.out_lines(), "client"));
}

TEST(ListenLibraryTest, ListenerAndAcceptedSocketsGetOptions) {
  Outcome r = run({helper("listen_report")},
                    with(kEveryVariable, preload({kListenLibrary})));
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  OptionValues listener = parse_options(r.out_lines(), "listener");
  expect_every_keepalive_variable(listener);
  EXPECT_EQ(listener.at("TCP_SYNCNT"), system_default(Option::kSynCnt))
      << "TCP_SYNCNT is for connecting sockets only";
  // The kernel rounds DEFER_ACCEPT up to whole SYN-ACK retransmissions.
  EXPECT_GE(listener.at("TCP_DEFER_ACCEPT"), 10);
  EXPECT_EQ(listener.at("TCP_MAXSEG"), 1400);
  // What a server's connections actually run with.
  expect_every_keepalive_variable(parse_options(r.out_lines(), "accepted"));
  expect_untouched(parse_options(r.out_lines(), "client"));
}

TEST(SocketLibraryTest, EveryTcpSocketGetsEveryOption) {
  for (const char* kind : {"tcp4", "tcp6"}) {
    SCOPED_TRACE(kind);
    Outcome r = run({helper("socket_report"), kind},
                      with(kEveryVariable, preload({kSocketLibrary})));
    if (r.exit_code() == 1 && std::string(kind) == "tcp6") {
      GTEST_SKIP() << "no IPv6 here: " << r.err;
    }
    ASSERT_EQ(r.exit_code(), 0) << r.err;
    OptionValues v = parse_options(r.out_lines());
    expect_every_keepalive_variable(v);
    EXPECT_EQ(v.at("TCP_SYNCNT"), 3);
    EXPECT_GE(v.at("TCP_DEFER_ACCEPT"), 10);
    EXPECT_EQ(v.at("TCP_MAXSEG"), 1400);
  }
}

TEST(SocketLibraryTest, ServerAndClientSocketsBothGetOptions) {
  Outcome r = run({helper("listen_report")}, {preload({kSocketLibrary})});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  for (const char* which : {"listener", "client", "accepted"}) {
    SCOPED_TRACE(which);
    expect_defaults(parse_options(r.out_lines(), which));
  }
}

TEST(SocketLibraryTest, FailedOptionIsReportedAndHarmless) {
  // MPTCP refuses some TCP options (USER_TIMEOUT, SYNCNT, WINDOW_CLAMP on
  // Linux 6.18); the socket must still be returned, with the rest applied.
  Outcome r = run({helper("socket_report"), "mptcp"},
                    with(kEveryVariable, preload({kSocketLibrary})));
  if (r.exit_code() == 1) GTEST_SKIP() << "no MPTCP here: " << r.err;
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  OptionValues v = parse_options(r.out_lines());
  EXPECT_EQ(v.at("SO_KEEPALIVE"), 1);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), 40);
  EXPECT_EQ(r.err, "") << "without LIBKEEPALIVE_DEBUG failures are silent";

  r = run({helper("socket_report"), "mptcp"},
          with(with(kEveryVariable, preload({kSocketLibrary})),
               "LIBKEEPALIVE_DEBUG=1"));
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  std::vector<std::string> lines = r.err_lines();
  if (lines.size() == 1) {
    GTEST_SKIP() << "this kernel's MPTCP accepts every option: " << r.err;
  }
  // One line for what was applied, then one per failure, e.g.
  // "libkeepalive: setsockopt(TCP_USER_TIMEOUT, 2000): Protocol not
  // available"; the kernel indeed does not hold the refused value.
  for (size_t i = 1; i < lines.size(); ++i) {
    char name[32] = "";
    int value = 0, reason = 0;
    ASSERT_EQ(
        sscanf(lines[i].c_str(), "libkeepalive: setsockopt(%31[A-Z_], %d): %n",
               name, &value, &reason),
        2)
        << lines[i];
    EXPECT_GT(lines[i].size(), static_cast<size_t>(reason))
        << "no reason given";
    EXPECT_NE(v.at(name), value) << lines[i];
  }
}

class NotTcpTest : public ::testing::TestWithParam<const char*> {};

TEST_P(NotTcpTest, UntouchedUnderSocketLibrary) {
  Outcome r = run({helper("socket_report"), GetParam()},
                    {preload({kSocketLibrary}), "LIBKEEPALIVE_DEBUG=1"});
  if (r.exit_code() == 1 && std::string(GetParam()) == "udp6") {
    GTEST_SKIP() << "no IPv6 here: " << r.err;
  }
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(parse_options(r.out_lines()).at("SO_KEEPALIVE"), 0);
  EXPECT_EQ(r.err, "") << "debug mode reports only sockets it touched";
}

INSTANTIATE_TEST_SUITE_P(Kinds, NotTcpTest,
                         ::testing::Values("udp4", "udp6", "unix-stream",
                                           "unix-dgram"),
                         [](const auto& test) {
                           std::string name = test.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

class EachLibraryTest : public ::testing::TestWithParam<std::string> {
 protected:
  // A helper run that exercises this library's hooked call.
  Outcome run_hooked_call(std::vector<std::string> env) {
    env.push_back(preload({GetParam()}));
    if (GetParam() == kListenLibrary)
      return run({helper("listen_report")}, env);
    if (GetParam() == kSocketLibrary) {
      return run({helper("socket_report"), "tcp4"}, env);
    }
    return connect_report(env);
  }
  // The report of the socket the hooked call touched.
  OptionValues touched(const Outcome& r) {
    return parse_options(r.out_lines(),
                         GetParam() == kListenLibrary ? "listener" : "");
  }
};

TEST_P(EachLibraryTest, ErrnoIsWhatTheRealCallLeft) {
  Outcome baseline = run({helper("errno_report")});
  ASSERT_EQ(baseline.exit_code(), 0) << baseline.err;
  // The baseline itself shows what is being checked.
  EXPECT_NE(baseline.out.find("socket_tcp ok 4242\n"), std::string::npos);
  EXPECT_NE(baseline.out.find("listen_tcp ok 4242\n"), std::string::npos);
  EXPECT_NE(baseline.out.find("connect_tcp ok 4242\n"), std::string::npos);
  EXPECT_NE(baseline.out.find("connect_refused -1 ECONNREFUSED\n"),
            std::string::npos);
  EXPECT_NE(baseline.out.find("connect_pipe -1 ENOTSOCK\n"), std::string::npos);
  EXPECT_NE(baseline.out.find("connect_bad_address -1 EFAULT\n"),
            std::string::npos);

  Outcome hooked = run({helper("errno_report")}, {preload({GetParam()})});
  ASSERT_EQ(hooked.exit_code(), 0) << hooked.err;
  EXPECT_EQ(hooked.out, baseline.out);
}

TEST_P(EachLibraryTest, NonTcpSocketsAreUntouched) {
  // Upstream sets SO_KEEPALIVE on these; we leave them as the program made
  // them, and say nothing about them even in debug mode.
  Outcome r = run({helper("non_tcp_report")},
                    {preload({GetParam()}), "LIBKEEPALIVE_DEBUG=1"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  for (const char* which : {"udp", "unix_listener", "unix_client"}) {
    EXPECT_EQ(parse_options(r.out_lines(), which).at("SO_KEEPALIVE"), 0)
        << which;
  }
  EXPECT_EQ(r.err, "");
}

TEST_P(EachLibraryTest, InvalidValueWarnsOnceAndTheProgramRuns) {
  Outcome r = run_hooked_call({"TCP_KEEPIDLE=abc"});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  ASSERT_EQ(r.err_lines().size(), 1u) << r.err;
  std::string line = r.err_lines()[0];
  EXPECT_EQ(line.rfind("libkeepalive: TCP_KEEPIDLE=\"abc\"", 0), 0u) << line;
  EXPECT_NE(line.find("system default"), std::string::npos) << line;
  // And it is true: the kernel's keepidle, and a timeout derived from it.
  OptionValues v = touched(r);
  int idle = system_default(Option::kKeepIdle);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), idle);
  EXPECT_EQ(v.at("TCP_KEEPCNT"), 9);
  EXPECT_EQ(v.at("TCP_USER_TIMEOUT"), (idle + 15 * 9) * 1000);
}

TEST_P(EachLibraryTest, AValueWithANewlineCannotForgeAWarning) {
  Outcome r = run_hooked_call({"TCP_KEEPIDLE=1\nlibkeepalive: forged"});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  ASSERT_EQ(r.err_lines().size(), 1u) << r.err;
  std::string line = r.err_lines()[0];
  EXPECT_EQ(line.rfind("libkeepalive: TCP_KEEPIDLE=\"1\\nlibkeepalive: forged\"",
                       0),
            0u)
      << line;
}

TEST_P(EachLibraryTest, DebugPrintsOneLinePerSocketTouched) {
  Outcome r = run_hooked_call({"LIBKEEPALIVE_DEBUG="});  // set, empty
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  ASSERT_EQ(r.err_lines().size(), 1u) << r.err;
  // "libkeepalive: fd 3 (connect): SO_KEEPALIVE=1 ..."
  std::string line = r.err_lines()[0];
  int fd = -1, applied = 0;
  char mode[16] = "";
  ASSERT_EQ(sscanf(line.c_str(), "libkeepalive: fd %d (%15[a-z]): %n", &fd,
                   mode, &applied),
            2)
      << line;
  EXPECT_GE(fd, 0);
  EXPECT_EQ(line.substr(applied),
            "SO_KEEPALIVE=1 TCP_KEEPIDLE=15 TCP_KEEPCNT=9 TCP_KEEPINTVL=15 "
            "TCP_USER_TIMEOUT=150000");
}

TEST_P(EachLibraryTest, KeepaliveOffDisablesEverything) {
  Outcome r = run_hooked_call({"KEEPALIVE=off", "TCP_SYNCNT=3"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  OptionValues v = touched(r);
  expect_untouched(v);
  EXPECT_EQ(v.at("TCP_SYNCNT"), system_default(Option::kSynCnt));
}

TEST_P(EachLibraryTest, LegacyNamesWorkAndTcpNamesWin) {
  Outcome r = run_hooked_call({"KEEPALIVE=on", "KEEPIDLE=30", "KEEPCNT=4",
                                 "TCP_KEEPCNT=5", "KEEPINTVL=6"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.err, "");
  OptionValues v = touched(r);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), 30);
  EXPECT_EQ(v.at("TCP_KEEPCNT"), 5);
  EXPECT_EQ(v.at("TCP_KEEPINTVL"), 6);
  EXPECT_EQ(v.at("TCP_USER_TIMEOUT"), (30 + 6 * 5) * 1000);
}

INSTANTIATE_TEST_SUITE_P(Libraries, EachLibraryTest,
                         ::testing::Values(kConnectLibrary, kListenLibrary,
                                           kSocketLibrary),
                         [](const auto& test) {
                           if (test.param == kListenLibrary) return "listen";
                           if (test.param == kSocketLibrary) return "socket";
                           return "connect";
                         });

TEST(CombinedTest, ConnectAndListenLibrariesTogether) {
  Outcome r = run({helper("listen_report")},
                    {preload({kConnectLibrary, kListenLibrary})});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  for (const char* which : {"listener", "client", "accepted"}) {
    SCOPED_TRACE(which);
    expect_defaults(parse_options(r.out_lines(), which));
  }
}

TEST(CombinedTest, InvalidValueWarnsOncePerProcess) {
  Outcome r = run({helper("listen_report")},
                    {preload({kConnectLibrary, kListenLibrary, kSocketLibrary}),
                     "TCP_KEEPIDLE=abc"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.err_lines().size(), 1u) << r.err;
}

// Ours are told apart by a note only they carry, not by their file name:
// another libkeepalive*.so preloaded first does not silence our warning,
// and a renamed copy of ours does not repeat it.
TEST(CombinedTest, WarnsOnceWhateverElseIsPreloaded) {
  Outcome r = run({helper("listen_report")},
                  {preload({KEEPALIVE_IMPOSTOR_LIBRARY, kSocketLibrary}),
                   "TCP_KEEPIDLE=abc"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.err_lines().size(), 1u) << r.err;
  EXPECT_NE(r.err.find("TCP_KEEPIDLE"), std::string::npos) << r.err;

  char dir[] = "/tmp/keepalive-renamed-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  std::string renamed = std::string(dir) + "/libsomething-else.so";
  ASSERT_EQ(run({"cp", kConnectLibrary, renamed}).exit_code(), 0);
  r = run({helper("listen_report")},
          {preload({renamed, kListenLibrary}), "TCP_KEEPIDLE=abc"});
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.err_lines().size(), 1u) << r.err;
  run({"rm", "-rf", dir});
}

TEST(ForkExecTest, ChildrenKeepCoverage) {
  LoopbackListener server;
  Outcome r = run({helper("fork_exec"), helper("connect_report"),
                     std::to_string(server.port())},
                    {preload({kConnectLibrary}), "TCP_KEEPIDLE=33"});
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  OptionValues v = parse_options(r.out_lines());
  EXPECT_EQ(v.at("SO_KEEPALIVE"), 1);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), 33);
  EXPECT_EQ(v.at("TCP_USER_TIMEOUT"), (33 + 15 * 9) * 1000);
}

// Unmodified netcat, its socket read from outside with sockopt_probe.
class NetcatClientTest : public ::testing::TestWithParam<std::string> {};

TEST_P(NetcatClientTest, ClientOptionsSeenFromOutside) {
  LoopbackListener server;
  std::string port = std::to_string(server.port());
  // stdin is /dev/null; Debian's nc keeps the connection open after EOF.
  Process nc({"nc", "127.0.0.1", port},
                {preload({GetParam()}), "TCP_KEEPIDLE=42"});
  Outcome probe =
      run({helper("sockopt_probe"), std::to_string(nc.pid()), port, "5000"});
  ASSERT_EQ(probe.exit_code(), 0) << probe.err;
  OptionValues v = parse_options(probe.out_lines());
  EXPECT_EQ(v.at("SO_KEEPALIVE"), 1);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), 42);
  EXPECT_EQ(v.at("TCP_USER_TIMEOUT"), (42 + 15 * 9) * 1000);
}

INSTANTIATE_TEST_SUITE_P(Libraries, NetcatClientTest,
                         ::testing::Values(kConnectLibrary, kSocketLibrary),
                         [](const auto& test) {
                           return test.param == kSocketLibrary ? "socket"
                                                               : "connect";
                         });

TEST(NetcatTest, ListeningServerOptionsSeenFromOutside) {
  std::string port = std::to_string(free_port());
  Process nc({"nc", "-l", "127.0.0.1", port},
                {preload({kListenLibrary}), "TCP_KEEPIDLE=42"});
  UniqueFd client = connect_with_retry(std::stoi(port), 5000);
  ASSERT_TRUE(client.valid()) << "nc -l never listened on " << port;
  Outcome probe =
      run({helper("sockopt_probe"), std::to_string(nc.pid()), port, "5000"});
  ASSERT_EQ(probe.exit_code(), 0) << probe.err;
  OptionValues v = parse_options(probe.out_lines());
  EXPECT_EQ(v.at("SO_KEEPALIVE"), 1);
  EXPECT_EQ(v.at("TCP_KEEPIDLE"), 42);
}

TEST(NetcatTest, WithoutLibraryNothingIsSet) {
  LoopbackListener server;
  std::string port = std::to_string(server.port());
  Process nc({"nc", "127.0.0.1", port}, {});
  Outcome probe =
      run({helper("sockopt_probe"), std::to_string(nc.pid()), port, "5000"});
  ASSERT_EQ(probe.exit_code(), 0) << probe.err;
  expect_untouched(parse_options(probe.out_lines()));
}

}  // namespace
}  // namespace keepalive::tests
