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
      return;
    }
    if (fds[2].revents != 0) return;
    if (fds[1].revents != 0) tasks_.drop_exited();
    if (fds[0].revents & POLLIN) {
      handle_next_guarded(true);
    } else if (fds[0].revents != 0) {
      return;  // POLLHUP: every task under the filter is gone
    }
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
  if (req.pid == 0 && req.data.nr != SYS_io_uring_setup) {
    // Without a pid nothing can be learnt of the caller: not its identity
    // (emulation hands out a socket with our credentials) nor its fds.
    warn_once("pidns", "a task outside the supervisor's pid namespace made a "
                       "trapped call; its sockets get no options");
    let_through(req.id);
  } else if (req.data.nr == SYS_socket) {
    emulate_socket(req);
  } else if (req.data.nr == SYS_connect) {
    apply_in_place(req, options_.mode == Mode::kSocket ? Mode::kSocket
                                                       : Mode::kConnect);
  } else if (req.data.nr == SYS_listen) {
    apply_in_place(req, options_.mode == Mode::kSocket ? Mode::kSocket
                                                       : Mode::kListen);
  } else if (req.data.nr == SYS_io_uring_setup) {
    note_io_uring(req);
  } else if (changes_identity(req.data.nr)) {
    forget_caller(req);
    let_through(req.id);
  } else {
    let_through(req.id);
  }
}

void NotificationHandler::emulate_socket(const seccomp_notif& req) {
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
  addfd.flags = addfd_send_refused_ ? 0 : SECCOMP_ADDFD_FLAG_SEND;
  addfd.srcfd = static_cast<__u32>(sock.get());
  addfd.newfd_flags = (type & SOCK_CLOEXEC) ? O_CLOEXEC : 0;
  int target_fd = ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
  if (target_fd < 0 && errno == EINVAL && !addfd_send_refused_) {
    addfd_send_refused_ = true;  // Linux 5.9-5.13: add, then answer
    addfd.flags = 0;
    target_fd = ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
  }
  if (target_fd < 0) {
    if (errno == ENOENT) {
      // Interrupted by a signal: not an error; with SA_RESTART the call
      // comes back as a new notification.
      ++stats_.vanished;
      return;
    }
    // EMFILE at the target's limit, among others: the kernel will give the
    // target the same answer it would have had without us.
    return let_through(req.id);
  }
  if (addfd_send_refused_) {
    memset(resp_, 0, resp_size_ > 0 ? resp_size_ : sizeof *resp_);
    resp_->id = req.id;
    resp_->val = target_fd;
    if (seccomp_notify_respond(listener_, resp_) != 0) ++stats_.vanished;
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
  // Nothing known, nothing to forget: the command's own first exec reads
  // nothing from /proc.
  if (tasks_.size() == 0) return;
  pid_t tid = static_cast<pid_t>(req.pid);
  if (req.data.nr != SYS_execve && req.data.nr != SYS_execveat) {
    tasks_.forget(tid);
    return;
  }
  // An exec ends the other threads, and the caller takes over the thread
  // group leader's tid: what was known of the leader's tid is stale too.
  pid_t tgid = 0;
  if (TaskEntry* entry = tasks_.find(tid); entry != nullptr) tgid = entry->tgid;
  if (tgid == 0) {
    Result<pid_t> group = thread_group_of(tid);
    tgid = group ? *group : tid;
  }
  tasks_.forget(tid);
  tasks_.forget_group(tgid);
}

bool NotificationHandler::identity_matches(const seccomp_notif& req) {
  pid_t tid = static_cast<pid_t>(req.pid);
  if (TaskEntry* entry = tasks_.find(tid);
      entry != nullptr && entry->identity_known) {
    if (!entry->identity_matches) let_through(req.id);
    return entry->identity_matches;
  }
  // First socket of this thread (or first since it changed identity). The
  // pidfd is opened before /proc is read so that, once the notification is
  // known to be alive afterwards, both are known to be of the caller.
  Result<TaskPidfd> pidfd = open_task_pidfd(tid);
  pid_t tgid = 0;
  Result<Identity> identity = task_identity(tid, &tgid);
  if (!still_valid(req.id)) return false;
  if (!identity) {
    warn_once("identity-unreadable",
              "cannot tell whether pid " + std::to_string(tid) +
                  " has the supervisor's credentials and network "
                  "namespace (" + identity.error().message() +
                  "); its TCP sockets get no options");
    let_through(req.id);
    return false;
  }
  bool matches = *identity == options_.own;
  if (pidfd && pidfd->of_task) {
    if (TaskEntry* entry = tasks_.insert(tid, std::move(pidfd->fd))) {
      entry->tgid = tgid;
      entry->identity_known = true;
      entry->identity_matches = matches;
    }
  }
  if (!matches) {
    warn_once("identity:" + std::to_string(tid),
              "pid " + std::to_string(tid) +
                  " runs with other credentials or in another network "
                  "namespace than the supervisor; its TCP sockets get no "
                  "options (use --strategy continue to cover it)");
    let_through(req.id);
  }
  return matches;
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
