#include "supervisor/notification_handler.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>

#include <utility>

#include "common/socket_options.h"
#include "common/syscalls.h"
#include "common/unique_fd.h"
#include "supervisor/filter.h"
#include "supervisor/log.h"

namespace keepalive {
namespace {

std::string describe(const ApplyReport& report, pid_t pid,
                     const char* how) {
  char line[512];
  format_applied(report, line, sizeof line);
  return "pid " + std::to_string(pid) + " " + line + " [" + how + "]";
}

}  // namespace

NotificationHandler::NotificationHandler(int listener, HandlerOptions options)
    : listener_(listener), options_(std::move(options)) {
  seccomp_notif_sizes sizes{};
  if (sys::seccomp_notif_sizes(&sizes) == 0) {
    req_size_ = sizes.seccomp_notif;
    resp_size_ = sizes.seccomp_notif_resp;
  }
  // Sized by the kernel, never by sizeof: newer kernels may grow them.
  if (seccomp_notify_alloc(&req_, &resp_) != 0) {
    req_ = nullptr;
    resp_ = nullptr;
  }
}

NotificationHandler::~NotificationHandler() {
  warnings_.flush();
  if (req_ != nullptr) seccomp_notify_free(req_, resp_);
}

// The cache makes no syscall to tell whether an entry's thread still lives:
// dropping the exits seen after the notification was queued is enough (see
// task_cache.h). poll() looks at its fds in order, so an exit reported
// before the listener was seen readable is seen on exits_fd in the same
// call. That covers the notification the next RECV returns if it was
// queued before the poll, which it was when its id follows the last one
// received (ids are given in queue order). Otherwise one went missing
// (a caller was interrupted in between) and the RECV may return a younger
// one, so the exits are looked at again.
void NotificationHandler::serve(int stop_fd) noexcept {
  for (;;) {
    pollfd fds[3] = {{listener_, POLLIN, 0},
                     {tasks_.exits_fd(), POLLIN, 0},
                     {stop_fd, POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      const char* why = strerrordesc_np(errno);
      log_line_noexcept({"poll: ", why != nullptr ? why : "unknown error"});
      break;
    }
    if (fds[2].revents != 0) break;
    if (fds[1].revents != 0) tasks_.drop_exited();
    if (fds[0].revents & POLLIN) {
      handle_next_guarded(true);
    } else if (fds[0].revents != 0) {
      break;  // POLLHUP: every task under the filter is gone
    }
  }
  try {
    warnings_.flush();
  } catch (...) {
    // Only the count of suppressed warnings is lost.
  }
}

void NotificationHandler::handle_next_guarded(bool exits_checked) noexcept {
  uint64_t received = stats_.received;
  try {
    handle_next(exits_checked);
    return;
  } catch (...) {
  }
  // Answering an id again is refused harmlessly (ENOENT or EINPROGRESS), so
  // the received call is let through whether or not it was answered.
  if (stats_.received != received) let_through(last_id_);
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

void NotificationHandler::handle_next(bool exits_checked) {
  if (req_ == nullptr) return;
  // RECV fails with EINVAL unless the buffer is zeroed.
  memset(req_, 0, req_size_ > 0 ? req_size_ : sizeof *req_);
  if (seccomp_notify_receive(listener_, req_) != 0) {
    // ENOENT: the target was killed or its call interrupted after poll said
    // readable. Nothing to answer.
    ++stats_.vanished;
    return;
  }
  ++stats_.received;
  const seccomp_notif& req = *req_;
  bool in_order = received_any_ && req.id == last_id_ + 1;
  received_any_ = true;
  last_id_ = req.id;
  if (!exits_checked || !in_order) tasks_.drop_exited();
  // The same call reaches us under another number through int $0x80 (i386)
  // or as x32; the arguments are ints to the kernel in every case, and the
  // per-call paths read them as such.
  const CallKind kind = classify_call(req.data.arch, req.data.nr);
  if (req.pid == 0 && kind != CallKind::kIoUringSetup) {
    // Without a pid nothing can be learnt of the caller: not its identity
    // (emulation hands out a socket with our credentials) nor its fds.
    warn_once("pidns", "a task outside the supervisor's pid namespace made a "
                       "trapped call; its sockets get no options");
    let_through(req.id);
    return;
  }
  switch (kind) {
    case CallKind::kSocket:
      emulate_socket(req);
      break;
    case CallKind::kConnect:
      apply_in_place(req, options_.mode == Mode::kSocket ? Mode::kSocket
                                                         : Mode::kConnect);
      break;
    case CallKind::kListen:
      apply_in_place(req, options_.mode == Mode::kSocket ? Mode::kSocket
                                                         : Mode::kListen);
      break;
    case CallKind::kIoUringSetup:
      note_io_uring(req);
      break;
    case CallKind::kIdentity:
      forget_caller(req);
      let_through(req.id);
      break;
    case CallKind::kExec:
      note_exec(req);
      let_through(req.id);
      break;
    case CallKind::kOther:
      let_through(req.id);
      break;
  }
}

// The fd is added first and the call answered second, never both at once
// with SECCOMP_ADDFD_FLAG_SEND: that flag marks the call answered when the
// request is queued, and if our wait for the target is then interrupted (a
// stop signal, the cgroup freezer, `docker pause`) the kernel withdraws the
// fd but not the answer, and the target's socket() returns 0, an fd it
// already has (docs/kernel-addfd-send.md). Without SEND an interrupted
// ADDFD is withdrawn whole and restarted by the kernel.
//
// Two steps leave a window of their own: without WAIT_KILLABLE_RECV (before
// Linux 5.19) a signal to the target between them withdraws its call with
// the fd already in its table, and nothing can take it back. Those leaks
// are counted; past kMaxLeakedFds emulation stops for the session.
void NotificationHandler::emulate_socket(const seccomp_notif& req) {
  if (emulation_stopped_) return let_through(req.id);
  int domain = static_cast<int>(req.data.args[0]);
  int type = static_cast<int>(req.data.args[1]);
  int protocol = static_cast<int>(req.data.args[2]);

  // The socket we create carries our credentials and lives in our network
  // namespace; handing it to a target with others would give it what it
  // could not have made itself.
  if (!identity_matches(req)) return;

  // SOCK_CLOEXEC here only protects our copy; the target's copy gets
  // O_CLOEXEC below exactly when it asked for it. SOCK_NONBLOCK travels
  // with the open file.
  UniqueFd sock(::socket(domain, type | SOCK_CLOEXEC, protocol));
  if (!sock.valid()) {
    // Our own limits (RLIMIT_NOFILE, memory) are not the target's: let the
    // kernel run the call as the target.
    return let_through(req.id);
  }
  ApplyReport report =
      options_ring_.apply(sock.get(), options_.settings, options_.mode);

  seccomp_notif_addfd addfd{};
  addfd.id = req.id;
  addfd.flags = 0;  // never SECCOMP_ADDFD_FLAG_SEND: see above
  addfd.srcfd = static_cast<__u32>(sock.get());
  addfd.newfd_flags = (type & SOCK_CLOEXEC) ? O_CLOEXEC : 0;
  int target_fd = ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
  if (target_fd < 0) {
    if (errno == ENOENT) {
      // Interrupted by a signal before the fd was added: not an error;
      // with SA_RESTART the call comes back as a new notification.
      ++stats_.vanished;
      return;
    }
    // EMFILE at the target's limit, among others: the kernel will give the
    // target the same answer it would have had without us.
    return let_through(req.id);
  }
  answer_emulated(req, target_fd, report);
}

void NotificationHandler::answer_emulated(const seccomp_notif& req,
                                          int target_fd,
                                          ApplyReport& report) {
  memset(resp_, 0, resp_size_ > 0 ? resp_size_ : sizeof *resp_);
  resp_->id = req.id;
  resp_->val = target_fd;
  if (seccomp_notify_respond(listener_, resp_) != 0) {
    ++stats_.vanished;
    // With WAIT_KILLABLE_RECV only a fatal signal withdraws a received
    // call, and the fd table goes with the target.
    if (options_.wait_killable_recv) return;
    if (++stats_.leaked >= kMaxLeakedFds && !emulation_stopped_) {
      emulation_stopped_ = true;
      log_line("stopped emulating socket(): signals interrupted " +
               std::to_string(stats_.leaked) +
               " calls after the socket was added, leaving an fd in the "
               "program each time (this kernel lacks WAIT_KILLABLE_RECV, "
               "Linux 5.19); its new sockets get no options (--strategy "
               "continue has no such window)");
    }
    return;
  }
  ++stats_.emulated;
  if (options_.verbose) {
    report.fd = target_fd;
    log_line(describe(report, static_cast<pid_t>(req.pid), "emulated"));
    note_options_path();
  }
  log_failures(report);
}

void NotificationHandler::apply_in_place(const seccomp_notif& req, Mode mode) {
  int target_fd = static_cast<int>(req.data.args[0]);
  pid_t tid = static_cast<pid_t>(req.pid);
  TaskEntry* entry = tasks_.find(tid);
  TaskPidfd opened;
  if (entry == nullptr) {
    Result<TaskPidfd> pidfd = open_task_pidfd(tid);
    if (!pidfd) return let_through(req.id);
    opened = std::move(*pidfd);
  }
  int pidfd = entry != nullptr ? entry->pidfd.get() : opened.fd.get();
  UniqueFd copy(sys::pidfd_getfd(pidfd, target_fd, 0));
  if (!copy.valid()) {
    if (errno == EPERM) {
      warn_once("getfd", "pidfd_getfd on pid " + std::to_string(req.pid) +
                             " refused (EPERM); its sockets get no options "
                             "(a seccomp profile or ptrace restriction; "
                             "--strategy emulate works without it)");
    }
    // EBADF and the like: the call fails in the kernel exactly as it would.
    return let_through(req.id);
  }
  if (entry == nullptr) {
    // The tid could have been recycled between the notification and
    // pidfd_open: trust the new pidfd (and keep it) only if the
    // notification is still alive. A cached one is alive by construction.
    if (!still_valid(req.id)) return;
    if (opened.of_task) tasks_.insert(tid, std::move(opened.fd));
  }
  if (options_ring_.classify(copy.get()) == SocketKind::kTcp) {
    ApplyReport report = options_ring_.apply(copy.get(), options_.settings, mode);
    ++stats_.applied;
    if (options_.verbose) {
      report.fd = target_fd;
      log_line(describe(report, static_cast<pid_t>(req.pid), "in place"));
      note_options_path();
    }
    log_failures(report);
  }
  let_through(req.id);
}

void NotificationHandler::forget_caller(const seccomp_notif& req) {
  // Nothing known, nothing to forget.
  if (tasks_.size() != 0) tasks_.forget(static_cast<pid_t>(req.pid));
}

void NotificationHandler::note_exec(const seccomp_notif& req) {
  pid_t tid = static_cast<pid_t>(req.pid);
  Result<ExecWatch> watch = watch_exec(tid);
  tasks_.forget(tid);
  // Invalid: the caller died or a signal interrupted its call, so no exec
  // runs from this notification (a restarted one comes back as a new one).
  if (seccomp_notify_id_valid(listener_, req.id) != 0) return;
  if (!watch) {
    // Without knowing when the exec ends, no verdict is safe: the cache
    // turns itself off.
    tasks_.mark_exec_pending(tid, 0, UniqueFd());
    warn_once("exec-watch", "cannot watch an exec by pid " +
                                std::to_string(tid) + " (" +
                                watch.error().message() +
                                "); every later socket() is judged anew");
    return;
  }
  // An exec ends the other threads, and the caller takes over the thread
  // group leader's tid: what was known of the whole group is stale.
  tasks_.forget_group(watch->tgid);
  if (!watch->by_leader) {
    tasks_.mark_exec_pending(tid, watch->tgid, std::move(watch->fd));
  }
}

bool NotificationHandler::identity_matches(const seccomp_notif& req) {
  pid_t tid = static_cast<pid_t>(req.pid);
  tasks_.exec_returned(tid);
  if (!placement_loaded_) {
    placement_loaded_ = true;
    own_placement_ = own_placement(&placement_kinds_);
  }
  if (!own_placement_) {
    warn_once("placement-own",
              "cannot read the supervisor's own cgroups (" +
                  own_placement_.error().message() +
                  "); TCP sockets get no options (use --strategy continue)");
    let_through(req.id);
    return false;
  }
  if (TaskEntry* entry = tasks_.find(tid);
      entry != nullptr && entry->identity_known) {
    if (!entry->identity_matches) {
      let_through(req.id);
      return false;
    }
    return placement_matches(
        req, entry,
        same_placement(entry->placement, *own_placement_, &scratch_));
  }
  // First socket of this thread (or first since it changed identity). The
  // pidfd and the placement files are opened before /proc is read so that,
  // once the notification is known to be alive afterwards, all of it is
  // known to be of the caller.
  Result<TaskPidfd> pidfd = open_task_pidfd(tid);
  Result<PlacementFiles> files = open_placement(tid, placement_kinds_);
  pid_t tgid = 0;
  Result<Identity> identity = task_identity(tid, &tgid);
  Result<bool> placed = files
                            ? same_placement(*files, *own_placement_, &scratch_)
                            : Result<bool>(std::unexpected(files.error()));
  if (!still_valid(req.id)) return false;
  if (!identity) {
    warnings_.warn("identity-unreadable",
                   "cannot tell whether pid " + std::to_string(tid) +
                       " has the supervisor's credentials and network "
                       "namespace (" + identity.error().message() +
                       "); its TCP sockets get no options");
    let_through(req.id);
    return false;
  }
  bool matches = *identity == options_.own;
  TaskEntry* entry = nullptr;
  // No verdict is stored while an exec may still hand the leader's tid
  // to another program (see task_cache.h).
  if (pidfd && pidfd->of_task && files && tgid != 0 &&
      !tasks_.exec_pending(tgid)) {
    entry = tasks_.insert(tid, std::move(pidfd->fd));
    if (entry != nullptr) {
      entry->tgid = tgid;
      entry->identity_known = true;
      entry->identity_matches = matches;
      entry->placement = std::move(*files);
    }
  }
  if (!matches) {
    warnings_.warn("identity",
                   "pid " + std::to_string(tid) +
                       " runs with other credentials or in another network "
                       "namespace than the supervisor; its TCP sockets get "
                       "no options (use --strategy continue to cover it)");
    let_through(req.id);
    return false;
  }
  return placement_matches(req, entry, placed);
}

bool NotificationHandler::placement_matches(const seccomp_notif& req,
                                            TaskEntry* entry,
                                            const Result<bool>& same) {
  if (same && *same) return true;
  std::string pid = std::to_string(req.pid);
  if (!same) {
    warnings_.warn("placement-unreadable",
                   "cannot tell whether pid " + pid +
                       " is in the supervisor's cgroups with its security "
                       "label (" + same.error().message() +
                       "); its TCP sockets get no options (use --strategy "
                       "continue to cover it)");
  } else if (entry == nullptr || !entry->placement_warned) {
    // Once per thread: the placement is read again on every call.
    if (entry != nullptr) entry->placement_warned = true;
    warnings_.warn("placement",
                   "pid " + pid +
                       " is in other cgroups or has another security label "
                       "than the supervisor; its TCP sockets get no options "
                       "(firewall rules and cgroup programs judge a socket "
                       "by its creator's; use --strategy continue to cover "
                       "it)");
  }
  let_through(req.id);
  return false;
}

void NotificationHandler::note_io_uring(const seccomp_notif& req) {
  warn_once("io_uring",
            "pid " + std::to_string(req.pid) +
                " set up io_uring; sockets it makes through io_uring bypass "
                "seccomp and get no options (--deny-io-uring makes "
                "io_uring_setup fail with ENOSYS so programs fall back)");
  let_through(req.id);
}

void NotificationHandler::let_through(uint64_t id) {
  memset(resp_, 0, resp_size_ > 0 ? resp_size_ : sizeof *resp_);
  resp_->id = id;
  resp_->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  if (seccomp_notify_respond(listener_, resp_) != 0) {
    ++stats_.vanished;  // ENOENT: the caller is gone or was interrupted
    return;
  }
  ++stats_.passed;
}

bool NotificationHandler::still_valid(uint64_t id) {
  if (seccomp_notify_id_valid(listener_, id) == 0) return true;
  ++stats_.vanished;
  return false;
}

void NotificationHandler::note_options_path() {
  // The ring is set up at the first socket, by the thread that uses it,
  // so that it never delays the command's start.
  if (options_ring_.path() != OptionRing::Path::kSetsockopt) return;
  warn_once("options-path", "options are set with one setsockopt() each (" +
                                options_ring_.fallback_reason() + ")");
}

void NotificationHandler::log_failures(const ApplyReport& report) {
  // Once per line, that is per option, value and errno: a program whose
  // sockets all refuse an option (MPTCP refuses TCP_USER_TIMEOUT) would
  // otherwise log a line per socket.
  for_each_failure(
      report,
      [](const char* line, void* self) {
        static_cast<NotificationHandler*>(self)->warn_once(
            line, std::string(line) + " (not repeated)");
      },
      this);
}

void NotificationHandler::warn_once(const std::string& key,
                                    const std::string& text) {
  if (warned_.insert(key).second) log_line(text);
}

}  // namespace keepalive
