// What the supervisor remembers per target thread, so that the hot path
// opens no pidfd, reads nothing from /proc and makes no syscall to look a
// thread up after its first call.
//
// An entry holds a pidfd of the thread itself, watched by an epoll set that
// becomes readable when any of them does, i.e. when a cached thread exits.
// Entries of exited threads must be dropped (drop_exited) before a
// notification is trusted to come from the thread an entry describes: a
// tid can be recycled only after its thread has exited, so once the exits
// that happened before a notification was queued are dropped, an entry
// for its tid is the caller's own. NotificationHandler::serve explains how
// it gets that ordering without a syscall per call.
//
// An entry's identity verdict stays true until the thread makes a call
// that can change its credentials or network namespace; the filter traps
// those, and the handler forgets the thread, or its whole thread group on
// exec (see filter.h).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <unordered_map>

#include "common/unique_fd.h"

namespace keepalive {

struct TaskEntry {
  UniqueFd pidfd;                 // of the thread itself
  pid_t tgid = 0;                 // its thread group, when known (else 0)
  bool identity_known = false;    // identity_matches is meaningful
  bool identity_matches = false;  // same credentials and netns as ours
};

class TaskCache {
 public:
  // Without an epoll set (epoll_create1 failed) the cache keeps nothing.
  TaskCache();

  // The entry for `tid`, if any. Makes no syscall: see the ordering rule
  // above.
  TaskEntry* find(pid_t tid);
  // Stores `pidfd` (which must refer to the thread `tid` itself) and
  // returns the new entry, or nullptr if it cannot be watched (then
  // nothing is cached).
  TaskEntry* insert(pid_t tid, UniqueFd pidfd);
  // Drops what is known about `tid`, or about every thread of `tgid`.
  void forget(pid_t tid) { entries_.erase(tid); }
  void forget_group(pid_t tgid);

  // Readable when a cached thread has exited; -1 without an epoll set.
  int exits_fd() const { return exits_.get(); }
  // Drops the entries of every thread that has exited.
  void drop_exited();

  size_t size() const { return entries_.size(); }

 private:
  UniqueFd exits_;
  std::unordered_map<pid_t, TaskEntry> entries_;
};

}  // namespace keepalive
