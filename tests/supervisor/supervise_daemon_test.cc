// SPDX-License-Identifier: Apache-2.0
// Commands that daemonize: the launcher exits while the server it started
// runs on under the filter. The supervisor exits with the launcher's
// status and a detached process serves the server until the last task
// under the filter is gone; --exit-with-command (and PID 1) keep the
// supervisor's lifetime tied to the command. Checked with a static helper
// that leaves a child behind, and with nginx and its default `daemon on`.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kDetachedLine = "goes on serving them in the background";

// The pid in "... pid P goes on serving them in the background ..." of the
// supervisor's -v output, or -1.
pid_t detached_server_of(const std::string& err) {
  size_t at = err.find(kDetachedLine);
  if (at == std::string::npos) return -1;
  size_t pid_at = err.rfind("pid ", at);
  if (pid_at == std::string::npos) return -1;
  return static_cast<pid_t>(std::stol(err.substr(pid_at + 4)));
}

// Whether `pid` exits within `timeout` (waited on through a pidfd: it is
// not our child once the supervisor has exited).
bool exits_within(pid_t pid, milliseconds timeout) {
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd.valid()) return errno == ESRCH;
  pollfd p{pidfd.get(), POLLIN, 0};
  return poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

// SIGKILLs `pid` as the test ends, unless released: nothing a test starts
// outlives it, whatever failed.
class KillOnExit {
 public:
  explicit KillOnExit(pid_t pid = -1) : pid_(pid) {}
  ~KillOnExit() {
    if (pid_ > 0) kill(pid_, SIGKILL);
  }
  void reset(pid_t pid) { pid_ = pid; }

 private:
  pid_t pid_;
};

// What --keepidle 37 puts on a socket: the user timeout derives from it,
// (37 + 15 * 9) * 1000 ms.
Expectation keepidle_37() {
  Expectation want;
  want.keepidle = 37;
  want.user_timeout = 172000;
  return want;
}

int free_port() {
  Listener probe;
  return probe.port();  // closed again: free for the server to take
}

// ---- a static helper that leaves a child behind -------------------------

// `raw_tcp spawn background connect PORT --read` under the supervisor: the
// launcher prints the child's pid and exits 0; the child connects once the
// test sends it SIGUSR1, that is after the supervisor has exited.
struct Leftover {
  explicit Leftover(const std::vector<std::string>& flags)
      : listener(),
        supervisor(supervised(flags, {raw_tcp_path(), "spawn", "background",
                                      "connect",
                                      std::to_string(listener.port()),
                                      "--read"})) {}
  Listener listener;
  Child supervisor;
};

TEST(Daemonizing, ABackgroundChildIsServedAfterTheCommandExited) {
  Leftover run({"-v", "--keepidle", "37"});
  std::optional<std::string> spawned =
      run.supervisor.wait_line("spawned", 10s);
  ASSERT_TRUE(spawned) << run.supervisor.transcript();
  pid_t child = word_as_int(*spawned, 1);
  KillOnExit child_guard(child);
  // The supervisor exits with the launcher's status, without waiting for
  // the child.
  ASSERT_EQ(run.supervisor.wait_exit(10s), 0) << run.supervisor.transcript();
  pid_t server = detached_server_of(run.supervisor.err());
  KillOnExit server_guard(server);
  EXPECT_GT(server, 0) << "no line saying who serves on:\n"
                       << run.supervisor.transcript();

  ASSERT_EQ(kill(child, SIGUSR1), 0);
  std::optional<std::string> connected =
      run.supervisor.wait_line("", 10s);  // "connected ..." or "error ..."
  ASSERT_TRUE(connected) << run.supervisor.transcript();
  ASSERT_EQ(connected->rfind("connected", 0), 0u)
      << "the background child's socket calls failed: " << *connected
      << "\n" << run.supervisor.transcript();
  UniqueFd accepted = run.listener.accept(5s);
  ASSERT_TRUE(accepted.valid());
  int port = word_as_int(*connected, 1);
  std::string detail;
  Options got = probe_options(child, port, 5s, &detail);
  EXPECT_TRUE(carries(got, keepidle_37()))
      << detail;

  // The child reads EOF and exits: nothing is left under the filter, and
  // the detached server goes by itself.
  accepted.reset();
  EXPECT_TRUE(exits_within(child, 5s));
  if (server > 0) {
    EXPECT_TRUE(exits_within(server, 5s))
        << "the detached server outlived the last filtered task";
  }
}

TEST(Daemonizing, ExitWithCommandAbandonsTheBackgroundChild) {
  Leftover run({"-v", "--exit-with-command"});
  std::optional<std::string> spawned =
      run.supervisor.wait_line("spawned", 10s);
  ASSERT_TRUE(spawned) << run.supervisor.transcript();
  pid_t child = word_as_int(*spawned, 1);
  KillOnExit child_guard(child);
  ASSERT_EQ(run.supervisor.wait_exit(10s), 0) << run.supervisor.transcript();
  EXPECT_EQ(detached_server_of(run.supervisor.err()), -1)
      << run.supervisor.transcript();
  EXPECT_NE(run.supervisor.err().find("fail with ENOSYS"), std::string::npos)
      << run.supervisor.transcript();

  // Nobody is behind the listener any more: the child's socket() fails with
  // ENOSYS, as documented for this flag.
  ASSERT_EQ(kill(child, SIGUSR1), 0);
  std::optional<std::string> line = run.supervisor.wait_line("", 10s);
  ASSERT_TRUE(line) << run.supervisor.transcript();
  EXPECT_EQ(*line, "error socket errno=" + std::to_string(ENOSYS));
}

TEST(Daemonizing, NothingLeftBehindMeansNoDetachedServer) {
  // `spawn fork` waits for its child: nothing outlives the command.
  Outcome outcome =
      run(supervised({"-v"}, {raw_tcp_path(), "spawn", "fork",
                              raw_tcp_path(), "flags"}),
          {}, 20s);
  EXPECT_EQ(outcome.shell_status(), 0) << outcome.err;
  EXPECT_EQ(outcome.err.find("left tasks under the filter"),
            std::string::npos)
      << outcome.err;
}

TEST(Daemonizing, AsPid1TheSupervisorEndsWithTheCommand) {
  // unshare makes the supervisor PID 1 of a new pid namespace; when it
  // exits the kernel kills the child it left, so unshare returns at once.
  Listener listener;
  Outcome outcome = run(
      {"/usr/bin/unshare", "--pid", "--fork", "--", supervise_path(), "-v",
       "--", raw_tcp_path(), "spawn", "background", "connect",
       std::to_string(listener.port())},
      {}, 20s);
  if (outcome.shell_status() && *outcome.shell_status() != 0 &&
      outcome.err.find("unshare failed") != std::string::npos) {
    GTEST_SKIP() << "no pid namespaces here: " << outcome.err;
  }
  ASSERT_TRUE(outcome.shell_status()) << "unshare did not return";
  EXPECT_EQ(*outcome.shell_status(), 0) << outcome.err;
  EXPECT_EQ(detached_server_of(outcome.err), -1) << outcome.err;
}

// ---- nginx with its default `daemon on` ---------------------------------

constexpr const char* kNginx = "/usr/sbin/nginx";

// An nginx of its own in a temporary prefix, listening on loopback ports
// the test chose. The destructor kills whatever is left of it.
class Nginx {
 public:
  Nginx() {
    char pattern[] = "/tmp/keepalive-nginx-XXXXXX";
    if (mkdtemp(pattern) != nullptr) dir_ = pattern;
  }
  ~Nginx() {
    if (std::optional<pid_t> master = master_pid()) {
      kill(*master, SIGKILL);
      kill_children(*master);
    }
    std::error_code ignored;
    if (!dir_.empty()) fs::remove_all(dir_, ignored);
  }

  bool ok() const { return !dir_.empty(); }

  // Writes the configuration: one server on each of `ports`.
  void configure(const std::vector<int>& ports) {
    std::ofstream conf(dir_ + "/nginx.conf");
    conf << "worker_processes 1;\n"
         << "error_log " << dir_ << "/error.log info;\n"
         << "events { worker_connections 64; }\n"
         << "http {\n  access_log off;\n";
    for (const char* temp : {"client_body", "proxy", "fastcgi", "uwsgi",
                             "scgi"}) {
      conf << "  " << temp << "_temp_path " << dir_ << "/" << temp << ";\n";
    }
    conf << "  server {\n";
    for (int port : ports) conf << "    listen 127.0.0.1:" << port << ";\n";
    conf << "    return 200 \"ok\\n\";\n  }\n}\n";
  }

  // nginx's command line with `extra` (e.g. "-s", "reload").
  std::vector<std::string> command(
      const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> argv = {kNginx, "-p", dir_, "-c",
                                     dir_ + "/nginx.conf", "-e",
                                     dir_ + "/error.log", "-g",
                                     "pid " + dir_ + "/nginx.pid;"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  std::optional<pid_t> master_pid() const {
    std::ifstream in(dir_ + "/nginx.pid");
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    return std::nullopt;
  }

  std::string error_log() const {
    std::ifstream in(dir_ + "/error.log");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  // The workers, which a killed master leaves behind.
  static void kill_children(pid_t parent) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
      std::ifstream stat(entry.path() / "stat");
      std::string line;
      if (!std::getline(stat, line)) continue;
      size_t paren = line.rfind(')');
      if (paren == std::string::npos) continue;
      std::istringstream rest(line.substr(paren + 2));
      char state;
      pid_t ppid = 0;
      rest >> state >> ppid;
      if (ppid == parent) kill(std::stoi(entry.path().filename()), SIGKILL);
    }
  }

  std::string dir_;
};

TEST(Daemonizing, NginxKeepsItsSupervisorThroughAReload) {
  if (access(kNginx, X_OK) != 0) {
    GTEST_SKIP() << kNginx << " is not installed (packaging/dev.sh installs "
                 << "it)";
  }
  if (geteuid() != 0) GTEST_SKIP() << "nginx is run as root here";
  Nginx nginx;
  ASSERT_TRUE(nginx.ok());
  int first = free_port();
  nginx.configure({first});

  // Started the classic way, inside $(...): the shell gets the launcher's
  // status at once and waits for nobody holding the pipe.
  std::vector<std::string> argv = {
      "/bin/sh", "-c", "out=$(\"$@\" 2>&1); s=$?; echo \"$out\"; echo s=$s",
      "sh"};
  for (const std::string& word :
       supervised({"-v", "--mode", "listen", "--keepidle", "37"},
                  nginx.command())) {
    argv.push_back(word);
  }
  auto started = Clock::now();
  Outcome launch = run(argv, {}, 20s);
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - started);
  ASSERT_EQ(launch.shell_status(), 0) << launch.out << launch.err;
  EXPECT_NE(launch.out.find("s=0\n"), std::string::npos) << launch.out;
  EXPECT_LT(took, 10s) << "$(...) waited for the background";
  pid_t server = detached_server_of(launch.out);
  KillOnExit server_guard(server);
  EXPECT_GT(server, 0) << launch.out;

  std::optional<pid_t> master;
  for (auto deadline = Clock::now() + 5s; !master && Clock::now() < deadline;
       std::this_thread::sleep_for(20ms)) {
    master = nginx.master_pid();
  }
  ASSERT_TRUE(master) << nginx.error_log();
  Expectation want = keepidle_37();
  std::string detail;
  EXPECT_TRUE(carries(probe_options(*master, first, 5s, &detail), want))
      << "first listening socket: " << detail;

  // A reload makes the master listen() again, long after the launcher
  // returned: the detached server must answer it. Its port is picked just
  // before, so that nothing else takes it in the meantime.
  int second = free_port();
  while (second == first) second = free_port();
  nginx.configure({first, second});
  Outcome reload = run(nginx.command({"-s", "reload"}), {}, 20s);
  ASSERT_EQ(reload.shell_status(), 0) << reload.err;
  // Connecting first: the socket exists (bound) before its listen() has
  // returned, and the options go on within that call.
  UniqueFd client = connect_to(second, 10s);
  EXPECT_TRUE(client.valid()) << nginx.error_log();
  client.reset();
  EXPECT_TRUE(carries(probe_options(*master, second, 5s, &detail), want))
      << "listening socket added by the reload: " << detail << "\n"
      << nginx.error_log();
  EXPECT_EQ(nginx.error_log().find("Function not implemented"),
            std::string::npos)
      << nginx.error_log();

  // Once nginx has quit, nothing is left under the filter.
  Outcome quit = run(nginx.command({"-s", "quit"}), {}, 20s);
  EXPECT_EQ(quit.shell_status(), 0) << quit.err;
  EXPECT_TRUE(exits_within(*master, 10s)) << nginx.error_log();
  if (server > 0) {
    EXPECT_TRUE(exits_within(server, 5s))
        << "the detached server outlived nginx";
  }
}

}  // namespace
}  // namespace keepalive::tests
