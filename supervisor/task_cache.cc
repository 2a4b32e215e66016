#include "supervisor/task_cache.h"

#include <errno.h>
#include <sys/epoll.h>

#include <utility>

namespace keepalive {

TaskCache::TaskCache() : exits_(epoll_create1(EPOLL_CLOEXEC)) {}

TaskEntry* TaskCache::find(pid_t tid) {
  auto it = entries_.find(tid);
  return it == entries_.end() ? nullptr : &it->second;
}

TaskEntry* TaskCache::insert(pid_t tid, UniqueFd pidfd) {
  if (!exits_.valid() || !pidfd.valid()) return nullptr;
  // Replacing an entry closes its pidfd, which leaves the epoll set.
  entries_.erase(tid);
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

void TaskCache::drop_exited() {
  if (!exits_.valid()) return;
  epoll_event events[64];
  int n;
  do {
    n = epoll_wait(exits_.get(), events, 64, 0);
    for (int i = 0; i < n; ++i) {
      // Closing the pidfd takes it out of the set, so each exit is seen
      // once, and an entry stored since under the same tid has its own.
      entries_.erase(static_cast<pid_t>(events[i].data.u64));
    }
  } while (n == 64 || (n < 0 && errno == EINTR));
}

}  // namespace keepalive
