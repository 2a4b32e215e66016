// SPDX-License-Identifier: Apache-2.0
// What one scan of keepalive-supervise --pid/--watch costs on a process
// holding N TCP sockets (default 10,000: a listener and N/2 connections to
// it, both ends), against the floor of any scan that matches descriptors
// to sockets: listing /proc/PID/fd with one readlink per descriptor,
// measured in the same run. Also reported: reading /proc/PID/net/tcp (the
// kernel's text table of the same sockets), the other way to find them.
//
//   attach_scan_bench [N]
//
// Prints one line per figure, CPU time of this process (user + system),
// medians of 21 runs; the first scan (which copies and sets every socket)
// runs once. Exits 1 if a scan did not do what it should (the first must
// give every socket its options, the later ones copy nothing).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "supervisor/attach.h"

namespace {

double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

double median_ms(int runs, const std::function<void()>& body) {
  std::vector<double> samples;
  for (int i = 0; i < runs; ++i) {
    double start = cpu_ms();
    body();
    samples.push_back(cpu_ms() - start);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// The child: a listener and `pairs` connections to it, both ends kept,
// then "ready" on `ready_fd` and sleep until killed.
[[noreturn]] void hold_sockets(int pairs, int ready_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener, 4096) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    perror("attach_scan_bench: listener");
    _exit(1);
  }
  for (int i = 0; i < pairs; ++i) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 ||
        connect(c, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        accept(listener, nullptr, nullptr) < 0) {
      perror("attach_scan_bench: connection");
      _exit(1);
    }
  }
  char ok = 'r';
  if (write(ready_fd, &ok, 1) != 1) _exit(1);
  for (;;) pause();
}

// The floor: what any scan matching descriptors to sockets does.
long list_fds(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/fd";
  DIR* dir = opendir(path.c_str());
  long sockets = 0;
  while (dirent* e = readdir(dir)) {
    char link[64];
    ssize_t n = readlinkat(dirfd(dir), e->d_name, link, sizeof link);
    if (n > 7 && memcmp(link, "socket:", 7) == 0) ++sockets;
  }
  closedir(dir);
  return sockets;
}

long read_net_tcp(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/net/tcp";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  static char buf[1 << 16];
  long lines = 0;
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) {
    lines += std::count(buf, buf + n, '\n');
  }
  close(fd);
  return lines - 1;
}

}  // namespace

int main(int argc, char** argv) {
  int sockets = argc > 1 ? atoi(argv[1]) : 10000;
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  if (sockets < 2 || static_cast<rlim_t>(sockets) + 64 > limit.rlim_cur) {
    fprintf(stderr,
            "attach_scan_bench: %d sockets do not fit under the descriptor "
            "limit %llu (ulimit -Hn)\n",
            sockets, static_cast<unsigned long long>(limit.rlim_cur));
    return 2;
  }
  int ready[2];
  if (pipe(ready) != 0) return 1;
  pid_t child = fork();
  if (child == 0) hold_sockets(sockets / 2, ready[1]);
  close(ready[1]);
  char ok = 0;
  if (read(ready[0], &ok, 1) != 1) {
    fprintf(stderr, "attach_scan_bench: the socket holder failed\n");
    return 1;
  }

  keepalive::Config config;
  config.attach.pids = {child};
  FILE* devnull = fopen("/dev/null", "w");
  keepalive::Attacher attacher(config, devnull);

  long found = list_fds(child);
  double floor = median_ms(21, [&] { list_fds(child); });
  double net_tcp = median_ms(21, [&] { read_net_tcp(child); });
  double start = cpu_ms();
  attacher.scan();
  double first = cpu_ms() - start;
  long first_copied = attacher.last_copied();
  long changed = attacher.totals().changed;
  double steady = median_ms(21, [&] { attacher.scan(); });
  long steady_copied = attacher.last_copied();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);

  printf("attach scan of one process with %ld TCP sockets (CPU time, "
         "medians of 21):\n", found);
  printf("  floor: list /proc/PID/fd, readlink each      %8.2f ms\n", floor);
  printf("  read /proc/PID/net/tcp (for comparison)      %8.2f ms  %.2fx "
         "floor\n", net_tcp, net_tcp / floor);
  printf("  first scan: %ld copied, %ld given options  %8.2f ms  %.2fx "
         "floor\n", first_copied, changed, first, first / floor);
  printf("  steady scan: %ld copied                      %8.2f ms  %.2fx "
         "floor; --watch=1 costs %.1f%% of a core\n",
         steady_copied, steady, steady / floor, steady / 10.0);
  if (changed != found || steady_copied != 0) {
    fprintf(stderr, "attach_scan_bench: expected %ld sockets given options and "
            "no copy in steady scans\n", found);
    return 1;
  }
  return 0;
}
