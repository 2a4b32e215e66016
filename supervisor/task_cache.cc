// SPDX-License-Identifier: Apache-2.0
#include "supervisor/task_cache.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <utility>

namespace keepalive {

namespace {

// epoll keys: an entry's tid, or a pending exec's tid with this bit.
constexpr uint64_t kExecKey = uint64_t{1} << 32;

// Each entry holds up to three fds. A reserve of 64 stays for the
// supervisor's own work (the socket it makes for each emulated call among
// them): at a low fd limit the cache gives way, never emulation.
size_t entry_limit() {
  constexpr rlim_t kReserve = 64;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 64;
  if (limit.rlim_cur <= kReserve) return 0;
  return static_cast<size_t>(
      std::min<rlim_t>((limit.rlim_cur - kReserve) / 3, 1 << 20));
}

}  // namespace

TaskCache::TaskCache()
    : exits_(epoll_create1(EPOLL_CLOEXEC)), max_entries_(entry_limit()) {}

TaskEntry* TaskCache::find(pid_t tid) {
  auto it = entries_.find(tid);
  return it == entries_.end() ? nullptr : &it->second;
}

TaskEntry* TaskCache::insert(pid_t tid, UniqueFd pidfd) {
  if (!exits_.valid() || !pidfd.valid() || !caching_) return nullptr;
  // Replacing an entry closes its pidfd, which leaves the epoll set.
  entries_.erase(tid);
  if (entries_.size() >= max_entries_) return nullptr;
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = static_cast<uint64_t>(tid);
  if (epoll_ctl(exits_.get(), EPOLL_CTL_ADD, pidfd.get(), &event) != 0) {
    return nullptr;
  }
  TaskEntry& entry = entries_[tid];
  entry.pidfd = std::move(pidfd);
  return &entry;
}

void TaskCache::forget_group(pid_t tgid) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    bool member = it->first == tgid || it->second.tgid == tgid;
    it = member ? entries_.erase(it) : std::next(it);
  }
}

void TaskCache::mark_exec_pending(pid_t tid, pid_t tgid, UniqueFd watch) {
  drop_exec(tid);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kExecKey | static_cast<uint32_t>(tid);
  if (!exits_.valid() || !watch.valid() ||
      epoll_ctl(exits_.get(), EPOLL_CTL_ADD, watch.get(), &event) != 0) {
    // Without a way to see the exec end, no verdict is ever safe again.
    caching_ = false;
    entries_.clear();
    return;
  }
  execs_[tid] = PendingExec{tgid, std::move(watch)};
  ++pending_groups_[tgid];
}

void TaskCache::exec_returned(pid_t tid) {
  if (!execs_.empty()) drop_exec(tid);
}

void TaskCache::drop_exec(pid_t tid) {
  auto it = execs_.find(tid);
  if (it == execs_.end()) return;
  auto group = pending_groups_.find(it->second.tgid);
  if (group != pending_groups_.end() && --group->second == 0) {
    pending_groups_.erase(group);
  }
  execs_.erase(it);  // closing the watch takes it out of the epoll set
}

void TaskCache::drop_exited() {
  if (!exits_.valid()) return;
  epoll_event events[64];
  int n;
  do {
    n = epoll_wait(exits_.get(), events, 64, 0);
    for (int i = 0; i < n; ++i) {
      // Closing the pidfd takes it out of the set, so each exit is seen
      // once, and an entry stored since under the same tid has its own.
      uint64_t key = events[i].data.u64;
      pid_t tid = static_cast<pid_t>(key & 0xffffffffu);
      if (key & kExecKey) {
        drop_exec(tid);
      } else {
        entries_.erase(tid);
      }
    }
  } while (n == 64 || (n < 0 && errno == EINTR));
}

}  // namespace keepalive
