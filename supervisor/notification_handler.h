// Receives seccomp notifications and answers them: the per-call work of
// both strategies. Used by one thread at a time; owns its buffers and the
// cache of what it knows of the target's threads.
//
// Whatever goes wrong, the target's call must behave as it would without
// us: every failure path answers CONTINUE (the kernel then runs the call
// itself, without options), never an error the target would not have got.
#pragma once

#include <linux/seccomp.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "common/settings.h"
#include "common/socket_options.h"
#include "supervisor/config.h"
#include "supervisor/log.h"
#include "supervisor/option_ring.h"
#include "supervisor/target.h"
#include "supervisor/task_cache.h"

namespace keepalive {

struct HandlerOptions {
  Settings settings;
  Mode mode = Mode::kSocket;
  Strategy strategy = Strategy::kEmulate;  // kEmulate or kContinue
  bool verbose = false;
  Identity own;  // the supervisor's credentials and network namespace
  // Whether the filter was installed with WAIT_KILLABLE_RECV (Linux 5.19):
  // then a call the supervisor has received can only be interrupted by a
  // fatal signal, and emulation cannot leave an fd behind in a live target.
  bool wait_killable_recv = false;
};

// Counters, for tests and -v.
struct HandlerStats {
  uint64_t received = 0;
  uint64_t emulated = 0;   // sockets created and injected with options
  uint64_t applied = 0;    // target sockets given options in place
  uint64_t passed = 0;     // calls answered CONTINUE (run by the kernel)
  uint64_t vanished = 0;   // the caller was gone or interrupted
  // Emulated sockets left in a target whose call a signal withdrew after
  // the fd was added (without WAIT_KILLABLE_RECV only).
  uint64_t leaked = 0;
};

// How many leaked fds end emulation for the session (see emulate_socket).
inline constexpr uint64_t kMaxLeakedFds = 32;

class NotificationHandler {
 public:
  // `listener` is borrowed and must outlive the handler.
  NotificationHandler(int listener, HandlerOptions options);
  ~NotificationHandler();
  NotificationHandler(const NotificationHandler&) = delete;
  NotificationHandler& operator=(const NotificationHandler&) = delete;

  // Receives one notification (blocks if none is pending: call it when the
  // listener is readable) and answers it.
  void handle_one() { handle_next(false); }

  // Answers notifications until the listener hangs up (every task under
  // the filter is gone) or `stop_fd` becomes readable. Blocks in poll()
  // between them, which SYNC_WAKE_UP makes wake on the target's CPU.
  // An exception while handling one notification (memory) answers it
  // CONTINUE if it was received, is logged (at most once a minute, with a
  // count) and serving goes on. Never throws.
  void serve(int stop_fd) noexcept;

  // Whether the request buffers could be allocated; without them nothing
  // can be answered, and serve() must not run.
  bool ready() const { return req_ != nullptr; }

  const HandlerStats& stats() const { return stats_; }
  // Whether emulation has been given up for the session (too many leaked
  // fds); socket() then runs untouched.
  bool emulation_stopped() const { return emulation_stopped_; }

 private:
  // `exits_checked`: the caller polled the cache's exits_fd after seeing
  // the listener readable, and dropped what it reported.
  void handle_next(bool exits_checked);
  // handle_next, answering CONTINUE if it throws after the RECV.
  void handle_next_guarded(bool exits_checked) noexcept;
  void emulate_socket(const seccomp_notif& req);
  // Answers an emulated socket() with the fd added to the target.
  void answer_emulated(const seccomp_notif& req, int target_fd,
                       ApplyReport& report);
  // The call may give the caller other credentials or another network
  // namespace: judge it again at its next socket().
  void forget_caller(const seccomp_notif& req);
  // Whether the caller has our credentials and network namespace (cached
  // per thread) and sits in our cgroups with our LSM context (compared on
  // every call); when not, the call has been let through.
  bool identity_matches(const seccomp_notif& req);
  // The placement part of identity_matches, for a caller whose credentials
  // match; `entry` is its cache entry or nullptr.
  bool placement_matches(const seccomp_notif& req, TaskEntry* entry,
                         const Result<bool>& fresh);
  // Before an exec by a non-leader thread runs: see task_cache.h.
  void note_exec(const seccomp_notif& req);
  void apply_in_place(const seccomp_notif& req, Mode mode);
  void note_io_uring(const seccomp_notif& req);
  // Answers with SECCOMP_USER_NOTIF_FLAG_CONTINUE.
  void let_through(uint64_t id);
  bool still_valid(uint64_t id);
  // With -v: says once why options are not set through io_uring.
  void note_options_path();
  // Logs each option that failed, once per option, value and errno.
  void log_failures(const ApplyReport& report);
  // Logs `text` the first time `key` is seen; `key` is one of a bounded
  // set (an option's failure, a fixed condition), never a pid.
  void warn_once(const std::string& key, const std::string& text);

  int listener_;
  HandlerOptions options_;
  HandlerStats stats_;
  seccomp_notif* req_ = nullptr;
  seccomp_notif_resp* resp_ = nullptr;
  size_t req_size_ = 0;
  size_t resp_size_ = 0;
  bool emulation_stopped_ = false;  // after kMaxLeakedFds leaks
  bool received_any_ = false;
  uint64_t last_id_ = 0;  // of the last notification received
  std::set<std::string> warned_;
  RateLimitedLog warnings_;  // per-kind, for events that come per task
  // Our own cgroups and LSM context, read by the serving thread at its
  // first emulated socket (the socket takes that thread's).
  bool placement_loaded_ = false;
  PlacementKinds placement_kinds_;  // which parts the kernel gives
  Result<Placement> own_placement_;
  std::string scratch_;
  uint64_t failures_ = 0;          // exceptions caught by serve()
  uint64_t failures_logged_ = 0;   // of which already counted in a line
  int64_t failure_logged_at_ = 0;  // CLOCK_MONOTONIC seconds, 0 = never
  TaskCache tasks_;
  OptionRing options_ring_;  // used by the serving thread only
};

}  // namespace keepalive
