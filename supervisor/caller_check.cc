// SPDX-License-Identifier: Apache-2.0
#include "supervisor/caller_check.h"

#include <errno.h>

#include <string>
#include <utility>

namespace keepalive {

CallerCheck::CallerCheck(Listener& listener, TaskCache& tasks,
                         const Identity& own, Warnings& warnings)
    : listener_(listener), tasks_(tasks), own_(own), warnings_(warnings) {}

CallerCheck::Judgement CallerCheck::judge(const seccomp_notif& req) {
  pid_t tid = static_cast<pid_t>(req.pid);
  tasks_.exec_returned(tid);
  if (!placement_loaded_) {
    placement_loaded_ = true;
    own_placement_ = own_placement(&placement_kinds_);
  }
  if (!own_placement_) {
    warnings_.once("placement-own",
                   "cannot read the supervisor's own cgroups (" +
                       own_placement_.error().message() +
                       "); TCP sockets get no options (use --strategy "
                       "continue)");
    return Judgement::kDifferent;
  }
  if (TaskEntry* entry = tasks_.find(tid);
      entry != nullptr && entry->identity_known) {
    if (!entry->identity_matches) return Judgement::kDifferent;
    Result<bool> same =
        same_placement(entry->placement, *own_placement_, &scratch_);
    // ESRCH: the files are of a thread that has ended. Either the caller
    // is dying (judge_placement sees the call withdrawn) or its tid was
    // reused before the cache heard of the exit: judged anew below.
    if (same || same.error().err != ESRCH) {
      return judge_placement(req, entry, same);
    }
    if (!listener_.alive(req.id)) return Judgement::kGone;
    tasks_.forget(tid);
  }
  // First socket of this thread (or first since it changed identity). The
  // pidfd and the placement files are opened before /proc is read so that,
  // once the notification is known to be alive afterwards, all of it is
  // known to be of the caller.
  Result<TaskPidfd> pidfd = open_task_pidfd(tid);
  Result<PlacementFiles> files = open_placement(tid, placement_kinds_);
  pid_t tgid = 0;
  Result<Identity> identity = task_identity(tid, &tgid);
  Result<bool> placed = files
                            ? same_placement(*files, *own_placement_, &scratch_)
                            : Result<bool>(std::unexpected(files.error()));
  if (!listener_.alive(req.id)) return Judgement::kGone;
  if (!identity) {
    warnings_.limited("identity-unreadable",
                      "cannot tell whether pid " + std::to_string(tid) +
                          " has the supervisor's credentials and network "
                          "namespace (" +
                          identity.error().message() +
                          "); its TCP sockets get no options");
    return Judgement::kDifferent;
  }
  bool matches = *identity == own_;
  TaskEntry* entry = nullptr;
  // No verdict is stored while an exec may still hand the leader's tid
  // to another program (see task_cache.h).
  if (pidfd && pidfd->of_task && files && tgid != 0 &&
      !tasks_.exec_pending(tgid)) {
    entry = tasks_.insert(tid, std::move(pidfd->fd));
    if (entry != nullptr) {
      entry->tgid = tgid;
      entry->identity_known = true;
      entry->identity_matches = matches;
      entry->placement = std::move(*files);
    }
  }
  if (!matches) {
    warnings_.limited("identity",
                      "pid " + std::to_string(tid) +
                          " runs with other credentials or in another "
                          "network namespace than the supervisor; its TCP "
                          "sockets get no options (use --strategy continue "
                          "to cover it)");
    return Judgement::kDifferent;
  }
  return judge_placement(req, entry, placed);
}

CallerCheck::Judgement CallerCheck::judge_placement(const seccomp_notif& req,
                                                    TaskEntry* entry,
                                                    const Result<bool>& same) {
  if (same && *same) return Judgement::kSame;
  // A caller killed mid-call cannot be read, or reads as a task leaving
  // its cgroups: that is no placement to warn about.
  if (!listener_.alive(req.id)) return Judgement::kGone;
  std::string pid = std::to_string(req.pid);
  if (!same) {
    warnings_.limited("placement-unreadable",
                      "cannot tell whether pid " + pid +
                          " is in the supervisor's cgroups with its security "
                          "label (" +
                          same.error().message() +
                          "); its TCP sockets get no options (use --strategy "
                          "continue to cover it)");
  } else if (entry == nullptr || !entry->placement_warned) {
    // Once per thread: the placement is read again on every call.
    if (entry != nullptr) entry->placement_warned = true;
    warnings_.limited("placement",
                      "pid " + pid +
                          " is in other cgroups or has another security "
                          "label than the supervisor; its TCP sockets get no "
                          "options (firewall rules and cgroup programs judge "
                          "a socket by its creator's; use --strategy "
                          "continue to cover it)");
  }
  return Judgement::kDifferent;
}

void CallerCheck::forget_caller(const seccomp_notif& req) {
  // Nothing known, nothing to forget.
  if (tasks_.size() != 0) tasks_.forget(static_cast<pid_t>(req.pid));
}

void CallerCheck::note_exec(const seccomp_notif& req) {
  pid_t tid = static_cast<pid_t>(req.pid);
  Result<ExecWatch> watch = watch_exec(tid);
  tasks_.forget(tid);
  // Not alive: the caller died or a signal interrupted its call, so no exec
  // runs from this notification (a restarted one comes back as a new one).
  if (!listener_.alive(req.id)) return;
  if (!watch) {
    // Without knowing when the exec ends, no verdict is safe: the cache
    // turns itself off.
    tasks_.mark_exec_pending(tid, 0, UniqueFd());
    warnings_.once("exec-watch", "cannot watch an exec by pid " +
                                     std::to_string(tid) + " (" +
                                     watch.error().message() +
                                     "); every later socket() is judged anew");
    return;
  }
  // An exec ends the other threads, and the caller takes over the thread
  // group leader's tid: what was known of the whole group is stale.
  tasks_.forget_group(watch->tgid);
  if (!watch->by_leader) {
    tasks_.mark_exec_pending(tid, watch->tgid, std::move(watch->fd));
  }
}

}  // namespace keepalive
