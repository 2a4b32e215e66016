// SPDX-License-Identifier: Apache-2.0
// System calls made by a thread of another, running process, for
// keepalive-supervise --follow (attach_follow.h): the thread is seized with
// ptrace and interrupted, its registers saved, each call run by pointing it
// at a `syscall` instruction already in its memory (where it stopped, or
// in its vDSO) and single-stepping it; then every register is restored and
// the thread let go. The other threads run on meanwhile.
//
// x86-64 processes only. While it is held the thread's signals are
// blocked (PTRACE_SETSIGMASK): those that arrive stay queued, siginfo and
// all, and are delivered once it is let go with its own mask. Nothing
// here throws: a failure part-way still restores the thread.
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include <memory>
#include <string>
#include <vector>

#include "supervisor/error.h"

namespace keepalive {

class RemoteThread {
 public:
  // Seizes thread `tid` of process `pid` and waits (up to about 5 s) for it
  // to stop. Errors name the cause: EPERM (no ptrace access, or already
  // traced), ESRCH (gone), EINVAL (not an x86-64 process), ENOEXEC (no
  // syscall instruction found).
  static Result<std::unique_ptr<RemoteThread>> seize(pid_t pid, pid_t tid);

  // Restores the registers and the signal mask and lets the thread go.
  ~RemoteThread();
  RemoteThread(const RemoteThread&) = delete;
  RemoteThread& operator=(const RemoteThread&) = delete;

  // Runs system call `nr` in the thread; returns what the kernel returned
  // in rax (-errno on failure). An error when the thread could not run it
  // (it was killed, say).
  Result<long> call(long nr, long a1 = 0, long a2 = 0, long a3 = 0,
                    long a4 = 0, long a5 = 0, long a6 = 0);

  // Writes `size` bytes at `address` of the process.
  Result<void> write(uint64_t address, const void* data, size_t size);

  // Whether the thread was stopped inside a system call (which the kernel
  // will restart or fail with EINTR as it would after any signal).
  bool was_in_syscall() const { return static_cast<long>(saved_.orig_rax) >= 0; }

 private:
  RemoteThread(pid_t pid, pid_t tid) : pid_(pid), tid_(tid) {}
  // Resumes the held thread with single-steps until its next instruction
  // has run; false if it died.
  bool step_over(uint64_t from);
  // Finds an address holding the bytes of `syscall` (0f 05).
  bool find_syscall_instruction();

  pid_t pid_;
  pid_t tid_;
  bool attached_ = false;
  user_regs_struct saved_{};
  uint64_t syscall_at_ = 0;
  uint64_t saved_mask_ = 0;
  bool mask_set_ = false;
};

}  // namespace keepalive
