// SPDX-License-Identifier: Apache-2.0
// TaskCache: an entry lives until its thread's exit has been seen, so that
// a recycled tid can never inherit what was known of the thread before.
#include "supervisor/task_cache.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "supervisor/syscalls.h"

namespace keepalive {
namespace {

// A child that waits until killed; reaped by the destructor.
struct Sleeper {
  pid_t pid = fork();
  Sleeper() {
    if (pid == 0) {
      pause();
      _exit(0);
    }
  }
  void end() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    pid = -1;
  }
  ~Sleeper() { end(); }
};

TEST(TaskCacheTest, KeepsAnEntryWhileTheTaskLives) {
  Sleeper child;
  ASSERT_GT(child.pid, 0);
  TaskCache cache;
  TaskEntry* entry =
      cache.insert(child.pid, UniqueFd(sys::pidfd_open(child.pid, 0)));
  ASSERT_NE(entry, nullptr);
  entry->identity_known = true;
  entry->identity_matches = true;
  cache.drop_exited();
  TaskEntry* found = cache.find(child.pid);
  ASSERT_NE(found, nullptr);
  EXPECT_TRUE(found->identity_matches);
}

TEST(TaskCacheTest, DropsTheEntryOnceTheTaskHasExited) {
  Sleeper child;
  ASSERT_GT(child.pid, 0);
  TaskCache cache;
  pid_t pid = child.pid;
  cache.insert(pid, UniqueFd(sys::pidfd_open(pid, 0)));
  child.end();
  // The exit makes the set readable at once, before anything is dropped.
  pollfd p{cache.exits_fd(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 1);
  cache.drop_exited();
  EXPECT_EQ(cache.find(pid), nullptr);
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_EQ(poll(&p, 1, 0), 0);
}

TEST(TaskCacheTest, ForgetGroupDropsEveryThreadOfTheGroup) {
  Sleeper a, b;
  TaskCache cache;
  cache.insert(a.pid, UniqueFd(sys::pidfd_open(a.pid, 0)))->tgid = a.pid;
  cache.insert(b.pid, UniqueFd(sys::pidfd_open(b.pid, 0)))->tgid = b.pid;
  cache.forget_group(a.pid);
  EXPECT_EQ(cache.find(a.pid), nullptr);
  EXPECT_NE(cache.find(b.pid), nullptr);
}

TEST(TaskCacheTest, ForgetDropsTheEntry) {
  Sleeper child;
  TaskCache cache;
  cache.insert(child.pid, UniqueFd(sys::pidfd_open(child.pid, 0)));
  cache.forget(child.pid);
  EXPECT_EQ(cache.find(child.pid), nullptr);
}

TEST(TaskCacheTest, DropExitedKeepsOnlyLiveTasks) {
  TaskCache cache;
  Sleeper alive;
  cache.insert(alive.pid, UniqueFd(sys::pidfd_open(alive.pid, 0)));
  // More exits than one epoll_wait returns: all are dropped in one call.
  for (int i = 0; i < 150; ++i) {
    Sleeper child;
    ASSERT_GT(child.pid, 0);
    cache.insert(child.pid, UniqueFd(sys::pidfd_open(child.pid, 0)));
    child.end();
  }
  cache.drop_exited();
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_NE(cache.find(alive.pid), nullptr);
}

// An exec by a non-leader thread holds its group's verdicts back until
// the watch reports the exec over (here: the watched task exits), or the
// thread makes another call (its exec failed).
TEST(TaskCacheTest, ExecPendingLastsUntilTheWatchFires) {
  Sleeper execing;
  TaskCache cache;
  constexpr pid_t kGroup = 4242;
  EXPECT_FALSE(cache.exec_pending(kGroup));
  cache.mark_exec_pending(execing.pid, kGroup,
                          UniqueFd(sys::pidfd_open(execing.pid, 0)));
  EXPECT_TRUE(cache.exec_pending(kGroup));
  EXPECT_FALSE(cache.exec_pending(kGroup + 1));
  cache.drop_exited();
  EXPECT_TRUE(cache.exec_pending(kGroup)) << "dropped while the task lives";
  cache.exec_returned(execing.pid);
  EXPECT_FALSE(cache.exec_pending(kGroup));

  cache.mark_exec_pending(execing.pid, kGroup,
                          UniqueFd(sys::pidfd_open(execing.pid, 0)));
  execing.end();
  cache.drop_exited();
  EXPECT_FALSE(cache.exec_pending(kGroup));
  EXPECT_EQ(cache.pending_execs(), 0u);
}

TEST(TaskCacheTest, AnExecThatCannotBeWatchedStopsCaching) {
  Sleeper child;
  TaskCache cache;
  cache.insert(child.pid, UniqueFd(sys::pidfd_open(child.pid, 0)));
  cache.mark_exec_pending(child.pid, child.pid, UniqueFd());
  EXPECT_EQ(cache.size(), 0u);
  EXPECT_TRUE(cache.exec_pending(12345));
  EXPECT_EQ(cache.insert(child.pid, UniqueFd(sys::pidfd_open(child.pid, 0))),
            nullptr);
}

}  // namespace
}  // namespace keepalive
