// SPDX-License-Identifier: Apache-2.0
// The supervisor's raw syscall()s, and fallback definitions of the kernel
// constants it uses that Debian 12's headers (Linux 6.1) may lack. Each wrapper
// returns what the syscall returns, with errno set on failure, except those
// in sys::raw (see there).
#pragma once

#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE (1UL << 0)
#endif
#ifndef SECCOMP_ADDFD_FLAG_SETFD
#define SECCOMP_ADDFD_FLAG_SETFD (1UL << 0)
#endif
#ifndef SECCOMP_ADDFD_FLAG_SEND
#define SECCOMP_ADDFD_FLAG_SEND (1UL << 1)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_ADDFD
struct seccomp_notif_addfd {
  __u64 id;
  __u32 flags;
  __u32 srcfd;
  __u32 newfd;
  __u32 newfd_flags;
};
#define SECCOMP_IOCTL_NOTIF_ADDFD \
  _IOW(SECCOMP_IOC_MAGIC, 3, struct seccomp_notif_addfd)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS _IOW(SECCOMP_IOC_MAGIC, 4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef IORING_SETUP_NO_SQARRAY
#define IORING_SETUP_NO_SQARRAY (1U << 16)
#endif

struct sock_fprog;
// The kernel's names (linux/capability.h), whose header is not included.
// NOLINTBEGIN(bugprone-reserved-identifier)
struct __user_cap_header_struct;
struct __user_cap_data_struct;
// NOLINTEND(bugprone-reserved-identifier)

namespace keepalive::sys {

// IORING_OP_URING_CMD on a socket (Linux 6.7+): getsockopt (SOL_SOCKET
// only; the completion carries the option's length) and setsockopt. Newer
// headers define them as enumerators (enum io_uring_socket_op), which
// macros of the same names would break, hence constants of our own.
inline constexpr uint32_t kSocketUringOpGetsockopt = 2;
inline constexpr uint32_t kSocketUringOpSetsockopt = 3;
// Where Linux 6.7+ reads those commands' arguments in the 64-byte SQE, under
// field names Linux 6.1's header lacks: level and optname share `addr`
// (level first), optlen overlays `splice_fd_in`, optval is `addr3`.
inline constexpr size_t kSqeLevelOffset = 16;
inline constexpr size_t kSqeOptnameOffset = 20;
inline constexpr size_t kSqeOptlenOffset = 44;
inline constexpr size_t kSqeOptvalOffset = 48;

int pidfd_open(int pid, unsigned flags);
int pidfd_getfd(int pidfd, int target_fd, unsigned flags);
int pidfd_send_signal(int pidfd, int sig, siginfo_t* info, unsigned flags);
// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog).
int seccomp_set_filter(unsigned flags, const struct sock_fprog* prog);
// seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &action).
int seccomp_action_available(uint32_t action);
// seccomp(SECCOMP_GET_NOTIF_SIZES, 0, sizes).
int seccomp_notif_sizes(struct seccomp_notif_sizes* sizes);
// capget(header, data): the calling thread's capability sets.
int capget(struct __user_cap_header_struct* header,
           struct __user_cap_data_struct* data);
// io_uring_setup(entries, params): the ring's fd (always close-on-exec).
int io_uring_setup(unsigned entries, struct io_uring_params* params);
// io_uring_enter(fd, to_submit, min_complete, flags, NULL, 0).
int io_uring_enter(int fd, unsigned to_submit, unsigned min_complete,
                   unsigned flags);
// io_uring_register(fd, opcode, arg, nr_args).
int io_uring_register(int fd, unsigned opcode, void* arg, unsigned nr_args);

// Whether sys::raw calls go straight to the kernel here (x86-64 and
// aarch64; -DKEEPALIVE_DIRECT_SYSCALLS=0 turns it off, to test the other
// way). Elsewhere they go through libc's syscall(), and so touch errno: fit
// only for a child with memory of its own.
#ifndef KEEPALIVE_DIRECT_SYSCALLS
#if defined(__x86_64__) || defined(__aarch64__)
#define KEEPALIVE_DIRECT_SYSCALLS 1
#else
#define KEEPALIVE_DIRECT_SYSCALLS 0
#endif
#endif

// System calls for a child made with clone(CLONE_VM), which runs on its
// parent's memory and thread pointer: errno there is the parent's, and so
// is every lock and buffer of libc's. These go straight to the kernel
// (no libc, no PLT, no errno; see KEEPALIVE_DIRECT_SYSCALLS) and return its
// result: -errno on failure.
namespace raw {

// The system call `nr` with up to six arguments.
long syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

inline long close(int fd) { return syscall6(SYS_close, fd, 0, 0, 0, 0, 0); }
inline long getpid() { return syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0); }
inline long getppid() { return syscall6(SYS_getppid, 0, 0, 0, 0, 0, 0); }
inline long getpgid(pid_t pid) {
  return syscall6(SYS_getpgid, pid, 0, 0, 0, 0, 0);
}
inline long setpgid(pid_t pid, pid_t pgid) {
  return syscall6(SYS_setpgid, pid, pgid, 0, 0, 0, 0);
}
inline long prctl(int option, unsigned long arg2) {
  return syscall6(SYS_prctl, option, static_cast<long>(arg2), 0, 0, 0, 0);
}
inline long ioctl(int fd, unsigned long request, void* arg) {
  return syscall6(SYS_ioctl, fd, static_cast<long>(request),
                  reinterpret_cast<long>(arg), 0, 0, 0);
}
inline long recv(int fd, void* buf, size_t len) {
  return syscall6(SYS_recvfrom, fd, reinterpret_cast<long>(buf),
                  static_cast<long>(len), 0, 0, 0);
}
inline long sendmsg(int fd, const struct msghdr* msg, int flags) {
  return syscall6(SYS_sendmsg, fd, reinterpret_cast<long>(msg), flags, 0, 0, 0);
}
inline long write(int fd, const void* buf, size_t len) {
  return syscall6(SYS_write, fd, reinterpret_cast<long>(buf),
                  static_cast<long>(len), 0, 0, 0);
}
// seccomp(SECCOMP_SET_MODE_FILTER, flags, prog).
inline long seccomp_set_filter(unsigned flags, const struct sock_fprog* prog) {
  return syscall6(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags,
                  reinterpret_cast<long>(prog), 0, 0, 0);
}
// rt_sigprocmask(SIG_SETMASK, mask): the kernel's part of a sigset_t.
inline long set_signal_mask(const sigset_t* mask) {
  return syscall6(SYS_rt_sigprocmask, SIG_SETMASK, reinterpret_cast<long>(mask),
                  0, _NSIG / 8, 0, 0);
}
// prlimit64(0, resource, new_limit, NULL): the calling process's limit.
inline long set_rlimit(int resource, const struct rlimit* new_limit) {
  return syscall6(SYS_prlimit64, 0, resource,
                  reinterpret_cast<long>(new_limit), 0, 0, 0);
}
inline long execve(const char* path, char* const argv[], char* const envp[]) {
  return syscall6(SYS_execve, reinterpret_cast<long>(path),
                  reinterpret_cast<long>(argv), reinterpret_cast<long>(envp), 0,
                  0, 0);
}
// openat(AT_FDCWD, path, flags): a file the child reads to explain a
// failed exec.
inline long open(const char* path, int flags) {
  return syscall6(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), flags, 0,
                  0, 0);
}
inline long pread(int fd, void* buf, size_t len, off_t offset) {
  return syscall6(SYS_pread64, fd, reinterpret_cast<long>(buf),
                  static_cast<long>(len), offset, 0, 0);
}
[[noreturn]] void exit_group(int status);

}  // namespace raw
}  // namespace keepalive::sys
