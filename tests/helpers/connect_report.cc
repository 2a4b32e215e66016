// SPDX-License-Identifier: Apache-2.0
// connect_report PORT
//
// Connects a TCP socket to 127.0.0.1:PORT, then prints the options the kernel
// reports on it (see report_options.h). The connect() is the call
// libkeepalive.so hooks. Exit 0 when connected, 1 when not, 2 on bad usage.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tests/helpers/report_options.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: connect_report PORT\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) {
    perror("connect_report: socket");
    return 1;
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0) perror("connect_report: connect");
  keepalive::helpers::report_options("", fd);
  return rc == 0 ? 0 : 1;
}
