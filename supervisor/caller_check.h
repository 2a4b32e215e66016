// SPDX-License-Identifier: Apache-2.0
// Whether the caller of a trapped socket() may be handed a socket the
// supervisor created. Such a socket carries its creator's credentials,
// network namespace, cgroups and LSM label (target.h): emulation is only
// sound for a caller that has all of ours. Credentials and namespace are
// judged once per thread and cached until a trapped call may change them
// (task_cache.h says when a cached verdict can be trusted); cgroups and
// label are compared on every call, since they change without a call the
// filter sees.
#pragma once

#include <linux/seccomp.h>
#include <sys/types.h>

#include <string>

#include "supervisor/listener.h"
#include "supervisor/log.h"
#include "supervisor/target.h"
#include "supervisor/task_cache.h"

namespace keepalive {

class CallerCheck {
 public:
  enum class Judgement {
    kSame,       // the caller has all of ours: emulate
    kDifferent,  // it does not, or it cannot be told (logged): let through
    kGone,       // the call was withdrawn while we looked: answer nothing
  };

  // `listener` tells whether a call is still alive; `tasks` is the cache
  // of per-thread verdicts; `own` our credentials and namespace. All are
  // borrowed.
  CallerCheck(Listener& listener, TaskCache& tasks, const Identity& own,
              Warnings& warnings);

  // Judges the caller of socket() call `req`. Answers nothing.
  Judgement judge(const seccomp_notif& req);

  // Trapped call `req` may give its caller other credentials or another
  // network namespace: its next socket() is judged anew.
  void forget_caller(const seccomp_notif& req);

  // Trapped exec `req` is about to run: forget its thread group, and if a
  // non-leader execs, mark the group "exec pending" (see task_cache.h).
  void note_exec(const seccomp_notif& req);

 private:
  // The placement half of judge(), for a caller whose credentials match;
  // `entry` is its cache entry or nullptr, `same` the comparison.
  Judgement judge_placement(const seccomp_notif& req, TaskEntry* entry,
                            const Result<bool>& same);

  Listener& listener_;
  TaskCache& tasks_;
  const Identity& own_;
  Warnings& warnings_;
  // Our own cgroups and LSM context, read by the serving thread at its
  // first emulated socket (the socket takes that thread's).
  bool placement_loaded_ = false;
  PlacementKinds placement_kinds_;  // which parts the kernel gives
  Result<Placement> own_placement_;
  std::string scratch_;
};

}  // namespace keepalive
