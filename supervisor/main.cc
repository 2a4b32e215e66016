// SPDX-License-Identifier: Apache-2.0
// keepalive-supervise: the command line over the supervisor engine.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <exception>
#include <new>

#include "supervisor/attach.h"
#include "supervisor/attach_follow.h"
#include "supervisor/check.h"
#include "supervisor/cli.h"
#include "supervisor/fd_limit.h"
#include "supervisor/log.h"
#include "supervisor/supervisor.h"

namespace {
const char* lookup_env(const char* name, void*) { return getenv(name); }

constexpr size_t kStartupHeadroom = size_t{1024} * 1024;

int run(int argc, char** argv) {
  // Internal: the child that --check supervises.
  if (argc == 2 && strcmp(argv[1], "--probe-target") == 0) {
    return keepalive::run_probe_target();
  }
  keepalive::CliResult cli = keepalive::parse_command_line(
      argc, argv, lookup_env, nullptr, keepalive::log_warning_sink, nullptr);
  switch (cli.action) {
    case keepalive::CliAction::kUsageError:
      keepalive::log_line(cli.text);
      return keepalive::kExitUsage;
    case keepalive::CliAction::kHelp:
    case keepalive::CliAction::kVersion:
      fputs(cli.text.c_str(), stdout);
      return 0;
    case keepalive::CliAction::kCheck: {
      // As a real run would: the check judges the machine, not the shell's
      // soft descriptor limit.
      keepalive::reserve_descriptors(keepalive::kSupervisorDescriptors);
      keepalive::CheckReport report = keepalive::run_check(cli.config);
      fputs(report.text.c_str(), stdout);
      return report.can_work ? 0 : 1;
    }
    case keepalive::CliAction::kAttach:
      return cli.config.attach.follow ? keepalive::run_follow(cli.config)
                                      : keepalive::run_attach(cli.config);
    case keepalive::CliAction::kRun:
      break;
  }
  return keepalive::run_supervisor(cli.config);
}

}  // namespace

// Nothing escapes as an abort: what the engine did not handle ends in one
// line and kExitFailure. (Once the command runs, Session::run catches its
// own, so that the command is killed before our listener closes.)
int main(int argc, char** argv) {
  // Where memory is so short that the first allocations fail, libstdc++
  // could not set up its emergency pool either, and throwing bad_alloc
  // would itself end in std::terminate: say so plainly instead. The size
  // covers what starting needs (the serving thread's stack among it).
  void* headroom = malloc(kStartupHeadroom);
  if (headroom == nullptr) {
    keepalive::log_line_noexcept(
        {"out of memory at start-up (raise the memory limit, ulimit -v)"});
    return keepalive::kExitFailure;
  }
  free(headroom);
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    keepalive::log_line_noexcept(
        {"out of memory (raise the memory limit, ulimit -v)"});
  } catch (const std::exception& e) {
    keepalive::log_line_noexcept({"internal error: ", e.what()});
  } catch (...) {
    keepalive::log_line_noexcept({"internal error: unknown exception"});
  }
  return keepalive::kExitFailure;
}
