// SPDX-License-Identifier: Apache-2.0
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
// for its tid is the caller's own. Server::serve (server.cc) explains how
// it gets that ordering without a syscall per call.
//
// An entry's identity verdict stays true until the thread makes a call
// that can change its credentials or network namespace; the filter traps
// those, and the handler forgets the thread, or its whole thread group on
// exec (see filter.h).
//
// Exec needs more than forgetting. A non-leader thread T that execs takes
// over the leader's tid (de_thread, exchange_tids) once the other threads
// are dead, and the leader's PIDFD_THREAD pidfd, whose struct pid now
// belongs to T, never reports an exit. A verdict stored for the leader
// after the exec was trapped (the leader's socket() answered between the
// trap and de_thread) would then be trusted for the new program. So a
// trapped exec by a non-leader marks its thread group "exec pending", and
// no verdict is stored for the group until T's old tid is released (T's
// PIDFD_THREAD pidfd turns readable: the exec took over the leader's tid,
// or T died), T makes another call (its exec failed), or, before Linux
// 6.9, the whole group has exited. An exec by the leader needs no mark: the
// leader keeps its tid and makes no call while inside execve, and the
// threads that it kills have tids of their own. Judging anew (uncached) is
// always sound: de_thread kills the other threads, which withdraws their
// pending notifications, so the validity check after reading /proc fails.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <unordered_map>

#include "common/unique_fd.h"
#include "supervisor/target.h"

namespace keepalive {

struct TaskEntry {
  UniqueFd pidfd;                 // of the thread itself
  pid_t tgid = 0;                 // its thread group, when known (else 0)
  bool identity_known = false;    // identity_matches is meaningful
  bool identity_matches = false;  // same credentials and netns as ours
  PlacementFiles placement;       // compared on every call
  bool placement_warned = false;  // a mismatch was reported for it
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

  // Thread `tid` of `tgid` started an exec; `watch` (ExecWatch::fd) turns
  // readable once it is over. Until then exec_pending(tgid) is true. If the
  // watch cannot be kept, nothing is cached any more, for good.
  void mark_exec_pending(pid_t tid, pid_t tgid, UniqueFd watch);
  // Thread `tid` made a call, so it is not inside an exec (any more).
  void exec_returned(pid_t tid);
  // Whether no verdict may be stored for thread group `tgid`.
  bool exec_pending(pid_t tgid) const {
    return !caching_ || pending_groups_.contains(tgid);
  }

  // Readable when a cached thread has exited; -1 without an epoll set.
  int exits_fd() const { return exits_.get(); }
  // Drops the entries of every thread that has exited.
  void drop_exited();

  size_t size() const { return entries_.size(); }
  size_t pending_execs() const { return execs_.size(); }

 private:
  struct PendingExec {
    pid_t tgid = 0;
    UniqueFd watch;
  };
  void drop_exec(pid_t tid);

  UniqueFd exits_;
  bool caching_ = true;
  size_t max_entries_;  // bounded by the fds they hold (see task_cache.cc)
  std::unordered_map<pid_t, TaskEntry> entries_;
  std::unordered_map<pid_t, PendingExec> execs_;   // by the exec's tid
  std::unordered_map<pid_t, int> pending_groups_;  // tgid -> execs_ count
};

}  // namespace keepalive
