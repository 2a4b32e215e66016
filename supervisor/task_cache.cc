#include "supervisor/task_cache.h"

#include <poll.h>

#include <utility>

namespace keepalive {
namespace {

// A pidfd is readable once its task has exited.
bool exited(const UniqueFd& pidfd) {
  pollfd p{pidfd.get(), POLLIN, 0};
  return poll(&p, 1, 0) != 0;  // readable, or an error: treat as gone
}

}  // namespace

TaskEntry* TaskCache::find(pid_t tid) {
  auto it = entries_.find(tid);
  if (it == entries_.end()) return nullptr;
  if (exited(it->second.pidfd)) {
    entries_.erase(it);
    return nullptr;
  }
  return &it->second;
}

TaskEntry& TaskCache::insert(pid_t tid, UniqueFd pidfd) {
  if (entries_.size() >= next_sweep_) {
    sweep();
    next_sweep_ = 2 * entries_.size() + 64;
  }
  TaskEntry& entry = entries_[tid];
  entry = TaskEntry{std::move(pidfd), false, false};
  return entry;
}

void TaskCache::sweep() {
  for (auto it = entries_.begin(); it != entries_.end();) {
    it = exited(it->second.pidfd) ? entries_.erase(it) : std::next(it);
  }
}

}  // namespace keepalive
