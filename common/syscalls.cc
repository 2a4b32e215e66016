#include "common/syscalls.h"

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

int socket(int domain, int type, int protocol) {
  return static_cast<int>(syscall(SYS_socket, domain, type, protocol));
}

int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  return static_cast<int>(syscall(SYS_connect, fd, addr, len));
}

int listen(int fd, int backlog) {
  return static_cast<int>(syscall(SYS_listen, fd, backlog));
}

int seccomp_notif_sizes(struct seccomp_notif_sizes* sizes) {
  return static_cast<int>(
      syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, sizes));
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

}  // namespace keepalive::sys
