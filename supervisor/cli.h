// SPDX-License-Identifier: Apache-2.0
// The command line of keepalive-supervise, parsed apart from the engine so
// that it can be unit-tested.
#pragma once

#include <string>

#include "supervisor/config.h"

namespace keepalive {

// kAttach: --pid or --cgroup (Config::attach), no command.
enum class CliAction { kRun, kAttach, kCheck, kHelp, kVersion, kUsageError };

struct CliResult {
  CliAction action = CliAction::kRun;
  Config config;
  std::string text;  // help/version text, or the one-line usage error
};

// Parses argv. Settings start from the environment (through `env`, the
// same variables as the preload libraries, warnings to `warn`); flags
// override them. A bad flag or value yields kUsageError with one line
// naming it and what was expected.
CliResult parse_command_line(int argc, const char* const* argv,
                             EnvLookup env, void* env_ctx, WarningSink warn,
                             void* warn_ctx);

}  // namespace keepalive
