// SPDX-License-Identifier: Apache-2.0
// Calls made through another architecture's numbers, and socket()
// arguments the kernel truncates: the supervisor must see what the kernel
// sees. A 32-bit program (drop32, gcc -m32 -static) drops to nobody through
// setresuid32 and makes TCP sockets through i386's direct socket() (359,
// handled like the x86-64 call) and socketcall() (102, let through: its
// arguments are in the program's memory).
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

constexpr uid_t kNobody = 65534;

// socket() with bit 32 set in each argument register makes an ordinary TCP
// socket (the kernel reads ints); the filter must trap it like any other.
TEST(SocketArguments, HighBitsAreIgnoredAsTheKernelIgnoresThem) {
  Listener server;
  Child target(supervised({"--strategy", "emulate"},
                          {raw_tcp_path(), "connect",
                           std::to_string(server.port()), "--high-bits"}));
  std::optional<std::string> line = target.wait_line("connected", 10s);
  ASSERT_TRUE(line) << target.transcript();
  UniqueFd peer = server.accept(5s);
  std::string detail;
  Options options =
      probe_options(word_as_int(*line, 3), server.port(), 5s, &detail);
  ASSERT_FALSE(options.empty()) << detail;
  EXPECT_TRUE(carries(options, Expectation{})) << *line;
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
}

#if defined(KEEPALIVE_DROP32_PATH)

// Why `path` cannot be executed: the errno of execve, or "" if it can.
std::string exec_error(const std::string& path) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return strerror(errno);
  pid_t pid = fork();
  if (pid == 0) {
    char* argv[] = {const_cast<char*>(path.c_str()),
                    const_cast<char*>("probe"), nullptr};
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDOUT_FILENO);
    execv(argv[0], argv);
    int err = errno;
    ssize_t ignored = write(fds[1], &err, sizeof err);
    (void)ignored;
    _exit(127);
  }
  close(fds[1]);
  int err = 0;
  ssize_t n = pid > 0 ? read(fds[0], &err, sizeof err) : -1;
  close(fds[0]);
  if (pid > 0) waitpid(pid, nullptr, 0);
  return n == sizeof err ? std::string("execve: ") + strerror(err) : "";
}

class ThirtyTwoBitProgram : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to change credentials";
    Outcome probe = run({KEEPALIVE_DROP32_PATH, "probe"}, {}, 10s);
    if (probe.out.find("drop32 ok") == std::string::npos) {
      std::string why = exec_error(KEEPALIVE_DROP32_PATH);
      if (why.empty()) {
        why = probe.shell_status() ? "exit " + std::to_string(*probe.shell_status())
                              : std::string("killed at the deadline");
      }
      GTEST_SKIP() << "32-bit programs cannot run on this machine (" << why
                   << ")";
    }
  }
};

// Emulate: the socket made as root through 359 is emulated; socketcall's
// is the program's own; after setresuid32 the supervisor notices the drop
// and lets the call through, so the socket is nobody's and has no options.
// Continue: connect() through 362 gets the options on the program's own
// socket, which stays nobody's.
TEST_P(ThirtyTwoBitProgram, DropsThroughSetresuid32AndOwnsItsSocket) {
  const bool emulate = std::string(GetParam()) == "emulate";
  Listener server;
  Child target(supervised({"--strategy", GetParam()},
                          {KEEPALIVE_DROP32_PATH, std::to_string(kNobody),
                           std::to_string(server.port())}));
  std::optional<std::string> direct = target.wait_line("before direct", 10s);
  ASSERT_TRUE(direct) << target.transcript();
  EXPECT_EQ(parse_pairs(*direct)["keepalive"], emulate ? 1 : 0) << *direct;
  std::optional<std::string> muxed = target.wait_line("before socketcall", 5s);
  ASSERT_TRUE(muxed) << target.transcript();
  EXPECT_EQ(parse_pairs(*muxed)["keepalive"], 0) << *muxed;

  std::optional<std::string> line = target.wait_line("connected", 10s);
  ASSERT_TRUE(line) << target.transcript();
  UniqueFd peer = server.accept(5s);
  std::optional<uid_t> owner =
      socket_uid(word_as_int(*line, 1), server.port());
  ASSERT_TRUE(owner) << "socket not in /proc/net/tcp: " << *line;
  EXPECT_EQ(*owner, kNobody)
      << "a socket with root's credentials went to a process of nobody";
  std::string detail;
  Options options =
      probe_options(word_as_int(*line, 3), server.port(), 5s, &detail);
  ASSERT_FALSE(options.empty()) << detail;
  Expectation want;
  want.applied = !emulate;
  EXPECT_TRUE(carries(options, want)) << *line;
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
  if (emulate) {
    EXPECT_EQ(count_of(target.err(), "other credentials"), 1u)
        << target.err();
  }
}

INSTANTIATE_TEST_SUITE_P(Strategies, ThirtyTwoBitProgram,
                         ::testing::Values("emulate", "continue"));

#else

TEST(ThirtyTwoBitProgram, DropsThroughSetresuid32AndOwnsItsSocket) {
  GTEST_SKIP() << "32-bit programs cannot be built here (gcc -m32 -static "
                  "failed; Debian package gcc-multilib)";
}

#endif

}  // namespace
}  // namespace keepalive::tests
