// SPDX-License-Identifier: Apache-2.0
// Emulated socket() returns a new TCP socket or an error, never an fd the
// program already has, whatever happens to the supervisor or the program
// between the notification and the answer:
//  - the supervisor is stopped and continued (SIGSTOP/SIGCONT, 300 times,
//    about 2 ms apart) while the program loops on socket();
//  - the supervisor's cgroup is frozen and thawed the same way (what
//    `docker pause` does), with the program outside that cgroup;
//  - signals rain on the program on a kernel without WAIT_KILLABLE_RECV
//    (faked): the fds such signals leave behind stay few, and emulation
//    says once that it stops.
// With SECCOMP_ADDFD_FLAG_SEND the first two make socket() return 0 (see
// docs/kernel-addfd-send.md). The helper `raw_tcp newfds` checks each fd.
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

constexpr int kCycles = 300;
constexpr auto kHalfCycle = 1ms;
// The program's loop outlasts the storm, which starts once it is ready.
constexpr const char* kLoopMs = "2500";

// Runs `raw_tcp newfds` under the supervisor with `flags`, calls
// `pause(supervisor_pid, on)` kCycles times with on = true then false, and
// returns the helper's result line as pairs.
// With `cgroup_dir`, the supervisor (and so the command it starts) runs in
// that cgroup.
Options run_storm(const std::vector<std::string>& flags,
                  const std::function<void(pid_t, bool)>& pause,
                  const std::vector<std::string>& env = {},
                  std::string* transcript = nullptr,
                  const std::string& cgroup_dir = "") {
  std::vector<std::string> command =
      supervised(flags, {raw_tcp_path(), "newfds", kLoopMs});
  if (!cgroup_dir.empty()) {
    command.insert(command.begin(),
                   {"/bin/sh", "-c",
                    "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"",
                    cgroup_dir});
  }
  Child supervisor(command, env);
  if (!supervisor.wait_line("ready", 10s)) {
    ADD_FAILURE() << "target not ready\n" << supervisor.transcript();
    return {};
  }
  for (int i = 0; i < kCycles && supervisor.running(); ++i) {
    pause(supervisor.pid(), true);
    std::this_thread::sleep_for(kHalfCycle);
    pause(supervisor.pid(), false);
    std::this_thread::sleep_for(kHalfCycle);
  }
  pause(supervisor.pid(), false);
  std::optional<int> code = supervisor.wait_exit(20s);
  if (transcript != nullptr) *transcript = supervisor.transcript();
  if (!code) {
    ADD_FAILURE() << "still running after 20 s\n" << supervisor.transcript();
    return {};
  }
  std::optional<std::string> line = supervisor.wait_line("newfds ", 1s);
  if (!line) {
    ADD_FAILURE() << "no result line\n" << supervisor.transcript();
    return {};
  }
  return parse_pairs(*line);
}

void expect_only_new_sockets(const Options& result, const std::string& how) {
  ASSERT_FALSE(result.empty());
  EXPECT_GT(result.at("calls"), kCycles) << how;
  EXPECT_EQ(result.at("wrong"), 0)
      << how << ": socket() returned an fd that is not a new TCP socket "
      << result.at("wrong") << " times (first: fd " << result.at("first_wrong")
      << ")";
  EXPECT_EQ(result.at("errors"), 0) << how;
  EXPECT_EQ(result.at("missing"), 0) << how;
  EXPECT_EQ(result.at("fdleak"), 0) << how;
}

TEST(AddfdStorm, StopAndContinueTheSupervisor) {
  auto stop = [](pid_t pid, bool on) { kill(pid, on ? SIGSTOP : SIGCONT); };
  Options result = run_storm({"--strategy", "emulate"}, stop);
  expect_only_new_sockets(result, "SIGSTOP/SIGCONT");
}

// ---- cgroup freezer -------------------------------------------------------

bool write_file(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) ==
            static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

// Where a hierarchy is mounted: the cgroup2 one (`v2`), or the v1 one with
// the freezer controller; empty if none.
std::string cgroup_mount(bool v2) {
  std::ifstream mountinfo("/proc/self/mountinfo");
  for (std::string line; std::getline(mountinfo, line);) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream before(line.substr(0, dash));
    std::istringstream after(line.substr(dash + 3));
    std::string id, parent, dev, root, point, type, source, options;
    before >> id >> parent >> dev >> root >> point;
    after >> type >> source >> options;
    if (v2 && type == "cgroup2") return point;
    if (!v2 && type == "cgroup" &&
        ("," + options + ",").find(",freezer,") != std::string::npos) {
      return point;
    }
  }
  return "";
}

// A cgroup of its own for one process, frozen and thawed on demand, removed
// (after thawing and moving out whatever is left in it) on destruction.
class FreezerCgroup {
 public:
  explicit FreezerCgroup(bool v2) : v2_(v2), mount_(cgroup_mount(v2)) {
    if (mount_.empty()) return;
    dir_ = mount_ + "/keepalive-addfd-test-" + std::to_string(getpid());
    if (mkdir(dir_.c_str(), 0755) != 0 && errno != EEXIST) {
      why_ = "mkdir " + dir_ + ": " + strerror(errno);
      dir_.clear();
      return;
    }
    if (access(control().c_str(), W_OK) != 0) {
      why_ = control() + " missing";
    }
  }
  ~FreezerCgroup() {
    if (dir_.empty()) return;
    freeze(false);
    std::ifstream procs(dir_ + "/cgroup.procs");
    for (std::string pid; std::getline(procs, pid);) {
      write_file(mount_ + "/cgroup.procs", pid);
    }
    rmdir(dir_.c_str());
  }

  // Empty when usable; otherwise why not.
  std::string unusable() const {
    if (mount_.empty()) {
      return v2_ ? "no cgroup2 hierarchy mounted"
                 : "no cgroup v1 freezer hierarchy mounted";
    }
    return why_;
  }
  const std::string& dir() const { return dir_; }
  void freeze(bool on) {
    write_file(control(), v2_ ? (on ? "1" : "0") : (on ? "FROZEN" : "THAWED"));
  }

 private:
  std::string control() const {
    return dir_ + (v2_ ? "/cgroup.freeze" : "/freezer.state");
  }

  bool v2_;
  std::string mount_, dir_, why_;
};

class AddfdFreezer : public ::testing::TestWithParam<bool> {};

TEST_P(AddfdFreezer, FreezeAndThawTheSupervisorsCgroup) {
  const bool v2 = GetParam();
  FreezerCgroup cgroup(v2);
  if (!cgroup.unusable().empty()) GTEST_SKIP() << cgroup.unusable();
  // The supervisor and its command share the cgroup, as in a container
  // that `docker pause` freezes (emulation also requires them to: a socket
  // takes its creator's cgroup).
  auto freeze = [&](pid_t, bool on) { cgroup.freeze(on); };
  Options result = run_storm({"--strategy", "emulate"}, freeze, {}, nullptr,
                             cgroup.dir());
  expect_only_new_sockets(result, v2 ? "cgroup.freeze" : "freezer.state");
}

INSTANTIATE_TEST_SUITE_P(
    Hierarchies, AddfdFreezer, ::testing::Bool(),
    [](const ::testing::TestParamInfo<bool>& param) {
      return std::string(param.param ? "cgroup2" : "v1_freezer");
    });

// ---- signals to the program, without WAIT_KILLABLE_RECV -------------------

// How many fds emulation may leave behind before it stops.
constexpr long long kMaxLeaked = kMaxLeakedFds;

// Without WAIT_KILLABLE_RECV (faked: Linux 5.14-5.18, and 5.9-5.13 without
// ADDFD_FLAG_SEND either) a signal between adding the fd and answering
// withdraws the call and leaves the fd in the program. The leak is bounded:
// past kMaxLeaked emulation stops, once, saying so.
TEST(AddfdSignals, LeaksStayBoundedWithoutWaitKillableRecv) {
  for (bool addfd_send : {true, false}) {
    SCOPED_TRACE(addfd_send ? "like Linux 5.18" : "like Linux 5.13");
    std::vector<std::string> env = {"LD_PRELOAD=" + fake_old_kernel_path(),
                                    "ASAN_OPTIONS=verify_asan_link_order=0",
                                    "FAKE_NO_WAIT_KILLABLE_RECV=1"};
    if (!addfd_send) env.push_back("FAKE_NO_ADDFD_SEND=1");
    Outcome outcome = run(
        supervised({"--strategy", "emulate"},
                   {raw_tcp_path(), "signals", "3000", "--timer-us", "50",
                    "--min-signals", "200"}),
        env, 60s);
    ASSERT_TRUE(outcome.shell_status()) << "still running after 60 s\n"
                                   << outcome.out << outcome.err;
    size_t at = outcome.out.find("result ");
    ASSERT_NE(at, std::string::npos) << outcome.out << outcome.err;
    Options result = parse_pairs(
        outcome.out.substr(at, outcome.out.find('\n', at) - at));
    RecordProperty(addfd_send ? "linux_5_18" : "linux_5_13",
                   "fdleak=" + std::to_string(result["fdleak"]));
    EXPECT_LE(result["fdleak"], kLeakedFdsBound)
        << outcome.out << outcome.err;
    EXPECT_EQ(result["errors"], 0) << outcome.out;
    size_t said = outcome.err.find("stopped emulating socket()");
    if (result["fdleak"] >= kMaxLeaked) {
      EXPECT_NE(said, std::string::npos) << outcome.err;
    }
    if (said != std::string::npos) {
      EXPECT_EQ(outcome.err.find("stopped emulating", said + 1),
                std::string::npos)
          << "said more than once\n" << outcome.err;
    } else {
      EXPECT_EQ(result["missing"], 0) << outcome.out << outcome.err;
    }
  }
}

}  // namespace
}  // namespace keepalive::tests
