// SPDX-License-Identifier: Apache-2.0
// libkeepalive.so: options on client sockets, set just before connect().
#include <sys/socket.h>

#include "preload/hook.h"

namespace {
using ConnectFn = int (*)(int, const struct sockaddr*, socklen_t);
void* g_real_connect = nullptr;
}  // namespace

extern "C" __attribute__((visibility("default"))) int connect(
    int fd, const struct sockaddr* addr, socklen_t len) {
  // Before the call, so that TCP_SYNCNT, TCP_USER_TIMEOUT and TCP_MAXSEG
  // already govern the handshake. `addr` is not read: the kernel answers
  // EFAULT for a bad one, where reading it here would crash.
  keepalive::preload::apply_if_tcp_protocol(fd, keepalive::Mode::kConnect);
  auto real = reinterpret_cast<ConnectFn>(
      keepalive::preload::resolve_next("connect", &g_real_connect));
  if (real == nullptr) return keepalive::preload::plain_connect(fd, addr, len);
  return real(fd, addr, len);
}
