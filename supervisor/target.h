// SPDX-License-Identifier: Apache-2.0
// Facts about the task behind a notification, read from the kernel.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "supervisor/error.h"

namespace keepalive {

// Credentials and network namespace: what a socket created on someone's
// behalf inherits from its creator (sk_uid for owner matching and uid
// routing, the file's credentials, the namespace it lives in).
struct Identity {
  uid_t uid[4] = {};  // real, effective, saved, filesystem
  gid_t gid[4] = {};
  std::vector<gid_t> groups;
  ino_t netns = 0;  // identifies the network namespace (see target.cc)
  dev_t netns_dev = 0;

  bool operator==(const Identity&) const = default;
};

// The supervisor's own identity.
Result<Identity> own_identity();

// The identity of task `tid` (a thread id as seen in our pid namespace),
// from /proc. Callers must check afterwards that the notification is still
// valid, so that a recycled tid cannot fool them. Stores the thread group
// id in `tgid` when given.
Result<Identity> task_identity(pid_t tid, pid_t* tgid = nullptr);

// The thread group id of `tid`, from /proc/TID/status.
Result<pid_t> thread_group_of(pid_t tid);

// Whether thread group `tgid`'s leader has exited while other threads go
// on (it is a zombie, /proc/TGID/status says "State:\tZ"): its pid then
// has no fd table, and before Linux 6.9 (PIDFD_THREAD) no pidfd reaches
// the table the other threads use.
bool leader_exited(pid_t tgid);

// Where a socket's creator sits, besides its credentials: its cgroups (a
// socket takes the cgroup v2 path, which nft "socket cgroupv2" rules and
// cgroup BPF programs judge, and the v1 net_cls classid and net_prio index
// from its creator) and its LSM context (the socket's security label). A
// task changes either without a system call the filter sees (a write to
// cgroup.procs, possibly by another process), so they are compared on
// every emulated call, never cached.
struct Placement {
  std::string cgroups;  // /proc/TID/cgroup, every hierarchy, verbatim
  std::string label;    // /proc/TID/attr/current; empty without an LSM

  bool operator==(const Placement&) const = default;
};

// What a kernel gives to compare: cgroups (unless built without them) and
// LSM contexts (only where an LSM gives this task one; then every task has
// one). What it does not give is never read.
struct PlacementKinds {
  bool cgroups = false;
  bool label = false;
};

// The calling thread's placement, and which parts of it exist.
Result<Placement> own_placement(PlacementKinds* kinds);

// Open files of a task's placement, read again (pread at offset 0
// regenerates them) on each call. They stay bound to the task they were
// opened for: once it is gone, reads fail with ESRCH.
struct PlacementFiles {
  UniqueFd cgroups;  // invalid unless cgroups are compared
  UniqueFd label;    // invalid unless labels are compared
};
Result<PlacementFiles> open_placement(pid_t tid, PlacementKinds kinds);

// Whether the task behind `files` sits where `own` says. `scratch` is a
// buffer the caller keeps, so that the hot path allocates nothing.
Result<bool> same_placement(const PlacementFiles& files, const Placement& own,
                            std::string* scratch);

// What tells the supervisor that an exec started by thread `tid` is over.
struct ExecWatch {
  pid_t tgid = 0;
  // The exec runs in the thread group leader, which keeps its tid: no
  // other task can take over a tid while it runs (fd stays invalid).
  bool by_leader = false;
  // Otherwise: readable once `tid`'s old tid is released (the exec
  // succeeded and took over the leader's tid, or the thread died), with
  // PIDFD_THREAD; before Linux 6.9, once the whole thread group has exited.
  UniqueFd fd;
};
// Callers check afterwards that the exec's notification is still valid,
// so that a recycled tid cannot fool them.
Result<ExecWatch> watch_exec(pid_t tid);

struct TaskPidfd {
  UniqueFd fd;
  // The pidfd refers to `tid` itself (PIDFD_THREAD, or `tid` leads its
  // thread group): it becomes readable exactly when that task exits.
  bool of_task = false;
};

// A pidfd whose fd table is the one `tid` uses: PIDFD_THREAD where the
// kernel has it (6.9+), else the thread group leader's. ESRCH when the task
// is gone (pidfd_open's transient EINVAL for a dying task included).
Result<TaskPidfd> open_task_pidfd(pid_t tid);

}  // namespace keepalive
