// SPDX-License-Identifier: Apache-2.0
// errno_report
//
// Calls socket(), connect() and listen() in ways that succeed and in ways
// that fail, each with errno set to a sentinel just before, and prints one
// line per call: "CASE RESULT ERRNO" (RESULT "ok" or "-1"; ERRNO the errno
// name, or the number when it has none, e.g. the sentinel 4242). A hook
// that preserves errno gives the same output as no hook at all: the
// sentinel after a success, the real call's errno after a failure.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace {

constexpr int kSentinel = 4242;

void report(const char* name, int rc) {
  int saved = errno;
  const char* errno_name = strerrorname_np(saved);
  if (errno_name != nullptr) {
    printf("%s %s %s\n", name, rc >= 0 ? "ok" : "-1", errno_name);
  } else {
    printf("%s %s %d\n", name, rc >= 0 ? "ok" : "-1", saved);
  }
}

// Runs `call` with errno preset to the sentinel and reports the outcome.
template <typename Call>
int check(const char* name, Call call) {
  errno = kSentinel;
  int rc = call();
  report(name, rc);
  return rc;
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

}  // namespace

int main() {
  int tcp = check("socket_tcp", [] { return socket(AF_INET, SOCK_STREAM, 0); });
  int udp = check("socket_udp", [] { return socket(AF_INET, SOCK_DGRAM, 0); });
  int unix_fd =
      check("socket_unix", [] { return socket(AF_UNIX, SOCK_STREAM, 0); });
  check("socket_bad_family", [] { return socket(12345, SOCK_STREAM, 0); });
  check("socket_tcp_as_udp",
        [] { return socket(AF_INET, SOCK_STREAM, IPPROTO_UDP); });

  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return 1;
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if (bind(tcp, sa, len) != 0 || getsockname(tcp, sa, &len) != 0) return 1;
  check("listen_tcp", [&] { return listen(tcp, 4); });
  check("listen_udp", [&] { return listen(udp, 4); });
  check("listen_pipe", [&] { return listen(pipe_fds[0], 4); });
  check("listen_bad_fd", [] { return listen(-1, 4); });

  // A bound, non-listening socket reserves a port that refuses connections.
  int closed = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in closed_addr = loopback(0);
  socklen_t closed_len = sizeof closed_addr;
  auto* closed_sa = reinterpret_cast<sockaddr*>(&closed_addr);
  if (bind(closed, closed_sa, closed_len) != 0 ||
      getsockname(closed, closed_sa, &closed_len) != 0) {
    return 1;
  }
  int client = socket(AF_INET, SOCK_STREAM, 0);
  int refused = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_un missing{};
  missing.sun_family = AF_UNIX;
  strcpy(missing.sun_path, "/nonexistent/keepalive-errno-report");
  check("connect_tcp", [&] { return connect(client, sa, len); });
  check("connect_tcp_again", [&] { return connect(client, sa, len); });
  check("connect_refused",
        [&] { return connect(refused, closed_sa, closed_len); });
  check("connect_udp", [&] { return connect(udp, sa, len); });
  check("connect_unix_missing", [&] {
    return connect(unix_fd, reinterpret_cast<sockaddr*>(&missing),
                   sizeof missing);
  });
  check("connect_pipe", [&] { return connect(pipe_fds[0], sa, len); });
  check("connect_bad_fd", [&] { return connect(-1, sa, len); });
  // An address the program cannot read either: the kernel's EFAULT, never
  // a crash in a hook that would read it first.
  int unaddressed = socket(AF_INET, SOCK_STREAM, 0);
  check("connect_bad_address", [&] {
    // NOLINTNEXTLINE(performance-no-int-to-ptr): an unmapped address
    return connect(unaddressed, reinterpret_cast<const sockaddr*>(8), len);
  });

  // MPTCP sockets refuse some TCP options, so here the hooks' own
  // setsockopt calls fail while the real call succeeds. Without MPTCP every
  // line reads the same with or without a hook, which is still right.
  int mptcp_client =
      check("socket_mptcp", [] { return socket(AF_INET, SOCK_STREAM, 262); });
  check("connect_mptcp", [&] { return connect(mptcp_client, sa, len); });
  int mptcp_server = socket(AF_INET, SOCK_STREAM, 262);
  sockaddr_in any_port = loopback(0);
  bind(mptcp_server, reinterpret_cast<sockaddr*>(&any_port), sizeof any_port);
  check("listen_mptcp", [&] { return listen(mptcp_server, 4); });
  return 0;
}
