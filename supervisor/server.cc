// SPDX-License-Identifier: Apache-2.0
#include "supervisor/server.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <utility>

#include "supervisor/log.h"

namespace keepalive {

Server::Server(Listener& listener, HandlerOptions options)
    : listener_(listener), handler_(listener, std::move(options)) {}

// The handler's cache makes no syscall to tell whether an entry's thread
// still lives: dropping the exits seen after the call was queued is enough
// (see task_cache.h). poll() looks at its fds in order, so an exit
// reported before the listener was seen readable is seen on exits_fd in
// the same call. That covers the call the next RECV returns if it was
// queued before the poll, which it was when its id follows the last one
// received (ids are given in queue order). Otherwise one went missing (a
// caller was interrupted in between) and the RECV may return a younger
// one, so the exits are looked at again.
void Server::serve(int stop_fd) noexcept {
  for (;;) {
    pollfd fds[3] = {{listener_.fd(), POLLIN, 0},
                     {handler_.exits_fd(), POLLIN, 0},
                     {stop_fd, POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      const char* why = strerrordesc_np(errno);
      log_line_noexcept({"poll: ", why != nullptr ? why : "unknown error"});
      break;
    }
    if (fds[2].revents != 0) break;
    if (fds[1].revents != 0) handler_.drop_exited();
    if (fds[0].revents & POLLIN) {
      handle_next_guarded(true);
    } else if (fds[0].revents != 0) {
      break;  // POLLHUP: every task under the filter is gone
    }
  }
  try {
    handler_.flush_warnings();
  } catch (...) {  // NOLINT(bugprone-empty-catch): nothing to do
    // Only the count of suppressed warnings is lost.
  }
}

void Server::handle_next_guarded(bool exits_checked) noexcept {
  try {
    handle_next(exits_checked);
  } catch (...) {
    // A call received and not answered is let through (the kernel refuses
    // a second answer harmlessly, so when in doubt, answering again is
    // safe).
    if (unanswered_) {
      unanswered_ = false;
      (void)listener_.send_continue(last_id_);
    }
    report_failure();
  }
}

void Server::handle_next(bool exits_checked) {
  Result<const seccomp_notif*> received = listener_.receive();
  // ENOENT: the caller was killed or its call interrupted after poll said
  // readable. Nothing to answer.
  if (!received) return;
  const seccomp_notif& req = **received;
  bool in_order = received_any_ && req.id == last_id_ + 1;
  received_any_ = true;
  last_id_ = req.id;
  unanswered_ = true;
  Verdict verdict = handler_.decide(req, exits_checked && in_order);
  int target_fd = -1;
  Answered how = answer(req.id, verdict, &target_fd);
  unanswered_ = false;
  handler_.answered(req, verdict, how, target_fd);
}

// An emulated socket is added first and the call answered second, never
// both at once with SECCOMP_ADDFD_FLAG_SEND: that flag marks the call
// answered when the request is queued, and if our wait for the target is
// then interrupted (a stop signal, the cgroup freezer, `docker pause`) the
// kernel withdraws the fd but not the answer, and the target's socket()
// returns 0, an fd it already has (docs/kernel-addfd-send.md). Without
// SEND an interrupted ADDFD is withdrawn whole and restarted by the kernel.
//
// Two steps leave a window of their own: without WAIT_KILLABLE_RECV (before
// Linux 5.19) a signal to the target between them withdraws its call with
// the fd already in its table, and nothing can take it back (kLeftFd; the
// handler bounds how often).
Answered Server::answer(uint64_t id, const Verdict& verdict, int* target_fd) {
  switch (verdict.kind) {
    case Verdict::Kind::kGone:
      return Answered::kGone;
    case Verdict::Kind::kContinue:
      return listener_.send_continue(id) ? Answered::kAsDecided
                                         : Answered::kGone;
    case Verdict::Kind::kInject:
      break;
  }
  Result<int> added = listener_.add_fd(id, verdict.fd.get(), verdict.cloexec);
  if (!added) {
    // Interrupted by a signal before the fd was added: with SA_RESTART the
    // call comes back as a new notification.
    if (added.error().err == ENOENT) return Answered::kGone;
    // EMFILE at the target's limit, among others: the kernel gives the
    // target the answer it would have had without us.
    return listener_.send_continue(id) ? Answered::kContinued : Answered::kGone;
  }
  if (!listener_.send_value(id, *added)) return Answered::kLeftFd;
  *target_fd = *added;
  return Answered::kAsDecided;
}

void Server::report_failure() noexcept {
  ++failures_;
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (failure_logged_at_ != 0 && now.tv_sec - failure_logged_at_ < 60) return;
  failure_logged_at_ = now.tv_sec;
  char count[24];
  snprintf(count, sizeof count, "%llu",
           static_cast<unsigned long long>(failures_ - failures_logged_));
  failures_logged_ = failures_;
  log_line_noexcept({"handling a trapped call failed (", count,
                     " since the last report; out of memory?): the calls ran "
                     "without options"});
}

}  // namespace keepalive
