// SPDX-License-Identifier: Apache-2.0
/* bench_floor: the cheapest seccomp user-notification supervisor this
 * machine allows, as a yardstick for keepalive-supervise.
 *
 *   bench_floor continue -- CMD ARGS   trap socket(), answer CONTINUE
 *   bench_floor emulate -- CMD ARGS    trap socket(), create the socket
 *                                      here (no options), inject it with
 *                                      ADDFD + SEND
 *   bench_floor blocking -- CMD ARGS   as emulate, but waiting in a
 *                                      blocking RECV instead of poll()
 *   bench_floor emulate-options -- CMD ARGS
 *                                      emulate, with the five keepalive
 *                                      options set on the socket (one
 *                                      setsockopt each) before ADDFD:
 *                                      the job of keepalive-supervise
 *                                      --strategy emulate, nothing more
 *   bench_floor emulate-checked -- CMD ARGS
 *                                      emulate-options, plus what
 *                                      keepalive-supervise cannot leave
 *                                      out: the caller's cgroups read
 *                                      again on every call (one pread of
 *                                      /proc/PID/cgroup), and ADDFD and
 *                                      SEND as two ioctls (ADDFD_FLAG_SEND
 *                                      misbehaves when the supervisor is
 *                                      stopped: docs/kernel-addfd-send.md)
 *   bench_floor continue-options -- CMD ARGS
 *                                      trap connect() and listen(), copy
 *                                      the caller's fd (pidfd_getfd), set
 *                                      the five options on it, close the
 *                                      copy, answer CONTINUE: the job of
 *                                      --strategy continue
 *   bench_floor reply -- CMD ARGS      trap getppid() and answer it (0)
 *                                      without running it: one round trip
 *                                      through a supervisor, the figure
 *                                      `perf bench sched seccomp-notify`
 *                                      gives (perf 6.3 and later)
 *
 * With --killable before the `--`, the filter also asks for
 * WAIT_KILLABLE_RECV (Linux 5.19+), as keepalive-supervise does: a call
 * the supervisor has received is then interrupted by fatal signals only,
 * and the EINTR window shrinks to the time between the trap and the RECV.
 *
 * The socket variants trap TCP socket() calls only (arch x86_64, domain
 * AF_INET or AF_INET6, (type & 0xf) == SOCK_STREAM); everything else is
 * allowed in the kernel. Per notification the loop does nothing beyond
 * poll, RECV and the answer (plus socket(), the options and close() of its
 * own copy when emulating): no identity checks (emulate-checked's cgroup
 * read aside), no logging, and
 * continue-options takes every connect() and listen() for TCP and uses one
 * pidfd, of CMD, for all (CMD's threads share its fd table; its children
 * get no options). The listener asks for
 * SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, as keepalive-supervise does; that
 * flag makes the target's wake-up of a poll() waiter, and our reply's
 * wake-up of the target, stay on the current CPU, but a task blocked in
 * RECV is woken through a semaphore that ignores it: `blocking` shows
 * what that difference costs.
 *
 * Runs CMD as its child and exits with its status (128 + signal if it
 * was killed). It is a benchmark tool, not the product: no signal
 * forwarding, and it stops when CMD exits even if CMD's descendants
 * still run under the filter (they then get ENOSYS from socket()).
 * Plain C with its own fallback constants, like bench_workload.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Debian 12's headers (Linux 6.1) lack the newest of these. */
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_USER_NOTIF_FLAG_CONTINUE
#define SECCOMP_USER_NOTIF_FLAG_CONTINUE (1UL << 0)
#endif
#ifndef SECCOMP_ADDFD_FLAG_SEND
#define SECCOMP_ADDFD_FLAG_SEND (1UL << 1)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

enum variant {
  CONTINUE,
  EMULATE,
  BLOCKING,
  EMULATE_OPTIONS,
  EMULATE_CHECKED,
  CONTINUE_OPTIONS,
  REPLY
};

static pid_t child;
static int child_pidfd = -1; /* continue-options */
static int child_cgroup = -1; /* emulate-checked: /proc/CHILD/cgroup */

static void die(const char* what) {
  fprintf(stderr, "bench_floor: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Ends the supervisor when CMD exits: blocking RECV never returns once the
 * filter has no users left (poll() would see POLLHUP), so the exit is
 * taken here rather than in the loop. waitpid and _exit are
 * async-signal-safe, and nothing is left to clean up. */
static void on_sigchld(int sig) {
  (void)sig;
  int status;
  if (waitpid(child, &status, WNOHANG) != child) return;
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

static int install_filter(int killable, enum variant variant) {
/* Jump offsets count from the next instruction: the last two are "allow"
 * (10) and "notify" (11). An argument's low 32 bits are its first word
 * (little endian). */
#define ARG_LOW(n) (offsetof(struct seccomp_data, args) + 8 * (n))
  struct sock_filter socket_code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 8),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 0, 6),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(0)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET, 1, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LOW(1)),
      BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SOCK_STREAM, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
  };
  /* connect() and listen(): "allow" is 5, "notify" 6. */
  struct sock_filter connect_code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_listen, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
  };
  /* getppid(): "allow" is 4, "notify" 5. */
  struct sock_filter reply_code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 2),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_getppid, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
  };
#undef ARG_LOW
  struct sock_fprog prog = {sizeof socket_code / sizeof socket_code[0],
                            socket_code};
  if (variant == CONTINUE_OPTIONS) {
    prog.len = sizeof connect_code / sizeof connect_code[0];
    prog.filter = connect_code;
  } else if (variant == REPLY) {
    prog.len = sizeof reply_code / sizeof reply_code[0];
    prog.filter = reply_code;
  }
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                 SECCOMP_FILTER_FLAG_NEW_LISTENER |
                     (killable ? SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV : 0),
                 &prog);
}

/* In the child: filter, hand the listener over, exec. Between the filter
 * and the hand-over only untrapped calls (sendmsg, close) are made. */
static void run_target(int sock, char** argv, const sigset_t* mask,
                       int killable, enum variant variant) {
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    die("prctl(PR_SET_NO_NEW_PRIVS)");
  int listener = install_filter(killable, variant);
  if (listener < 0) die("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)");
  char control[CMSG_SPACE(sizeof(int))] = {0};
  char byte = 0;
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control,
                       .msg_controllen = sizeof control};
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
  if (sendmsg(sock, &msg, 0) != 1) die("sending the listener");
  close(listener);
  close(sock);
  sigprocmask(SIG_SETMASK, mask, NULL);
  execvp(argv[0], argv);
  fprintf(stderr, "bench_floor: exec %s: %s\n", argv[0], strerror(errno));
  _exit(127);
}

static int receive_listener(int sock) {
  char control[CMSG_SPACE(sizeof(int))];
  char byte;
  struct iovec iov = {&byte, 1};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control,
                       .msg_controllen = sizeof control};
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) return -1;
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
  return fd;
}

/* The five options keepalive-supervise sets by default, one setsockopt
 * each: SO_KEEPALIVE, TCP_KEEPIDLE 15, TCP_KEEPINTVL 15, TCP_KEEPCNT 9,
 * TCP_USER_TIMEOUT 150000 ms. */
static void set_options(int fd) {
  static const struct {
    int level, name, value;
  } options[] = {{SOL_SOCKET, SO_KEEPALIVE, 1},
                 {IPPROTO_TCP, TCP_KEEPIDLE, 15},
                 {IPPROTO_TCP, TCP_KEEPINTVL, 15},
                 {IPPROTO_TCP, TCP_KEEPCNT, 9},
                 {IPPROTO_TCP, TCP_USER_TIMEOUT, 150000}};
  for (size_t i = 0; i < sizeof options / sizeof options[0]; ++i) {
    setsockopt(fd, options[i].level, options[i].name, &options[i].value,
               sizeof options[i].value);
  }
}

/* ENOENT from SEND or ADDFD: the target's call was interrupted (or the
 * target died); nothing to answer. */
static void answer(int listener, enum variant variant,
                   const struct seccomp_notif* req,
                   struct seccomp_notif_resp* resp, size_t resp_size) {
  memset(resp, 0, resp_size);
  resp->id = req->id;
  if (variant == REPLY) {
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
    return;
  }
  if (variant == CONTINUE || variant == CONTINUE_OPTIONS) {
    if (variant == CONTINUE_OPTIONS) {
      int copy = (int)syscall(SYS_pidfd_getfd, child_pidfd,
                              (int)req->data.args[0], 0);
      if (copy >= 0) {
        set_options(copy);
        close(copy);
      }
    }
    resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
    return;
  }
  int type = (int)req->data.args[1];
  int fd = socket((int)req->data.args[0], type | SOCK_CLOEXEC,
                  (int)req->data.args[2]);
  if (variant == EMULATE_CHECKED) {
    char cgroups[4096];
    if (pread(child_cgroup, cgroups, sizeof cgroups, 0) < 0) die("pread");
  }
  if (fd >= 0) {
    if (variant == EMULATE_OPTIONS || variant == EMULATE_CHECKED) {
      set_options(fd);
    }
    /* SOCK_NONBLOCK travels with the file; close-on-exec is per fd. */
    struct seccomp_notif_addfd addfd = {
        .id = req->id,
        .flags = variant == EMULATE_CHECKED ? 0 : SECCOMP_ADDFD_FLAG_SEND,
        .srcfd = (__u32)fd,
        .newfd_flags = (type & SOCK_CLOEXEC) ? O_CLOEXEC : 0};
    int added = ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
    int err = added < 0 ? errno : 0;
    close(fd);
    if (err == 0 && variant == EMULATE_CHECKED) {
      resp->val = added;
      ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
      return;
    }
    if (err == 0 || err == ENOENT) return;
    resp->error = -err; /* EMFILE at the target's limit, for one */
  } else {
    resp->error = -errno;
  }
  ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp);
}

static void serve(int listener, enum variant variant) {
  /* By value, not by pointer. Kernels before 6.6 refuse it: ignored. */
  ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
        (unsigned long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
  struct seccomp_notif_sizes sizes;
  if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
    die("seccomp(SECCOMP_GET_NOTIF_SIZES)");
  /* The kernel's structures may be larger than our headers' (never
   * smaller). */
  size_t req_size = sizes.seccomp_notif > sizeof(struct seccomp_notif)
                        ? sizes.seccomp_notif
                        : sizeof(struct seccomp_notif);
  size_t resp_size =
      sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
          ? sizes.seccomp_notif_resp
          : sizeof(struct seccomp_notif_resp);
  struct seccomp_notif* req = calloc(1, req_size);
  struct seccomp_notif_resp* resp = calloc(1, resp_size);
  if (!req || !resp) die("calloc");
  struct pollfd pfd = {listener, POLLIN, 0};
  for (;;) {
    if (variant != BLOCKING) {
      if (poll(&pfd, 1, -1) < 0) {
        if (errno == EINTR) continue;
        die("poll");
      }
      if (!(pfd.revents & POLLIN)) {
        pause(); /* POLLHUP: the target is gone; SIGCHLD ends us */
        continue;
      }
    }
    memset(req, 0, req_size); /* the kernel refuses a dirty buffer */
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) != 0) {
      if (errno == EINTR || errno == ENOENT) continue;
      die("SECCOMP_IOCTL_NOTIF_RECV");
    }
    answer(listener, variant, req, resp, resp_size);
  }
}

int main(int argc, char** argv) {
  enum variant variant;
  int killable = argc > 2 && strcmp(argv[2], "--killable") == 0;
  char** command = argv + 3 + killable;
  if (argc < 4 + killable || strcmp(argv[2 + killable], "--") != 0)
    goto usage;
  if (strcmp(argv[1], "continue") == 0) {
    variant = CONTINUE;
  } else if (strcmp(argv[1], "emulate") == 0) {
    variant = EMULATE;
  } else if (strcmp(argv[1], "blocking") == 0) {
    variant = BLOCKING;
  } else if (strcmp(argv[1], "emulate-options") == 0) {
    variant = EMULATE_OPTIONS;
  } else if (strcmp(argv[1], "emulate-checked") == 0) {
    variant = EMULATE_CHECKED;
  } else if (strcmp(argv[1], "continue-options") == 0) {
    variant = CONTINUE_OPTIONS;
  } else if (strcmp(argv[1], "reply") == 0) {
    variant = REPLY;
  } else {
    goto usage;
  }

  /* SIGCHLD stays blocked until the handler is in place and the listener
   * is ours, so an early exit of the child is not missed. */
  sigset_t chld, original;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &original);
  struct sigaction sa = {.sa_handler = on_sigchld};
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a blocking RECV is interrupted, not restarted. */
  sigaction(SIGCHLD, &sa, NULL);

  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
    die("socketpair");
  child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(pair[0]);
    run_target(pair[1], command, &original, killable, variant);
  }
  close(pair[1]);
  if (variant == CONTINUE_OPTIONS) {
    child_pidfd = (int)syscall(SYS_pidfd_open, child, 0);
    if (child_pidfd < 0) die("pidfd_open");
  }
  if (variant == EMULATE_CHECKED) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)child);
    child_cgroup = open(path, O_RDONLY | O_CLOEXEC);
    if (child_cgroup < 0) die(path);
  }
  int listener = receive_listener(pair[0]);
  close(pair[0]);
  sigprocmask(SIG_UNBLOCK, &chld, NULL);
  if (listener < 0) {
    /* The child said why; SIGCHLD passes its exit status on. */
    for (;;) pause();
  }
  serve(listener, variant);
  return 0;

usage:
  fprintf(stderr,
          "usage: bench_floor continue|emulate|blocking|emulate-options|"
          "emulate-checked|continue-options|reply [--killable] -- CMD "
          "[ARGS]\n");
  return 2;
}
