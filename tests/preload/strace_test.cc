// SPDX-License-Identifier: Apache-2.0
// The check upstream's users know: `strace -f -e trace=network` around
// netcat-openbsd's nc prints our setsockopt calls with upstream's values, in
// upstream's order, before the call they prepare.
#include <gtest/gtest.h>
#include <stdio.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "tests/preload/fixtures.h"
#include "tests/support/process.h"

namespace keepalive::tests {
namespace {

using Lines = std::vector<std::string>;

const Lines kDefaultLines = {"SO_KEEPALIVE 1", "TCP_KEEPIDLE 15",
                             "TCP_KEEPCNT 9", "TCP_KEEPINTVL 15",
                             "TCP_USER_TIMEOUT 150000"};

Lines concat(Lines a, const Lines& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

size_t occurrences(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + needle.size())) {
    ++count;
  }
  return count;
}

bool is_our_option(const std::string& name) {
  for (int i = 0; i < kOptionCount; ++i) {
    if (name == option_info(static_cast<Option>(i)).sockopt_name) return true;
  }
  return false;
}

// "NAME VALUE" for each successful setsockopt of one of our options, in the
// order strace saw them, e.g. from
// "setsockopt(3, SOL_TCP, TCP_USER_TIMEOUT, [150000], 4) = 0".
Lines our_setsockopts(const std::string& trace) {
  Lines found;
  std::istringstream lines(trace);
  for (std::string line; std::getline(lines, line);) {
    size_t call = line.find("setsockopt(");
    if (call == std::string::npos) continue;
    int fd = -1, value = 0, end = 0;
    char level[16] = "", name[32] = "";
    sscanf(line.c_str() + call,
           "setsockopt(%d, SOL_%15[A-Z], %31[A-Z_], [%d], 4) = 0%n", &fd, level,
           name, &value, &end);
    if (end > 0 && is_our_option(name)) {
      found.push_back(std::string(name) + " " + std::to_string(value));
    }
  }
  return found;
}

// strace's argv for `nc ARGS` with `env` given to nc only.
std::vector<std::string> strace_nc(const std::vector<std::string>& env,
                                   const std::vector<std::string>& nc_args) {
  std::vector<std::string> argv = {"strace", "-f", "-e", "trace=network"};
  for (const std::string& e : env) {
    argv.push_back("-E");
    argv.push_back(e);
  }
  argv.push_back("nc");
  argv.insert(argv.end(), nc_args.begin(), nc_args.end());
  return argv;
}

// nc connecting to a port that refuses; returns strace's output.
std::string trace_client(const std::vector<std::string>& env) {
  ClosedPort closed;
  Outcome r =
      run(strace_nc(env, {"127.0.0.1", std::to_string(closed.port())}), {});
  EXPECT_EQ(r.exit_code(), 1) << "nc reports the refused connection\n" << r.err;
  EXPECT_NE(r.err.find("ECONNREFUSED"), std::string::npos) << r.err;
  return r.err;
}

TEST(StraceTest, ConnectLibraryPrintsUpstreamsDefaultLines) {
  std::string trace = trace_client({preload({kConnectLibrary})});
  EXPECT_EQ(our_setsockopts(trace), kDefaultLines) << trace;
  EXPECT_NE(trace.find(", SOL_TCP, TCP_USER_TIMEOUT, [150000], 4) = 0"),
            std::string::npos)
      << trace;
  // All of them before the connect() they prepare.
  size_t inet_connect = trace.find("connect(", trace.find("socket(AF_INET"));
  EXPECT_LT(trace.rfind("setsockopt("), inet_connect) << trace;
}

// What the libraries ask the kernel about a socket before their options:
// one getsockopt (SO_PROTOCOL) for connect() and socket() (whose arguments
// give the family and type), so that a connection costs six system calls
// more, not eight.
TEST(StraceTest, OneGetsockoptBeforeTheOptions) {
  for (const char* library : {kConnectLibrary, kSocketLibrary}) {
    std::string trace = trace_client({preload({library})});
    size_t inet = trace.find("socket(AF_INET");
    ASSERT_NE(inet, std::string::npos) << trace;
    size_t first_option = trace.find("setsockopt(", inet);
    ASSERT_NE(first_option, std::string::npos) << trace;
    std::string before = trace.substr(inet, first_option - inet);
    EXPECT_EQ(occurrences(before, "getsockopt("), 1u)
        << library << "\n" << trace;
    EXPECT_EQ(occurrences(before, "SO_PROTOCOL"), 1u)
        << library << "\n" << trace;
  }
}

TEST(StraceTest, ConnectLibraryAddsSynCntMaxSegWindowClampInOrder) {
  std::string trace = trace_client({preload({kConnectLibrary}), "TCP_SYNCNT=1",
                                    "TCP_MAXSEG=1400", "TCP_WINDOW_CLAMP=9999",
                                    "TCP_DEFER_ACCEPT=10"});
  EXPECT_EQ(our_setsockopts(trace),
            concat(kDefaultLines, {"TCP_SYNCNT 1", "TCP_MAXSEG 1400",
                                   "TCP_WINDOW_CLAMP 9999"}))
      << trace;
}

TEST(StraceTest, SocketLibrarySetsEverythingInUpstreamOrder) {
  std::string trace = trace_client({preload({kSocketLibrary}), "TCP_SYNCNT=1",
                                    "TCP_DEFER_ACCEPT=10", "TCP_MAXSEG=1400",
                                    "TCP_WINDOW_CLAMP=9999"});
  EXPECT_EQ(our_setsockopts(trace),
            concat(kDefaultLines, {"TCP_SYNCNT 1", "TCP_DEFER_ACCEPT 10",
                                   "TCP_MAXSEG 1400", "TCP_WINDOW_CLAMP 9999"}))
      << trace;
}

TEST(StraceTest, ListenLibraryPrintsNoSynCntLine) {
  std::string port = std::to_string(free_port());
  Process nc(strace_nc({preload({kListenLibrary}), "TCP_SYNCNT=1",
                           "TCP_DEFER_ACCEPT=10"},
                          {"-l", "127.0.0.1", port}),
                {});
  ASSERT_TRUE(nc.wait_for_output("listen(", milliseconds(5000)));
  Outcome r = nc.wait(milliseconds(0));  // kills nc and strace
  EXPECT_EQ(our_setsockopts(r.err),
            concat(kDefaultLines, {"TCP_DEFER_ACCEPT 10"}))
      << r.err;
  EXPECT_EQ(r.err.find("TCP_SYNCNT"), std::string::npos) << r.err;
}

// Only the old variables (KEEPALIVE, KEEPIDLE, KEEPCNT, KEEPINTVL): our
// libkeepalive_socket.so makes the calls Debian's libkeepalive0 made, in
// its order, with no defaults of ours and no user timeout.
TEST(StraceTest, OldVariablesDoWhatLibkeepalive0Did) {
  const std::string theirs = KEEPALIVE_LIBKEEPALIVE0;
  if (access(theirs.c_str(), R_OK) != 0) {
    GTEST_SKIP() << theirs << " is missing: packaging/dev.sh test fetches it "
                 << "(tests/preload/fetch_libkeepalive0.sh)";
  }
  const std::vector<std::vector<std::string>> cases = {
      {"KEEPIDLE=600"},
      {"KEEPCNT=3", "KEEPINTVL=7", "KEEPIDLE=5"},
      {"KEEPALIVE=on"},
      {"KEEPALIVE=off", "KEEPIDLE=9"},
  };
  for (const std::vector<std::string>& env : cases) {
    SCOPED_TRACE(::testing::PrintToString(env));
    std::vector<std::string> with_theirs = env, with_ours = env;
    with_theirs.push_back("LD_PRELOAD=" + theirs);
    with_ours.push_back(preload({kSocketLibrary}));
    Lines expected = our_setsockopts(trace_client(with_theirs));
    EXPECT_EQ(our_setsockopts(trace_client(with_ours)), expected);
    if (env[0] == "KEEPIDLE=600") {
      EXPECT_EQ(expected, (Lines{"SO_KEEPALIVE 1", "TCP_KEEPIDLE 600"}));
    }
  }
}

TEST(StraceTest, WithoutLibraryNoOptionIsSet) {
  EXPECT_EQ(our_setsockopts(trace_client({})), Lines{});
}

}  // namespace
}  // namespace keepalive::tests
