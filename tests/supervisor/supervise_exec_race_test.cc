// SPDX-License-Identifier: Apache-2.0
// Identity verdicts under churn. A verdict cached for a thread is trusted
// only while it provably still describes the caller: here a thread of a
// root program execs a set-user-ID-nobody program while the main thread
// loops on socket(), so that the exec takes over the main thread's tid
// just after a verdict may have been stored for it; the new program's
// sockets must be its own (owned by nobody in /proc/net/tcp), never ones
// made with root's credentials. And per-task warnings stay bounded: many
// short-lived children that drop privileges give a few lines and a count.
#include <errno.h>
#include <gtest/gtest.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <sstream>
#include <string>

#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

constexpr uid_t kNobody = 65534;

// A set-user-ID-nobody copy of raw_tcp in a fresh directory under /tmp;
// removed by the destructor. `path` is empty when one cannot be made.
struct SetuidCopy {
  std::string dir, path;
  SetuidCopy() {
    char dir_template[] = "/tmp/keepalive-suid-XXXXXX";
    if (mkdtemp(dir_template) == nullptr) return;
    dir = dir_template;
    std::string program = dir + "/raw_tcp_suid";
    struct statvfs fs {};
    if (statvfs(dir.c_str(), &fs) == 0 && (fs.f_flag & ST_NOSUID) == 0 &&
        run({"/bin/cp", raw_tcp_path(), program}).shell_status() == 0 &&
        chmod(dir.c_str(), 0755) == 0 &&
        chown(program.c_str(), kNobody, kNobody) == 0 &&
        chmod(program.c_str(), 04755) == 0) {
      path = program;
    }
  }
  ~SetuidCopy() {
    if (!dir.empty()) {
      unlink((dir + "/raw_tcp_suid").c_str());
      rmdir(dir.c_str());
    }
  }
};

// `env`: for the supervisor (e.g. a fake older kernel).
void run_exec_race(const std::vector<std::string>& env) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to make a set-user-ID copy";
  SetuidCopy copy;
  if (copy.path.empty()) GTEST_SKIP() << "cannot make a set-user-ID program";
  constexpr int kRounds = 60, kSockets = 3;
  Outcome outcome =
      run(supervised({"--strategy", "emulate"},
                     {raw_tcp_path(), "exec-race", std::to_string(kRounds),
                      copy.path, "owner", std::to_string(kSockets)}),
          env, 40s);
  ASSERT_EQ(outcome.shell_status(), 0) << outcome.out << outcome.err;
  int owners = 0, by_root = 0;
  std::istringstream lines(outcome.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("owner ", 0) != 0) continue;
    ++owners;
    Options got = parse_pairs(line);
    EXPECT_EQ(got["euid"], kNobody) << line;
    if (got["uid"] != kNobody) ++by_root;
  }
  EXPECT_EQ(owners, kRounds * kSockets) << outcome.out << outcome.err;
  EXPECT_EQ(by_root, 0) << "sockets of the set-user-ID program not owned by "
                           "nobody in /proc/net/tcp\n"
                        << outcome.out;
}

TEST(ExecRace, TheExecdProgramNeverGetsARootSocket) { run_exec_race({}); }

// Before Linux 6.9 (no PIDFD_THREAD) only group leaders are cached, under
// a pidfd that reports the whole group's exit: the leader's tid taken over
// by the exec never reports one.
TEST(ExecRace, NorWithoutPidfdThread) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "the fake old kernel is preloaded, and AddressSanitizer "
                  "must come first among a sanitizer build's libraries";
#endif
  run_exec_race(
      {"LD_PRELOAD=" + fake_old_kernel_path(), "FAKE_NO_PIDFD_THREAD=1"});
}

TEST(Warnings, ManyChildrenThatDropPrivilegesGiveABoundedCount) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to change credentials";
  constexpr int kChildren = 300;
  Outcome outcome =
      run(supervised({"--strategy", "emulate"},
                     {raw_tcp_path(), "drop-children",
                      std::to_string(kChildren), std::to_string(kNobody)}),
          {}, 40s);
  ASSERT_EQ(outcome.shell_status(), 0) << outcome.out << outcome.err;
  int lines = 0;
  long reported = 0;  // lines plus the suppressed ones they count
  std::istringstream err(outcome.err);
  for (std::string line; std::getline(err, line);) {
    if (line.find("other credentials") == std::string::npos) continue;
    ++lines;
    ++reported;
    size_t at = line.find(" similar warning");
    if (at != std::string::npos) {
      size_t open = line.rfind('(', at);
      reported += std::stol(line.substr(open + 1, at - open - 1));
    }
  }
  EXPECT_LE(lines, 8) << outcome.err;
  EXPECT_EQ(reported, kChildren) << outcome.err;
}

}  // namespace
}  // namespace keepalive::tests
