// SPDX-License-Identifier: Apache-2.0
// keepalive-agent check: what the agent can do on this node, one finding
// per line, for an operator deciding whether to rely on it.
#pragma once

#include <string>

namespace keepalive::agent {

struct AgentCheck {
  bool can_work = false;  // seccomp user notification and pidfd_getfd
  std::string text;
};

// Probes the kernel and this process's privileges (forks one short-lived
// child under another uid).
AgentCheck run_agent_check();

}  // namespace keepalive::agent
