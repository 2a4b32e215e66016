// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise as a well-behaved wrapper, run as the real binary:
// exit statuses, signal forwarding, stdio/environment/signal-mask
// passthrough, death of the supervisor, io_uring, --check, -v, and life
// under a seccomp profile that refuses pidfd_getfd (Docker's default).
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "supervisor/syscalls.h"
#include "tests/common/scratch_dir.h"
#include "tests/support/process.h"

namespace keepalive {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Every wait in this file is bounded by this; generous, since the machine
// is shared and noisy.
constexpr std::chrono::milliseconds kBound = 20s;

const std::string kSupervise = KEEPALIVE_SUPERVISE;
const std::string kIoUringReport = IO_URING_REPORT;
const std::string kDenySyscalls = DENY_SYSCALLS;

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

using Outcome = tests::Outcome;
using Process = tests::Process;
using ProcessOptions = tests::ProcessOptions;
using tests::clean_environment;
using tests::run;
using tests::split_lines;

std::vector<std::string> supervised(
    std::vector<std::string> flags_and_command) {
  flags_and_command.insert(flags_and_command.begin(), kSupervise);
  return flags_and_command;
}

// A private scratch directory per test.
class WrapperTest : public tests::ScratchDirTest {
 protected:
  bool exists(const std::string& name) const {
    return access(path(name).c_str(), F_OK) == 0;
  }
};

// The value of `key` in lines of "Key:\tvalue" (/proc/PID/status) or
// "key: value" (--check).
std::map<std::string, std::string> parse_report(const std::string& text) {
  std::map<std::string, std::string> fields;
  for (const std::string& line : split_lines(text)) {
    size_t colon = line.find(": ");
    size_t tab = line.find(":\t");
    size_t at = std::min(colon, tab);
    if (at == std::string::npos) continue;
    fields[line.substr(0, at)] = line.substr(at + 2);
  }
  return fields;
}

// ---------------------------------------------------------------------------
// Exit statuses

TEST_F(WrapperTest, ExitStatusPassesThrough) {
  for (int code : {0, 1, 7, 42, 255}) {
    Outcome o =
        run(supervised({"--", "sh", "-c", "exit " + std::to_string(code)}));
    EXPECT_EQ(o.exit_code(), code) << o;
    EXPECT_EQ(o.err, "") << o;
  }
}

TEST_F(WrapperTest, KilledChildGives128PlusSignal) {
  struct Case {
    const char* script;
    int code;
  };
  const Case cases[] = {
      {"kill -KILL $$", 128 + SIGKILL},  // 137
      {"kill -TERM $$", 128 + SIGTERM},  // 143
      {"kill -USR1 $$", 128 + SIGUSR1},
      {"ulimit -c 0; kill -SEGV $$", 128 + SIGSEGV},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.script);
    Outcome o = run(supervised({"--", "sh", "-c", c.script}));
    // The supervisor itself exits; it is not killed.
    EXPECT_TRUE(o.exited()) << o;
    EXPECT_EQ(o.exit_code(), c.code) << o;
  }
}

TEST_F(WrapperTest, CommandNotFoundIs127WithOneLineNamingIt) {
  for (const std::string& command :
       {std::string("keepalive-no-such-command"), path("no-such-file")}) {
    Outcome o = run(supervised({"--", command, "arg"}));
    EXPECT_EQ(o.exit_code(), 127) << o;
    ASSERT_EQ(o.err_lines().size(), 1u) << o;
    EXPECT_TRUE(contains(o.err, command)) << o;
    EXPECT_TRUE(contains(o.err, "not found") ||
                contains(o.err, strerror(ENOENT)))
        << o;
    EXPECT_EQ(o.out, "");
  }
}

TEST_F(WrapperTest, NotExecutableIs126WithOneLineNamingIt) {
  std::string file = path("not-executable");
  std::ofstream(file) << "#!/bin/sh\ntouch " << path("ran") << "\n";
  chmod(file.c_str(), 0644);
  for (const std::string& command : {file, dir_}) {
    Outcome o = run(supervised({"--", command}));
    EXPECT_EQ(o.exit_code(), 126) << o;
    ASSERT_EQ(o.err_lines().size(), 1u) << o;
    EXPECT_TRUE(contains(o.err, command)) << o;
  }
  EXPECT_FALSE(exists("ran"));
}

// The launcher searches PATH itself (its child cannot call execvp); it
// must find what execvp finds and fail as execvp fails.
class PathSearchTest : public WrapperTest {
 protected:
  void SetUp() override {
    WrapperTest::SetUp();
    for (const char* dir : {"denied", "found", "cwd"}) {
      ASSERT_EQ(mkdir(path(dir).c_str(), 0755), 0) << strerror(errno);
    }
    write_file("denied/tool", "#!/bin/sh\necho denied\n", 0644);
    write_file("found/tool", "#!/bin/sh\necho found \"$@\"\n", 0755);
    write_file("a-file", "", 0644);
    // No "#!": the kernel refuses it (ENOEXEC) and execvp runs /bin/sh.
    write_file("found/script", "echo script \"$0\" \"$@\"\n", 0755);
    write_file("cwd/tool", "#!/bin/sh\necho cwd\n", 0755);
  }

  void write_file(const std::string& name, const std::string& text,
                  mode_t mode) {
    std::ofstream(path(name)) << text;
    chmod(path(name).c_str(), mode);
  }

  // Runs `command` under the supervisor with PATH set to `path_value`
  // (unset if null), from the directory "cwd".
  Outcome run_with_path(const char* path_value,
                        const std::vector<std::string>& command) {
    std::vector<std::string> env;
    for (const std::string& entry : clean_environment()) {
      if (entry.rfind("PATH=", 0) != 0) env.push_back(entry);
    }
    if (path_value != nullptr) env.push_back(std::string("PATH=") + path_value);
    // env -u: whatever the shell does with an unset PATH.
    std::string script = "cd " + path("cwd") + " && exec /usr/bin/env " +
                         (path_value == nullptr ? "-u PATH " : "") + "\"$@\"";
    std::vector<std::string> argv = {"/bin/sh", "-c", script, "sh", kSupervise,
                                     "--"};
    argv.insert(argv.end(), command.begin(), command.end());
    ProcessOptions options;
    options.whole_env = env;
    return run(argv, options);
  }
};

TEST_F(PathSearchTest, SkipsWhatIsDeniedOrNotADirectory) {
  std::string search =
      path("a-file") + ":" + path("missing") + ":" + path("denied") + ":" +
      path("found");
  Outcome o = run_with_path(search.c_str(), {"tool", "x"});
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "found x\n") << o;
}

TEST_F(PathSearchTest, DeniedAndNothingElseIs126PermissionDenied) {
  std::string search = path("denied") + ":" + path("missing");
  Outcome o = run_with_path(search.c_str(), {"tool"});
  EXPECT_EQ(o.exit_code(), 126) << o;
  EXPECT_EQ(o.err, "keepalive-supervise: tool: " +
                       std::string(strerror(EACCES)) + "\n")
      << o;
}

TEST_F(PathSearchTest, EmptyElementIsTheCurrentDirectory) {
  std::string search = path("missing") + "::" + path("found");
  Outcome o = run_with_path(search.c_str(), {"tool"});
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "cwd\n") << o;
}

TEST_F(PathSearchTest, ScriptWithoutInterpreterLineRunsWithBinSh) {
  Outcome o = run_with_path(path("found").c_str(), {"script", "a", "b"});
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "script " + path("found/script") + " a b\n") << o;
  o = run_with_path(nullptr, {path("found/script")});
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "script " + path("found/script") + "\n") << o;
}

TEST_F(PathSearchTest, UnsetPathMeansBinAndUsrBin) {
  Outcome o = run_with_path(nullptr, {"sh", "-c", "echo ok"});
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "ok\n") << o;
  o = run_with_path(nullptr, {"tool"});
  EXPECT_EQ(o.exit_code(), 127) << o;
}

TEST_F(PathSearchTest, NameTooLongIs126) {
  Outcome o = run_with_path(path("found").c_str(), {std::string(300, 'x')});
  EXPECT_EQ(o.exit_code(), 126) << o;
  EXPECT_TRUE(contains(o.err, strerror(ENAMETOOLONG))) << o;
}

// ---------------------------------------------------------------------------
// Bad usage: exit 2, one line, and the target never starts.

struct BadUsage {
  std::vector<std::string> args;  // MARKER: a file the target would make
  std::string named;              // what the one line must name
};

class BadUsageTest : public WrapperTest,
                     public ::testing::WithParamInterface<BadUsage> {};

TEST_P(BadUsageTest, ExitsTwoWithOneLineAndStartsNothing) {
  std::vector<std::string> argv = GetParam().args;
  argv.insert(argv.begin(), kSupervise);
  for (std::string& arg : argv) {
    if (arg == "MARKER") arg = path("marker");
  }
  Outcome o = run(argv);
  EXPECT_EQ(o.exit_code(), 2) << o;
  ASSERT_EQ(o.err_lines().size(), 1u) << o;
  EXPECT_EQ(o.err.rfind("keepalive-supervise: ", 0), 0u) << o;
  EXPECT_EQ(o.out, "");
  EXPECT_TRUE(contains(o.err, GetParam().named)) << o;
  EXPECT_FALSE(exists("marker")) << "the target ran";
}

const std::vector<std::string> kTouch = {"--", "touch", "MARKER"};

std::vector<std::string> then_touch(std::vector<std::string> args) {
  args.insert(args.end(), kTouch.begin(), kTouch.end());
  return args;
}

INSTANTIATE_TEST_SUITE_P(
    Wrapper, BadUsageTest,
    ::testing::Values(
        BadUsage{then_touch({"--keepidle", "abc"}), "--keepidle"},
        BadUsage{then_touch({"--keepidle=abc"}), "--keepidle"},
        BadUsage{then_touch({"--keepcnt", "200"}), "--keepcnt"},
        BadUsage{then_touch({"--user-timeout", "-2"}), "--user-timeout"},
        BadUsage{then_touch({"--maxseg", "10"}), "--maxseg"},
        BadUsage{then_touch({"--mode", "server"}), "--mode"},
        BadUsage{then_touch({"--strategy", "fast"}), "--strategy"},
        BadUsage{then_touch({"--bogus"}), "--bogus"},
        BadUsage{then_touch({"-x"}), "-x"},
        BadUsage{then_touch({"--check"}), "--check"},
        // The command without "--": refused with a hint, not run.
        BadUsage{{"touch", "MARKER"}, "'touch'"},
        BadUsage{then_touch({"-v", "touch"}), "'touch'"},
        BadUsage{{"--"}, "no command"}, BadUsage{{"-v"}, "no command"}));

TEST_F(WrapperTest, HelpAndVersionGoToStdout) {
  Outcome help = run(supervised({"--help"}));
  EXPECT_EQ(help.exit_code(), 0) << help;
  EXPECT_EQ(help.out.rfind("Usage: keepalive-supervise", 0), 0u) << help;
  EXPECT_EQ(help.err, "");
  Outcome version = run(supervised({"--version"}));
  EXPECT_EQ(version.exit_code(), 0) << version;
  EXPECT_EQ(version.out.rfind("keepalive-supervise ", 0), 0u) << version;
  EXPECT_EQ(split_lines(version.out).size(), 1u);
}

// Each shared library is mapped in every supervised run, at a cost in
// start-up and memory (libm alone: about 300 KiB of RSS): libc is the only
// one beside the loader (libseccomp and the C++ runtime are linked in).
TEST_F(WrapperTest, NeedsNoSharedLibraryButLibc) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "a sanitizer build links the sanitizer's runtime";
#endif
  if (access("/usr/bin/readelf", X_OK) != 0) {
    GTEST_SKIP() << "/usr/bin/readelf is missing (binutils)";
  }
  Outcome dynamic = run({"/usr/bin/readelf", "-d", kSupervise});
  ASSERT_EQ(dynamic.exit_code(), 0) << dynamic;
  std::vector<std::string> needed;
  for (const std::string& line : split_lines(dynamic.out)) {
    size_t name = line.find("(NEEDED)");
    // The loader itself, mapped in every dynamic program, may be named.
    if (name != std::string::npos &&
        line.find("[ld-linux") == std::string::npos) {
      needed.push_back(line.substr(line.find('[', name)));
    }
  }
  EXPECT_EQ(needed, std::vector<std::string>{"[libc.so.6]"}) << dynamic.out;
}

// ---------------------------------------------------------------------------
// Signals

TEST_F(WrapperTest, ForwardsEachSignalToTheChild) {
  const std::pair<int, const char*> signals[] = {
      {SIGINT, "INT"},    {SIGTERM, "TERM"}, {SIGHUP, "HUP"},
      {SIGQUIT, "QUIT"},  {SIGUSR1, "USR1"}, {SIGUSR2, "USR2"},
      {SIGWINCH, "WINCH"}};
  std::string script;
  for (const auto& [sig, name] : signals) {
    script += std::string("trap 'echo got-") + name + "' " + name + "\n";
  }
  script +=
      "echo ready\n"
      "while [ ! -e \"$1\" ]; do sleep 0.05; done\n"
      "echo done\n";
  Process p(supervised({"--", "sh", "-c", script, "sh", path("stop")}));
  ASSERT_TRUE(p.wait_for_output("ready\n", kBound, Process::Stream::kStdout)) << p.out();
  for (const auto& [sig, name] : signals) {
    SCOPED_TRACE(name);
    ASSERT_EQ(kill(p.pid(), sig), 0);
    // One at a time, so that none can merge with another.
    ASSERT_TRUE(p.wait_for_output(std::string("got-") + name + "\n", kBound,
                                  Process::Stream::kStdout))
        << p.out();
  }
  std::ofstream(path("stop")).close();
  Outcome o = p.wait();
  EXPECT_EQ(o.exit_code(), 0) << o;
  // Each arrived exactly once, and the supervisor said nothing.
  std::string expected = "ready\n";
  for (const auto& [sig, name] : signals) {
    expected += std::string("got-") + name + "\n";
  }
  expected += "done\n";
  EXPECT_EQ(o.out, expected);
  EXPECT_EQ(o.err, "");
}

class UnhandledSignalTest : public WrapperTest,
                            public ::testing::WithParamInterface<int> {};

TEST_P(UnhandledSignalTest, KillsTheChildAndGives128PlusSignal) {
  const int sig = GetParam();
  Process p(supervised(
      {"--", "sh", "-c", "ulimit -c 0; echo started; exec sleep 60"}));
  ASSERT_TRUE(p.wait_for_output("started\n", kBound, Process::Stream::kStdout)) << p.out();
  ASSERT_EQ(kill(p.pid(), sig), 0);
  Outcome o = p.wait();
  EXPECT_TRUE(o.exited()) << "the supervisor was killed itself\n" << o;
  EXPECT_EQ(o.exit_code(), 128 + sig) << o;
}

INSTANTIATE_TEST_SUITE_P(Wrapper, UnhandledSignalTest,
                         ::testing::Values(SIGINT, SIGTERM, SIGHUP, SIGQUIT,
                                           SIGUSR1, SIGUSR2, SIGALRM, SIGPWR,
                                           SIGVTALRM, SIGPROF, SIGABRT,
                                           SIGXCPU),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return std::string(sigabbrev_np(param.param));
                         });

TEST_F(WrapperTest, IgnoredSignalStaysIgnored) {
  // As under nohup: SIGHUP ignored by whoever started the supervisor is
  // ignored by the target too, and sending it harms neither.
  ProcessOptions options;
  options.ignored = {SIGHUP};
  Process p(supervised({"--", "sh", "-c",
                        "echo ready; while [ ! -e \"$1\" ]; do sleep 0.05; "
                        "done; echo alive",
                        "sh", path("stop")}),
            options);
  ASSERT_TRUE(p.wait_for_output("ready\n", kBound, Process::Stream::kStdout)) << p.out();
  ASSERT_EQ(kill(p.pid(), SIGHUP), 0);
  std::this_thread::sleep_for(300ms);
  std::ofstream(path("stop")).close();
  Outcome o = p.wait();
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "ready\nalive\n");
}

// ---------------------------------------------------------------------------
// What passes through untouched

TEST_F(WrapperTest, StdinToStdoutThroughCat) {
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  ProcessOptions options;
  options.stdin_data = data;
  Outcome o = run(supervised({"--", "cat"}), options);
  EXPECT_EQ(o.exit_code(), 0) << o.err;
  EXPECT_EQ(o.out.size(), data.size());
  EXPECT_TRUE(o.out == data) << "stdout differs from stdin";
  EXPECT_EQ(o.err, "");
}

TEST_F(WrapperTest, StdoutAndStderrStaySeparate) {
  Outcome o = run(supervised(
      {"--", "sh", "-c", "echo to-out; echo to-err >&2; echo more-out"}));
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "to-out\nmore-out\n");
  EXPECT_EQ(o.err, "to-err\n");
}

TEST_F(WrapperTest, EnvironmentPassesThroughExactly) {
  ProcessOptions options;
  options.whole_env =
      clean_environment({"WRAPPER_TEST_PLAIN=value", "WRAPPER_TEST_EQUALS=a=b=c",
                 "WRAPPER_TEST_EMPTY=", "WRAPPER_TEST_NEWLINE=line1\nline2",
                 "WRAPPER_TEST_SPACES=  two  spaces "});
  Outcome o = run(supervised({"--", "env", "-0"}), options);
  EXPECT_EQ(o.exit_code(), 0) << o;
  std::vector<std::string> seen;
  std::string entry;
  for (char c : o.out) {
    if (c == '\0') {
      seen.push_back(entry);
      entry.clear();
    } else {
      entry += c;
    }
  }
  // Same entries, same order, nothing added or removed.
  EXPECT_EQ(seen, *options.whole_env);

  Outcome one =
      run(supervised({"--", "sh", "-c", "printf %s \"$WRAPPER_TEST_PLAIN\""}),
          options);
  EXPECT_EQ(one.out, "value");
}

TEST_F(WrapperTest, SignalMaskAndIgnoredSignalsAreInherited) {
  // What the target sees in /proc/self/status, run directly and run under
  // the supervisor, from the same parent state.
  ProcessOptions options;
  options.blocked = {SIGUSR1, SIGTERM, SIGWINCH, SIGRTMIN + 3};
  options.ignored = {SIGHUP, SIGINT, SIGPIPE, SIGUSR2};
  Outcome direct = run({"cat", "/proc/self/status"}, options);
  Outcome under = run(supervised({"--", "cat", "/proc/self/status"}), options);
  ASSERT_EQ(direct.exit_code(), 0) << direct;
  ASSERT_EQ(under.exit_code(), 0) << under;
  auto d = parse_report(direct.out);
  auto u = parse_report(under.out);
  for (const char* field : {"SigBlk", "SigIgn"}) {
    SCOPED_TRACE(field);
    ASSERT_FALSE(d[field].empty());
    EXPECT_EQ(u[field], d[field]);
  }
  // And they are what was asked for, so the comparison means something.
  unsigned long long blk = std::stoull(u["SigBlk"], nullptr, 16);
  unsigned long long ign = std::stoull(u["SigIgn"], nullptr, 16);
  for (int sig : options.blocked) EXPECT_TRUE(blk >> (sig - 1) & 1) << sig;
  for (int sig : options.ignored) EXPECT_TRUE(ign >> (sig - 1) & 1) << sig;
}

TEST_F(WrapperTest, ShellTrapIgnoreReachesTheTarget) {
  // `trap '' HUP` before running the supervisor, as a shell user would.
  const std::string grep = "grep -E '^Sig(Ign|Blk)' /proc/self/status";
  Outcome direct = run({"sh", "-c", "trap '' HUP; exec " + grep});
  Outcome under =
      run({"sh", "-c", "trap '' HUP; exec " + kSupervise + " -- " + grep});
  ASSERT_EQ(direct.exit_code(), 0) << direct;
  ASSERT_EQ(under.exit_code(), 0) << under;
  EXPECT_EQ(under.out, direct.out);
  unsigned long long ign =
      std::stoull(parse_report(under.out)["SigIgn"], nullptr, 16);
  EXPECT_TRUE(ign >> (SIGHUP - 1) & 1) << under.out;
}

TEST_F(WrapperTest, FileDescriptorsPassThroughAndNoneLeak) {
  // An inherited fd 5 reaches the target; nothing of the supervisor's
  // (listener, socketpair, pidfd, signalfd) does.
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  UniqueFd read_end(p[0]), write_end(p[1]);
  ProcessOptions options;
  options.extra_fd = write_end.get();
  const std::string list = "ls -l /proc/self/fd | awk 'NR > 1 {print $9, $11}'";
  Outcome direct = run({"sh", "-c", list}, options);
  Outcome under = run(supervised({"--", "sh", "-c", list}), options);
  ASSERT_EQ(direct.exit_code(), 0) << direct;
  ASSERT_EQ(under.exit_code(), 0) << under;
  EXPECT_TRUE(contains(direct.out, "\n5 pipe:")) << direct.out;
  // Pipe inodes and ls's own directory differ between the two runs;
  // compare fd numbers and kinds only ("5 pipe", "3 /proc").
  auto kinds = [](const std::string& text) {
    std::vector<std::string> out;
    for (const std::string& line : split_lines(text)) {
      size_t end = line.find(':');
      if (line.find(" /") != std::string::npos)
        end = line.find('/', line.find(" /") + 2);
      out.push_back(line.substr(0, end));
    }
    return out;
  };
  EXPECT_EQ(kinds(under.out), kinds(direct.out))
      << "direct:\n"
      << direct.out << "supervised:\n"
      << under.out;
}

// ---------------------------------------------------------------------------
// If the supervisor dies, the target goes too.

pid_t parent_of(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  size_t paren = line.rfind(')');
  if (paren == std::string::npos) return -1;
  std::istringstream rest(line.substr(paren + 2));
  char state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

TEST_F(WrapperTest, TargetDiesWithTheSupervisor) {
  // Become the subreaper so that the orphaned target is ours to reap, and
  // we can see how it ended.
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  Process p(supervised({"--", "sh", "-c", "echo $$; exec sleep 60"}));
  ASSERT_TRUE(p.wait_for_output("\n", kBound, Process::Stream::kStdout)) << p.out();
  pid_t target = std::stoi(p.out());
  ASSERT_EQ(parent_of(target), p.pid());

  ASSERT_EQ(kill(p.pid(), SIGKILL), 0);
  Outcome o = p.wait();
  EXPECT_TRUE(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGKILL) << o;

  auto deadline = Clock::now() + kBound;
  int status = 0;
  pid_t reaped = 0;
  while (reaped == 0 && Clock::now() < deadline) {
    reaped = waitpid(target, &status, WNOHANG);
    if (reaped == 0) std::this_thread::sleep_for(20ms);
  }
  if (reaped == 0) kill(target, SIGKILL), waitpid(target, nullptr, 0);
  ASSERT_EQ(reaped, target) << "the target outlived the supervisor";
  // Killed by the parent-death signal, unless a trapped call of its (as
  // root without no_new_privs, the exec here is one) failed with ENOSYS
  // when the listener closed and it exited first: the kernel closes a dying
  // process's files before it signals its children.
  EXPECT_TRUE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
              WIFEXITED(status))
      << status;
}

// ---------------------------------------------------------------------------
// io_uring

TEST_F(WrapperTest, IoUringSetupWarnsOnce) {
  Outcome direct = run({kIoUringReport, "3"});
  ASSERT_EQ(direct.exit_code(), 0) << direct;
  Outcome o = run(supervised({"--", kIoUringReport, "3"}));
  EXPECT_EQ(o.exit_code(), 0) << o;
  // The call itself behaves as without the supervisor...
  EXPECT_EQ(o.out, direct.out);
  // ...and the supervisor warns exactly once.
  ASSERT_EQ(o.err_lines().size(), 1u) << o;
  EXPECT_TRUE(contains(o.err, "io_uring")) << o;
  EXPECT_TRUE(contains(o.err, "--deny-io-uring")) << o;
}

TEST_F(WrapperTest, DenyIoUringGivesEnosysWithoutWarning) {
  Outcome o = run(supervised({"--deny-io-uring", "--", kIoUringReport, "2"}));
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "io_uring_setup ENOSYS\nio_uring_setup ENOSYS\n") << o;
  EXPECT_EQ(o.err, "");
}

// ---------------------------------------------------------------------------
// --check, -v and environment warnings

struct KernelVersion {
  int major = 0, minor = 0;
  bool at_least(int ma, int mi) const {
    return major > ma || (major == ma && minor >= mi);
  }
};

KernelVersion kernel_version() {
  utsname uts{};
  uname(&uts);
  KernelVersion v;
  sscanf(uts.release, "%d.%d", &v.major, &v.minor);
  return v;
}

// Whether this process may pidfd_getfd from a child of its own.
bool getfd_permitted_here() {
  int p[2];
  if (pipe(p) != 0) return false;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[1]);
    char c;
    ssize_t ignored = read(p[0], &c, 1);  // until the test closes p[1]
    (void)ignored;
    _exit(0);
  }
  UniqueFd pidfd(sys::pidfd_open(pid, 0));
  UniqueFd copy(sys::pidfd_getfd(pidfd.get(), p[0], 0));
  close(p[1]);
  close(p[0]);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return copy.valid();
}

TEST_F(WrapperTest, CheckReportIsTruthful) {
  Outcome o = run(supervised({"--check"}));
  ASSERT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.err, "");
  auto report = parse_report(o.out);

  utsname uts{};
  uname(&uts);
  EXPECT_EQ(report["kernel"], uts.release);
  const KernelVersion v = kernel_version();
  auto yes_if = [](bool b) { return std::string(b ? "yes" : "no"); };

  uint32_t action = SECCOMP_RET_USER_NOTIF;
  bool user_notif = sys::seccomp_action_available(action) == 0;
  EXPECT_EQ(report["seccomp user notification"], yes_if(user_notif));
  EXPECT_EQ(report["supervised child"], "started");
  EXPECT_EQ(report["ADDFD (emulation, Linux 5.9+)"], "yes");
  EXPECT_EQ(report["ADDFD_FLAG_SEND (Linux 5.14+)"].rfind(
                yes_if(v.at_least(5, 14)) + " (", 0),
            0u)
      << report["ADDFD_FLAG_SEND (Linux 5.14+)"];
  EXPECT_EQ(report["emulated socket carried the options"], "yes");
  EXPECT_EQ(report["WAIT_KILLABLE_RECV (Linux 5.19+)"],
            yes_if(v.at_least(5, 19)));
  EXPECT_EQ(report["SYNC_WAKE_UP (Linux 6.6+)"], yes_if(v.at_least(6, 6)));
  UniqueFd thread_pidfd(sys::pidfd_open(getpid(), PIDFD_THREAD));
  EXPECT_EQ(report["PIDFD_THREAD (Linux 6.9+)"], yes_if(v.at_least(6, 9)));
  EXPECT_EQ(report["PIDFD_THREAD (Linux 6.9+)"], yes_if(thread_pidfd.valid()));

  bool permitted = getfd_permitted_here();
  EXPECT_EQ(report["pidfd_getfd on the target (continue strategy)"],
            permitted ? "permitted" : "refused (Operation not permitted)");

  io_uring_params params{};
  long ring = syscall(SYS_io_uring_setup, 1, &params);
  if (ring >= 0) close(static_cast<int>(ring));
  EXPECT_EQ(
      report["io_uring"].rfind(ring >= 0 ? "available" : "unavailable", 0), 0u)
      << report["io_uring"];
  // The supervisor's own ring for options: socket commands came in 6.7.
  // Where the kernel has them, the ring is kept only if it is the faster
  // way here (which the machine decides), and the report says so either
  // way.
  std::string batched = report["options in one io_uring_enter (Linux 6.7+)"];
  if (ring >= 0 && v.at_least(6, 7)) {
    EXPECT_TRUE(batched == "yes" ||
                batched.rfind("no, one setsockopt each (io_uring is not a "
                              "tenth faster here: five options in ",
                              0) == 0)
        << batched;
  } else {
    EXPECT_EQ(batched.rfind("no, one setsockopt each (", 0), 0u) << batched;
  }

  EXPECT_EQ(report["mode socket"].rfind("emulate (", 0), 0u)
      << report["mode socket"];
  for (const char* mode : {"mode connect", "mode listen"}) {
    EXPECT_EQ(report[mode].rfind(permitted ? "continue (" : "emulate (", 0), 0u)
        << report[mode];
  }
  EXPECT_EQ(report["verdict"].rfind("keepalive-supervise can work here", 0), 0u)
      << report["verdict"];
}

TEST_F(WrapperTest, VerbosePrintsTheStrategyLine) {
  struct Case {
    std::vector<std::string> flags;
    std::vector<std::string> env;
    std::string line;
  };
  const Case cases[] = {
      {{"-v"}, {}, "mode socket, strategy emulate ("},
      {{"--debug"}, {}, "mode socket, strategy emulate ("},
      {{}, {"LIBKEEPALIVE_DEBUG=1"}, "mode socket, strategy emulate ("},
      {{"-v", "--mode", "connect"}, {}, "mode connect, strategy continue ("},
      {{"-v", "--mode", "listen"}, {}, "mode listen, strategy continue ("},
      {{"-v", "--strategy", "continue"},
       {},
       "mode socket, strategy continue ("},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = c.flags;
    argv.insert(argv.end(), {"--", "sh", "-c", "echo ran"});
    ProcessOptions options;
    options.whole_env = clean_environment(c.env);
    Outcome o = run(supervised(argv), options);
    SCOPED_TRACE(c.line);
    EXPECT_EQ(o.exit_code(), 0) << o;
    EXPECT_EQ(o.out, "ran\n");
    ASSERT_EQ(o.err_lines().size(), 1u) << o;
    EXPECT_EQ(o.err.rfind("keepalive-supervise: " + c.line, 0), 0u) << o;
  }
  // Without -v the supervisor says nothing.
  Outcome quiet = run(supervised({"--", "sh", "-c", "echo ran"}));
  EXPECT_EQ(quiet.err, "");
}

TEST_F(WrapperTest, InvalidEnvironmentValueWarnsOnceAndRuns) {
  ProcessOptions options;
  options.whole_env = clean_environment({"TCP_KEEPIDLE=abc"});
  Outcome o = run(supervised({"--", "sh", "-c", "echo ran"}), options);
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "ran\n");
  ASSERT_EQ(o.err_lines().size(), 1u) << o;
  EXPECT_TRUE(contains(o.err, "TCP_KEEPIDLE")) << o;
  EXPECT_TRUE(contains(o.err, "abc")) << o;
}

// ---------------------------------------------------------------------------
// Under a seccomp profile that refuses pidfd_getfd (Docker's default).

// keepalive-supervise run under a profile that fails `syscalls` (comma
// separated) with EPERM.
std::vector<std::string> denying(const std::string& syscalls,
                                 std::vector<std::string> flags_and_command) {
  std::vector<std::string> argv = supervised(std::move(flags_and_command));
  argv.insert(argv.begin(), {kDenySyscalls, syscalls});
  return argv;
}

std::vector<std::string> without_getfd(
    std::vector<std::string> flags_and_command) {
  return denying("pidfd_getfd", std::move(flags_and_command));
}

TEST_F(WrapperTest, WithoutPidfdGetfdTheLauncherReallyRefusesIt) {
  Outcome o = run(without_getfd({"--check"}));
  ASSERT_EQ(o.exit_code(), 0) << o;
  auto report = parse_report(o.out);
  EXPECT_EQ(report["pidfd_getfd on the target (continue strategy)"],
            "refused (Operation not permitted)");
  EXPECT_EQ(report["emulated socket carried the options"], "yes");
  EXPECT_EQ(report["mode socket"].rfind("emulate (", 0), 0u);
  EXPECT_EQ(report["mode connect"].rfind("emulate (", 0), 0u);
  EXPECT_TRUE(contains(report["mode connect"], "degraded"));
  EXPECT_EQ(report["verdict"].rfind("keepalive-supervise can work here", 0), 0u)
      << report["verdict"];
}

TEST_F(WrapperTest, WithoutPidfdGetfdCheckRefusesTheContinueStrategy) {
  // The verdict answers for the strategy asked for, as a real run would.
  Outcome o = run(without_getfd({"--check", "--strategy", "continue"}));
  EXPECT_EQ(o.exit_code(), 1) << o;
  auto report = parse_report(o.out);
  EXPECT_EQ(report["verdict"].rfind("keepalive-supervise cannot work here", 0),
            0u)
      << report["verdict"];
  EXPECT_TRUE(contains(report["verdict"], "strategy continue"));
}

TEST_F(WrapperTest, WithoutPidfdGetfdSocketModeIsUnchanged) {
  // Same strategy, for the same reason. The supervisor may add one note
  // that the continue fallback (for tasks that change credentials or
  // network namespace) is gone, and nothing else.
  Outcome normal = run(supervised({"-v", "--", "sh", "-c", "echo ran"}));
  Outcome denied = run(without_getfd({"-v", "--", "sh", "-c", "echo ran"}));
  ASSERT_EQ(normal.exit_code(), 0) << normal;
  EXPECT_EQ(denied.exit_code(), 0) << denied;
  EXPECT_EQ(denied.out, "ran\n");
  ASSERT_EQ(normal.err_lines().size(), 1u) << normal;
  std::vector<std::string> lines = denied.err_lines();
  ASSERT_GE(lines.size(), 1u) << denied;
  EXPECT_EQ(lines[0], normal.err_lines()[0]);
  for (size_t i = 1; i < lines.size(); ++i) {
    EXPECT_EQ(lines[i].rfind("keepalive-supervise: degraded: ", 0), 0u)
        << lines[i];
  }
  EXPECT_LE(lines.size(), 2u) << denied;
}

TEST_F(WrapperTest, WithoutPidfdGetfdConnectAndListenModesDegrade) {
  for (const char* mode : {"connect", "listen"}) {
    SCOPED_TRACE(mode);
    Outcome o =
        run(without_getfd({"--mode", mode, "--", "sh", "-c", "echo ran"}));
    EXPECT_EQ(o.exit_code(), 0) << o;
    EXPECT_EQ(o.out, "ran\n");
    ASSERT_EQ(o.err_lines().size(), 1u) << o;
    EXPECT_TRUE(contains(o.err, "degraded")) << o;

    Outcome v = run(without_getfd({"-v", "--mode", mode, "--", "true"}));
    EXPECT_EQ(v.exit_code(), 0) << v;
    EXPECT_TRUE(
        contains(v.err, std::string("mode ") + mode + ", strategy emulate ("))
        << v;
    EXPECT_TRUE(contains(v.err, "pidfd_getfd")) << v;
  }
}

TEST_F(WrapperTest, WithoutPidfdGetfdStrategyContinueFails) {
  Outcome o = run(
      without_getfd({"--strategy", "continue", "--", "touch", path("marker")}));
  EXPECT_EQ(o.exit_code(), 125) << o;
  ASSERT_EQ(o.err_lines().size(), 1u) << o;
  EXPECT_TRUE(contains(o.err, "pidfd_getfd")) << o;
  EXPECT_FALSE(exists("marker")) << "the target ran";
}

// ---------------------------------------------------------------------------
// Where no filter can go on: one clear line and exit 125, or with
// --fail-open the command unsupervised after one warning; --check says why.

TEST_F(WrapperTest, SeccompRefusedFailsWithTheCause) {
  Outcome o = run(denying("seccomp", {"--", "touch", path("marker")}));
  EXPECT_EQ(o.exit_code(), 125) << o;
  ASSERT_EQ(o.err_lines().size(), 1u) << o;
  EXPECT_TRUE(contains(o.err, strerror(EPERM))) << o;
  EXPECT_TRUE(contains(o.err, "seccomp profile")) << o;
  // Not blamed on the kernel, which has everything.
  EXPECT_FALSE(contains(o.err, "kernel lacks")) << o;
  EXPECT_FALSE(exists("marker")) << "the target ran";
}

TEST_F(WrapperTest, SeccompRefusedFailOpenRunsTheCommand) {
  Outcome o =
      run(denying("seccomp", {"--fail-open", "--", "sh", "-c", "echo ran"}));
  EXPECT_EQ(o.exit_code(), 0) << o;
  EXPECT_EQ(o.out, "ran\n");
  ASSERT_EQ(o.err_lines().size(), 1u) << o;
  EXPECT_TRUE(contains(o.err, "WITHOUT keepalive options")) << o;
}

TEST_F(WrapperTest, SeccompRefusedCheckSaysSo) {
  Outcome o = run(denying("seccomp", {"--check"}));
  EXPECT_EQ(o.exit_code(), 1) << o;
  auto report = parse_report(o.out);
  const std::string& notif = report["seccomp user notification"];
  EXPECT_EQ(notif.rfind("no (", 0), 0u) << notif;
  EXPECT_TRUE(contains(notif, "refused")) << notif;
  EXPECT_FALSE(contains(notif, "Linux 5.0+ needed")) << notif;
  for (const char* mode : {"mode socket", "mode connect", "mode listen"}) {
    EXPECT_EQ(report[mode].rfind("cannot work", 0), 0u) << report[mode];
  }
  EXPECT_EQ(report["verdict"].rfind("keepalive-supervise cannot work here", 0), 0u)
      << report["verdict"];
}

TEST_F(WrapperTest, UnderAnotherListenerFailsWithTheCause) {
  // The outer supervisor's listener makes a second one EBUSY, as a
  // container runtime's or LXD's would.
  Outcome o = run(supervised(
      {"--deny-io-uring", "--", kSupervise, "--", "touch", path("marker")}));
  EXPECT_EQ(o.exit_code(), 125) << o;
  ASSERT_EQ(o.err_lines().size(), 1u) << o;
  EXPECT_TRUE(contains(o.err, strerror(EBUSY))) << o;
  EXPECT_TRUE(contains(o.err, "listener")) << o;
  EXPECT_FALSE(exists("marker")) << "the target ran";

  Outcome open = run(supervised({"--deny-io-uring", "--", kSupervise,
                                 "--fail-open", "--", "sh", "-c", "echo ran"}));
  EXPECT_EQ(open.exit_code(), 0) << open;
  EXPECT_EQ(open.out, "ran\n");
  ASSERT_EQ(open.err_lines().size(), 1u) << open;
  EXPECT_TRUE(contains(open.err, "WITHOUT keepalive options")) << open;
}

TEST_F(WrapperTest, UnderAnotherListenerCheckIsTruthful) {
  Outcome o = run(supervised({"--deny-io-uring", "--", kSupervise, "--check"}));
  EXPECT_EQ(o.exit_code(), 1) << o;
  auto report = parse_report(o.out);
  EXPECT_EQ(report["seccomp user notification"], "yes");
  EXPECT_TRUE(contains(report["supervised child"], strerror(EBUSY)))
      << report["supervised child"];
  // The kernel has these; with no supervised child they could not be
  // probed, which is not the same as "no".
  for (const char* feature :
       {"ADDFD (emulation, Linux 5.9+)", "ADDFD_FLAG_SEND (Linux 5.14+)",
        "emulated socket carried the options",
        "WAIT_KILLABLE_RECV (Linux 5.19+)", "SYNC_WAKE_UP (Linux 6.6+)"}) {
    EXPECT_NE(report[feature], "no") << feature;
    EXPECT_FALSE(report[feature].empty()) << feature;
  }
  // Truthful about the environment it is in: io_uring denied outside.
  EXPECT_EQ(report["io_uring"].rfind("unavailable", 0), 0u)
      << report["io_uring"];
  EXPECT_EQ(report["verdict"].rfind("keepalive-supervise cannot work here", 0), 0u)
      << report["verdict"];
}

}  // namespace
}  // namespace keepalive
