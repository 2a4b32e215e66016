// SPDX-License-Identifier: Apache-2.0
// libkeepalive_listen.so: options on server sockets, set just before
// listen(); accepted connections inherit them from the listening socket.
#include <sys/socket.h>

#include "preload/hook.h"

namespace {
using ListenFn = int (*)(int, int);
void* g_real_listen = nullptr;
}  // namespace

extern "C" __attribute__((visibility("default"))) int listen(int fd,
                                                             int backlog) {
  keepalive::preload::apply_if_tcp(fd, keepalive::Mode::kListen);
  auto real = reinterpret_cast<ListenFn>(
      keepalive::preload::resolve_next("listen", &g_real_listen));
  if (real == nullptr) return keepalive::preload::plain_listen(fd, backlog);
  return real(fd, backlog);
}
