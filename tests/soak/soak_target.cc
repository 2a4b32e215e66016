// SPDX-License-Identifier: Apache-2.0
// soak_target: the program the soak tests run, under keepalive-supervise or
// handed to keepalive-agent.
//
//   soak_target loop PROCS THREADS CALLS [--checkpoints K]
//       PROCS processes of THREADS threads each make CALLS TCP sockets in
//       all (socket(AF_INET, SOCK_STREAM), then getsockopt SO_DOMAIN,
//       SO_TYPE and SO_KEEPALIVE, then close), in K slices (10 by
//       default). After each slice every thread waits at a gate: the first
//       process prints "checkpoint K calls=N" and opens the gate when it
//       gets SIGUSR1 (60 s at most, then exits 3), so that whoever watches
//       can look at the supervisor while no call is in flight.
//   soak_target loop PROCS THREADS --until-eof [--warmup CALLS]
//       The same, in two slices: CALLS sockets per thread (100 by default),
//       checkpoint 1; then sockets until stdin reaches EOF, checkpoint 2.
//   soak_target listen [--hold]
//       One listening TCP socket on an ephemeral loopback port; prints
//       "keepalive=K" and exits 0 if K is 1; with --hold, once stdin
//       reaches EOF.
//   soak_target spin THREADS (CALLS | --forever) [--listen]
//       One process of THREADS threads making CALLS TCP sockets in all (or
//       until killed), each checked as loop does; with --listen each is
//       also bound to an ephemeral loopback port and listens. Prints
//       "running pid PID calls=N errors=E no_keepalive=M" once every
//       thread has made one (M: calls that made a TCP socket without
//       SO_KEEPALIVE), and (unless --forever) "result calls=.. errors=.. first_errno=..
//       keepalive=.. wrong=.. fdleak=.. seconds=..". Exits 0 if every call
//       succeeded and returned a new TCP socket and no fd was left over,
//       whether or not it carried SO_KEEPALIVE: so a bare run and a
//       supervised one can be compared by exit code.
//   soak_target nursery CHILDREN THREADS
//       CHILDREN processes in turn, each `spin THREADS --forever --listen`
//       (forked, not executed) for its parent to see killed: after each
//       one ends the parent prints "reaped K signal=S" (0 if it exited)
//       and waits for SIGUSR1 (60 s at most) before the next. Prints
//       "nursery pid PID" first and "result children=N killed=K" last;
//       exits 0 if SIGKILL ended every child.
//
// loop prints "started pid PID" first and "result calls=.. failures=..
// no_keepalive=.. wrong=.. first_errno=.. fdleak=.. seconds=.. rate=.."
// last, and exits 0 only if every socket() succeeded, was a new TCP
// socket (wrong: it was not) and read back SO_KEEPALIVE=1, and no process
// ended with more fds than it started with (fdleak). seconds counts the
// slices, not the waits at the gates. Every line is one write(2).
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdarg>
#include <filesystem>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

// What the processes share (an anonymous MAP_SHARED mapping made before
// they fork): lock-free atomics work across processes.
struct Shared {
  std::atomic<long> calls{0};
  std::atomic<long> failures{0};
  std::atomic<long> no_keepalive{0};
  std::atomic<long> wrong{0};
  std::atomic<int> first_errno{0};
  std::atomic<long> fdleak{0};
  std::atomic<int> arrived{0};   // thread-slices finished
  std::atomic<int> released{0};  // gates opened
  std::atomic<bool> stop{false};
};
static_assert(std::atomic<long>::is_always_lock_free);

[[gnu::format(printf, 1, 2)]] void say(const char* format, ...) {
  char line[512];
  va_list args;
  va_start(args, format);
  int n = vsnprintf(line, sizeof line - 1, format, args);
  va_end(args);
  if (n < 0) return;
  if (n > static_cast<int>(sizeof line) - 2) n = sizeof line - 2;
  line[n] = '\n';
  [[maybe_unused]] ssize_t written = write(1, line, n + 1);
}

int open_fds() {
  int count = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/self/fd")) {
    ++count;
  }
  return count - 1;  // the iterator's own
}

int sockopt(int fd, int name) {
  int value = -1;
  socklen_t size = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, name, &value, &size) != 0) return -1;
  return value;
}

// One socket made, checked and closed; false on any failure.
bool one_socket(Shared& shared) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    int expected = 0;
    shared.first_errno.compare_exchange_strong(expected, errno);
    return false;
  }
  if (sockopt(fd, SO_DOMAIN) != AF_INET ||
      sockopt(fd, SO_TYPE) != SOCK_STREAM) {
    // Not the socket we asked for: an fd we may already hold. Leave it.
    ++shared.wrong;
    return false;
  }
  bool keepalive = sockopt(fd, SO_KEEPALIVE) == 1;
  if (!keepalive) ++shared.no_keepalive;
  close(fd);
  return keepalive;
}

void sleep_us(long us) {
  timespec pause{0, us * 1000};
  nanosleep(&pause, nullptr);
}

// One thread's work: each slice (`quotas[k]` sockets, or until stop when
// negative), then the gate.
void work(Shared& shared, const std::vector<long>& quotas) {
  for (size_t k = 0; k < quotas.size(); ++k) {
    long made = 0, failed = 0;
    for (long i = 0; quotas[k] < 0 ? !shared.stop.load() : i < quotas[k]; ++i) {
      ++made;
      if (!one_socket(shared)) ++failed;
    }
    shared.calls += made;
    shared.failures += failed;
    ++shared.arrived;
    while (shared.released.load() < static_cast<int>(k) + 1) sleep_us(200);
  }
}

// One process of THREADS threads, the first numbered `first` of all; the
// threads numbered below `extra` make one more socket in the last slice
// (the remainder of CALLS), so that every thread makes calls from the
// first slice on. Its exit code.
int worker(Shared& shared, int threads, const std::vector<long>& quotas,
           long first, long extra) {
  int fds_before = open_fds();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    std::vector<long> mine = quotas;
    if (first + t < extra) ++mine.back();
    pool.emplace_back([&shared, mine] { work(shared, mine); });
  }
  for (std::thread& thread : pool) thread.join();
  int leaked = open_fds() - fds_before;
  if (leaked > 0) shared.fdleak += leaked;
  return 0;
}

// Waits 60 s at most. Being stopped and continued (as the stop storm
// does) makes sigtimedwait fail with EINTR on Linux: wait on.
bool wait_for_sigusr1() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  auto deadline = Clock::now() + std::chrono::seconds(60);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(
                    deadline - Clock::now())
                    .count();
    if (left <= 0) return false;
    timespec bound{left / 1'000'000'000, left % 1'000'000'000};
    if (sigtimedwait(&set, nullptr, &bound) == SIGUSR1) return true;
    if (errno != EINTR) return false;
  }
}

// Reads stdin until EOF (or an error).
void drain_stdin() {
  char buffer[256];
  for (;;) {
    ssize_t n = read(0, buffer, sizeof buffer);
    if (n == 0 || (n < 0 && errno != EINTR)) return;
  }
}

int usage();

// What spin's threads share (one process: plain atomics).
struct Spin {
  std::atomic<long> calls{0};
  std::atomic<long> errors{0};
  std::atomic<int> first_errno{0};
  std::atomic<long> keepalive{0};
  std::atomic<long> no_keepalive{0};
  std::atomic<long> wrong{0};
  std::atomic<int> started{0};  // threads that made their first call
};

// One call: a TCP socket (bound and listening on loopback with `listen`),
// checked and closed.
void spin_once(Spin& spin, bool listening) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  bool ok = fd >= 0;
  if (ok && listening) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) ==
             0 &&
         listen(fd, 1) == 0;
  }
  if (!ok) {
    int expected = 0;
    spin.first_errno.compare_exchange_strong(expected, errno);
    ++spin.errors;
  } else if (sockopt(fd, SO_DOMAIN) != AF_INET ||
             sockopt(fd, SO_TYPE) != SOCK_STREAM) {
    ++spin.wrong;
    fd = -1;  // not ours to close
  } else if (sockopt(fd, SO_KEEPALIVE) == 1) {
    ++spin.keepalive;
  } else {
    ++spin.no_keepalive;
  }
  if (fd >= 0) close(fd);
  ++spin.calls;
}

// spin's body; `calls` < 0: until killed. Its exit code.
int spin_threads(int threads, long calls, bool listening) {
  int fds_before = open_fds();
  Spin spin;
  auto start = Clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    long mine = calls < 0 ? -1 : calls / threads + (t < calls % threads);
    pool.emplace_back([&spin, mine, listening] {
      for (long i = 0; mine < 0 || i < mine; ++i) {
        spin_once(spin, listening);
        if (i == 0) ++spin.started;
      }
      if (mine == 0) ++spin.started;
    });
  }
  while (spin.started.load() < threads) sleep_us(100);
  say("running pid %d calls=%ld errors=%ld no_keepalive=%ld",
      static_cast<int>(getpid()), spin.calls.load(), spin.errors.load(),
      spin.no_keepalive.load());
  for (std::thread& thread : pool) thread.join();
  double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  long leaked = open_fds() - fds_before;
  say("result calls=%ld errors=%ld first_errno=%d keepalive=%ld wrong=%ld "
      "fdleak=%ld seconds=%.3f",
      spin.calls.load(), spin.errors.load(), spin.first_errno.load(),
      spin.keepalive.load(), spin.wrong.load(), leaked, seconds);
  return spin.errors == 0 && spin.wrong == 0 && leaked == 0 ? 0 : 1;
}

int spin_main(int argc, char** argv) {
  if (argc < 4 || argc > 5) return usage();
  int threads = atoi(argv[2]);
  bool forever = strcmp(argv[3], "--forever") == 0;
  long calls = forever ? -1 : atol(argv[3]);
  bool listening = argc == 5 && strcmp(argv[4], "--listen") == 0;
  if (threads < 1 || (!forever && calls < 1) || (argc == 5 && !listening)) {
    return usage();
  }
  return spin_threads(threads, calls, listening);
}

int nursery(int argc, char** argv) {
  if (argc != 4) return usage();
  int children = atoi(argv[2]);
  int threads = atoi(argv[3]);
  if (children < 1 || threads < 1) return usage();
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, nullptr);
  say("nursery pid %d", static_cast<int>(getpid()));
  int killed = 0;
  for (int k = 1; k <= children; ++k) {
    pid_t child = fork();
    if (child < 0) {
      perror("soak_target: fork");
      return 3;
    }
    if (child == 0) {
      sigprocmask(SIG_UNBLOCK, &usr1, nullptr);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      _exit(spin_threads(threads, -1, true));
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    if (sig == SIGKILL) ++killed;
    say("reaped %d signal=%d", k, sig);
    if (!wait_for_sigusr1()) {
      say("no SIGUSR1 within 60 s after child %d", k);
      return 3;
    }
  }
  say("result children=%d killed=%d", children, killed);
  return killed == children ? 0 : 1;
}

int usage() {
  fprintf(stderr,
          "usage: soak_target loop PROCS THREADS CALLS [--checkpoints K]\n"
          "       soak_target loop PROCS THREADS --until-eof [--warmup N]\n"
          "       soak_target listen [--hold]\n"
          "       soak_target spin THREADS (CALLS | --forever) [--listen]\n"
          "       soak_target nursery CHILDREN THREADS\n");
  return 2;
}

int loop(int argc, char** argv) {
  if (argc < 5) return usage();
  int procs = atoi(argv[2]);
  int threads = atoi(argv[3]);
  bool until_eof = strcmp(argv[4], "--until-eof") == 0;
  long calls = until_eof ? 0 : atol(argv[4]);
  int checkpoints = 10;
  long warmup = 100;
  for (int i = 5; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--checkpoints") == 0 && !until_eof) {
      checkpoints = atoi(argv[i + 1]);
    } else if (strcmp(argv[i], "--warmup") == 0 && until_eof) {
      warmup = atol(argv[i + 1]);
    } else {
      return usage();
    }
  }
  if (procs < 1 || threads < 1 || checkpoints < 1 || warmup < 0 ||
      (!until_eof && calls < 1)) {
    return usage();
  }
  const long workers = static_cast<long>(procs) * threads;
  // Every thread's share of each slice; the remainders go to the last.
  std::vector<long> quotas;
  if (until_eof) {
    quotas = {warmup, -1};
  } else {
    long each = calls / workers;
    for (int k = 0; k < checkpoints; ++k) quotas.push_back(each / checkpoints);
    quotas.back() += each % checkpoints;
  }
  long extra = until_eof ? 0 : calls % workers;

  void* memory = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    perror("soak_target: mmap");
    return 3;
  }
  Shared& shared = *new (memory) Shared;

  // SIGUSR1 opens the gates: blocked everywhere, taken with sigtimedwait.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, nullptr);

  std::vector<pid_t> children;
  const pid_t parent = getpid();
  for (int p = 0; p < procs; ++p) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("soak_target: fork");
      return 3;
    }
    if (pid == 0) {
      // A worker whose first process was killed would wait at its gate
      // for ever: it goes with it.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(3);
      _exit(worker(shared, threads, quotas, static_cast<long>(p) * threads,
                   extra));
    }
    children.push_back(pid);
  }
  say("started pid %d procs %d threads %d", static_cast<int>(getpid()), procs,
      threads);

  double seconds = 0;
  bool gates_ok = true;
  for (int k = 1; k <= static_cast<int>(quotas.size()); ++k) {
    auto start = Clock::now();
    if (until_eof && k == 2) {
      drain_stdin();
      shared.stop = true;
    }
    bool lost = false;
    while (shared.arrived.load() < workers * k && !lost) {
      sleep_us(200);
      // A worker process that died never arrives.
      for (pid_t child : children) {
        if (waitpid(child, nullptr, WNOHANG) == child) lost = true;
      }
    }
    seconds += std::chrono::duration<double>(Clock::now() - start).count();
    if (lost) {
      say("a worker process ended before checkpoint %d", k);
      gates_ok = false;
      break;
    }
    say("checkpoint %d calls=%ld", k, shared.calls.load());
    if (!wait_for_sigusr1()) {
      say("no SIGUSR1 within 60 s at checkpoint %d", k);
      for (pid_t child : children) kill(child, SIGKILL);
      return 3;
    }
    shared.released = k;
  }
  bool children_ok = gates_ok;
  for (pid_t child : children) {
    int status = 0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      children_ok = false;
    }
  }
  long made = shared.calls.load();
  say("result calls=%ld failures=%ld no_keepalive=%ld wrong=%ld "
      "first_errno=%d fdleak=%ld seconds=%.3f rate=%.0f",
      made, shared.failures.load(), shared.no_keepalive.load(),
      shared.wrong.load(), shared.first_errno.load(), shared.fdleak.load(),
      seconds, seconds > 0 ? static_cast<double>(made) / seconds : 0.0);
  return children_ok && shared.failures == 0 && shared.fdleak == 0 ? 0 : 1;
}

// `hold`: then waits for EOF on stdin, the socket and the process kept.
int listen_once(bool hold) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    say("socket errno=%d", errno);
    return 1;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(fd, 1) != 0) {
    say("listen errno=%d", errno);
    return 1;
  }
  int keepalive = sockopt(fd, SO_KEEPALIVE);
  say("keepalive=%d", keepalive);
  if (hold) drain_stdin();
  return keepalive == 1 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "loop") == 0) return loop(argc, argv);
  if (argc == 2 && strcmp(argv[1], "listen") == 0) return listen_once(false);
  if (argc == 3 && strcmp(argv[1], "listen") == 0 &&
      strcmp(argv[2], "--hold") == 0) {
    return listen_once(true);
  }
  if (argc >= 2 && strcmp(argv[1], "spin") == 0) return spin_main(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "nursery") == 0) return nursery(argc, argv);
  return usage();
}
