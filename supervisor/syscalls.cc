// SPDX-License-Identifier: Apache-2.0
#include "supervisor/syscalls.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace keepalive::sys {

int pidfd_open(int pid, unsigned flags) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, flags));
}

int pidfd_getfd(int pidfd, int target_fd, unsigned flags) {
  return static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, target_fd, flags));
}

int pidfd_send_signal(int pidfd, int sig, siginfo_t* info, unsigned flags) {
  return static_cast<int>(
      syscall(SYS_pidfd_send_signal, pidfd, sig, info, flags));
}

int seccomp_set_filter(unsigned flags, const struct sock_fprog* prog) {
  return static_cast<int>(
      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, prog));
}

int seccomp_action_available(uint32_t action) {
  return static_cast<int>(
      syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action));
}

int seccomp_notif_sizes(struct seccomp_notif_sizes* sizes) {
  return static_cast<int>(
      syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, sizes));
}

int capget(struct __user_cap_header_struct* header,
           struct __user_cap_data_struct* data) {
  return static_cast<int>(syscall(SYS_capget, header, data));
}

int io_uring_setup(unsigned entries, struct io_uring_params* params) {
  return static_cast<int>(syscall(SYS_io_uring_setup, entries, params));
}

int io_uring_enter(int fd, unsigned to_submit, unsigned min_complete,
                   unsigned flags) {
  return static_cast<int>(syscall(SYS_io_uring_enter, fd, to_submit,
                                  min_complete, flags, nullptr, 0));
}

int io_uring_register(int fd, unsigned opcode, void* arg, unsigned nr_args) {
  return static_cast<int>(
      syscall(SYS_io_uring_register, fd, opcode, arg, nr_args));
}

namespace raw {

long syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6) {
#if KEEPALIVE_DIRECT_SYSCALLS && defined(__x86_64__)
  register long r10 __asm__("r10") = a4;
  register long r8 __asm__("r8") = a5;
  register long r9 __asm__("r9") = a6;
  long result;
  __asm__ volatile("syscall"
                   : "=a"(result)
                   : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8),
                     "r"(r9)
                   : "rcx", "r11", "memory");
  return result;
#elif KEEPALIVE_DIRECT_SYSCALLS && defined(__aarch64__)
  register long x8 __asm__("x8") = nr;
  register long x0 __asm__("x0") = a1;
  register long x1 __asm__("x1") = a2;
  register long x2 __asm__("x2") = a3;
  register long x3 __asm__("x3") = a4;
  register long x4 __asm__("x4") = a5;
  register long x5 __asm__("x5") = a6;
  __asm__ volatile("svc 0"
                   : "+r"(x0)
                   : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                   : "memory");
  return x0;
#else
  long result = syscall(nr, a1, a2, a3, a4, a5, a6);
  return result < 0 ? -errno : result;
#endif
}

void exit_group(int status) {
  for (;;) syscall6(SYS_exit_group, status, 0, 0, 0, 0, 0);
}

}  // namespace raw

}  // namespace keepalive::sys
