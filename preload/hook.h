// SPDX-License-Identifier: Apache-2.0
// What the three preload libraries share: settings parsed once per process,
// the real libc function resolved once, and the call that puts the options
// on a TCP socket without disturbing the caller.
#pragma once

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/settings.h"

namespace keepalive::preload {

// Applies the process's settings to `fd` if it is a TCP socket (SO_DOMAIN,
// SO_TYPE and SO_PROTOCOL read back). Never fails and never changes errno.
// Does nothing in a setuid/setgid (AT_SECURE) process or when KEEPALIVE=off.
void apply_if_tcp(int fd, Mode mode);

// The same with one getsockopt (SO_PROTOCOL) instead of three: a socket
// whose protocol number is TCP's or MPTCP's. Exact for an AF_INET or
// AF_INET6 stream socket; of other kinds, those that read the same (raw IP
// sockets of protocol IPPROTO_TCP, packet sockets of that number, CAN
// ISO-TP: all need CAP_NET_RAW or CAN hardware) get options that do
// nothing on them (TCP's fail with ENOPROTOOPT, SO_KEEPALIVE only sets a
// flag).
void apply_if_tcp_protocol(int fd, Mode mode);

// The next definition of `name` after this library (libc's), looked up once
// and cached in `*slot`; nullptr (after one message on stderr) if the
// dynamic loader cannot find it.
void* resolve_next(const char* name, void** slot);

// The plain system calls, for when the real libc function cannot be
// resolved. Inline: each library carries only the one it hooks.
inline int plain_socket(int domain, int type, int protocol) {
  return static_cast<int>(syscall(SYS_socket, domain, type, protocol));
}
inline int plain_connect(int fd, const sockaddr* addr, socklen_t len) {
  return static_cast<int>(syscall(SYS_connect, fd, addr, len));
}
inline int plain_listen(int fd, int backlog) {
  return static_cast<int>(syscall(SYS_listen, fd, backlog));
}

}  // namespace keepalive::preload
