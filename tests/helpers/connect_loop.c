// SPDX-License-Identifier: Apache-2.0
// connect_loop PORT THREADS: a statically linked, multi-threaded client
// that never stops connecting, for keepalive-supervise --follow tests.
//
// Prints "started pid PID" once its THREADS threads run; each makes TCP
// connections to loopback:PORT one after another with raw system calls
// (socket, connect, getsockopt(SO_KEEPALIVE), close), counting those made,
// those that failed (any call) and those that carried SO_KEEPALIVE. At EOF
// on stdin it stops them and prints "made=N failed=N keepalive=N" and, for
// the first failure, "error call=NAME errno=N"; exit 0.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static atomic_int stopping;
static atomic_long made, failed, with_keepalive;
static atomic_int first_errno;
static const char* _Atomic first_call;
static struct sockaddr_in server;

static void fail(const char* call) {
  atomic_fetch_add(&failed, 1);
  int expected = 0;
  if (atomic_compare_exchange_strong(&first_errno, &expected, errno)) {
    first_call = call;
  }
}

static void* connector(void* unused) {
  (void)unused;
  while (!atomic_load(&stopping)) {
    long fd = syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      fail("socket");
      continue;
    }
    if (syscall(SYS_connect, fd, &server, sizeof server) != 0) {
      fail("connect");
    } else {
      int on = 0;
      socklen_t len = sizeof on;
      if (syscall(SYS_getsockopt, fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len) != 0) {
        fail("getsockopt");
      } else {
        atomic_fetch_add(&made, 1);
        if (on) atomic_fetch_add(&with_keepalive, 1);
      }
    }
    syscall(SYS_close, fd);
    struct timespec pause = {0, 200000};
    nanosleep(&pause, NULL);
  }
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: connect_loop PORT THREADS\n");
    return 2;
  }
  server.sin_family = AF_INET;
  server.sin_port = htons((unsigned short)atoi(argv[1]));
  server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int threads = atoi(argv[2]);
  pthread_t ids[64];
  if (threads < 1 || threads > 64) return 2;
  for (int i = 0; i < threads; ++i) pthread_create(&ids[i], NULL, connector, NULL);
  printf("started pid %d\n", getpid());
  fflush(stdout);
  char buf[64];
  while (read(0, buf, sizeof buf) > 0 || errno == EINTR) {
  }
  atomic_store(&stopping, 1);
  for (int i = 0; i < threads; ++i) pthread_join(ids[i], NULL);
  printf("made=%ld failed=%ld keepalive=%ld\n", atomic_load(&made),
         atomic_load(&failed), atomic_load(&with_keepalive));
  if (atomic_load(&first_errno) != 0) {
    printf("error call=%s errno=%d\n", first_call, atomic_load(&first_errno));
  }
  return 0;
}
