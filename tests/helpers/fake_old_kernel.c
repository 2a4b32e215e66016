// SPDX-License-Identifier: Apache-2.0
// fake_old_kernel.so: preloaded into keepalive-supervise, makes this
// kernel look older by refusing, with EINVAL as an older kernel does, the
// features the supervisor has fallbacks for, so that the fallbacks run
// here. Each is chosen by an environment variable (any value):
//
//   FAKE_NO_WAIT_KILLABLE_RECV  seccomp(SET_MODE_FILTER) with
//                               SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
//                               (Linux 5.19)
//   FAKE_NO_PIDFD_THREAD        pidfd_open(tid, PIDFD_THREAD) (Linux 6.9);
//                               and pidfd_open(tid, 0) of a thread that is
//                               not a group leader fails with EINVAL, as
//                               before 6.9, not ENOENT as on newer kernels
//   FAKE_NO_ADDFD_SEND          SECCOMP_IOCTL_NOTIF_ADDFD with
//                               SECCOMP_ADDFD_FLAG_SEND (Linux 5.14)
//
// and one transient failure a kernel can produce at any time:
//
//   FAKE_PIDFD_THREAD_EINVAL_ONCE  the first pidfd_open(tid, PIDFD_THREAD)
//                               of another process's task fails with
//                               EINVAL, as for a task that is exiting
//
// It interposes libc's syscall() and ioctl(), through which the supervisor
// makes those calls. The constructor removes LD_PRELOAD and the FAKE_*
// variables from the environment, so the supervised target inherits none.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FAKE_WAIT_KILLABLE_RECV (1UL << 5)
#define FAKE_PIDFD_THREAD O_EXCL
#define FAKE_ADDFD_FLAG_SEND (1UL << 1)

static int no_wait_killable_recv;
static int no_pidfd_thread;
static int no_addfd_send;
static int pidfd_thread_einval_once;
static long (*real_syscall)(long, ...);
static int (*real_ioctl)(int, unsigned long, ...);

__attribute__((constructor)) static void fake_init(void) {
  no_wait_killable_recv = getenv("FAKE_NO_WAIT_KILLABLE_RECV") != NULL;
  no_pidfd_thread = getenv("FAKE_NO_PIDFD_THREAD") != NULL;
  no_addfd_send = getenv("FAKE_NO_ADDFD_SEND") != NULL;
  pidfd_thread_einval_once = getenv("FAKE_PIDFD_THREAD_EINVAL_ONCE") != NULL;
  real_syscall = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
  real_ioctl = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
  unsetenv("LD_PRELOAD");
  unsetenv("FAKE_NO_WAIT_KILLABLE_RECV");
  unsetenv("FAKE_NO_PIDFD_THREAD");
  unsetenv("FAKE_NO_ADDFD_SEND");
  unsetenv("FAKE_PIDFD_THREAD_EINVAL_ONCE");
}

__attribute__((visibility("default"))) long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (int i = 0; i < 6; ++i) a[i] = va_arg(ap, long);
  va_end(ap);
  if (no_wait_killable_recv && number == SYS_seccomp &&
      a[0] == SECCOMP_SET_MODE_FILTER &&
      ((unsigned long)a[1] & FAKE_WAIT_KILLABLE_RECV)) {
    errno = EINVAL;
    return -1;
  }
  int thread_flag =
      number == SYS_pidfd_open && ((unsigned long)a[1] & FAKE_PIDFD_THREAD);
  if (no_pidfd_thread && thread_flag) {
    errno = EINVAL;
    return -1;
  }
  if (pidfd_thread_einval_once && thread_flag && (pid_t)a[0] != getpid()) {
    pidfd_thread_einval_once = 0;
    errno = EINVAL;
    return -1;
  }
  long result = real_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
  if (no_pidfd_thread && number == SYS_pidfd_open && result < 0 &&
      errno == ENOENT) {
    errno = EINVAL;
  }
  return result;
}

__attribute__((visibility("default"))) int ioctl(int fd, unsigned long request,
                                                 ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (no_addfd_send && request == SECCOMP_IOCTL_NOTIF_ADDFD &&
      (((struct seccomp_notif_addfd*)arg)->flags & FAKE_ADDFD_FLAG_SEND)) {
    errno = EINVAL;
    return -1;
  }
  return real_ioctl(fd, request, arg);
}
