// SPDX-License-Identifier: Apache-2.0
// drop32: a 32-bit x86 program (built with gcc -m32 -static) that drops to
// another uid through the i386 calls and makes TCP sockets through both of
// i386's ways: the direct socket() (359) and socketcall() (102), which
// glibc for i386 uses on kernels it must support from before 4.3.
//
//   drop32 probe
//       Prints "drop32 ok": 32-bit programs run here.
//   drop32 UID PORT
//       As the starting user: one socket through 359 and one through
//       socketcall(SYS_SOCKET), printing "before direct keepalive=K" and
//       "before socketcall keepalive=K". Then setgroups32, setresgid32 and
//       setresuid32 to UID; a socket through 359, connect() through 362 to
//       127.0.0.1:PORT, "connected LPORT pid PID keepalive=K"; waits for
//       EOF on stdin.
//
// Every call is made with syscall() and an i386 number, never through a
// libc wrapper, so the test knows which one the filter saw. Lines are
// written with one write(2) each.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if !defined(__i386__)
#error "drop32 is an i386 program: build it with -m32"
#endif

// arch/x86/entry/syscalls/syscall_32.tbl
enum {
  kSocketcall = 102,
  kSetGroups32 = 206,
  kSetResUid32 = 208,
  kSetResGid32 = 210,
  kSocket = 359,
  kConnect = 362,
};
enum { kSysSocket = 1 };  // socketcall's call number for socket()

static void emit(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char* fmt, ...) {
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  ssize_t ignored = write(STDOUT_FILENO, line, (size_t)n);
  (void)ignored;
}

static void die(const char* what) {
  emit("error %s errno=%d\n", what, errno);
  _exit(1);
}

static int keepalive_of(int fd) {
  int value = -1;
  socklen_t len = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &value, &len) != 0) return -1;
  return value;
}

static int direct_socket(void) {
  return (int)syscall(kSocket, AF_INET, SOCK_STREAM, 0);
}

static int socketcall_socket(void) {
  unsigned long args[3] = {AF_INET, SOCK_STREAM, 0};
  return (int)syscall(kSocketcall, kSysSocket, args);
}

int main(int argc, char** argv) {
  if (argc == 2 && strcmp(argv[1], "probe") == 0) {
    emit("drop32 %s\n", syscall(SYS_getpid) == getpid() ? "ok" : "broken");
    return 0;
  }
  if (argc != 3) {
    emit("error usage: drop32 probe | drop32 UID PORT\n");
    return 2;
  }
  unsigned int uid = (unsigned int)atoi(argv[1]);
  int port = atoi(argv[2]);

  int fd = direct_socket();
  if (fd < 0) die("socket");
  emit("before direct keepalive=%d\n", keepalive_of(fd));
  close(fd);
  fd = socketcall_socket();
  if (fd < 0) die("socketcall");
  emit("before socketcall keepalive=%d\n", keepalive_of(fd));
  close(fd);

  if (syscall(kSetGroups32, 0, NULL) != 0) die("setgroups32");
  if (syscall(kSetResGid32, uid, uid, uid) != 0) die("setresgid32");
  if (syscall(kSetResUid32, uid, uid, uid) != 0) die("setresuid32");

  fd = direct_socket();
  if (fd < 0) die("socket after the drop");
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((unsigned short)port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (syscall(kConnect, fd, &addr, sizeof addr) != 0) die("connect");
  struct sockaddr_in local;
  socklen_t len = sizeof local;
  if (getsockname(fd, (struct sockaddr*)&local, &len) != 0) die("getsockname");
  emit("connected %d pid %d keepalive=%d\n", ntohs(local.sin_port), getpid(),
       keepalive_of(fd));
  char buf[64];
  while (read(STDIN_FILENO, buf, sizeof buf) > 0) {
  }
  return 0;
}
