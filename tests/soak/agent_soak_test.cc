// SPDX-License-Identifier: Apache-2.0
// keepalive-agent over a long run: short-lived containers, one after
// another, each handed to the same agent as a runtime does
// (tests/helpers/oci_runtime) and each checking that its listening socket
// reads back SO_KEEPALIVE=1. At ten points, once the agent says it serves
// no container any more, the test samples its descriptors and memory.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <iostream>
#include <sstream>
#include <thread>

#include "tests/soak/soak_harness.h"
#include "tests/soak/soak_runs.h"
#include "tests/supervisor/options_harness.h"

namespace keepalive::tests {
namespace {

TEST_F(soak, agent_targets) {
  std::optional<bool> is_long = long_form();
  ASSERT_TRUE(is_long);
  Outcome check = run({KEEPALIVE_AGENT, "check"});
  if (check.exit_code() != 0) {
    GTEST_SKIP() << "keepalive-agent cannot work here:\n" << check.transcript();
  }
  const long targets = scaled(*is_long, 300, 10'000);
  const std::string sock = path("run/agent.sock");
  const std::string control = path("run/control.sock");
  Child agent({KEEPALIVE_AGENT, "--socket", sock, "--control", control});
  ASSERT_TRUE(agent.wait_for_output("listening on", 10s)) << agent.transcript();

  long failed = 0;
  std::string first_failure;
  std::vector<Sample> samples;
  auto start = std::chrono::steady_clock::now();
  for (long i = 1; i <= targets; ++i) {
    Outcome target =
        run({KEEPALIVE_OCI_RUNTIME, sock, "soak-" + std::to_string(i), "--",
             KEEPALIVE_SOAK_TARGET, "listen"});
    if (target.exit_code() != 0 || target.out != "keepalive=1\n") {
      if (failed++ == 0) {
        first_failure =
            "target " + std::to_string(i) + ": " + target.transcript();
      }
    }
    if (i % (targets / 10) == 0) {
      std::string busy = wait_until_idle(control);
      EXPECT_EQ(busy, "") << "after target " << i
                          << " the agent still serves a container";
      samples.push_back(sample_of(agent.pid()));
    }
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::ostringstream figures;
  figures << "soak.agent_targets: form=" << (*is_long ? "long" : "short")
          << " targets=" << targets << " failed=" << failed
          << " seconds=" << seconds
          << " targets_per_s=" << static_cast<long>(static_cast<double>(targets) / seconds)
          << " agent " << describe(samples);
  std::cout << figures.str() << std::endl;
  RecordProperty("figures", figures.str());

  EXPECT_EQ(failed, 0) << first_failure;
  expect_flat(samples, "keepalive-agent");
  EXPECT_TRUE(agent.running()) << agent.transcript();
  agent.signal_group(SIGTERM);
  EXPECT_EQ(agent.wait_exit(10s), 0) << agent.transcript();
}

}  // namespace
}  // namespace keepalive::tests
