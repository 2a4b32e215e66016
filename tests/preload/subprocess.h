// Runs real programs for the integration tests, always with a hard time
// bound: a child that outlives its deadline is killed with its whole process
// group, so no test can hang ctest.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace keepalive::tests {

using std::chrono::milliseconds;

// How a finished child ended and what it printed.
struct RunResult {
  int status = 0;          // raw wait status
  bool timed_out = false;  // killed by us at the deadline
  double seconds = 0;      // from start to exit
  std::string out;
  std::string err;

  bool exited() const;
  // The exit code, or -1 if the child did not exit normally.
  int exit_code() const;
  // The lines of `err` (or `out`), without their newlines.
  std::vector<std::string> err_lines() const;
  std::vector<std::string> out_lines() const;
};

// A child process in its own process group, stdin from /dev/null, stdout and
// stderr captured. Its environment is the test's own minus every variable
// that steers the libraries (LD_PRELOAD, TCP_*, KEEP*, LIBKEEPALIVE_DEBUG),
// so a developer's shell cannot skew a test, plus `env` ("NAME=VALUE").
class Subprocess {
 public:
  // Starts argv[0], searched in PATH. Fails the current test if it cannot.
  Subprocess(const std::vector<std::string>& argv,
             const std::vector<std::string>& env);
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills the process group if it is still running and reaps the child.
  ~Subprocess();

  pid_t pid() const { return pid_; }

  // Collects output until `needle` appears in stderr (or stdout when
  // `in_stdout`), the child closes both streams, or `timeout` passes.
  bool wait_for_output(const std::string& needle, milliseconds timeout,
                       bool in_stdout = false);
  // True while the child has not exited.
  bool running();
  // Waits up to `timeout` for the child to exit, killing its process group
  // at the deadline, and returns everything it printed.
  RunResult wait(milliseconds timeout);

 private:
  // Reads whatever output is available, waiting at most `timeout`.
  void pump(milliseconds timeout);
  void kill_group();

  pid_t pid_ = -1;
  bool reaped_ = false;
  UniqueFd out_;
  UniqueFd err_;
  std::chrono::steady_clock::time_point start_;
  RunResult result_;
};

// Runs a program to completion (or to `timeout`, then kills it).
RunResult run(const std::vector<std::string>& argv,
              const std::vector<std::string>& env = {},
              milliseconds timeout = milliseconds(10000));

}  // namespace keepalive::tests
