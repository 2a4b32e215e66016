// SECCOMP_ADDFD_FLAG_SEND hands the target the empty answer (0) when the
// supervisor's ADDFD wait is interrupted by a stop signal.
// Build: cc -O2 -o addfd-send-repro addfd-send-repro.c
// Run:   ./addfd-send-repro [two-step] (as any user; Linux 5.14+)
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t done;
static void on_term(int sig) { (void)sig; done = 1; }

static void target(int report) {  // loops on socket() under the filter
  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  signal(SIGTERM, on_term);
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  int listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                         SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (write(report, &listener, sizeof listener) != sizeof listener) _exit(1);
  close(report);
  long calls = 0, wrong = 0;
  struct stat st;
  while (!done) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) continue;  // EINTR at the end
    ++calls;
    if (fd <= 2 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) ++wrong;
    else close(fd);
  }
  printf("%ld socket() calls, %ld returned an fd that is not a new socket\n",
         calls, wrong);
}

static void supervisor(pid_t target_pid, int listener_number, int two_step) {
  int pidfd = syscall(SYS_pidfd_open, target_pid, 0);
  int listener = syscall(SYS_pidfd_getfd, pidfd, listener_number, 0);
  struct seccomp_notif req;
  struct seccomp_notif_resp resp;
  for (;;) {
    memset(&req, 0, sizeof req);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) continue;
    struct seccomp_notif_addfd addfd = {.id = req.id};
    addfd.srcfd = socket(AF_INET, SOCK_STREAM, 0);
    addfd.flags = two_step ? 0 : SECCOMP_ADDFD_FLAG_SEND;
    int fd = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
    close(addfd.srcfd);
    if (two_step && fd >= 0) {
      resp = (struct seccomp_notif_resp){.id = req.id, .val = fd};
      ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
  }
}

int main(int argc, char** argv) {
  int two_step = argc > 1 && strcmp(argv[1], "two-step") == 0;
  int pipefd[2], listener_number = -1;
  if (pipe(pipefd) != 0) return 1;
  pid_t t = fork();
  if (t == 0) target(pipefd[1]), exit(0);
  close(pipefd[1]);
  if (read(pipefd[0], &listener_number, sizeof listener_number) <= 0 ||
      listener_number < 0)
    return fprintf(stderr, "no listener (Linux 5.0+ needed)\n"), 1;
  pid_t s = fork();
  if (s == 0) supervisor(t, listener_number, two_step), _exit(0);
  usleep(100000);
  for (int i = 0; i < 300; ++i) {  // what `docker pause` does, roughly
    kill(s, SIGSTOP), usleep(1000), kill(s, SIGCONT), usleep(1000);
  }
  kill(t, SIGTERM), waitpid(t, NULL, 0);
  kill(s, SIGKILL), waitpid(s, NULL, 0);
  return 0;
}
