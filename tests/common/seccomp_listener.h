// SPDX-License-Identifier: Apache-2.0
// A real seccomp user-notification listener for tests and fuzz targets
// (no gtest here: the fuzz targets are built without it), and the
// SCM_RIGHTS send that passes it.
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/unique_fd.h"

namespace keepalive::tests {

// Sends `size` bytes of `data` on `sock` with `fd` in SCM_RIGHTS.
inline ssize_t send_with_fd(int sock, const void* data, size_t size, int fd) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{const_cast<void*>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, 0);
}

// A real seccomp listener: a child installs a filter (trapping acct(),
// which nobody calls here) with a new listener and passes the fd up.
// With `holder`, the child stays alive (as a container's task does, so
// that the listener is served) until the caller kills and reaps *holder;
// without it, it exits at once and the fd stays a listener without
// tasks. Invalid if this process may not make one.
inline UniqueFd make_listener(pid_t* holder = nullptr) {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_acct, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog = {sizeof code / sizeof code[0], code};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    int fd = static_cast<int>(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                      SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog));
    char byte = 0;
    if (fd < 0 || send_with_fd(pair[1], &byte, 1, fd) != 1) _exit(1);
    if (holder == nullptr) _exit(0);
    close(fd);
    for (;;) pause();
  }
  close(pair[1]);
  int fd = -1;
  if (pid > 0) {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    char byte;
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (recvmsg(pair[0], &msg, MSG_CMSG_CLOEXEC) == 1 &&
        CMSG_FIRSTHDR(&msg) != nullptr) {
      memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof fd);
    }
    if (holder != nullptr && fd >= 0) {
      *holder = pid;
    } else {
      if (holder != nullptr) kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
  close(pair[0]);
  return UniqueFd(fd);
}

}  // namespace keepalive::tests
