// SPDX-License-Identifier: Apache-2.0
// start_paused() and install(): the child runs the command under the
// filter, a child never installed or given a plan it cannot take is not
// left behind, and the memory children run on is given back once they are
// done with it.
#include "supervisor/launch.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <string>
#include <vector>

#include "supervisor/filter.h"

namespace keepalive {
namespace {

// A plan whose filter traps nothing these commands do (listen only), with
// no_new_privs, so that no exec is trapped and nobody needs to answer.
FilterPlan quiet_plan() {
  auto program =
      build_filter({.mode = Mode::kListen, .strategy = Strategy::kContinue});
  EXPECT_TRUE(program) << program.error().message();
  FilterPlan plan;
  if (program) plan.program = std::move(*program);
  return plan;
}

sigset_t current_mask() {
  sigset_t mask;
  sigprocmask(SIG_SETMASK, nullptr, &mask);
  return mask;
}

int wait_exit_code(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

Result<Launched> launch(const std::vector<std::string>& command) {
  Result<PausedChild> child = start_paused(command, current_mask());
  if (!child) return std::unexpected(child.error());
  return child->install(quiet_plan());
}

void expect_no_child_left() {
  EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

size_t mapping_count() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  size_t count = 0;
  while (std::getline(maps, line)) ++count;
  return count;
}

TEST(LaunchTest, RunsTheCommandUnderTheFilter) {
  Result<Launched> launched = launch(
      {"/bin/sh", "-c", "grep -q '^Seccomp:.*2' /proc/self/status && exit 7"});
  ASSERT_TRUE(launched) << launched.error().message();
  EXPECT_TRUE(launched->listener.valid());
  EXPECT_TRUE(launched->pidfd.valid());
  EXPECT_EQ(wait_exit_code(launched->pid), 7);
}

TEST(LaunchTest, AChildNeverInstalledIsNotLeftBehind) {
  {
    Result<PausedChild> child = start_paused({"/bin/true"}, current_mask());
    ASSERT_TRUE(child) << child.error().message();
    EXPECT_GT(child->pid(), 0);
    // Root may copy the fds of its own child.
    EXPECT_TRUE(child->getfd_permitted()) << child->getfd_error();
  }
  expect_no_child_left();
}

TEST(LaunchTest, APlanTooLargeFailsAndLeavesNoChild) {
  {
    Result<PausedChild> child = start_paused({"/bin/true"}, current_mask());
    ASSERT_TRUE(child) << child.error().message();
    FilterPlan plan;
    plan.program.resize(5000, sock_filter{});
    Result<Launched> launched = child->install(plan);
    ASSERT_FALSE(launched);
    EXPECT_EQ(launched.error().err, E2BIG);
  }
  expect_no_child_left();
}

TEST(LaunchTest, MemoryOfFinishedChildrenIsGivenBack) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer keeps freed memory in quarantine: RSS "
                  "says nothing of what is given back in a sanitizer build";
#elif defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer maps shadow and trace memory as the "
                  "process runs, and its build forks the launch child: the "
                  "mapping count says nothing there";
#endif
  // Each child runs on a stack and strings of ours until its exec; they
  // are freed once it is done, so many launches do not pile them up.
  auto launch_and_wait = [] {
    Result<Launched> launched = launch({"/bin/true"});
    ASSERT_TRUE(launched) << launched.error().message();
    EXPECT_EQ(wait_exit_code(launched->pid), 0);
  };
  launch_and_wait();
  size_t before = mapping_count();
  for (int i = 0; i < 50; ++i) launch_and_wait();
  EXPECT_LE(mapping_count(), before + 4);
}

}  // namespace
}  // namespace keepalive
