// SPDX-License-Identifier: Apache-2.0
// Placement (cgroups, LSM context) read from /proc: the open files are
// read again on every call and stay bound to the task they were opened
// for.
#include "supervisor/target.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "supervisor/syscalls.h"

namespace keepalive {
namespace {

TEST(PlacementTest, AChildSitsWhereItsParentDoes) {
  PlacementKinds kinds;
  Result<Placement> own = own_placement(&kinds);
  ASSERT_TRUE(own) << own.error().message();
  if (!kinds.cgroups) GTEST_SKIP() << "this kernel has no cgroups";
  pid_t child = fork();
  if (child == 0) {
    pause();
    _exit(0);
  }
  Result<PlacementFiles> files = open_placement(child, kinds);
  ASSERT_TRUE(files) << files.error().message();
  std::string scratch;
  for (int i = 0; i < 2; ++i) {  // read again from the same files
    Result<bool> same = same_placement(*files, *own, &scratch);
    ASSERT_TRUE(same) << same.error().message();
    EXPECT_TRUE(*same);
  }
  Placement other = *own;
  other.cgroups += "0::/elsewhere\n";
  EXPECT_FALSE(*same_placement(*files, other, &scratch));
  other.cgroups = own->cgroups.substr(0, own->cgroups.size() - 1);
  EXPECT_FALSE(*same_placement(*files, other, &scratch));
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  // Gone: the files must not describe whatever takes the pid next.
  Result<bool> gone = same_placement(*files, *own, &scratch);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().err, ESRCH);
}

TEST(ExecWatchTest, TheLeaderNeedsNoWatch) {
  Result<ExecWatch> watch = watch_exec(getpid());
  ASSERT_TRUE(watch) << watch.error().message();
  EXPECT_TRUE(watch->by_leader);
  EXPECT_EQ(watch->tgid, getpid());
}

TEST(ExecWatchTest, AnotherThreadIsWatchedUntilItEnds) {
  int ready[2], done[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(done), 0);
  std::thread thread([&] {
    pid_t tid = gettid();
    ASSERT_EQ(write(ready[1], &tid, sizeof tid),
              static_cast<ssize_t>(sizeof tid));
    char c;
    ASSERT_EQ(read(done[0], &c, 1), 1);
  });
  pid_t tid = 0;
  ASSERT_EQ(read(ready[0], &tid, sizeof tid), static_cast<ssize_t>(sizeof tid));
  Result<ExecWatch> watch = watch_exec(tid);
  ASSERT_TRUE(watch) << watch.error().message();
  EXPECT_FALSE(watch->by_leader);
  EXPECT_EQ(watch->tgid, getpid());
  pollfd p{watch->fd.get(), POLLIN, 0};
  EXPECT_EQ(poll(&p, 1, 0), 0);
  ASSERT_EQ(write(done[1], "x", 1), 1);
  thread.join();
  // With PIDFD_THREAD the thread's end; before 6.9 only the group's.
  UniqueFd probe(sys::pidfd_open(getpid(), PIDFD_THREAD));
  if (probe.valid()) {
    EXPECT_EQ(poll(&p, 1, 5000), 1);
  }
  for (int fd : {ready[0], ready[1], done[0], done[1]}) close(fd);
}

}  // namespace
}  // namespace keepalive
