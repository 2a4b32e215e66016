// SPDX-License-Identifier: Apache-2.0
// The one way the tests run programs: in a process group of their own, with
// a clean environment and a hard time bound. A child still running when its
// Process goes away is killed with its whole group, so no test can hang
// ctest or leave anything behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <initializer_list>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/unique_fd.h"

namespace keepalive::tests {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

// Whether the environment entry "NAME=VALUE" steers keepalive: a variable
// the option model reads (asked of parse_settings itself), or LD_PRELOAD.
bool steers_keepalive(const std::string& entry);

// The test's own environment without what steers keepalive (so that a
// developer's shell cannot skew a test), plus `extra` ("NAME=VALUE").
std::vector<std::string> clean_environment(
    const std::vector<std::string>& extra = {});

// `text` cut into lines, without their newlines.
std::vector<std::string> split_lines(const std::string& text);

struct ProcessOptions {
  ProcessOptions() = default;
  // Extra environment entries, the common case: {"TCP_KEEPIDLE=5"}.
  ProcessOptions(std::initializer_list<std::string> extra_env)
      : env(extra_env) {}
  ProcessOptions(std::vector<std::string> extra_env)
      : env(std::move(extra_env)) {}

  std::vector<std::string> env;  // added to clean_environment()
  // Exactly this environment instead, when set.
  std::optional<std::vector<std::string>> whole_env;
  std::vector<int> blocked;  // signals blocked when the program starts
  std::vector<int> ignored;  // signals ignored when it starts (others: default)
  std::string stdin_data;    // written to stdin, which is then closed...
  bool keep_stdin = false;   // ...unless this holds it open until close_stdin()
  int extra_fd = -1;         // inherited as fd 5 when set
};

// How a finished program ended and what it printed.
struct Outcome {
  int status = 0;          // raw wait status
  bool timed_out = false;  // killed by us at the deadline
  double seconds = 0;      // from start to exit
  std::string out;
  std::string err;

  bool exited() const;
  // The exit code, or -1 if the program did not exit normally.
  int exit_code() const;
  // As a shell reports it: the exit code, or 128 + signal when killed;
  // nullopt when it was still running at the deadline.
  std::optional<int> shell_status() const;
  std::vector<std::string> out_lines() const;
  std::vector<std::string> err_lines() const;
  // stdout and stderr, for failure messages.
  std::string transcript() const;
};
std::ostream& operator<<(std::ostream& os, const Outcome& outcome);

class Process {
 public:
  enum class Stream { kStdout, kStderr };

  // Starts argv[0] (searched in PATH). Fails the current test if it cannot.
  explicit Process(const std::vector<std::string>& argv,
                   ProcessOptions options = {});
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // Kills the process group and reaps the child if it still runs.
  ~Process();

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }

  // Collects output until `needle` appears in `stream`, both streams close,
  // or `timeout` passes.
  bool wait_for_output(const std::string& needle, milliseconds timeout,
                       Stream stream = Stream::kStderr);
  // The first stdout line starting with `prefix` not returned before,
  // waiting up to `timeout`; nullopt on timeout or when output ends.
  std::optional<std::string> wait_line(const std::string& prefix,
                                       milliseconds timeout);
  // Queues `text` for the program's stdin (held open: keep_stdin); it is
  // written while the test waits on the program (wait_line and the like).
  void write_stdin(const std::string& text);
  // Closes the program's stdin (the test helpers exit on its EOF).
  void close_stdin();
  // Whether the program has not exited yet (reaps it if it has).
  bool running();
  // Sends `sig` to the whole process group.
  void signal_group(int sig);

  // Waits up to `timeout` for the program to exit; its shell status, or
  // nullopt if it still runs at the deadline (it is left running).
  std::optional<int> wait_exit(milliseconds timeout);
  // Waits up to `timeout` for the program to exit, killing its group at
  // the deadline, then for its output to end; returns both.
  Outcome wait(milliseconds timeout = 20s);

  const std::string& out() const { return outcome_.out; }
  const std::string& err() const { return outcome_.err; }
  std::string transcript() const { return outcome_.transcript(); }

 private:
  // One round of I/O, waiting at most `timeout` for something to happen.
  void pump(milliseconds timeout);
  // Reads what is left in the pipes, bounded: descendants may hold them.
  void drain(milliseconds bound);
  bool reap(int options);

  pid_t pid_ = -1;
  bool reaped_ = false;
  UniqueFd in_, out_fd_, err_fd_;
  std::string stdin_data_;
  size_t written_ = 0;
  bool close_after_data_ = true;
  size_t consumed_ = 0;  // of stdout, by wait_line
  std::chrono::steady_clock::time_point start_;
  Outcome outcome_;
};

// Runs a program to completion, or kills it at `timeout`.
Outcome run(const std::vector<std::string>& argv, ProcessOptions options = {},
            milliseconds timeout = 20s);

}  // namespace keepalive::tests
