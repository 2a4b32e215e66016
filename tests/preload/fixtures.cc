// SPDX-License-Identifier: Apache-2.0
#include "tests/preload/fixtures.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

namespace keepalive::tests {
namespace {

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A TCP socket bound to 127.0.0.1 on an ephemeral port.
UniqueFd bound_socket(int* port) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if (!fd.valid() || bind(fd.get(), sa, len) != 0 ||
      getsockname(fd.get(), sa, &len) != 0) {
    ADD_FAILURE() << "cannot bind a loopback socket: " << strerror(errno);
    return UniqueFd();
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

std::string helper(const std::string& name) {
  return std::string(KEEPALIVE_HELPER_DIR) + "/" + name;
}

std::string preload(const std::vector<std::string>& libraries) {
  std::string value;
  for (const std::string& library : libraries) {
    value += (value.empty() ? "" : ":") + library;
  }
  return "LD_PRELOAD=" + value;
}

OptionValues parse_options(const std::vector<std::string>& lines,
                           const std::string& prefix) {
  OptionValues values;
  for (const std::string& line : lines) {
    std::istringstream fields(line);
    std::string first, name;
    int value = 0;
    fields >> first;
    if (!prefix.empty()) {
      if (first != prefix) continue;
      fields >> name;
    } else {
      name = first;
    }
    if (fields >> value) values[name] = value;
  }
  return values;
}

int system_default(Option option) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const OptionInfo& info = option_info(option);
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(getsockopt(fd.get(), info.level, info.optname, &value, &len), 0);
  return value;
}

// In the body: port_'s own initializer runs after fd_'s.
LoopbackListener::LoopbackListener() {
  fd_ = bound_socket(&port_);
  EXPECT_EQ(listen(fd_.get(), 64), 0) << strerror(errno);
}

UniqueFd LoopbackListener::accept_one(int timeout_ms) {
  pollfd ready = {fd_.get(), POLLIN, 0};
  if (poll(&ready, 1, timeout_ms) != 1) return UniqueFd();
  return UniqueFd(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
}

ClosedPort::ClosedPort() { fd_ = bound_socket(&port_); }

int free_port() {
  int port = 0;
  bound_socket(&port);
  return port;
}

UniqueFd connect_with_retry(int port, int timeout_ms) {
  sockaddr_in addr = loopback(port);
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) ==
        0) {
      return fd;
    }
    usleep(20 * 1000);
  }
  return UniqueFd();
}

}  // namespace keepalive::tests
