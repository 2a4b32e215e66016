// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise --pid and --cgroup on programs that are already
// running: a static raw-syscall client and a Python program holding
// sockets of every role, read back from the kernel afterwards (from
// outside with sockopt_probe, or by the Python program itself); --dry-run;
// --watch; a cgroup of several processes; a process in another network
// namespace; one it may not trace. The dead-peer case (a connection opened
// before attaching then black-holed) is in supervise_dead_peer_test.cc.
#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

constexpr const char* kPython = "/usr/bin/python3";

std::string attach_target_path() { return KEEPALIVE_ATTACH_TARGET_PATH; }

std::vector<std::string> attach(const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {supervise_path()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return argv;
}

// The lines of `out` starting with "pid ".
std::vector<std::string> socket_lines(const std::string& out) {
  std::vector<std::string> lines;
  for (const std::string& line : split_lines(out)) {
    if (line.rfind("pid ", 0) == 0) lines.push_back(line);
  }
  return lines;
}

std::string summary_of(const std::string& out) {
  for (const std::string& line : split_lines(out)) {
    if (line.rfind("summary: ", 0) == 0) return line;
  }
  return "";
}

Expectation defaults() { return Expectation{}; }

Expectation untouched() {
  Expectation e;
  e.applied = false;
  return e;
}

// raw_tcp connected to `server`, idle, started bare.
struct StaticClient {
  explicit StaticClient(Listener& server)
      : program({raw_tcp_path(), "connect", std::to_string(server.port())}) {
    std::optional<std::string> line = program.wait_line("connected", 10s);
    EXPECT_TRUE(line) << program.transcript();
    if (line) pid = word_as_int(*line, 3);
    peer = server.accept(5s);
  }
  Child program;
  pid_t pid = -1;
  UniqueFd peer;
};

// tests/helpers/attach_target.py: sockets of every role, on command.
class PythonTarget {
 public:
  explicit PythonTarget(std::vector<std::string> prefix = {}) {
    if (access(kPython, X_OK) != 0) return;
    prefix.insert(prefix.end(), {kPython, attach_target_path()});
    program_ = std::make_unique<Child>(prefix);
    if (auto line = program_->wait_line("pid ", 10s)) {
      pid_ = word_as_int(*line, 1);
    }
  }
  bool ok() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  Child& program() { return *program_; }

  // Sends `command` and returns the reply line starting with `reply`.
  std::string ask(const std::string& command, const std::string& reply) {
    program_->write_stdin(command + "\n");
    std::optional<std::string> line = program_->wait_line(reply, 10s);
    EXPECT_TRUE(line) << command << ": no '" << reply << "'\n"
                      << program_->transcript();
    return line.value_or("");
  }

  // Role -> the options each socket of that role reads back (in the order
  // they were made).
  std::map<std::string, std::vector<Options>> report() {
    std::map<std::string, std::vector<Options>> roles;
    program_->write_stdin("report\n");
    for (;;) {
      std::optional<std::string> line = program_->wait_line("", 10s);
      if (!line || *line == "end") break;
      if (line->rfind("socket ", 0) != 0) continue;
      size_t role_end = line->find(' ', 7);
      roles[line->substr(7, role_end - 7)].push_back(parse_pairs(*line));
    }
    return roles;
  }

 private:
  std::unique_ptr<Child> program_;
  pid_t pid_ = -1;
};

#define REQUIRE_PYTHON(target)                                            \
  if (!(target).ok()) {                                                   \
    GTEST_SKIP() << kPython << " is missing or attach_target.py did not " \
                    "start (Debian package python3)";                     \
  }

TEST(Attach, StaticClientGetsItsOptionsOnceAndSecondRunFindsThem) {
  Listener server;
  StaticClient client(server);
  ASSERT_GT(client.pid, 0);
  ASSERT_TRUE(carries(probe_options(client.pid, server.port()), untouched()));

  Outcome first = run(attach({"--pid", std::to_string(client.pid)}));
  EXPECT_EQ(first.shell_status(), 0) << first;
  std::vector<std::string> lines = socket_lines(first.out);
  ASSERT_EQ(lines.size(), 1u) << first;
  EXPECT_EQ(lines[0].rfind("pid " + std::to_string(client.pid) + " fd ", 0),
            0u)
      << lines[0];
  EXPECT_NE(lines[0].find(" connected 127.0.0.1:"), std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("-> 127.0.0.1:" + std::to_string(server.port()) +
                          " (established): SO_KEEPALIVE=1 TCP_KEEPIDLE=15"),
            std::string::npos)
      << lines[0];
  EXPECT_EQ(summary_of(first.out),
            "summary: 1 process, 1 TCP socket: 1 given options, 0 already "
            "had them")
      << first;
  EXPECT_TRUE(carries(probe_options(client.pid, server.port()), defaults()));

  Outcome second = run(attach({"--pid", std::to_string(client.pid)}));
  EXPECT_EQ(second.shell_status(), 0) << second;
  EXPECT_TRUE(socket_lines(second.out).empty()) << second;
  EXPECT_EQ(summary_of(second.out),
            "summary: 1 process, 1 TCP socket: 0 given options, 1 already "
            "had them")
      << second;
  EXPECT_TRUE(client.program.running()) << client.program.transcript();
}

TEST(Attach, DryRunSaysWhatItWouldSetAndChangesNothing) {
  Listener server;
  StaticClient client(server);
  ASSERT_GT(client.pid, 0);
  Outcome dry = run(attach({"--pid", std::to_string(client.pid), "--dry-run",
                            "--keepidle", "30"}));
  EXPECT_EQ(dry.shell_status(), 0) << dry;
  std::vector<std::string> lines = socket_lines(dry.out);
  ASSERT_EQ(lines.size(), 1u) << dry;
  EXPECT_NE(lines[0].find(": has SO_KEEPALIVE=0 TCP_KEEPIDLE="),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("; would set SO_KEEPALIVE=1 TCP_KEEPIDLE=30 "
                          "TCP_KEEPCNT=9 TCP_KEEPINTVL=15 "
                          "TCP_USER_TIMEOUT=165000"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(summary_of(dry.out).find("1 would be given options"),
            std::string::npos)
      << dry;
  EXPECT_TRUE(carries(probe_options(client.pid, server.port()), untouched()));
}

TEST(Attach, PythonClientTakesTheOptionsOfTheFlags) {
  PythonTarget target;
  REQUIRE_PYTHON(target);
  Listener server;
  target.ask("connect " + std::to_string(server.port()), "connected");
  Outcome outcome =
      run(attach({"--pid", std::to_string(target.pid()), "--keepidle", "5",
                  "--keepintvl", "2", "--keepcnt", "3"}));
  EXPECT_EQ(outcome.shell_status(), 0) << outcome;
  Expectation want;
  want.keepidle = 5;
  want.keepintvl = 2;
  want.keepcnt = 3;
  want.user_timeout = 11000;
  // Read from outside, and by the program itself.
  EXPECT_TRUE(carries(probe_options(target.pid(), server.port()), want));
  auto roles = target.report();
  ASSERT_EQ(roles["connected"].size(), 1u);
  EXPECT_TRUE(carries(roles["connected"][0], want));
}

struct ModeCase {
  std::string mode;
  bool listening, accepted, connected;
};

class AttachModes : public ::testing::TestWithParam<ModeCase> {};

TEST_P(AttachModes, PickSocketsByRole) {
  const ModeCase& c = GetParam();
  PythonTarget target;
  REQUIRE_PYTHON(target);
  target.ask("self", "self");  // a listener, a connection and its other end
  target.ask("unconnected", "unconnected");
  Outcome outcome = run(
      attach({"--pid", std::to_string(target.pid()), "--mode", c.mode}));
  EXPECT_EQ(outcome.shell_status(), 0) << outcome;
  auto roles = target.report();
  for (auto [role, want] : {std::pair{"listening", c.listening},
                            std::pair{"accepted", c.accepted},
                            std::pair{"connected", c.connected}}) {
    ASSERT_EQ(roles[role].size(), 1u) << role;
    EXPECT_TRUE(carries(roles[role][0], want ? defaults() : untouched()))
        << role << " under --mode " << c.mode << "\n"
        << outcome;
  }
  // An unconnected socket is taken by socket mode; the others wait to see
  // what it becomes.
  ASSERT_EQ(roles["unconnected"].size(), 1u);
  bool taken = c.mode == "socket";
  EXPECT_TRUE(carries(roles["unconnected"][0],
                      taken ? defaults() : untouched()))
      << outcome;
  if (!taken) {
    EXPECT_NE(summary_of(outcome.out).find("1 not connected yet"),
              std::string::npos)
        << outcome;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, AttachModes,
    ::testing::Values(ModeCase{"connect", false, false, true},
                      ModeCase{"listen", true, true, false},
                      ModeCase{"socket", true, true, true}),
    [](const ::testing::TestParamInfo<ModeCase>& param_info) {
      return param_info.param.mode;
    });

TEST(Attach, WatchGivesNewConnectionsTheirOptionsAndEndsWithTheProcess) {
  PythonTarget target;
  REQUIRE_PYTHON(target);
  Listener server;
  target.ask("connect " + std::to_string(server.port()), "connected");
  Child watcher(attach({"--pid", std::to_string(target.pid()),
                        "--watch=0.2", "--mode", "connect"}));
  ASSERT_TRUE(watcher.wait_line("pid ", 10s)) << watcher.transcript();
  // A connection made after the first scan: treated within the interval.
  std::string line =
      target.ask("connect " + std::to_string(server.port()), "connected");
  int second_port = word_as_int(line, 1);
  std::optional<std::string> treated =
      watcher.wait_line("pid " + std::to_string(target.pid()), 5s);
  ASSERT_TRUE(treated) << watcher.transcript();
  EXPECT_NE(treated->find("127.0.0.1:" + std::to_string(second_port) + " ->"),
            std::string::npos)
      << *treated;
  auto roles = target.report();
  ASSERT_EQ(roles["connected"].size(), 2u);
  EXPECT_TRUE(carries(roles["connected"][1], defaults()));
  // Nothing is copied twice: no third line.
  EXPECT_FALSE(watcher.wait_line("pid ", 600ms)) << watcher.transcript();

  target.program().close_stdin();  // the target exits at EOF
  std::optional<int> code = watcher.wait_exit(5s);
  ASSERT_TRUE(code) << "the watcher outlived its process\n"
                    << watcher.transcript();
  EXPECT_EQ(*code, 0) << watcher.transcript();
  EXPECT_NE(watcher.err().find("every process of --pid has exited"),
            std::string::npos)
      << watcher.transcript();
  EXPECT_NE(watcher.out().find("summary: 1 process, 2 TCP sockets: 2 given "
                               "options"),
            std::string::npos)
      << watcher.transcript();
}

TEST(Attach, WatchEndsOnSigtermWithItsSummary) {
  Listener server;
  StaticClient client(server);
  ASSERT_GT(client.pid, 0);
  Child watcher(attach({"--pid", std::to_string(client.pid), "--watch"}));
  ASSERT_TRUE(watcher.wait_line("pid ", 10s)) << watcher.transcript();
  kill(watcher.pid(), SIGTERM);
  std::optional<int> code = watcher.wait_exit(5s);
  ASSERT_TRUE(code) << watcher.transcript();
  EXPECT_EQ(*code, 0) << watcher.transcript();
  EXPECT_NE(watcher.out().find("summary: 1 process, 1 TCP socket: 1 given"),
            std::string::npos)
      << watcher.transcript();
}

// A cgroup directory of the test's own, removed at the end.
class ScratchCgroup {
 public:
  ScratchCgroup() {
    for (const char* root : {"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}) {
      std::string dir =
          std::string(root) + "/keepalive-attach-" + std::to_string(getpid());
      if (access((std::string(root) + "/cgroup.procs").c_str(), W_OK) == 0 &&
          mkdir(dir.c_str(), 0755) == 0) {
        dir_ = dir;
        return;
      }
      why_ += std::string(root) + ": " + strerror(errno) + "; ";
    }
  }
  ~ScratchCgroup() {
    // Its processes are gone by now (their Children are destroyed first);
    // the kernel may take a moment to see the cgroup empty.
    for (int i = 0; i < 100 && !dir_.empty(); ++i) {
      std::string sub = dir_ + "/sub";
      rmdir(sub.c_str());
      if (rmdir(dir_.c_str()) == 0 || errno == ENOENT) return;
      std::this_thread::sleep_for(20ms);
    }
  }
  const std::string& dir() const { return dir_; }
  const std::string& why() const { return why_; }

  // Moves `pid` into the cgroup (or its sub-cgroup `sub`).
  bool adopt(pid_t pid, const std::string& sub = "") {
    std::string dir = dir_;
    if (!sub.empty()) {
      dir += "/" + sub;
      mkdir(dir.c_str(), 0755);
    }
    std::ofstream procs(dir + "/cgroup.procs");
    procs << pid << std::flush;
    return procs.good();
  }

 private:
  std::string dir_;
  std::string why_;
};

TEST(Attach, CgroupCoversEveryProcessBelowItAndWatchSeesNewOnes) {
  ScratchCgroup cgroup;
  if (cgroup.dir().empty()) {
    GTEST_SKIP() << "cannot make a cgroup here: " << cgroup.why();
  }
  Listener server;
  std::vector<std::unique_ptr<StaticClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<StaticClient>(server));
    ASSERT_GT(clients.back()->pid, 0);
    ASSERT_TRUE(cgroup.adopt(clients.back()->pid, i == 2 ? "sub" : ""))
        << strerror(errno);
  }
  Outcome outcome = run(attach({"--cgroup", cgroup.dir()}));
  EXPECT_EQ(outcome.shell_status(), 0) << outcome;
  EXPECT_EQ(socket_lines(outcome.out).size(), 3u) << outcome;
  EXPECT_EQ(summary_of(outcome.out),
            "summary: 3 processes, 3 TCP sockets: 3 given options, 0 already "
            "had them")
      << outcome;
  for (const auto& client : clients) {
    EXPECT_TRUE(carries(probe_options(client->pid, server.port()), defaults()))
        << "pid " << client->pid;
  }

  // --watch: a process that joins the cgroup later is treated too; the
  // watcher ends when the cgroup is removed.
  Child watcher(attach({"--cgroup", cgroup.dir(), "--watch=0.2"}));
  // Its first scan finds nothing new (a late process's socket is treated
  // whether it joins before that scan or after).
  std::this_thread::sleep_for(400ms);
  auto late = std::make_unique<StaticClient>(server);
  ASSERT_GT(late->pid, 0);
  ASSERT_TRUE(cgroup.adopt(late->pid, "sub"));
  std::optional<std::string> treated =
      watcher.wait_line("pid " + std::to_string(late->pid), 5s);
  ASSERT_TRUE(treated) << watcher.transcript();
  EXPECT_TRUE(carries(probe_options(late->pid, server.port()), defaults()));
  EXPECT_EQ(socket_lines(watcher.out()).size(), 1u) << watcher.transcript();
  watcher.signal_group(SIGTERM);
  EXPECT_EQ(watcher.wait_exit(5s), 0) << watcher.transcript();
}

TEST(Attach, ProcessInAnotherNetworkNamespace) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root for unshare -n";
  Outcome probe = run({"/usr/bin/unshare", "-n", "true"}, {}, 10s);
  if (probe.shell_status() != 0) {
    GTEST_SKIP() << "network namespaces refused here: " << probe.err;
  }
  // The program's loopback is its own: it connects to itself there.
  PythonTarget target({"/usr/bin/unshare", "-n", "/bin/sh", "-c",
                       "ip link set lo up && exec \"$0\" \"$@\""});
  REQUIRE_PYTHON(target);
  target.ask("self", "self");
  std::string ours = std::string(
      std::filesystem::read_symlink("/proc/self/ns/net"));
  std::string theirs = std::string(std::filesystem::read_symlink(
      "/proc/" + std::to_string(target.pid()) + "/ns/net"));
  ASSERT_NE(ours, theirs);
  Outcome outcome = run(attach({"--pid", std::to_string(target.pid())}));
  EXPECT_EQ(outcome.shell_status(), 0) << outcome;
  auto roles = target.report();
  for (const char* role : {"listening", "accepted", "connected"}) {
    ASSERT_EQ(roles[role].size(), 1u) << role;
    EXPECT_TRUE(carries(roles[role][0], defaults())) << role;
  }
}

TEST(Attach, ProcessItMayNotTraceIsNamedAndLeftAlone) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to run as another user";
  Listener server;
  StaticClient client(server);
  ASSERT_GT(client.pid, 0);
  Outcome outcome = run({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                         "--clear-groups", supervise_path(), "--pid",
                         std::to_string(client.pid)});
  if (outcome.shell_status() == 126 || outcome.shell_status() == 127) {
    GTEST_SKIP() << "nobody cannot run " << supervise_path() << ": "
                 << outcome.err;
  }
  EXPECT_EQ(outcome.shell_status(), 1) << outcome;
  std::vector<std::string> errors = outcome.err_lines();
  ASSERT_EQ(errors.size(), 1u) << outcome;
  EXPECT_NE(errors[0].find("pid " + std::to_string(client.pid) +
                           ": not permitted"),
            std::string::npos)
      << errors[0];
  EXPECT_NE(errors[0].find("CAP_SYS_PTRACE"), std::string::npos) << errors[0];
  EXPECT_NE(summary_of(outcome.out).find("1 process could not be reached"),
            std::string::npos)
      << outcome;
  EXPECT_TRUE(carries(probe_options(client.pid, server.port()), untouched()));
}

TEST(Attach, MissingProcessAndNotACgroupAreNamed) {
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  ASSERT_GT(gone, 0);
  waitpid(gone, nullptr, 0);
  Outcome outcome = run(attach({"--pid", std::to_string(gone)}));
  EXPECT_EQ(outcome.shell_status(), 1) << outcome;
  EXPECT_EQ(outcome.err, "keepalive-supervise: pid " + std::to_string(gone) +
                             ": no such process\n")
      << outcome;

  // A zombie: exited, not yet reaped by its parent (us).
  pid_t zombie = fork();
  if (zombie == 0) _exit(0);
  ASSERT_GT(zombie, 0);
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(zombie) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), {});
    if (text.find(") Z ") != std::string::npos) break;
    std::this_thread::sleep_for(2ms);
  }
  outcome = run(attach({"--pid", std::to_string(zombie)}));
  waitpid(zombie, nullptr, 0);
  EXPECT_EQ(outcome.shell_status(), 1) << outcome;
  EXPECT_NE(outcome.err.find("pid " + std::to_string(zombie) + ": has exited"),
            std::string::npos)
      << outcome;

  outcome = run(attach({"--cgroup", "/tmp"}));
  EXPECT_EQ(outcome.shell_status(), 2) << outcome;
  EXPECT_EQ(outcome.err,
            "keepalive-supervise: --cgroup: '/tmp' is not a cgroup directory "
            "(no readable cgroup.procs: No such file or directory)\n")
      << outcome;
  EXPECT_EQ(outcome.out, "");
}

}  // namespace
}  // namespace keepalive::tests
