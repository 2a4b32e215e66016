// What the supervisor remembers per target thread, so that the hot path
// opens no pidfd and reads nothing from /proc after a thread's first call.
//
// An entry holds a pidfd of the thread itself. While that pidfd is not
// readable the thread is alive, so a notification from the same tid comes
// from the same thread: no recycled tid can inherit an entry. An entry's
// identity verdict stays true until the thread makes a call that can change
// its credentials or network namespace; the filter traps those, and the
// handler forgets the thread (see filter.h).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <unordered_map>

#include "common/unique_fd.h"

namespace keepalive {

struct TaskEntry {
  UniqueFd pidfd;                 // of the thread itself
  bool identity_known = false;    // identity_matches is meaningful
  bool identity_matches = false;  // same credentials and netns as ours
};

class TaskCache {
 public:
  // The entry for `tid` if its thread is still alive; an entry whose thread
  // exited (the tid may now be another thread's) is dropped.
  TaskEntry* find(pid_t tid);
  // Stores `pidfd` (which must refer to the thread `tid` itself) and returns
  // the new entry. Now and then drops the entries of exited threads, so the
  // cache holds about as many pidfds as live threads that made sockets.
  TaskEntry& insert(pid_t tid, UniqueFd pidfd);
  // Drops what is known about `tid`.
  void forget(pid_t tid) { entries_.erase(tid); }
  size_t size() const { return entries_.size(); }

 private:
  void sweep();

  std::unordered_map<pid_t, TaskEntry> entries_;
  size_t next_sweep_ = 64;
};

}  // namespace keepalive
