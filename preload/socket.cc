// SPDX-License-Identifier: Apache-2.0
// libkeepalive_socket.so: options on every TCP socket, set right after
// socket() returns it.
#include <errno.h>
#include <sys/socket.h>

#include "common/tcp.h"
#include "preload/hook.h"

namespace {
using SocketFn = int (*)(int, int, int);
void* g_real_socket = nullptr;
}  // namespace

extern "C" __attribute__((visibility("default"))) int socket(int domain,
                                                             int type,
                                                             int protocol) {
  auto real = reinterpret_cast<SocketFn>(
      keepalive::preload::resolve_next("socket", &g_real_socket));
  int fd = real != nullptr
               ? real(domain, type, protocol)
               : keepalive::preload::plain_socket(domain, type, protocol);
  if (fd < 0) return fd;
  // The arguments give the family and type (the same check the
  // supervisor's filter makes); SO_PROTOCOL confirms on the socket itself
  // what protocol 0 chose.
  if (keepalive::tcp::socket_call_is_tcp(domain, type, protocol)) {
    keepalive::preload::apply_if_tcp_protocol(fd, keepalive::Mode::kSocket);
  }
  return fd;  // apply_if_tcp leaves errno as socket() set it
}
