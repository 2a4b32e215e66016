// SPDX-License-Identifier: Apache-2.0
// Starting the target under the filter, in two steps: start_paused()
// starts the child, which waits; the caller probes it (can we copy its
// fds?), chooses a FilterPlan, and install() sends the plan, which the
// child installs before it execs the command.
//
// The child blocks until the parent has sent the filter, sets
// PR_SET_PDEATHSIG, no_new_privs (unless told not to), installs the filter
// with a new listener, hands the listener to the parent over a socketpair
// (SCM_RIGHTS), closes its own copy and execs. Between installing the filter
// and the hand-off it makes no trapped call, so it cannot deadlock on itself.
//
// The child shares the parent's memory until its exec (clone with CLONE_VM,
// as posix_spawn does, but without waiting for the exec): no page tables to
// copy and no copy-on-write faults, which made fork the largest part of the
// start-up. It makes raw system calls only, on memory prepared beforehand.
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "supervisor/error.h"

namespace keepalive {

// What the child installs.
struct FilterPlan {
  std::vector<sock_filter> program;
  bool no_new_privs = true;
  // Ask for WAIT_KILLABLE_RECV: set from kernel_has_wait_killable_recv()
  // (strategy.h), which asks through libc, where a test can fake an older
  // kernel; the child, whose raw calls bypass libc, drops the flag if the
  // kernel refuses it all the same.
  bool wait_killable_recv = true;
  // If the filter cannot be installed, exec the command unsupervised
  // (Launched::install_error says why) instead of failing.
  bool fail_open = false;
  // Put the command in a process group of its own (taking the terminal's
  // foreground with it), so that signals can be sent to the whole group.
  bool own_process_group = false;
  // Set as the command's RLIMIT_NOFILE just before exec, after the
  // listener is handed over: the limits the supervisor was started with,
  // when it raised its own (see fd_limit.h).
  std::optional<rlimit> command_nofile = std::nullopt;
};

struct Launched {
  pid_t pid = -1;
  UniqueFd pidfd;     // the child; readable once it exits
  UniqueFd listener;  // the seccomp notification fd; invalid if unsupervised
  int install_error = 0;  // errno of a failed install under fail_open
  bool wait_killable_recv = false;  // what the kernel accepted
};

// A child started by start_paused(), waiting for its plan. Killed and
// reaped when destroyed before install() succeeded, so that no child is
// left running on memory that is about to be freed.
class PausedChild {
 public:
  PausedChild(PausedChild&&) noexcept;
  PausedChild& operator=(PausedChild&&) noexcept;
  ~PausedChild();

  pid_t pid() const;
  // Whether pidfd_getfd on this child worked (it does not under Docker's
  // and containerd's default seccomp profiles, nor where Yama or
  // dumpability forbid it), and its errno when not.
  bool getfd_permitted() const { return getfd_error() == 0; }
  int getfd_error() const;

  // Sends `plan`; returns once the child has installed the filter (or,
  // under plan.fail_open, failed to and goes on unsupervised), without
  // waiting for the exec, which the filter may trap: if the exec fails, the
  // child prints one line naming the command and exits 127 (not found) or
  // 126. On failure the child is killed and reaped. Call at most once.
  Result<Launched> install(const FilterPlan& plan);

  struct State;

 private:
  explicit PausedChild(std::unique_ptr<State> state);
  friend Result<PausedChild> start_paused(const std::vector<std::string>&,
                                          const sigset_t&);

  std::unique_ptr<State> state_;
};

// Starts `command` (looked up in PATH as execvp does) in a child that waits
// for install(). `target_mask` is the signal mask the command starts with
// (the one the supervisor itself was started with, not the one it blocks
// for signalfd). The caller must have no signal handler for a signal that
// `target_mask` leaves open: between unblocking and exec it would run in
// the child, on the caller's memory.
Result<PausedChild> start_paused(const std::vector<std::string>& command,
                                 const sigset_t& target_mask);

}  // namespace keepalive
