// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise --check: probes the kernel and the environment with a
// real supervised child and reports what the supervisor can do here.
#pragma once

#include <string>

#include "supervisor/config.h"

namespace keepalive {

struct CheckReport {
  bool can_work = false;
  std::string text;  // the report, one finding per line
};

// Runs the probes (forks one short-lived child). `config` supplies the
// requested strategy and mode to explain.
CheckReport run_check(const Config& config);

}  // namespace keepalive

namespace keepalive {
// The body of the hidden `--probe-target` mode that run_check launches:
// makes one TCP socket; exit 0 if it carries SO_KEEPALIVE, 1 if not, 2 if
// socket() failed.
int run_probe_target();
}  // namespace keepalive
