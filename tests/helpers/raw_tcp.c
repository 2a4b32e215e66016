// SPDX-License-Identifier: Apache-2.0
// raw_tcp: a statically linked test target for keepalive-supervise.
//
// It makes its socket(), connect(), listen() and accept4() calls with
// syscall(SYS_...) directly, never through libc's wrappers, the way Go
// programs and other static binaries do, so that nothing but the seccomp
// filter can see them. Plain C, linked with -static.
//
// Every line it prints is written with one write(2), so lines from threads
// and forked children never interleave. Commands:
//
//   connect PORT [--ipv6] [--mptcp] [--read] [--nodump] [--nonblock]
//           [--high-bits]
//       Connects to loopback:PORT and prints "connected LPORT pid PID".
//       Then waits for EOF on stdin, or with --read blocks reading the
//       socket and prints "read-error errno=N" (exit 3) or "eof" (exit 4).
//       --nodump: first makes itself non-dumpable, as daemons that guard
//       secrets do (ptrace and pidfd_getfd then need CAP_SYS_PTRACE).
//       --nonblock: connects as Go's runtime does, with a SOCK_NONBLOCK |
//       SOCK_CLOEXEC socket, EINPROGRESS, poll and SO_ERROR.
//       --mptcp: a Multipath TCP socket (IPPROTO_MPTCP), as Go's net
//       package makes when asked (SetMultipathTCP).
//   serve [--ipv6] [--read]
//       Listens on an ephemeral loopback port, prints "listening PORT pid
//       PID", accepts one connection, prints "accepted PEERPORT pid PID",
//       holds it until EOF on stdin, or with --read reads it as connect
//       does.
//   spawn fork|vfork PROGRAM [ARG...]   fork (or vfork) and exec PROGRAM
//   spawn fork-noexec COMMAND [ARG...]  fork; the child runs COMMAND itself
//       The parent prints "spawned PID" and exits with the child's status.
//   spawn background COMMAND [ARG...]
//       As a daemonizing server's launcher does: fork and exit 0 at once,
//       after printing "spawned PID". The child starts a session of its own
//       with stdin on /dev/null (stdout and stderr stay), waits for SIGUSR1
//       (20 s at most, then exits 5), then runs COMMAND itself.
//   threads N connect PORT|listen [--leader-exit|--unshare-files]
//       N threads each make one TCP connection (or listening socket) at
//       once and print "thread TID LPORT" and the options they read back.
//       --leader-exit: the main thread exits first; the others make their
//       calls only once it is a zombie. --unshare-files: each thread first
//       gets a file descriptor table of its own (unshare(CLONE_FILES)).
//   storm N [--connect PORT|--listen] [--exit-after MS CODE]
//         [--exec-after MS PORT]
//       N threads make TCP sockets (and connect or listen) in a tight loop;
//       prints "storming pid PID"; exits with CODE after MS milliseconds
//       (while calls are in flight), or runs until killed. --exec-after:
//       the main thread execs "raw_tcp connect PORT" instead, which kills
//       the other threads mid-call.
//   signals COUNT [--timer-us US] [--urg] [--connect PORT|--listen]
//           [--min-signals MIN] [--no-restart]
//       COUNT iterations of socket() (+ connect or listen) while signals
//       with SA_RESTART handlers rain on it: SIGALRM from an interval timer
//       and/or a thread sending SIGURG as fast as it can (as Go's runtime
//       does); more iterations (up to 3 * COUNT, 20 s) until MIN signals
//       have arrived. Prints "result calls=.. errors=.. first_errno=..
//       missing=.. signals=.. fdleak=.. eintr=.. eintr_socket=.."; exit 0
//       only if every call succeeded, every socket carried SO_KEEPALIVE and
//       no fd leaked. --no-restart: the SIGALRM handler lacks SA_RESTART, so
//       an interrupted slow call fails with EINTR, as POSIX allows; those
//       are counted (eintr, of which eintr_socket in socket() itself) and
//       do not count against the exit status, every other failure does.
//   setuid UID PORT [--after-socket] [--int80]
//       Drops to UID (groups and gid too), makes two throw-away TCP sockets,
//       then behaves like "connect PORT". --after-socket: first makes one
//       TCP socket and prints "before keepalive=K". --int80: drops through
//       the 32-bit system call ABI (int $0x80), as a 64-bit process may.
//   exec-after-socket [--from-thread] PROGRAM [ARG...]
//       Makes one TCP socket, prints "before keepalive=K", then execs
//       PROGRAM (e.g. a set-group-ID copy of raw_tcp). --from-thread: a
//       second thread execs, so the program runs under the first thread's
//       tid although another thread made the call.
//   int80-probe
//       Prints "int80 ok" if the 32-bit system call ABI works here.
//   netns PORT [--thread] [--late]
//       unshare(CLONE_NEWNET), then twice: socket(), the netns the socket
//       lives in (SIOCGSKNS), connect to loopback:PORT. Prints "netns
//       sock=INO self=INO connect_errno=N keepalive=K". --thread: all of it
//       in a second thread, so that only that thread changes namespace.
//       --late: first makes one TCP socket and prints "before keepalive=K".
//   flags
//       TCP sockets with each of SOCK_CLOEXEC/SOCK_NONBLOCK, one with
//       protocol IPPROTO_TCP spelt out, then a UDP and
//       a UNIX socket; one line each with the flags and SO_KEEPALIVE.
//   errnos
//       Calls that fail, or succeed on sockets that are not plain TCP, one
//       line each with the result and errno: the output must be the same
//       with and without the supervisor.
//   fdlimit
//       Lowers RLIMIT_NOFILE to 16 and fills the table: socket() must fail
//       with EMFILE; then frees fd 10: socket() must return 10. Prints
//       "fdlimit emfile_errno=N reused=FD keepalive=K".
//   newfds MS
//       Calls socket() in a loop for MS milliseconds and checks that each
//       result is a new TCP socket: an fd that was not open when the loop
//       began, S_ISSOCK, SO_PROTOCOL TCP. Prints "ready pid PID" first,
//       then "newfds calls=N errors=E wrong=W first_wrong=FD missing=M
//       fdleak=L" (missing: sockets without SO_KEEPALIVE); exit 0 only if
//       W is 0.
//   exec-race ROUNDS PROGRAM [ARG...]
//       ROUNDS times, one after the other: a child whose main thread loops
//       on socket()+close while a second thread, once the loop runs, execs
//       PROGRAM (which takes over the main thread's tid). Prints "exec-race
//       rounds=R" when every child has been reaped.
//   drop-children N UID
//       N children, one after the other, each of which drops to UID (groups
//       and gid too), makes one TCP socket and exits. Prints "drop-children
//       n=N" when every child has been reaped.
//   owner N
//       N times: a TCP socket listening on an ephemeral loopback port; prints
//       "owner uid=U euid=E" with U the owner /proc/net/tcp gives it.
//
// Options are printed as "NAME=VALUE" pairs, NAME as in strace.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// ---- output -------------------------------------------------------------

static void emit(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char* fmt, ...) {
  char line[1024];
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

static const struct {
  const char* name;
  int level;
  int optname;
} kOptions[] = {
    {"SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE},
    {"TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE},
    {"TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT},
    {"TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL},
    {"TCP_USER_TIMEOUT", IPPROTO_TCP, TCP_USER_TIMEOUT},
    {"TCP_SYNCNT", IPPROTO_TCP, TCP_SYNCNT},
    {"TCP_DEFER_ACCEPT", IPPROTO_TCP, TCP_DEFER_ACCEPT},
    {"TCP_MAXSEG", IPPROTO_TCP, TCP_MAXSEG},
    {"TCP_WINDOW_CLAMP", IPPROTO_TCP, TCP_WINDOW_CLAMP},
};

static int int_option(int fd, int level, int optname) {
  int value = 0;
  socklen_t len = sizeof value;
  if (getsockopt(fd, level, optname, &value, &len) != 0) return -1;
  return value;
}

// " NAME=VALUE" for every option, into buf.
static void format_options(int fd, char* buf, size_t size) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof kOptions / sizeof kOptions[0]; ++i) {
    int n = snprintf(buf + used, size - used, " %s=%d", kOptions[i].name,
                     int_option(fd, kOptions[i].level, kOptions[i].optname));
    if (n < 0 || (size_t)n >= size - used) return;
    used += (size_t)n;
  }
}

// ---- the raw calls --------------------------------------------------------

static int raw_socket(int domain, int type, int protocol) {
  return (int)syscall(SYS_socket, domain, type, protocol);
}

static int raw_socket_high_bits(int domain, int type, int protocol) {
  const long high = 1L << 32;
  return (int)syscall(SYS_socket, high | domain, high | type, high | protocol);
}

static int raw_connect(int fd, const struct sockaddr* addr, socklen_t len) {
  return (int)syscall(SYS_connect, fd, addr, len);
}

static int raw_listen(int fd, int backlog) {
  return (int)syscall(SYS_listen, fd, backlog);
}

static int raw_accept(int fd) {
  return (int)syscall(SYS_accept4, fd, NULL, NULL, 0);
}

static socklen_t loopback(int family, int port, struct sockaddr_storage* out) {
  memset(out, 0, sizeof *out);
  if (family == AF_INET6) {
    struct sockaddr_in6* a = (struct sockaddr_in6*)out;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((unsigned short)port);
    a->sin6_addr = in6addr_loopback;
    return sizeof *a;
  }
  struct sockaddr_in* a = (struct sockaddr_in*)out;
  a->sin_family = AF_INET;
  a->sin_port = htons((unsigned short)port);
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sizeof *a;
}

static int port_of(const struct sockaddr_storage* addr) {
  if (addr->ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6*)addr)->sin6_port);
  return ntohs(((const struct sockaddr_in*)addr)->sin_port);
}

static int local_port(int fd) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (getsockname(fd, (struct sockaddr*)&addr, &len) != 0) return -1;
  return port_of(&addr);
}

static int peer_port(int fd) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof addr;
  if (getpeername(fd, (struct sockaddr*)&addr, &len) != 0) return -1;
  return port_of(&addr);
}

// Returns 0 or -1 with errno set.
static int connect_loopback(int fd, int family, int port) {
  struct sockaddr_storage addr;
  socklen_t len = loopback(family, port, &addr);
  return raw_connect(fd, (struct sockaddr*)&addr, len);
}

static int bind_loopback(int fd, int family) {
  struct sockaddr_storage addr;
  socklen_t len = loopback(family, 0, &addr);
  return bind(fd, (struct sockaddr*)&addr, len);
}

static void wait_stdin_eof(void) {
  char buf[256];
  for (;;) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) return;
    if (n < 0 && errno != EINTR) return;
  }
}

static pid_t gettid_raw(void) { return (pid_t)syscall(SYS_gettid); }

static int parse_int(const char* text) {
  char* end = NULL;
  long value = strtol(text, &end, 10);
  if (end == text || *end != '\0') {
    emit("error bad number '%s'\n", text);
    _exit(2);
  }
  return (int)value;
}

// ---- connect / serve -----------------------------------------------------

// Blocks reading `fd` and reports how the read ended.
static int read_until_end(int fd) {
  char c;
  ssize_t n;
  do {
    n = read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    emit("read-error errno=%d\n", errno);
    return 3;
  }
  if (n == 0) {
    emit("eof\n");
    return 4;
  }
  emit("data\n");
  return 5;
}

static int cmd_connect(int argc, char** argv) {
  if (argc < 1) die("usage: connect PORT");
  int port = parse_int(argv[0]);
  int family = AF_INET, protocol = 0, read_socket = 0, nonblock = 0;
  int high_bits = 0;
  const int flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--ipv6") == 0) family = AF_INET6;
    if (strcmp(argv[i], "--read") == 0) read_socket = 1;
    if (strcmp(argv[i], "--nonblock") == 0) nonblock = 1;
    if (strcmp(argv[i], "--mptcp") == 0) protocol = 262;  // IPPROTO_MPTCP
    if (strcmp(argv[i], "--high-bits") == 0) high_bits = 1;
    if (strcmp(argv[i], "--nodump") == 0 &&
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
      die("prctl");
    }
  }
  int type = SOCK_STREAM | (nonblock ? flags : 0);
  int fd = high_bits ? raw_socket_high_bits(family, type, protocol)
                     : raw_socket(family, type, protocol);
  if (fd < 0) die("socket");
  if (connect_loopback(fd, family, port) != 0) {
    if (!nonblock || errno != EINPROGRESS) die("connect");
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, 10000) != 1) die("poll");
    int err = int_option(fd, SOL_SOCKET, SO_ERROR);
    if (err != 0) {
      errno = err;
      die("connect (SO_ERROR)");
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  }
  char opts[512];
  format_options(fd, opts, sizeof opts);
  emit("connected %d pid %d%s\n", local_port(fd), getpid(), opts);
  if (read_socket) return read_until_end(fd);
  wait_stdin_eof();
  return 0;
}

static int cmd_serve(int argc, char** argv) {
  int family = AF_INET, read_socket = 0;
  for (int i = 0; i < argc; ++i) {
    if (strcmp(argv[i], "--ipv6") == 0) family = AF_INET6;
    if (strcmp(argv[i], "--read") == 0) read_socket = 1;
  }
  int fd = raw_socket(family, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  if (bind_loopback(fd, family) != 0) die("bind");
  if (raw_listen(fd, 16) != 0) die("listen");
  emit("listening %d pid %d\n", local_port(fd), getpid());
  int conn;
  do {
    conn = raw_accept(fd);
  } while (conn < 0 && errno == EINTR);
  if (conn < 0) die("accept4");
  emit("accepted %d pid %d\n", peer_port(conn), getpid());
  if (read_socket) return read_until_end(conn);
  wait_stdin_eof();
  return 0;
}

// ---- spawn ---------------------------------------------------------------

static int dispatch(int argc, char** argv);

// The launcher exits before the child makes a single trapped call: the
// child waits for SIGUSR1, blocked from before the fork so none is lost.
static int spawn_background(int argc, char** argv) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, NULL);
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid > 0) {
    emit("spawned %d\n", pid);
    return 0;
  }
  setsid();
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null >= 0) dup2(null, STDIN_FILENO);
  struct timespec limit = {20, 0};
  while (sigtimedwait(&usr1, NULL, &limit) < 0) {
    if (errno != EINTR) _exit(5);
  }
  sigprocmask(SIG_UNBLOCK, &usr1, NULL);
  _exit(dispatch(argc, argv));
}

static int cmd_spawn(int argc, char** argv) {
  if (argc < 2) die("usage: spawn fork|vfork|fork-noexec|background ...");
  const char* how = argv[0];
  pid_t pid;
  if (strcmp(how, "fork-noexec") == 0) {
    pid = fork();
    if (pid == 0) _exit(dispatch(argc - 1, argv + 1));
  } else if (strcmp(how, "background") == 0) {
    return spawn_background(argc - 1, argv + 1);
  } else if (strcmp(how, "fork") == 0) {
    pid = fork();
    if (pid == 0) {
      execv(argv[1], argv + 1);
      _exit(127);
    }
  } else if (strcmp(how, "vfork") == 0) {
    pid = vfork();
    if (pid == 0) {
      execv(argv[1], argv + 1);
      _exit(127);
    }
  } else {
    die("spawn: unknown way");
    return 2;
  }
  if (pid < 0) die("fork");
  emit("spawned %d\n", pid);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ---- threads -------------------------------------------------------------

struct ThreadJob {
  pthread_barrier_t* barrier;
  int listen_role;
  int port;
  int leader_exit;
  int unshare_files;
  pid_t leader;
  int waits_for_stdin;
};

// Whether the thread group leader has exited and is now a zombie.
static int leader_is_zombie(pid_t leader) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/task/%d/stat", leader, leader);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  const char* paren = strrchr(buf, ')');
  return paren != NULL && paren[1] == ' ' && paren[2] == 'Z';
}

static void* thread_main(void* arg) {
  struct ThreadJob* job = arg;
  pthread_barrier_wait(job->barrier);
  if (job->leader_exit) {
    for (int i = 0; i < 2000 && !leader_is_zombie(job->leader); ++i) {
      usleep(1000);
    }
  }
  if (job->unshare_files && unshare(CLONE_FILES) != 0) die("unshare");
  int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket");
  if (job->listen_role) {
    if (bind_loopback(fd, AF_INET) != 0) die("bind");
    if (raw_listen(fd, 4) != 0) die("listen");
  } else if (connect_loopback(fd, AF_INET, job->port) != 0) {
    die("connect");
  }
  char opts[512];
  format_options(fd, opts, sizeof opts);
  emit("thread %d %d leader-zombie %d%s\n", gettid_raw(), local_port(fd),
       leader_is_zombie(job->leader), opts);
  if (job->waits_for_stdin) {
    wait_stdin_eof();
    exit(0);
  }
  for (;;) pause();
  return NULL;
}

static int cmd_threads(int argc, char** argv) {
  if (argc < 2) die("usage: threads N connect PORT|listen");
  int count = parse_int(argv[0]);
  int listen_role = strcmp(argv[1], "listen") == 0;
  int port = 0, next = 2;
  if (!listen_role) {
    if (argc < 3) die("usage: threads N connect PORT");
    port = parse_int(argv[2]);
    next = 3;
  }
  int leader_exit = next < argc && strcmp(argv[next], "--leader-exit") == 0;
  int unshare_files = next < argc && strcmp(argv[next], "--unshare-files") == 0;
  static pthread_barrier_t barrier;
  pthread_barrier_init(&barrier, NULL, (unsigned)count);
  struct ThreadJob* jobs = calloc((size_t)count, sizeof *jobs);
  emit("threads pid %d\n", getpid());
  for (int i = 0; i < count; ++i) {
    jobs[i] = (struct ThreadJob){
        &barrier, listen_role,          port, leader_exit, unshare_files,
        getpid(), leader_exit && i == 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, thread_main, &jobs[i]) != 0) {
      die("pthread_create");
    }
  }
  if (leader_exit) pthread_exit(NULL);
  wait_stdin_eof();
  exit(0);
}

// ---- storm ---------------------------------------------------------------

enum Follow { kFollowNone, kFollowConnect, kFollowListen };

struct StormJob {
  enum Follow follow;
  int port;
};

// Set by make_one when the call that failed was socket() itself.
static __thread int g_socket_failed;

// socket() followed by connect or listen, as asked; returns the fd or -1.
static int make_one(enum Follow follow, int port, int* failed_errno) {
  g_socket_failed = 0;
  int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    *failed_errno = errno;
    g_socket_failed = 1;
    return -1;
  }
  int rc = 0;
  if (follow == kFollowConnect) {
    rc = connect_loopback(fd, AF_INET, port);
  } else if (follow == kFollowListen) {
    rc = bind_loopback(fd, AF_INET);
    if (rc == 0) rc = raw_listen(fd, 1);
  }
  if (rc != 0) {
    *failed_errno = errno;
    close(fd);
    return -1;
  }
  return fd;
}

static void* storm_main(void* arg) {
  struct StormJob* job = arg;
  for (;;) {
    int err = 0;
    int fd = make_one(job->follow, job->port, &err);
    if (fd >= 0) close(fd);
  }
  return NULL;
}

static void parse_follow(int argc, char** argv, int from, enum Follow* follow,
                         int* port) {
  for (int i = from; i < argc; ++i) {
    if (strcmp(argv[i], "--connect") == 0 && i + 1 < argc) {
      *follow = kFollowConnect;
      *port = parse_int(argv[++i]);
    } else if (strcmp(argv[i], "--listen") == 0) {
      *follow = kFollowListen;
    }
  }
}

static int cmd_storm(int argc, char** argv) {
  if (argc < 1) die("usage: storm N ...");
  int count = parse_int(argv[0]);
  struct StormJob job = {kFollowNone, 0};
  parse_follow(argc, argv, 1, &job.follow, &job.port);
  int exit_after = -1, code = 0;
  const char* exec_port = NULL;
  for (int i = 1; i + 2 < argc; ++i) {
    if (strcmp(argv[i], "--exit-after") == 0 ||
        strcmp(argv[i], "--exec-after") == 0) {
      exit_after = parse_int(argv[i + 1]);
      code = parse_int(argv[i + 2]);
      if (strcmp(argv[i], "--exec-after") == 0) exec_port = argv[i + 2];
    }
  }
  for (int i = 0; i < count; ++i) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, storm_main, &job) != 0) {
      die("pthread_create");
    }
  }
  emit("storming pid %d\n", getpid());
  if (exit_after < 0) {
    for (;;) pause();
  }
  usleep((useconds_t)exit_after * 1000);
  if (exec_port != NULL) {
    char* args[] = {"raw_tcp", "connect", (char*)exec_port, NULL};
    execv("/proc/self/exe", args);
    die("execv");
  }
  _exit(code);  // exit_group: the storm threads die mid-call
}

// ---- signals -------------------------------------------------------------

static volatile sig_atomic_t signal_count;
static volatile int urg_stop;

static void on_signal(int sig) {
  (void)sig;
  signal_count = signal_count + 1;
}

struct UrgJob {
  pid_t pid;
  pid_t target;
};

static void* urg_main(void* arg) {
  struct UrgJob* job = arg;
  while (!urg_stop) {
    syscall(SYS_tgkill, job->pid, job->target, SIGURG);
    sched_yield();
  }
  return NULL;
}

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

static int count_fds(void) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == NULL) return -1;
  int count = 0;
  while (readdir(dir) != NULL) ++count;
  closedir(dir);
  return count;
}

static int cmd_signals(int argc, char** argv) {
  if (argc < 1) die("usage: signals COUNT ...");
  int count = parse_int(argv[0]);
  int timer_us = 0, urg = 0, port = 0, min_signals = 0, restart = 1;
  enum Follow follow = kFollowNone;
  parse_follow(argc, argv, 1, &follow, &port);
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--no-restart") == 0) {
      restart = 0;
    } else if (strcmp(argv[i], "--timer-us") == 0 && i + 1 < argc) {
      timer_us = parse_int(argv[++i]);
    } else if (strcmp(argv[i], "--min-signals") == 0 && i + 1 < argc) {
      min_signals = parse_int(argv[++i]);
    } else if (strcmp(argv[i], "--urg") == 0) {
      urg = 1;
    }
  }

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = restart ? SA_RESTART : 0;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  sa.sa_flags = SA_RESTART | SA_ONSTACK;  // what Go's runtime installs
  sigaction(SIGURG, &sa, NULL);

  int fds_before = count_fds();
  pthread_t urg_thread;
  struct UrgJob urg_job = {getpid(), gettid_raw()};
  if (urg && pthread_create(&urg_thread, NULL, urg_main, &urg_job) != 0) {
    die("pthread_create");
  }
  if (timer_us > 0) {
    struct itimerval timer = {{0, timer_us}, {0, timer_us}};
    setitimer(ITIMER_REAL, &timer, NULL);
  }

  // COUNT calls at least; more (up to 3 * COUNT, for at most 20 s) while
  // fewer than MIN signals have arrived, which a loaded machine can cause.
  int errors = 0, first_errno = 0, missing = 0, calls = 0;
  int eintr = 0, eintr_socket = 0;
  long deadline = now_ms() + 20000;
  for (; calls < count || (signal_count < min_signals && calls < 3 * count &&
                           now_ms() < deadline);
       ++calls) {
    int err = 0;
    int fd = make_one(follow, port, &err);
    if (fd < 0 && !restart && err == EINTR) {
      ++eintr;
      eintr_socket += g_socket_failed;
      continue;
    }
    if (fd < 0) {
      if (errors++ == 0) first_errno = err;
      continue;
    }
    if (int_option(fd, SOL_SOCKET, SO_KEEPALIVE) != 1) ++missing;
    close(fd);
  }

  struct itimerval off;
  memset(&off, 0, sizeof off);
  setitimer(ITIMER_REAL, &off, NULL);
  if (urg) {
    urg_stop = 1;
    pthread_join(urg_thread, NULL);
  }
  int fds_after = count_fds();
  emit(
      "result calls=%d errors=%d first_errno=%d missing=%d signals=%d "
      "fdleak=%d eintr=%d eintr_socket=%d\n",
      calls, errors, first_errno, missing, (int)signal_count,
      fds_after - fds_before, eintr, eintr_socket);
  return errors == 0 && missing == 0 && fds_after == fds_before ? 0 : 1;
}

// ---- credentials and namespaces -----------------------------------------

#if defined(__x86_64__)
// A system call through the 32-bit ABI (int $0x80), which a 64-bit process
// can use too; returns -errno on failure.
static long int80(long nr, long a, long b, long c) {
  long ret;
  __asm__ volatile("int $0x80"
                   : "=a"(ret)
                   : "a"(nr), "b"(a), "c"(b), "d"(c)
                   : "memory");
  return ret;
}
#endif

// i386 numbers: getuid32, setgroups32, setresuid32, setresgid32.
enum {
  kI386GetUid32 = 199,
  kI386SetGroups32 = 206,
  kI386SetResUid32 = 208,
  kI386SetResGid32 = 210
};

static void* exec_main(void* arg) {
  char** argv = arg;
  execv(argv[0], argv);
  die("execv");
  return NULL;
}

static int cmd_exec_after_socket(int argc, char** argv) {
  int from_thread = argc > 0 && strcmp(argv[0], "--from-thread") == 0;
  if (from_thread) {
    --argc;
    ++argv;
  }
  if (argc < 1) die("usage: exec-after-socket [--from-thread] PROGRAM [ARG...]");
  int fd = raw_socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  emit("before keepalive=%d\n", int_option(fd, SOL_SOCKET, SO_KEEPALIVE));
  if (from_thread) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, exec_main, argv) != 0) {
      die("pthread_create");
    }
    pthread_join(thread, NULL);  // the exec ends this thread first
    die("exec from a thread returned");
  }
  execv(argv[0], argv);
  die("execv");
  return 1;
}

static int cmd_int80_probe(void) {
#if defined(__x86_64__)
  long uid = int80(kI386GetUid32, 0, 0, 0);
  emit("int80 %s\n", uid == (long)getuid() ? "ok" : "unavailable");
#else
  emit("int80 unavailable\n");
#endif
  return 0;
}

static int cmd_setuid(int argc, char** argv) {
  if (argc < 2) die("usage: setuid UID PORT [--after-socket] [--int80]");
  uid_t uid = (uid_t)parse_int(argv[0]);
  int after_socket = 0, use_int80 = 0;
  for (int i = 2; i < argc; ++i) {
    if (strcmp(argv[i], "--after-socket") == 0) after_socket = 1;
    if (strcmp(argv[i], "--int80") == 0) use_int80 = 1;
  }
  if (after_socket) {
    int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    emit("before keepalive=%d\n", int_option(fd, SOL_SOCKET, SO_KEEPALIVE));
    close(fd);
  }
  if (use_int80) {
#if defined(__x86_64__)
    if (int80(kI386SetGroups32, 0, 0, 0) != 0) die("setgroups32");
    if (int80(kI386SetResGid32, uid, uid, uid) != 0) die("setresgid32");
    if (int80(kI386SetResUid32, uid, uid, uid) != 0) die("setresuid32");
#else
    die("int80");
#endif
  } else {
    if (setgroups(0, NULL) != 0) die("setgroups");
    if (setresgid(uid, uid, uid) != 0) die("setresgid");
    if (setresuid(uid, uid, uid) != 0) die("setresuid");
  }
  for (int i = 0; i < 2; ++i) {
    int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    close(fd);
  }
  return cmd_connect(argc - 1, argv + 1);
}

static unsigned long inode_of_fd(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
}

struct NetnsJob {
  int port;
  int late;  // make a socket before unsharing
};

static void* netns_main(void* arg) {
  struct NetnsJob* job = arg;
  int port = job->port;
  if (job->late) {
    int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    emit("before keepalive=%d\n", int_option(fd, SOL_SOCKET, SO_KEEPALIVE));
    close(fd);
  }
  if (unshare(CLONE_NEWNET) != 0) die("unshare");
  struct stat self;
  if (stat("/proc/thread-self/ns/net", &self) != 0) die("stat");
  for (int i = 0; i < 2; ++i) {
    int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    int ns = ioctl(fd, SIOCGSKNS);
    if (ns < 0) die("SIOCGSKNS");
    int keepalive = int_option(fd, SOL_SOCKET, SO_KEEPALIVE);
    int rc = connect_loopback(fd, AF_INET, port);
    emit("netns sock=%lu self=%lu connect_errno=%d keepalive=%d\n",
         inode_of_fd(ns), (unsigned long)self.st_ino, rc == 0 ? 0 : errno,
         keepalive);
    close(ns);
    close(fd);
  }
  return NULL;
}

static int cmd_netns(int argc, char** argv) {
  if (argc < 1) die("usage: netns PORT [--thread] [--late]");
  struct NetnsJob job = {parse_int(argv[0]), 0};
  int in_thread = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--thread") == 0) in_thread = 1;
    if (strcmp(argv[i], "--late") == 0) job.late = 1;
  }
  if (in_thread) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, netns_main, &job) != 0) {
      die("pthread_create");
    }
    pthread_join(thread, NULL);
  } else {
    netns_main(&job);
  }
  return 0;
}

static int cmd_flags(void) {
  static const int kFlags[] = {0, SOCK_CLOEXEC, SOCK_NONBLOCK,
                               SOCK_CLOEXEC | SOCK_NONBLOCK};
  for (size_t i = 0; i < sizeof kFlags / sizeof kFlags[0]; ++i) {
    int fd = raw_socket(AF_INET, SOCK_STREAM | kFlags[i], 0);
    if (fd < 0) die("socket");
    emit(
        "tcp asked-cloexec=%d asked-nonblock=%d cloexec=%d nonblock=%d "
        "keepalive=%d\n",
        !!(kFlags[i] & SOCK_CLOEXEC), !!(kFlags[i] & SOCK_NONBLOCK),
        !!(fcntl(fd, F_GETFD) & FD_CLOEXEC),
        !!(fcntl(fd, F_GETFL) & O_NONBLOCK),
        int_option(fd, SOL_SOCKET, SO_KEEPALIVE));
    close(fd);
  }
  int explicit_tcp = raw_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (explicit_tcp < 0) die("socket IPPROTO_TCP");
  emit(
      "tcp asked-cloexec=0 asked-nonblock=0 cloexec=%d nonblock=%d "
      "keepalive=%d protocol=IPPROTO_TCP\n",
      !!(fcntl(explicit_tcp, F_GETFD) & FD_CLOEXEC),
      !!(fcntl(explicit_tcp, F_GETFL) & O_NONBLOCK),
      int_option(explicit_tcp, SOL_SOCKET, SO_KEEPALIVE));
  close(explicit_tcp);
  int udp = raw_socket(AF_INET, SOCK_DGRAM, 0);
  if (udp < 0) die("socket udp");
  emit("udp keepalive=%d\n", int_option(udp, SOL_SOCKET, SO_KEEPALIVE));
  close(udp);
  int unix_fd = raw_socket(AF_UNIX, SOCK_STREAM, 0);
  if (unix_fd < 0) die("socket unix");
  emit("unix keepalive=%d\n", int_option(unix_fd, SOL_SOCKET, SO_KEEPALIVE));
  close(unix_fd);
  return 0;
}

// One line: what a call returned and its errno (0 on success).
static void report_call(const char* name, int result) {
  emit("%s %s errno=%d\n", name, result < 0 ? "failed" : "ok",
       result < 0 ? errno : 0);
}

static int cmd_errnos(void) {
  struct sockaddr_storage addr;
  socklen_t len = loopback(AF_INET, 1, &addr);  // port 1: nobody there
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0) die("open");

  int fd = raw_socket(AF_INET, SOCK_STREAM | 0x1000, 0);  // unknown flag
  report_call("socket-bad-flag", fd);
  fd = raw_socket(AF_INET, SOCK_STREAM, IPPROTO_UDP);
  report_call("socket-stream-udp", fd);
  fd = raw_socket(AF_INET, SOCK_STREAM, 262 /* IPPROTO_MPTCP */);
  report_call("socket-mptcp", fd);
  if (fd >= 0) close(fd);
  fd = raw_socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
  report_call("socket-raw-tcp", fd);
  if (fd >= 0) {
    emit("socket-raw-tcp keepalive=%d\n",
         int_option(fd, SOL_SOCKET, SO_KEEPALIVE));
    close(fd);
  }

  report_call("connect-bad-fd", raw_connect(-1, (struct sockaddr*)&addr, len));
  report_call("connect-not-socket",
              raw_connect(devnull, (struct sockaddr*)&addr, len));
  int tcp = raw_socket(AF_INET, SOCK_STREAM, 0);
  if (tcp < 0) die("socket");
  report_call("connect-null-address", raw_connect(tcp, NULL, len));
  report_call("connect-short-address",
              raw_connect(tcp, (struct sockaddr*)&addr, 3));
  report_call("connect-refused",
              raw_connect(tcp, (struct sockaddr*)&addr, len));
  close(tcp);

  report_call("listen-bad-fd", raw_listen(-1, 1));
  report_call("listen-not-socket", raw_listen(devnull, 1));
  int udp = raw_socket(AF_INET, SOCK_DGRAM, 0);
  if (udp < 0) die("socket");
  report_call("listen-udp", raw_listen(udp, 1));
  report_call("connect-udp", raw_connect(udp, (struct sockaddr*)&addr, len));
  emit("connect-udp keepalive=%d\n", int_option(udp, SOL_SOCKET, SO_KEEPALIVE));
  close(udp);

  // socket() returns the lowest free number, as POSIX wants.
  int hole = dup(devnull);
  int above = dup(devnull);
  close(hole);
  fd = raw_socket(AF_INET, SOCK_STREAM, 0);
  emit("socket-lowest-free %s\n", fd == hole ? "yes" : "no");
  if (fd >= 0) close(fd);
  close(above);
  close(devnull);
  return 0;
}

static int cmd_fdlimit(void) {
  struct rlimit limit = {16, 16};
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) die("setrlimit");
  while (open("/dev/null", O_RDONLY) >= 0) {
  }
  if (errno != EMFILE) die("filling the fd table");
  int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
  int emfile_errno = fd < 0 ? errno : 0;
  close(10);
  fd = raw_socket(AF_INET, SOCK_STREAM, 0);
  emit("fdlimit emfile_errno=%d reused=%d keepalive=%d\n", emfile_errno, fd,
       fd < 0 ? -1 : int_option(fd, SOL_SOCKET, SO_KEEPALIVE));
  return 0;
}

// ---- fd identity ----------------------------------------------------------

enum { kMaxTrackedFd = 4096 };

static int cmd_newfds(int argc, char** argv) {
  if (argc < 1) die("usage: newfds MS");
  long duration = parse_int(argv[0]);
  static char was_open[kMaxTrackedFd];
  DIR* dir = opendir("/proc/self/fd");
  if (dir == NULL) die("opendir /proc/self/fd");
  for (struct dirent* entry; (entry = readdir(dir)) != NULL;) {
    int fd = atoi(entry->d_name);
    if (entry->d_name[0] != '.' && fd != dirfd(dir) && fd < kMaxTrackedFd) {
      was_open[fd] = 1;
    }
  }
  closedir(dir);
  int fds_before = count_fds();
  emit("ready pid %d\n", (int)getpid());
  long calls = 0, errors = 0, wrong = 0, missing = 0;
  int first_wrong = -1;
  for (long end = now_ms() + duration; now_ms() < end; ++calls) {
    int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      ++errors;
      continue;
    }
    struct stat st;
    if (fd >= kMaxTrackedFd || was_open[fd] || fstat(fd, &st) != 0 ||
        !S_ISSOCK(st.st_mode) ||
        int_option(fd, SOL_SOCKET, SO_PROTOCOL) != IPPROTO_TCP) {
      // Not ours to close: it may be stdin or another file the program has.
      if (wrong++ == 0) first_wrong = fd;
      continue;
    }
    if (int_option(fd, SOL_SOCKET, SO_KEEPALIVE) != 1) ++missing;
    close(fd);
  }
  emit("newfds calls=%ld errors=%ld wrong=%ld first_wrong=%d missing=%ld "
       "fdleak=%d\n",
       calls, errors, wrong, first_wrong, missing, count_fds() - fds_before);
  return wrong == 0 ? 0 : 1;
}

// ---- exec race and socket owners -----------------------------------------

static volatile int race_sockets;  // made by the looping main thread

static void* race_exec_main(void* arg) {
  char** argv = arg;
  // Exec while the main thread is in the middle of its loop.
  while (__atomic_load_n(&race_sockets, __ATOMIC_ACQUIRE) < 3) sched_yield();
  execv(argv[0], argv);
  die("execv");
  return NULL;
}

static int cmd_exec_race(int argc, char** argv) {
  if (argc < 2) die("usage: exec-race ROUNDS PROGRAM [ARG...]");
  int rounds = parse_int(argv[0]);
  for (int i = 0; i < rounds; ++i) {
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
      pthread_t thread;
      if (pthread_create(&thread, NULL, race_exec_main, argv + 1) != 0) {
        die("pthread_create");
      }
      for (;;) {  // ends when the exec kills this thread
        int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0) close(fd);
        __atomic_add_fetch(&race_sockets, 1, __ATOMIC_RELEASE);
      }
    }
    int status;
    if (waitpid(child, &status, 0) != child) die("waitpid");
  }
  emit("exec-race rounds=%d\n", rounds);
  return 0;
}

static int cmd_drop_children(int argc, char** argv) {
  if (argc < 2) die("usage: drop-children N UID");
  int count = parse_int(argv[0]);
  uid_t uid = (uid_t)parse_int(argv[1]);
  for (int i = 0; i < count; ++i) {
    pid_t child = fork();
    if (child < 0) die("fork");
    if (child == 0) {
      if (setgroups(0, NULL) != 0 || setresgid(uid, uid, uid) != 0 ||
          setresuid(uid, uid, uid) != 0) {
        die("dropping privileges");
      }
      int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
      _exit(fd < 0 ? 1 : 0);
    }
    int status;
    if (waitpid(child, &status, 0) != child) die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("child failed");
  }
  emit("drop-children n=%d\n", count);
  return 0;
}

// The uid /proc/net/tcp gives the IPv4 socket listening on loopback:port.
static long tcp_owner(int port) {
  FILE* table = fopen("/proc/net/tcp", "re");
  if (table == NULL) return -1;
  char line[512];
  long owner = -1;
  while (fgets(line, sizeof line, table) != NULL) {
    unsigned local_port, state;
    long uid;
    if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %ld",
               &local_port, &state, &uid) == 3 &&
        (int)local_port == port && state == 0x0A) {
      owner = uid;
      break;
    }
  }
  fclose(table);
  return owner;
}

static int cmd_owner(int argc, char** argv) {
  if (argc < 1) die("usage: owner N");
  int count = parse_int(argv[0]);
  for (int i = 0; i < count; ++i) {
    int fd = raw_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (bind_loopback(fd, AF_INET) != 0) die("bind");
    if (raw_listen(fd, 1) != 0) die("listen");
    emit("owner uid=%ld euid=%d\n", tcp_owner(local_port(fd)), (int)geteuid());
    close(fd);
  }
  return 0;
}

// ---- main ----------------------------------------------------------------

static int dispatch(int argc, char** argv) {
  if (argc < 1) {
    emit("error usage: raw_tcp COMMAND ...\n");
    return 2;
  }
  const char* cmd = argv[0];
  if (strcmp(cmd, "connect") == 0) return cmd_connect(argc - 1, argv + 1);
  if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
  if (strcmp(cmd, "spawn") == 0) return cmd_spawn(argc - 1, argv + 1);
  if (strcmp(cmd, "threads") == 0) return cmd_threads(argc - 1, argv + 1);
  if (strcmp(cmd, "storm") == 0) return cmd_storm(argc - 1, argv + 1);
  if (strcmp(cmd, "signals") == 0) return cmd_signals(argc - 1, argv + 1);
  if (strcmp(cmd, "setuid") == 0) return cmd_setuid(argc - 1, argv + 1);
  if (strcmp(cmd, "netns") == 0) return cmd_netns(argc - 1, argv + 1);
  if (strcmp(cmd, "int80-probe") == 0) return cmd_int80_probe();
  if (strcmp(cmd, "exec-after-socket") == 0) {
    return cmd_exec_after_socket(argc - 1, argv + 1);
  }
  if (strcmp(cmd, "flags") == 0) return cmd_flags();
  if (strcmp(cmd, "errnos") == 0) return cmd_errnos();
  if (strcmp(cmd, "fdlimit") == 0) return cmd_fdlimit();
  if (strcmp(cmd, "newfds") == 0) return cmd_newfds(argc - 1, argv + 1);
  if (strcmp(cmd, "exec-race") == 0) return cmd_exec_race(argc - 1, argv + 1);
  if (strcmp(cmd, "drop-children") == 0) {
    return cmd_drop_children(argc - 1, argv + 1);
  }
  if (strcmp(cmd, "owner") == 0) return cmd_owner(argc - 1, argv + 1);
  emit("error unknown command '%s'\n", cmd);
  return 2;
}

int main(int argc, char** argv) { return dispatch(argc - 1, argv + 1); }
