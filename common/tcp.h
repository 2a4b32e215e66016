// SPDX-License-Identifier: Apache-2.0
// What counts as a TCP socket, in one place: the preload hook on socket(),
// the seccomp filter's rules (supervisor/filter_rules.cc) and the check on
// an existing socket (socket_options.h) all read it from here.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

namespace keepalive::tcp {

// IPPROTO_MPTCP (Linux 5.6). Multipath TCP sockets take TCP's options.
inline constexpr int kMptcpProtocol = 262;

// The address families whose stream sockets are TCP.
inline constexpr int kDomains[] = {AF_INET, AF_INET6};

// The protocol arguments of socket() that make such a socket TCP: 0 (the
// family's default for SOCK_STREAM, which is TCP), IPPROTO_TCP and MPTCP.
inline constexpr int kSocketProtocols[] = {0, IPPROTO_TCP, kMptcpProtocol};

// SOCK_TYPE_MASK: socket()'s type argument without SOCK_NONBLOCK and
// SOCK_CLOEXEC.
inline constexpr int kTypeMask = 0xf;

constexpr bool is_domain(int domain) {
  return domain == AF_INET || domain == AF_INET6;
}

// Whether socket(domain, type, protocol) asks for a TCP socket.
constexpr bool socket_call_is_tcp(int domain, int type, int protocol) {
  return is_domain(domain) && (type & kTypeMask) == SOCK_STREAM &&
         (protocol == 0 || protocol == IPPROTO_TCP ||
          protocol == kMptcpProtocol);
}

// Whether SO_PROTOCOL reads as TCP's or MPTCP's (the kernel reports the
// protocol it chose, never 0). Of an AF_INET/AF_INET6 stream socket that
// means TCP; the caller must know the family and type otherwise (raw IP
// sockets of protocol IPPROTO_TCP read the same).
constexpr bool is_tcp_protocol(int protocol) {
  return protocol == IPPROTO_TCP || protocol == kMptcpProtocol;
}

// Whether a socket whose SO_DOMAIN, SO_TYPE and SO_PROTOCOL read these is
// TCP (the kernel reports the protocol it chose, never 0).
constexpr bool socket_is_tcp(int domain, int type, int protocol) {
  return is_domain(domain) && type == SOCK_STREAM && is_tcp_protocol(protocol);
}

}  // namespace keepalive::tcp
