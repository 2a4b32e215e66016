// SPDX-License-Identifier: Apache-2.0
#include "supervisor/remote_call.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/text_file.h"

namespace keepalive {
namespace {

constexpr uint8_t kSyscallBytes[2] = {0x0f, 0x05};
// The code segment selector of a 64-bit user process (__USER_CS); 32-bit
// ones run with 0x23.
constexpr uint64_t kUserCs64 = 0x33;

// waitpid for the thread, also when it is not our child (__WALL), with a
// bound: a thread that never stops (it is being killed) must not hang us.
bool wait_stop(pid_t tid, int* status, int timeout_ms) {
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    pid_t r = waitpid(tid, status, __WALL | WNOHANG);
    if (r == tid) return true;
    if (r < 0 && errno != EINTR) return false;
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    long waited = (now.tv_sec - start.tv_sec) * 1000 +
                  (now.tv_nsec - start.tv_nsec) / 1000000;
    if (waited >= timeout_ms) return false;
    timespec ms{0, 1000000};
    nanosleep(&ms, nullptr);
  }
}

bool read_memory(pid_t pid, uint64_t address, void* out, size_t size) {
  iovec local{out, size};
  // NOLINTNEXTLINE(performance-no-int-to-ptr): an address in another process
  iovec remote{reinterpret_cast<void*>(address), size};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0) ==
         static_cast<ssize_t>(size);
}

}  // namespace

Result<std::unique_ptr<RemoteThread>> RemoteThread::seize(pid_t pid,
                                                           pid_t tid) {
  std::unique_ptr<RemoteThread> thread(new RemoteThread(pid, tid));
  if (ptrace(PTRACE_SEIZE, tid, nullptr, nullptr) != 0) {
    return errno_error("ptrace(PTRACE_SEIZE, " + std::to_string(tid) + ")");
  }
  thread->attached_ = true;
  if (ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr) != 0) {
    return errno_error("ptrace(PTRACE_INTERRUPT)");
  }
  // Until the interrupt's own stop: a signal that arrives first is let
  // through to the thread as it would have been (its handler runs, with
  // its siginfo), and the interrupt stops it right after.
  for (int stops = 0;; ++stops) {
    int status = 0;
    if (stops > 10000 || !wait_stop(tid, &status, 5000)) {
      return std::unexpected(
          SysError{0, "the thread did not stop within 5 s"});
    }
    if (!WIFSTOPPED(status)) {
      thread->attached_ = false;  // it died
      return std::unexpected(SysError{ESRCH, "the thread ended"});
    }
    if ((status >> 16) == PTRACE_EVENT_STOP) break;
    int sig = (status >> 16) == 0 ? WSTOPSIG(status) : 0;
    // NOLINTNEXTLINE(performance-no-int-to-ptr): ptrace takes the signal so
    void* data = reinterpret_cast<void*>(static_cast<long>(sig));
    if (ptrace(PTRACE_CONT, tid, nullptr, data) != 0) {
      return errno_error("ptrace(PTRACE_CONT)");
    }
  }
  // From here on every signal but SIGKILL waits, queued with its siginfo,
  // until the thread is let go with its own mask back.
  if (ptrace(PTRACE_GETSIGMASK, tid, sizeof(uint64_t), &thread->saved_mask_) !=
      0) {
    return errno_error("ptrace(PTRACE_GETSIGMASK)");
  }
  uint64_t all = ~uint64_t{0};
  if (ptrace(PTRACE_SETSIGMASK, tid, sizeof all, &all) != 0) {
    return errno_error("ptrace(PTRACE_SETSIGMASK)");
  }
  thread->mask_set_ = true;
  if (ptrace(PTRACE_GETREGS, tid, nullptr, &thread->saved_) != 0) {
    return errno_error("ptrace(PTRACE_GETREGS)");
  }
  if (thread->saved_.cs != kUserCs64) {
    return std::unexpected(
        SysError{EINVAL, "the process runs 32-bit code (not supported)"});
  }
  if (!thread->find_syscall_instruction()) {
    return std::unexpected(
        SysError{ENOEXEC, "no syscall instruction found in the process"});
  }
  return thread;
}

bool RemoteThread::find_syscall_instruction() {
  // Where it stopped, if that was in a system call.
  uint8_t bytes[2];
  if (was_in_syscall() && saved_.rip >= 2 &&
      read_memory(tid_, saved_.rip - 2, bytes, 2) &&
      memcmp(bytes, kSyscallBytes, 2) == 0) {
    syscall_at_ = saved_.rip - 2;
    return true;
  }
  // Else the vDSO's fallback paths have one.
  Result<std::string> maps = read_small_file(
      "/proc/" + std::to_string(pid_) + "/task/" + std::to_string(tid_) +
      "/maps");
  if (!maps) return false;
  size_t vdso = maps->find("[vdso]");
  if (vdso != std::string::npos) {
    size_t line = maps->rfind('\n', vdso);
    line = line == std::string::npos ? 0 : line + 1;
    uint64_t start = 0, end = 0;
    if (sscanf(maps->c_str() + line, "%lx-%lx", &start, &end) != 2 ||
        end <= start || end - start > (1 << 20)) {
      return false;
    }
    std::string code(end - start, '\0');
    if (!read_memory(tid_, start, code.data(), code.size())) return false;
    size_t at = code.find(std::string_view(
        reinterpret_cast<const char*>(kSyscallBytes), 2));
    if (at == std::string::npos) return false;
    syscall_at_ = start + at;
    return true;
  }
  return false;
}

bool RemoteThread::step_over(uint64_t from) {
  // Signals are blocked: the stops are the step's SIGTRAP, or an event
  // stop (a group stop), after which the step is made again.
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (ptrace(PTRACE_SINGLESTEP, tid_, nullptr, nullptr) != 0) return false;
    int status = 0;
    if (!wait_stop(tid_, &status, 10000)) return false;
    if (!WIFSTOPPED(status)) {
      attached_ = false;
      return false;
    }
    if ((status >> 16) == 0 && WSTOPSIG(status) == SIGTRAP) {
      user_regs_struct now{};
      if (ptrace(PTRACE_GETREGS, tid_, nullptr, &now) != 0) return false;
      if (now.rip != from) return true;
    }
  }
  return false;
}

Result<long> RemoteThread::call(long nr, long a1, long a2, long a3, long a4,
                                long a5, long a6) {
  user_regs_struct regs = saved_;
  regs.rip = syscall_at_;
  regs.rax = nr;
  // No system call in progress: the kernel must not restart one on resume.
  regs.orig_rax = static_cast<unsigned long long>(-1);
  regs.rdi = a1;
  regs.rsi = a2;
  regs.rdx = a3;
  regs.r10 = a4;
  regs.r8 = a5;
  regs.r9 = a6;
  if (ptrace(PTRACE_SETREGS, tid_, nullptr, &regs) != 0) {
    return errno_error("ptrace(PTRACE_SETREGS)");
  }
  if (!step_over(syscall_at_)) {
    return std::unexpected(
        SysError{0, "the thread did not run the injected call"});
  }
  user_regs_struct after{};
  if (ptrace(PTRACE_GETREGS, tid_, nullptr, &after) != 0) {
    return errno_error("ptrace(PTRACE_GETREGS)");
  }
  return static_cast<long>(after.rax);
}

Result<void> RemoteThread::write(uint64_t address, const void* data,
                                 size_t size) {
  iovec local{const_cast<void*>(data), size};
  // NOLINTNEXTLINE(performance-no-int-to-ptr): an address in another process
  iovec remote{reinterpret_cast<void*>(address), size};
  if (process_vm_writev(tid_, &local, 1, &remote, 1, 0) !=
      static_cast<ssize_t>(size)) {
    return errno_error("process_vm_writev");
  }
  return {};
}

RemoteThread::~RemoteThread() {
  if (!attached_) return;
  ptrace(PTRACE_SETREGS, tid_, nullptr, &saved_);
  if (mask_set_) {
    ptrace(PTRACE_SETSIGMASK, tid_, sizeof saved_mask_, &saved_mask_);
  }
  ptrace(PTRACE_DETACH, tid_, nullptr, nullptr);
}

}  // namespace keepalive
