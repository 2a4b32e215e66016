// SPDX-License-Identifier: Apache-2.0
// sockopt_probe PID PORT [WAIT_MS]
//
// Reads the TCP options the kernel holds on another process's socket, from
// outside the process: copies each of PID's socket fds with pidfd_getfd,
// keeps the first TCP socket whose local or peer port is PORT, and prints
// one "NAME VALUE" line per option. Waits up to WAIT_MS (default 5000) for
// such a socket to appear. Exit 0 when found, 1 when not, 2 on bad usage.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <utility>

#include "common/settings.h"
#include "common/socket_options.h"
#include "common/unique_fd.h"
#include "supervisor/syscalls.h"

namespace {

using keepalive::UniqueFd;

int port_of(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET)
    return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return -1;
}

bool matches(int fd, int port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
      port_of(addr) == port)
    return true;
  len = sizeof addr;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
         port_of(addr) == port;
}

UniqueFd find_socket(int pidfd, int pid, int port) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", pid);
  DIR* dir = opendir(path);
  if (dir == nullptr) return UniqueFd();
  UniqueFd found;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long target_fd = strtol(entry->d_name, &end, 10);
    if (*end != '\0' || end == entry->d_name) continue;
    UniqueFd copy(keepalive::sys::pidfd_getfd(pidfd, (int)target_fd, 0));
    if (!copy.valid()) continue;
    if (keepalive::classify_socket(copy.get()) == keepalive::SocketKind::kTcp &&
        matches(copy.get(), port)) {
      found = std::move(copy);
      break;
    }
  }
  closedir(dir);
  return found;
}

long now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: sockopt_probe PID PORT [WAIT_MS]\n");
    return 2;
  }
  int pid = atoi(argv[1]);
  int port = atoi(argv[2]);
  long wait_ms = argc == 4 ? atol(argv[3]) : 5000;
  UniqueFd pidfd(keepalive::sys::pidfd_open(pid, 0));
  if (!pidfd.valid()) {
    perror("sockopt_probe: pidfd_open");
    return 1;
  }
  long deadline = now_ms() + wait_ms;
  UniqueFd sock;
  while (!(sock = find_socket(pidfd.get(), pid, port)).valid()) {
    if (now_ms() >= deadline) {
      fprintf(stderr, "sockopt_probe: no TCP socket on port %d in pid %d\n",
              port, pid);
      return 1;
    }
    usleep(10000);
  }
  for (int i = 0; i < keepalive::kOptionCount; ++i) {
    const auto& info = keepalive::option_info(static_cast<keepalive::Option>(i));
    int value = 0;
    socklen_t len = sizeof value;
    if (getsockopt(sock.get(), info.level, info.optname, &value, &len) != 0)
      value = -1;
    printf("%s %d\n", info.sockopt_name, value);
  }
  return 0;
}
