// SPDX-License-Identifier: Apache-2.0
// listen_report
//
// Listens on 127.0.0.1 (ephemeral port), connects to itself and accepts, then
// prints the options of the three sockets with the prefixes "listener",
// "client" and "accepted" (see report_options.h). The listen() is the call
// libkeepalive_listen.so hooks; the accepted socket shows what a server's
// connections inherit. Exit 0 on success, 1 on failure.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>

#include "tests/helpers/report_options.h"

namespace {

int fail(const char* what) {
  perror(what);
  return 1;
}

}  // namespace

int main() {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);

  int listener = socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) return fail("listen_report: socket");
  if (bind(listener, sa, len) != 0) return fail("listen_report: bind");
  if (listen(listener, 1) != 0) return fail("listen_report: listen");
  if (getsockname(listener, sa, &len) != 0)
    return fail("listen_report: getsockname");

  // The handshake completes in the kernel's backlog, so one thread suffices.
  int client = socket(AF_INET, SOCK_STREAM, 0);
  if (client < 0) return fail("listen_report: socket");
  if (connect(client, sa, len) != 0) return fail("listen_report: connect");
  // Under TCP_DEFER_ACCEPT the server only accepts once data has arrived.
  if (send(client, "x", 1, 0) != 1) return fail("listen_report: send");
  int accepted = accept(listener, nullptr, nullptr);
  if (accepted < 0) return fail("listen_report: accept");

  keepalive::helpers::report_options("listener", listener);
  keepalive::helpers::report_options("client", client);
  keepalive::helpers::report_options("accepted", accepted);
  return 0;
}
