// SPDX-License-Identifier: Apache-2.0
#include "tests/support/agent_status.h"

#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "common/unique_fd.h"

namespace keepalive::tests {

std::string agent_status(const std::string& path,
                         std::chrono::milliseconds bound) {
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  snprintf(address.sun_path, sizeof address.sun_path, "%s", path.c_str());
  // An agent out of descriptors never accepts: the connection then waits
  // in its backlog, and so would the read.
  timeval limit{static_cast<time_t>(bound.count() / 1000),
                static_cast<suseconds_t>(bound.count() % 1000 * 1000)};
  setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&address),
              sizeof address) != 0) {
    return "";
  }
  std::string text;
  char buffer[4096];
  for (ssize_t n; (n = read(sock.get(), buffer, sizeof buffer)) > 0;) {
    text.append(buffer, n);
  }
  return text;
}

bool wait_for_agent_status(const std::string& path, std::string_view start,
                           std::chrono::milliseconds bound,
                           std::string* last) {
  using namespace std::chrono_literals;
  auto deadline = std::chrono::steady_clock::now() + bound;
  do {
    *last = agent_status(path, std::min<std::chrono::milliseconds>(bound, 2s));
    if (last->starts_with(start)) return true;
    std::this_thread::sleep_for(5ms);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

}  // namespace keepalive::tests
