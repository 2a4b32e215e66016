// SPDX-License-Identifier: Apache-2.0
// The per-call decisions of both strategies: what to do with one trapped
// call, returned as a Verdict. Answers nothing: Server (server.h) receives
// the call, asks decide(), sends the one answer and reports back through
// answered(). Used by one thread at a time.
//
// Whatever goes wrong, the target's call must behave as it would without
// us: every failure decides kContinue (the kernel then runs the call
// itself, without options), never an error the target would not have got.
#pragma once

#include <linux/seccomp.h>

#include <cstdint>
#include <string>

#include "common/settings.h"
#include "common/socket_options.h"
#include "supervisor/caller_check.h"
#include "supervisor/config.h"
#include "supervisor/listener.h"
#include "supervisor/log.h"
#include "supervisor/option_ring.h"
#include "supervisor/target.h"
#include "supervisor/task_cache.h"
#include "supervisor/verdict.h"

namespace keepalive {

struct HandlerOptions {
  Settings settings;
  Mode mode = Mode::kSocket;
  bool verbose = false;
  // Put before each -v line about a socket ("container web: "), where one
  // process serves several listeners.
  std::string log_label;
  Identity own;  // the supervisor's credentials and network namespace
  // Whether the filter was installed with WAIT_KILLABLE_RECV (Linux 5.19):
  // then a call the supervisor has received can only be interrupted by a
  // fatal signal, and emulation cannot leave an fd behind in a live target.
  bool wait_killable_recv = false;
  // A ring for the options shared by every handler of the process (all
  // used by one thread), instead of one of the handler's own: where one
  // process serves many listeners (keepalive-agent). Borrowed.
  OptionRing* shared_ring = nullptr;
};

// Counters, for tests and -v.
struct HandlerStats {
  uint64_t in_place = 0;  // TCP sockets of the caller's given options
  uint64_t emulated = 0;  // sockets created and injected with options
  // Sockets on which some option failed, and calls whose socket could not
  // be reached (pidfd_getfd refused, or our descriptor table full): those
  // went on without options.
  uint64_t option_failures = 0;
  uint64_t unreachable = 0;
  // Emulated sockets left in a target whose call a signal withdrew after
  // the fd was added (without WAIT_KILLABLE_RECV only).
  uint64_t leaked = 0;
};

// How many leaked fds end emulation for the session.
inline constexpr uint64_t kMaxLeakedFds = 32;

class NotificationHandler {
 public:
  // `listener` is borrowed; decide() asks it whether a call is alive.
  NotificationHandler(Listener& listener, HandlerOptions options);
  ~NotificationHandler();
  NotificationHandler(const NotificationHandler&) = delete;
  NotificationHandler& operator=(const NotificationHandler&) = delete;

  // What to do with trapped call `req`. `exits_seen`: every thread exit
  // that happened before `req` was queued has been dropped from the cache
  // (see Server::serve); otherwise decide() drops them first.
  Verdict decide(const seccomp_notif& req, bool exits_seen);

  // Server's report of what became of decide()'s verdict for `req`, and of
  // the fd the caller got (kInject answered as decided).
  void answered(const seccomp_notif& req, const Verdict& verdict, Answered how,
                int target_fd);

  // Readable when a cached thread exits; drop_exited() then forgets it.
  int exits_fd() const { return tasks_.exits_fd(); }
  void drop_exited() { tasks_.drop_exited(); }

  // Logs the counts of suppressed warnings.
  void flush_warnings() { warnings_.flush(); }

  const HandlerStats& stats() const { return stats_; }
  // Whether emulation has been given up for the session (too many leaked
  // fds); socket() then runs untouched.
  bool emulation_stopped() const { return emulation_stopped_; }

 private:
  Verdict emulate_socket(const seccomp_notif& req);
  Verdict apply_in_place(const seccomp_notif& req, Mode mode);
  Verdict note_io_uring(const seccomp_notif& req);
  // Logs (rate-limited) that the socket of `req` gets no options because
  // our own descriptor table, or the system's, is full (`err` EMFILE or
  // ENFILE from `call`); other errors say nothing.
  void note_own_shortage(const seccomp_notif& req, int err, const char* call);
  // With -v: says once why options are not set through io_uring.
  void note_options_path();
  // Logs each option that failed, once per option, value and errno.
  void log_failures(const ApplyReport& report);

  Listener& listener_;
  HandlerOptions options_;
  HandlerStats stats_;
  bool emulation_stopped_ = false;  // after kMaxLeakedFds leaks
  Warnings warnings_;
  TaskCache tasks_;
  CallerCheck caller_check_;
  OptionRing own_ring_;  // used by the serving thread only
  OptionRing& options_ring_;  // own_ring_, or options_.shared_ring
};

}  // namespace keepalive
