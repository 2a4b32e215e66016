// SPDX-License-Identifier: Apache-2.0
// The supervisor's event loop while the target runs: on the main thread, a
// Boost.Asio loop for the target's exit (through its pidfd), the signals to
// forward (through a signalfd) and, as an init, orphans to reap; on a
// thread of their own, the target's notifications, so that a trapped call
// waits for nothing but its own answer.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/unique_fd.h"
#include "supervisor/launch.h"
#include "supervisor/listener.h"
#include "supervisor/notification_handler.h"
#include "supervisor/server.h"

namespace keepalive {

// The thread that serves the listener. Started before the command, so that
// failing to start it (thread or memory limits) leaves the command unstarted
// rather than running under a filter that nobody answers. Every signal is
// blocked on it, so that forwarded ones reach the signalfd.
class ServingThread {
 public:
  // Throws std::system_error, naming what failed, if the thread or its
  // stop eventfd cannot be made.
  ServingThread();
  ~ServingThread() { stop(); }
  ServingThread(const ServingThread&) = delete;
  ServingThread& operator=(const ServingThread&) = delete;

  // Makes the thread run server->serve() until stop(). Allocates nothing.
  void serve(Server* server);
  // Makes serve() return, or the idle thread end, and joins it.
  void stop() noexcept;

 private:
  void main();

  // The serving thread's stack: its deepest path (a -v line) takes a few
  // kilobytes; the default (RLIMIT_STACK, often 8 MiB) would make a small
  // address-space limit refuse the thread for nothing.
  static constexpr size_t kStackSize = size_t{512} * 1024;

  UniqueFd stop_fd_;
  std::mutex mutex_;
  std::condition_variable wake_;
  Server* server_ = nullptr;  // guarded by mutex_
  bool quit_ = false;                       // guarded by mutex_
  pthread_t thread_{};
  bool started_ = false;  // thread_ is to be joined
};

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
  // child runs unsupervised) and the signalfd of the forwarded signals;
  // `serving` serves the listener. May throw (memory): the caller kills
  // the child.
  Session(boost::asio::io_context& io, Launched launched, UniqueFd signals,
          HandlerOptions handler_options, SessionOptions options,
          ServingThread& serving);

  // Runs until the child exits; returns its status (exit code, or 128 +
  // signal number), or kExitFailure after one line if the supervisor cannot
  // go on (the child is killed first). With options.detach, tasks the child
  // left under the filter are served on by a detached process, and run()
  // returns at once. Never throws.
  int run();

 private:
  void wait_child();
  void wait_signals();
  void on_signals();
  void forward(int sig, int code);
  // Stops the supervisor as the default action of stop signal `sig` would,
  // once the child has taken the forwarded `sig` (or after 200 ms).
  void stop_self(int sig);
  // Whether `sig` is pending for the child, per /proc/PID/status.
  bool child_has_pending(int sig) const;
  // SIGKILLs the child and reaps it: a child left behind a closed listener
  // would see its trapped calls fail with ENOSYS.
  void kill_child();
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
  std::unique_ptr<KernelListener> listener_;
  std::unique_ptr<Server> server_;
  std::string listener_error_;  // why the listener could not be served
  UniqueFd unserved_;           // that listener, held until the child dies
  ServingThread& serving_;
  std::optional<int> status_;
};

}  // namespace keepalive
