// SPDX-License-Identifier: Apache-2.0
// The serving loop: waits for trapped calls, receives each, has the
// NotificationHandler decide, and sends the answer. answer() is the one
// place where a Verdict becomes an answer to the kernel: every received
// call gets exactly one (or none, when its caller is gone).
#pragma once

#include <cstdint>

#include "supervisor/listener.h"
#include "supervisor/notification_handler.h"
#include "supervisor/verdict.h"

namespace keepalive {

class Server {
 public:
  // `listener` is borrowed and must outlive the server.
  Server(Listener& listener, HandlerOptions options);

  // Answers trapped calls until the listener hangs up (every task under
  // the filter is gone) or `stop_fd` becomes readable (a negative
  // `stop_fd` is never). Blocks in poll() between calls, which
  // SYNC_WAKE_UP makes wake on the target's CPU. An exception while
  // handling one call (memory) lets that call through if it was received,
  // is logged (at most once a minute, with a count), and serving goes on.
  void serve(int stop_fd) noexcept;

  // Receives one call (blocks if none is pending: call it when the
  // listener is readable) and answers it. Never throws.
  void handle_one() noexcept { handle_next_guarded(false); }

  const NotificationHandler& handler() const { return handler_; }

 private:
  // `exits_checked`: the caller polled the handler's exits_fd after seeing
  // the listener readable, and dropped what it reported.
  void handle_next(bool exits_checked);
  void handle_next_guarded(bool exits_checked) noexcept;
  // Sends the answer `verdict` asks for to call `id`. Stores the fd the
  // caller got in `target_fd` (kInject only).
  Answered answer(uint64_t id, const Verdict& verdict, int* target_fd);
  void report_failure() noexcept;

  Listener& listener_;
  NotificationHandler handler_;
  bool received_any_ = false;
  uint64_t last_id_ = 0;           // of the last call received
  bool unanswered_ = false;        // a call was received and not yet answered
  uint64_t failures_ = 0;          // exceptions caught while handling
  uint64_t failures_logged_ = 0;   // of which already counted in a line
  int64_t failure_logged_at_ = 0;  // CLOCK_MONOTONIC seconds, 0 = never
};

}  // namespace keepalive
