// The supervisor's event loop while the target runs: on the main thread, a
// Boost.Asio loop for the target's exit (through its pidfd), the signals to
// forward (through a signalfd) and, as an init, orphans to reap; on a
// thread of their own, the target's notifications, so that a trapped call
// waits for nothing but its own answer.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>
#include <optional>

#include "common/unique_fd.h"
#include "supervisor/launch.h"
#include "supervisor/notification_handler.h"

namespace keepalive {

struct SessionOptions {
  bool reap_orphans = false;     // PID 1 or --init: SIGCHLD is in the signalfd
  bool signal_group = false;     // forward to the child's process group
  // Once the child has exited, serve the tasks it left under the filter
  // from a detached process (see detach.h) rather than abandon them.
  bool detach = false;
  bool verbose = false;  // -v: say what happens to tasks left behind
};

class Session {
 public:
  // Takes the child's pidfd and listener from `launched` (no listener: the
  // child runs unsupervised) and the signalfd of the forwarded signals.
  Session(boost::asio::io_context& io, Launched launched, UniqueFd signals,
          HandlerOptions handler_options, SessionOptions options);

  // Runs until the child exits; returns its status (exit code, or 128 +
  // signal number). With options.detach, tasks the child left under the
  // filter are served on by a detached process, and run() returns at once.
  int run();

 private:
  void wait_child();
  void wait_signals();
  void on_signals();
  void forward(int sig, int code);
  void reap_orphans();
  void finish(int status);
  // After the child was reaped and the serving thread stopped: hands the
  // listener to a detached server if tasks still run under the filter.
  void hand_over(int status);

  boost::asio::io_context& io_;
  pid_t pid_;
  SessionOptions options_;
  // Asio owns these descriptors and closes them.
  boost::asio::posix::stream_descriptor child_;
  boost::asio::posix::stream_descriptor signals_;
  UniqueFd listener_;
  std::unique_ptr<NotificationHandler> handler_;
  std::optional<int> status_;
};

}  // namespace keepalive
