// SPDX-License-Identifier: Apache-2.0
// The emulate strategy's identity rule: a socket the supervisor makes
// carries the supervisor's credentials (sk_uid: iptables owner match, uid
// routing) and lives in the supervisor's network namespace, so it may only
// be handed to a target with the same credentials and namespace. A target
// that changed either must get a socket it made itself: the supervisor lets
// the call through (no options) and warns once. Under the continue
// strategy, which puts options on the target's own socket, such targets are
// covered and keep their own identity.
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <optional>
#include <sstream>
#include <string>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

constexpr uid_t kNobody = 65534;

class CredentialChange : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to change credentials";
  }

  // Runs `raw_tcp setuid 65534 PORT` under the supervisor with `flags`;
  // returns the uid owning its connected socket and its options.
  // `extra`: more arguments for `raw_tcp setuid`. With --after-socket,
  // `before` receives SO_KEEPALIVE of the socket made before the drop.
  void run_target(const std::vector<std::string>& flags, uid_t* owner,
                  Options* options, std::string* stderr_text,
                  const std::vector<std::string>& extra = {},
                  int* before = nullptr) {
    Listener server;
    std::vector<std::string> command = {raw_tcp_path(), "setuid",
                                        std::to_string(kNobody),
                                        std::to_string(server.port())};
    command.insert(command.end(), extra.begin(), extra.end());
    Child target(supervised(flags, command));
    if (before != nullptr) {
      std::optional<std::string> first = target.wait_line("before", 10s);
      ASSERT_TRUE(first) << target.transcript();
      *before = static_cast<int>(parse_pairs(*first)["keepalive"]);
    }
    std::optional<std::string> line = target.wait_line("connected", 10s);
    ASSERT_TRUE(line) << target.transcript();
    UniqueFd peer = server.accept(5s);
    std::optional<uid_t> uid = socket_uid(word_as_int(*line, 1), server.port());
    ASSERT_TRUE(uid) << "socket not in /proc/net/tcp: " << *line;
    *owner = *uid;
    std::string detail;
    *options = probe_options(word_as_int(*line, 3), server.port(), 5s, &detail);
    ASSERT_FALSE(options->empty()) << detail;
    target.close_stdin();
    EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
    *stderr_text = target.err();
  }
};

TEST_F(CredentialChange, EmulationLetsTheCallThroughAndWarnsOnce) {
  for (const char* strategy : {"emulate", "auto"}) {
    SCOPED_TRACE(strategy);
    uid_t owner = 0;
    Options options;
    std::string err;
    run_target({"--mode", "socket", "--strategy", strategy}, &owner, &options,
               &err);
    if (HasFatalFailure()) return;
    // The target's own socket, not one made with root's credentials.
    EXPECT_EQ(owner, kNobody);
    Expectation untouched;
    untouched.applied = false;
    EXPECT_TRUE(carries(options, untouched));
    // Three TCP sockets, one warning.
    EXPECT_EQ(count_of(err, "other credentials"), 1u) << err;
  }
}

// The same target judged once already: its first socket, made as root,
// is emulated; after the drop the supervisor must notice the change (the
// filter traps the setuid family to that end) and stop emulating.
TEST_F(CredentialChange, DropAfterAFirstSocketIsNoticed) {
  uid_t owner = 0;
  Options options;
  std::string err;
  int before = -1;
  run_target({"--strategy", "emulate"}, &owner, &options, &err,
             {"--after-socket"}, &before);
  if (HasFatalFailure()) return;
  EXPECT_EQ(before, 1) << "the socket made as root was not emulated";
  EXPECT_EQ(owner, kNobody);
  Expectation untouched;
  untouched.applied = false;
  EXPECT_TRUE(carries(options, untouched));
  EXPECT_EQ(count_of(err, "other credentials"), 1u) << err;
}

// The same drop made through the 32-bit system call ABI (int $0x80), which
// a 64-bit process can use wherever the kernel has IA32 emulation. The
// seccomp filter sees those calls under another architecture.
TEST_F(CredentialChange, DropThroughThe32BitAbiIsNoticed) {
  Outcome probe = run({raw_tcp_path(), "int80-probe"}, {}, 10s);
  if (probe.out.find("int80 ok") == std::string::npos) {
    GTEST_SKIP() << "the 32-bit system call ABI is unavailable here "
                    "(no IA32 emulation, or int $0x80 faults)";
  }
  uid_t owner = 0;
  Options options;
  std::string err;
  int before = -1;
  run_target({"--strategy", "emulate"}, &owner, &options, &err,
             {"--after-socket", "--int80"}, &before);
  if (HasFatalFailure()) return;
  EXPECT_EQ(before, 1);
  EXPECT_EQ(owner, kNobody)
      << "a socket with root's credentials went to a process of nobody";
}

// exec of a set-group-ID program changes the effective gid of the same
// thread (no_new_privs is off for a supervisor with CAP_SYS_ADMIN): after a
// first emulated socket, the program's sockets must be its own. Also when a
// second thread execs: the program then runs under the first thread's tid.
class SetgidExec : public CredentialChange,
                   public ::testing::WithParamInterface<bool> {};

TEST_P(SetgidExec, AfterAFirstSocketIsNoticed) {
  std::vector<std::string> exec_args = {raw_tcp_path(), "exec-after-socket"};
  if (GetParam()) exec_args.push_back("--from-thread");
  char dir_template[] = "/tmp/keepalive-sgid-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr) << strerror(errno);
  std::string dir = dir_template;
  std::string program = dir + "/raw_tcp_sgid";
  struct statvfs fs {};
  ASSERT_EQ(statvfs(dir.c_str(), &fs), 0);
  bool usable = (fs.f_flag & ST_NOSUID) == 0 &&
                run({"/bin/cp", raw_tcp_path(), program}).shell_status() == 0 &&
                chmod(dir.c_str(), 0755) == 0 &&
                chown(program.c_str(), 0, kNobody) == 0 &&
                chmod(program.c_str(), 02755) == 0;
  if (usable) {
    Listener server;
    for (const std::string& arg :
         {program, std::string("connect"), std::to_string(server.port())}) {
      exec_args.push_back(arg);
    }
    Child target(supervised({"--strategy", "emulate"}, exec_args));
    std::optional<std::string> before = target.wait_line("before", 10s);
    std::optional<std::string> line = target.wait_line("connected", 10s);
    UniqueFd peer = server.accept(5s);
    if (before && line) {
      EXPECT_EQ(parse_pairs(*before)["keepalive"], 1) << *before;
      Expectation untouched;
      untouched.applied = false;
      EXPECT_TRUE(carries(probe_options(word_as_int(*line, 3), server.port()),
                          untouched))
          << target.transcript();
      target.close_stdin();
      EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
      EXPECT_EQ(count_of(target.err(), "other credentials"), 1u)
          << target.err();
    } else {
      ADD_FAILURE() << target.transcript();
    }
  }
  unlink(program.c_str());
  rmdir(dir.c_str());
  if (!usable) GTEST_SKIP() << "cannot make a set-group-ID program in /tmp";
}

INSTANTIATE_TEST_SUITE_P(FromTheCallerOrAnotherThread, SetgidExec,
                         ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "FromAnotherThread"
                                              : "FromTheSocketsThread";
                         });

TEST_F(CredentialChange, ContinueCoversTheTargetUnderItsOwnUid) {
  for (const char* mode : {"socket", "connect"}) {
    SCOPED_TRACE(mode);
    uid_t owner = 0;
    Options options;
    std::string err;
    run_target({"--mode", mode, "--strategy", "continue"}, &owner, &options,
               &err);
    if (HasFatalFailure()) return;
    EXPECT_EQ(owner, kNobody);
    EXPECT_TRUE(carries(options, Expectation{})) << err;
  }
}

// The inode of the network namespace `path` names.
ino_t netns_inode(const std::string& path) {
  struct stat st {};
  stat(path.c_str(), &st);
  return st.st_ino;
}

class NamespaceChange : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to unshare";
    Outcome probe = run({"/usr/bin/unshare", "-n", "true"}, {}, 10s);
    if (probe.shell_status() != 0) {
      GTEST_SKIP() << "network namespaces refused here: " << probe.err;
    }
  }
};

// The target (or, with the parameter set, one of its threads: namespaces
// are per thread) moves to a new network namespace, then makes sockets.
TEST_P(NamespaceChange, SocketLivesInTheTargetsNamespace) {
  // Listening in the test's (host) namespace only: from the target's new,
  // empty namespace it must be unreachable.
  Listener server;
  ino_t host = netns_inode("/proc/self/ns/net");
  for (const char* strategy : {"emulate", "auto", "continue"}) {
    SCOPED_TRACE(strategy);
    std::vector<std::string> command = {raw_tcp_path(), "netns",
                                        std::to_string(server.port())};
    if (GetParam()) command.push_back("--thread");
    Outcome outcome =
        run(supervised({"--mode", "socket", "--strategy", strategy}, command),
            {}, 20s);
    ASSERT_EQ(outcome.shell_status(), 0) << outcome.out << outcome.err;
    int lines = 0;
    std::istringstream stream(outcome.out);
    for (std::string line; std::getline(stream, line);) {
      if (line.rfind("netns ", 0) != 0) continue;
      ++lines;
      Options got = parse_pairs(line);
      EXPECT_EQ(got["sock"], got["self"]) << line;
      EXPECT_NE(static_cast<ino_t>(got["sock"]), host) << line;
      EXPECT_NE(got["connect_errno"], 0)
          << "reached a port of the host's namespace: " << line;
    }
    EXPECT_EQ(lines, 2) << outcome.out;
    if (std::string(strategy) != "continue") {
      EXPECT_EQ(count_of(outcome.err, "another network namespace"), 1u)
          << outcome.err;
    }
  }
}

// A target that made a socket (emulated) before moving to a new network
// namespace: its later sockets must live in the new one.
TEST_P(NamespaceChange, MoveAfterAFirstSocketIsNoticed) {
  Listener server;
  std::vector<std::string> command = {raw_tcp_path(), "netns",
                                      std::to_string(server.port()), "--late"};
  if (GetParam()) command.push_back("--thread");
  Outcome outcome =
      run(supervised({"--strategy", "emulate"}, command), {}, 20s);
  ASSERT_EQ(outcome.shell_status(), 0) << outcome.out << outcome.err;
  EXPECT_NE(outcome.out.find("before keepalive=1"), std::string::npos)
      << "the first socket was not emulated\n"
      << outcome.out;
  int lines = 0;
  std::istringstream stream(outcome.out);
  for (std::string line; std::getline(stream, line);) {
    if (line.rfind("netns ", 0) != 0) continue;
    ++lines;
    Options got = parse_pairs(line);
    EXPECT_EQ(got["sock"], got["self"]) << line;
    EXPECT_NE(got["connect_errno"], 0) << line;
  }
  EXPECT_EQ(lines, 2) << outcome.out;
}

INSTANTIATE_TEST_SUITE_P(WholeProcessOrOneThread, NamespaceChange,
                         ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? std::string("one_thread")
                                          : std::string("process");
                         });

// The supervisor run by an ordinary user, as most people will: no_new_privs
// is set, no CAP_SYS_PTRACE, and pidfd_getfd works only on targets that
// stay dumpable.
class UnprivilegedSupervisor : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to become nobody";
    if (access(kSetpriv, X_OK) != 0) {
      GTEST_SKIP() << kSetpriv << " is missing (Debian package util-linux)";
    }
  }

  // Runs `raw_tcp connect PORT [extra]` under a supervisor run as nobody
  // and reads its socket back from outside (the test is root).
  void check(const std::vector<std::string>& flags,
             const std::vector<std::string>& extra, const Expectation& want,
             std::string* err = nullptr) {
    Listener server;
    std::vector<std::string> argv = {kSetpriv, "--reuid=65534", "--regid=65534",
                                     "--clear-groups"};
    std::vector<std::string> command = {raw_tcp_path(), "connect",
                                        std::to_string(server.port())};
    command.insert(command.end(), extra.begin(), extra.end());
    for (const std::string& arg : supervised(flags, command)) {
      argv.push_back(arg);
    }
    Child target(argv);
    std::optional<std::string> line = target.wait_line("connected", 10s);
    ASSERT_TRUE(line) << target.transcript();
    UniqueFd peer = server.accept(5s);
    std::string detail;
    EXPECT_TRUE(carries(
        probe_options(word_as_int(*line, 3), server.port(), 5s, &detail), want))
        << detail << "\n"
        << target.transcript();
    EXPECT_EQ(socket_uid(word_as_int(*line, 1), server.port()), kNobody);
    target.close_stdin();
    EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
    if (err != nullptr) *err = target.err();
  }

  static constexpr const char* kSetpriv = "/usr/bin/setpriv";
};

TEST_F(UnprivilegedSupervisor, EveryStrategyWorks) {
  for (const char* mode : {"socket", "connect"}) {
    for (const char* strategy : {"emulate", "continue", "auto"}) {
      SCOPED_TRACE(std::string(mode) + " " + strategy);
      check({"--mode", mode, "--strategy", strategy}, {}, Expectation{});
    }
  }
}

// A target that makes itself non-dumpable (as sshd, gpg-agent and other
// guardians of secrets do) cannot be reached with pidfd_getfd without
// CAP_SYS_PTRACE; emulation needs no such permission and must still cover
// it, since its credentials and namespace are the supervisor's.
TEST_F(UnprivilegedSupervisor, EmulationCoversNonDumpableTarget) {
  check({"--strategy", "emulate"}, {"--nodump"}, Expectation{});
}

// Continue cannot: the call goes through untouched, with one warning.
TEST_F(UnprivilegedSupervisor, ContinueWarnsOnceAboutNonDumpableTarget) {
  Expectation untouched;
  untouched.applied = false;
  std::string err;
  check({"--strategy", "continue"}, {"--nodump"}, untouched, &err);
  EXPECT_EQ(count_of(err, "refused (EPERM)"), 1u) << err;
}

}  // namespace
}  // namespace keepalive::tests
