// SPDX-License-Identifier: Apache-2.0
/* oci_runtime SOCKET ID [--metadata TEXT] [--annotation TEXT] -- COMMAND...
 *
 * Plays an OCI runtime's part for keepalive-agent tests: connects to the
 * agent's SOCKET, installs a seccomp filter that traps connect() and
 * listen() (x86-64) with a new listener, sends the runtime-spec container
 * process state ({"ociVersion", "fds": ["seccompFd"], "pid", "metadata",
 * "state": {"id": ID, "annotations": {"org.keepalive.options": TEXT}, ...}})
 * (TEXT as given, unescaped) with the listener in SCM_RIGHTS, closes the
 * connection as runc does, and execs COMMAND under the filter. The
 * connection is made before the filter, so the helper never traps itself.
 * Exits 125 if any step fails (with one line on stderr).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif

static void die(const char* what) {
  fprintf(stderr, "oci_runtime: %s: %s\n", what, strerror(errno));
  exit(125);
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: oci_runtime SOCKET ID [--metadata TEXT] "
                    "[--annotation TEXT] -- CMD\n");
    return 2;
  }
  const char* path = argv[1];
  const char* id = argv[2];
  const char* metadata = "";
  int i = 3;
  if (strcmp(argv[i], "--metadata") == 0 && i + 1 < argc) {
    metadata = argv[i + 1];
    i += 2;
  }
  char annotations[1024] = "";
  if (i + 1 < argc && strcmp(argv[i], "--annotation") == 0) {
    snprintf(annotations, sizeof annotations,
             ",\"annotations\":{\"org.keepalive.options\":\"%s\"}",
             argv[i + 1]);
    i += 2;
  }
  if (i >= argc || strcmp(argv[i], "--") != 0 || i + 1 >= argc) {
    fprintf(stderr, "oci_runtime: expected -- COMMAND\n");
    return 2;
  }
  char** command = argv + i + 1;

  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket");
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (connect(sock, (struct sockaddr*)&addr, sizeof addr) != 0) die(path);

  struct sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_listen, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
  };
  struct sock_fprog prog = {sizeof code / sizeof code[0], code};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die("no_new_privs");
  int listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                              SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (listener < 0) die("seccomp");

  char state[4096];
  int length = snprintf(
      state, sizeof state,
      "{\"ociVersion\":\"1.0.2\",\"fds\":[\"seccompFd\"],\"pid\":%d,"
      "\"metadata\":\"%s\",\"state\":{\"ociVersion\":\"1.0.2\",\"id\":\"%s\","
      "\"status\":\"creating\",\"pid\":%d,\"bundle\":\"/\"%s}}",
      (int)getpid(), metadata, id, (int)getpid(), annotations);
  char control[CMSG_SPACE(sizeof(int))] = {0};
  struct iovec iov = {state, (size_t)length};
  struct msghdr msg = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control,
                       .msg_controllen = sizeof control};
  struct cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
  if (sendmsg(sock, &msg, 0) != length) die("sendmsg");
  close(listener);
  close(sock);
  execvp(command[0], command);
  die(command[0]);
}
