// SPDX-License-Identifier: Apache-2.0
// Asking a running keepalive-agent what it serves, as `keepalive-agent
// status` does: the agent and soak suites wait on its answer rather than
// sleeping for its work to be done.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace keepalive::tests {

// What the agent answers on its control socket at `path`, read within
// `bound` ("" if it cannot be reached or says nothing).
std::string agent_status(const std::string& path,
                         std::chrono::milliseconds bound);

// Asks again every 5 ms, for up to `bound`, until the answer begins with
// `start` ("0 containers", "1 container,"): true then; false otherwise,
// with the last answer in *last.
bool wait_for_agent_status(const std::string& path, std::string_view start,
                           std::chrono::milliseconds bound,
                           std::string* last);

}  // namespace keepalive::tests
