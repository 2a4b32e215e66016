// SPDX-License-Identifier: Apache-2.0
// socket_report KIND
//
// Creates one socket of KIND (tcp4, tcp6, mptcp, udp4, udp6, unix-stream,
// unix-dgram) and prints the options the kernel reports on it (see
// report_options.h). The socket() is the call libkeepalive_socket.so hooks.
// Exit 0 on success, 1 if the socket cannot be made, 2 on bad usage.
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "tests/helpers/report_options.h"

namespace {

struct Kind {
  const char* name;
  int domain;
  int type;
  int protocol;
};

constexpr Kind kKinds[] = {
    {"tcp4", AF_INET, SOCK_STREAM, 0},
    {"tcp6", AF_INET6, SOCK_STREAM, 0},
    // MPTCP refuses some TCP options: a socket on which setsockopt fails.
    {"mptcp", AF_INET, SOCK_STREAM, 262 /* IPPROTO_MPTCP */},
    {"udp4", AF_INET, SOCK_DGRAM, 0},
    {"udp6", AF_INET6, SOCK_DGRAM, 0},
    {"unix-stream", AF_UNIX, SOCK_STREAM, 0},
    {"unix-dgram", AF_UNIX, SOCK_DGRAM, 0},
};

}  // namespace

int main(int argc, char** argv) {
  for (const Kind& kind : kKinds) {
    if (argc != 2 || strcmp(argv[1], kind.name) != 0) continue;
    int fd = socket(kind.domain, kind.type, kind.protocol);
    if (fd < 0) {
      perror("socket_report: socket");
      return 1;
    }
    keepalive::helpers::report_options("", fd);
    return 0;
  }
  fprintf(stderr,
          "usage: socket_report "
          "tcp4|tcp6|mptcp|udp4|udp6|unix-stream|unix-dgram\n");
  return 2;
}
