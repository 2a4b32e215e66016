// SPDX-License-Identifier: Apache-2.0
// What the preload integration tests share: where the built libraries and
// helpers are, loopback endpoints, and parsing of "NAME VALUE" reports.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/settings.h"
#include "common/unique_fd.h"

namespace keepalive::tests {

// Paths of the built libraries, from CMake ($<TARGET_FILE:...>).
inline constexpr const char* kConnectLibrary = KEEPALIVE_CONNECT_LIBRARY;
inline constexpr const char* kListenLibrary = KEEPALIVE_LISTEN_LIBRARY;
inline constexpr const char* kSocketLibrary = KEEPALIVE_SOCKET_LIBRARY;

// The path of a program built in tests/helpers/.
std::string helper(const std::string& name);

// "LD_PRELOAD=<libraries joined with ':'>".
std::string preload(const std::vector<std::string>& libraries);

// Option name -> value, from lines "[PREFIX ]NAME VALUE" (the format of
// sockopt_probe and of the helpers); lines with another prefix are skipped.
using OptionValues = std::map<std::string, int>;
OptionValues parse_options(const std::vector<std::string>& lines,
                           const std::string& prefix = "");

// The kernel's value for `option` on a fresh TCP socket: what a program
// gets without any library.
int system_default(Option option);

// A TCP listener on 127.0.0.1 with an ephemeral port. Connections it does
// not accept complete in the kernel's backlog.
class LoopbackListener {
 public:
  LoopbackListener();
  int port() const { return port_; }
  // The next connection, or an invalid fd if none arrives in `timeout_ms`.
  UniqueFd accept_one(int timeout_ms);

 private:
  UniqueFd fd_;
  int port_ = 0;
};

// A port on 127.0.0.1 that refuses connections: bound, never listening, so
// nobody else can take it while the test runs.
class ClosedPort {
 public:
  ClosedPort();
  int port() const { return port_; }

 private:
  UniqueFd fd_;
  int port_ = 0;
};

// A port that was free a moment ago, for programs that insist on choosing
// their own listening port (nc -l).
int free_port();

// Connects to 127.0.0.1:port, retrying until `timeout_ms` passes; returns
// an invalid fd on failure.
UniqueFd connect_with_retry(int port, int timeout_ms);

}  // namespace keepalive::tests
