// SPDX-License-Identifier: Apache-2.0
#include "tests/soak/soak_runs.h"

#include "tests/support/agent_status.h"

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

std::string wait_until_idle(const std::string& control, milliseconds bound) {
  std::string status;
  if (wait_for_agent_status(control, "0 containers", bound, &status)) return "";
  return status;
}

}  // namespace keepalive::tests
