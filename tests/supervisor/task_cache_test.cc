// TaskCache: an entry lives exactly as long as its thread, so that a
// recycled tid can never inherit what was known of the thread before.
#include "supervisor/task_cache.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/syscalls.h"

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
  TaskEntry& entry =
      cache.insert(child.pid, UniqueFd(sys::pidfd_open(child.pid, 0)));
  entry.identity_known = true;
  entry.identity_matches = true;
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
  EXPECT_EQ(cache.find(pid), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(TaskCacheTest, ForgetDropsTheEntry) {
  Sleeper child;
  TaskCache cache;
  cache.insert(child.pid, UniqueFd(sys::pidfd_open(child.pid, 0)));
  cache.forget(child.pid);
  EXPECT_EQ(cache.find(child.pid), nullptr);
}

TEST(TaskCacheTest, InsertingSweepsTheEntriesOfExitedTasks) {
  TaskCache cache;
  // Many short-lived tasks: the cache must not keep a pidfd for each.
  for (int i = 0; i < 300; ++i) {
    Sleeper child;
    ASSERT_GT(child.pid, 0);
    cache.insert(child.pid, UniqueFd(sys::pidfd_open(child.pid, 0)));
    child.end();
  }
  EXPECT_LT(cache.size(), 200u);
}

}  // namespace
}  // namespace keepalive
