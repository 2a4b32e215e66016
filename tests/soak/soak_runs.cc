// SPDX-License-Identifier: Apache-2.0
#include "tests/soak/soak_runs.h"

#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace keepalive::tests {

std::string why_no_emulation() {
  Outcome check = run({supervise_path(), "--check"});
  if (check.out.find("seccomp user notification: yes") == std::string::npos ||
      check.out.find("ADDFD (emulation, Linux 5.9+): yes") ==
          std::string::npos) {
    return "keepalive-supervise cannot emulate socket() here:\n" +
           check.transcript();
  }
  return "";
}

pid_t target_pid(const std::string& line) {
  return static_cast<pid_t>(word_as_int(line, 2));
}

std::vector<std::string> soak_target(const std::string& mode,
                                     const std::vector<std::string>& rest) {
  std::vector<std::string> argv = {KEEPALIVE_SOAK_TARGET, mode};
  argv.insert(argv.end(), rest.begin(), rest.end());
  return argv;
}

std::vector<std::string> soak_loop(int procs, int threads,
                                   const std::vector<std::string>& rest) {
  std::vector<std::string> args = {std::to_string(procs),
                                   std::to_string(threads)};
  args.insert(args.end(), rest.begin(), rest.end());
  return supervised({"--strategy", "emulate"}, soak_target("loop", args));
}

void expect_every_socket_kept_alive(const Options& result) {
  EXPECT_EQ(result.at("failures"), 0)
      << "first errno " << result.at("first_errno");
  EXPECT_EQ(result.at("no_keepalive"), 0) << "sockets without SO_KEEPALIVE";
  EXPECT_EQ(result.at("wrong"), 0)
      << "socket() returned an fd that is not a new TCP socket";
  EXPECT_EQ(result.at("fdleak"), 0) << "fds left in the target";
}

std::string agent_status(const std::string& path, milliseconds bound) {
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

std::string wait_until_idle(const std::string& control, milliseconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  std::string status;
  while (std::chrono::steady_clock::now() < deadline) {
    status = agent_status(control, std::min(bound, milliseconds(2s)));
    if (status.starts_with("0 containers")) return "";
    std::this_thread::sleep_for(5ms);
  }
  return status;
}

}  // namespace keepalive::tests
