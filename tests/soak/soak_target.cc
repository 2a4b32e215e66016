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
//   soak_target listen
//       One listening TCP socket on an ephemeral loopback port; prints
//       "keepalive=K" and exits 0 if K is 1.
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

int usage() {
  fprintf(stderr,
          "usage: soak_target loop PROCS THREADS CALLS [--checkpoints K]\n"
          "       soak_target loop PROCS THREADS --until-eof [--warmup N]\n"
          "       soak_target listen\n");
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
  for (int p = 0; p < procs; ++p) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("soak_target: fork");
      return 3;
    }
    if (pid == 0) {
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

int listen_once() {
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
  return keepalive == 1 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "loop") == 0) return loop(argc, argv);
  if (argc == 2 && strcmp(argv[1], "listen") == 0) return listen_once();
  return usage();
}
