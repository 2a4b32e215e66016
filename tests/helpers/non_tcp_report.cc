// SPDX-License-Identifier: Apache-2.0
// non_tcp_report
//
// Makes the calls every library hooks on sockets that are not TCP: connect()
// on a UDP socket, listen() and connect() on UNIX stream sockets. Prints the
// options of each with the prefixes "udp", "unix_listener" and
// "unix_client" (see report_options.h). Exit 0 on success, 1 on failure.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tests/helpers/report_options.h"

namespace {

int fail(const char* what) {
  perror(what);
  return 1;
}

}  // namespace

int main() {
  // A connected UDP socket sends nothing, so any port will do.
  int udp = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in inet{};
  inet.sin_family = AF_INET;
  inet.sin_port = htons(9);
  inet.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (udp < 0) return fail("non_tcp_report: socket(udp)");
  if (connect(udp, reinterpret_cast<sockaddr*>(&inet), sizeof inet) != 0) {
    return fail("non_tcp_report: connect(udp)");
  }

  // An abstract UNIX address: nothing in the file system to clean up.
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path + 1, sizeof addr.sun_path - 1, "keepalive-non-tcp-%d",
           static_cast<int>(getpid()));
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 +
                                         strlen(addr.sun_path + 1));
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  int listener = socket(AF_UNIX, SOCK_STREAM, 0);
  if (listener < 0) return fail("non_tcp_report: socket(unix)");
  if (bind(listener, sa, len) != 0) return fail("non_tcp_report: bind");
  if (listen(listener, 1) != 0) return fail("non_tcp_report: listen");
  int client = socket(AF_UNIX, SOCK_STREAM, 0);
  if (client < 0) return fail("non_tcp_report: socket(unix)");
  if (connect(client, sa, len) != 0) return fail("non_tcp_report: connect");

  keepalive::helpers::report_options("udp", udp);
  keepalive::helpers::report_options("unix_listener", listener);
  keepalive::helpers::report_options("unix_client", client);
  return 0;
}
