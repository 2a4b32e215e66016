// SPDX-License-Identifier: Apache-2.0
// SECCOMP_ADDFD_FLAG_SEND: when the supervisor's ADDFD is interrupted by a
// stop signal, the target's syscall returns 0 (an fd it already has).
// Build: cc -O2 -o addfd-send-repro addfd-send-repro.c
// Run:   ./addfd-send-repro [two-step]   (any user; Linux 5.14+)
// See kernel-addfd-send.md next to this file.
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void target(int report) {  // socket() in a loop for 1 to 2 s
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  int listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                         SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (write(report, &listener, sizeof listener) != sizeof listener) _exit(1);
  long calls = 0, wrong = 0;
  struct stat st;
  for (time_t end = time(NULL) + 2; time(NULL) < end; ++calls) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);  // 0, 1, 2 and `report` are open
    if (fd <= report || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) ++wrong;
    else close(fd);
  }
  printf("%ld socket() calls, %ld returned an fd that is not a new socket\n",
         calls, wrong);
}

static void supervisor(int two_step) {  // the target's parent, answering
  int pipefd[2], number = -1;
  if (pipe(pipefd) != 0) _exit(1);
  pid_t pid = fork();
  if (pid == 0) target(pipefd[1]), fflush(stdout), _exit(0);
  if (read(pipefd[0], &number, sizeof number) <= 0 || number < 0) _exit(1);
  int listener = syscall(SYS_pidfd_getfd, syscall(SYS_pidfd_open, pid, 0),
                         number, 0);
  struct pollfd p = {listener, POLLIN, 0};
  while (poll(&p, 1, -1) >= 0 && !(p.revents & POLLHUP)) {
    struct seccomp_notif req;
    memset(&req, 0, sizeof req);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) continue;
    struct seccomp_notif_addfd addfd = {.id = req.id};
    addfd.srcfd = socket(AF_INET, SOCK_STREAM, 0);
    addfd.flags = two_step ? 0 : SECCOMP_ADDFD_FLAG_SEND;
    int fd = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
    close(addfd.srcfd);
    struct seccomp_notif_resp resp = {.id = req.id, .val = fd};
    if (two_step && fd >= 0) ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
  }
  waitpid(pid, NULL, 0);
}

int main(int argc, char** argv) {
  int two_step = argc > 1 && strcmp(argv[1], "two-step") == 0;
  pid_t s = fork();
  if (s == 0) supervisor(two_step), _exit(0);
  usleep(100000);
  for (int i = 0; i < 300; ++i) {  // roughly what `docker pause` does
    kill(s, SIGSTOP), usleep(1000), kill(s, SIGCONT), usleep(1000);
  }
  return waitpid(s, NULL, 0) == s ? 0 : 1;
}
