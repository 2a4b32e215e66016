// SPDX-License-Identifier: Apache-2.0
/* bench_workload: the programs the benchmark runs under each mode.
 *
 *   bench_workload syscall N             N x getppid() through syscall(),
 *                                        the cheapest real system call
 *   bench_workload socket N              N x TCP socket()+close
 *   bench_workload connect N PORT        N x socket+connect+close to PORT
 *   bench_workload rr N PORT             N x connect, send 1 byte, receive
 *                                        1 byte, close (PORT echoes)
 *   bench_workload untrapped N UNIXPATH  N x (pipe write+read, UDP sendto,
 *                                        AF_UNIX socket+connect+close)
 *   bench_workload threads T N PORT      T threads, N x rr each, at once
 *   bench_workload echo-server           loopback echo server; prints its
 *                                        port, serves until killed
 *   bench_workload unix-server PATH      AF_UNIX listener accepting forever
 *   bench_workload rss                   makes one TCP socket, prints VmRSS
 *
 * Each measuring command prints one line "ns_per_op=X ops_per_s=Y
 * failures=Z" and exits 0, or 1 on an unexpected failure. Plain C: it must
 * run under LD_PRELOAD and the supervisor exactly as any program would.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void report(double start, long ops, long failures) {
  double ns = now_ns() - start;
  printf("ns_per_op=%.1f ops_per_s=%.1f failures=%ld\n", ns / ops,
         ops / (ns / 1e9), failures);
}

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

/* Closes with a reset rather than a FIN: thousands of client-side
 * TIME_WAIT sockets would otherwise crowd the ephemeral ports, and the
 * search for a free one would slow down whichever mode happens to run
 * later. */
static void close_now(int fd) {
  struct linger now = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
  close(fd);
}

static int round_trip(int port) {
  struct sockaddr_in addr = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  char byte = 'x';
  int ok = connect(fd, (struct sockaddr*)&addr, sizeof addr) == 0 &&
           send(fd, &byte, 1, 0) == 1 && recv(fd, &byte, 1, 0) == 1;
  close_now(fd);
  return ok ? 0 : -1;
}

/* Through syscall(): a libc wrapper might one day answer from a cache. */
static int cmd_syscall(long n) {
  double start = now_ns();
  for (long i = 0; i < n; ++i) syscall(SYS_getppid);
  report(start, n, 0);
  return 0;
}

static int cmd_socket(long n) {
  double start = now_ns();
  for (long i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return perror("socket"), 1;
    close(fd);
  }
  report(start, n, 0);
  return 0;
}

static int cmd_connect(long n, int port) {
  struct sockaddr_in addr = loopback(port);
  long failures = 0;
  double start = now_ns();
  for (long i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return perror("socket"), 1;
    if (connect(fd, (struct sockaddr*)&addr, sizeof addr) != 0) ++failures;
    close_now(fd);
  }
  report(start, n, failures);
  return 0;
}

static int cmd_rr(long n, int port) {
  long failures = 0;
  double start = now_ns();
  for (long i = 0; i < n; ++i) failures += round_trip(port) != 0;
  report(start, n, failures);
  return 0;
}

static int cmd_untrapped(long n, const char* unix_path) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return perror("pipe"), 1;
  int udp = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sink = loopback(9); /* discard: nobody listens */
  struct sockaddr_un un;
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  strncpy(un.sun_path, unix_path, sizeof un.sun_path - 1);
  long failures = 0;
  char buf[16] = "0123456789abcdef";
  double start = now_ns();
  for (long i = 0; i < n; ++i) {
    if (write(pipefd[1], buf, sizeof buf) != sizeof buf) ++failures;
    if (read(pipefd[0], buf, sizeof buf) != sizeof buf) ++failures;
    sendto(udp, buf, 8, 0, (struct sockaddr*)&sink, sizeof sink);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr*)&un, sizeof un) != 0) ++failures;
    close(fd);
  }
  report(start, n, failures);
  return 0;
}

struct thread_arg {
  long n;
  int port;
  long failures;
};

static void* thread_main(void* p) {
  struct thread_arg* arg = p;
  for (long i = 0; i < arg->n; ++i) arg->failures += round_trip(arg->port) != 0;
  return NULL;
}

static int cmd_threads(int threads, long n, int port) {
  pthread_t ids[256];
  struct thread_arg args[256];
  if (threads < 1 || threads > 256) return 1;
  double start = now_ns();
  for (int t = 0; t < threads; ++t) {
    args[t] = (struct thread_arg){n, port, 0};
    pthread_create(&ids[t], NULL, thread_main, &args[t]);
  }
  long failures = 0;
  for (int t = 0; t < threads; ++t) {
    pthread_join(ids[t], NULL);
    failures += args[t].failures;
  }
  report(start, threads * n, failures);
  return 0;
}

static void* serve_echo(void* p) {
  int fd = (int)(long)p;
  char byte;
  while (recv(fd, &byte, 1, 0) == 1) send(fd, &byte, 1, 0);
  close(fd);
  return NULL;
}

static int cmd_echo_server(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  if (bind(fd, (struct sockaddr*)&addr, sizeof addr) != 0 ||
      listen(fd, 4096) != 0 ||
      getsockname(fd, (struct sockaddr*)&addr, &len) != 0) {
    return perror("echo-server"), 1;
  }
  printf("%d\n", ntohs(addr.sin_port));
  fflush(stdout);
  for (;;) {
    int conn = accept(fd, NULL, NULL);
    if (conn < 0) continue;
    pthread_t id;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    if (pthread_create(&id, &attr, serve_echo, (void*)(long)conn) != 0) close(conn);
    pthread_attr_destroy(&attr);
  }
}

static int cmd_unix_server(const char* path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un un;
  memset(&un, 0, sizeof un);
  un.sun_family = AF_UNIX;
  strncpy(un.sun_path, path, sizeof un.sun_path - 1);
  unlink(path);
  if (bind(fd, (struct sockaddr*)&un, sizeof un) != 0 || listen(fd, 4096) != 0)
    return perror("unix-server"), 1;
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    int conn = accept(fd, NULL, NULL);
    if (conn >= 0) close(conn);
  }
}

static int cmd_rss(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  FILE* f = fopen("/proc/self/status", "r");
  char line[256];
  while (f && fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) printf("rss_kib=%ld\n", atol(line + 6));
  }
  if (f) fclose(f);
  close(fd);
  return 0;
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 3 && strcmp(argv[1], "syscall") == 0) return cmd_syscall(atol(argv[2]));
  if (argc >= 3 && strcmp(argv[1], "socket") == 0) return cmd_socket(atol(argv[2]));
  if (argc >= 4 && strcmp(argv[1], "connect") == 0)
    return cmd_connect(atol(argv[2]), atoi(argv[3]));
  if (argc >= 4 && strcmp(argv[1], "rr") == 0) return cmd_rr(atol(argv[2]), atoi(argv[3]));
  if (argc >= 4 && strcmp(argv[1], "untrapped") == 0)
    return cmd_untrapped(atol(argv[2]), argv[3]);
  if (argc >= 5 && strcmp(argv[1], "threads") == 0)
    return cmd_threads(atoi(argv[2]), atol(argv[3]), atoi(argv[4]));
  if (argc >= 2 && strcmp(argv[1], "echo-server") == 0) return cmd_echo_server();
  if (argc >= 3 && strcmp(argv[1], "unix-server") == 0) return cmd_unix_server(argv[2]);
  if (argc >= 2 && strcmp(argv[1], "rss") == 0) return cmd_rss();
  fprintf(stderr, "bench_workload: unknown command (see the comment at the top of bench_workload.c)\n");
  return 2;
}
