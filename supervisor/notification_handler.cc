// SPDX-License-Identifier: Apache-2.0
#include "supervisor/notification_handler.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <utility>

#include "common/socket_options.h"
#include "common/unique_fd.h"
#include "supervisor/filter.h"
#include "supervisor/log.h"
#include "supervisor/syscalls.h"

namespace keepalive {
namespace {

std::string describe(const ApplyReport& report, pid_t pid,
                     const char* how) {
  char line[512];
  format_applied(report, line, sizeof line);
  return "pid " + std::to_string(pid) + " " + line + " [" + how + "]";
}

}  // namespace

NotificationHandler::NotificationHandler(Listener& listener,
                                         HandlerOptions options)
    : listener_(listener),
      options_(std::move(options)),
      caller_check_(listener, tasks_, options_.own, warnings_),
      options_ring_(options_.shared_ring != nullptr ? *options_.shared_ring
                                                    : own_ring_) {
  // One io_uring_enter per socket where it is the faster way here.
  options_ring_.keep_ring_only_if_faster();
}

NotificationHandler::~NotificationHandler() { warnings_.flush(); }

Verdict NotificationHandler::decide(const seccomp_notif& req,
                                    bool exits_seen) {
  if (!exits_seen) tasks_.drop_exited();
  // The same call reaches us under another number through int $0x80 (i386)
  // or as x32; the arguments are ints to the kernel in every case, and the
  // per-call paths read them as such.
  const CallKind kind = classify_call(req.data.arch, req.data.nr);
  if (req.pid == 0 && kind != CallKind::kIoUringSetup) {
    // Without a pid nothing can be learnt of the caller: not its identity
    // (emulation hands out a socket with our credentials) nor its fds.
    warnings_.once("pidns",
                   "a task outside the supervisor's pid namespace made a "
                   "trapped call; its sockets get no options");
    return Verdict::let_through();
  }
  // The supervisor's filter traps only what the mode needs; a profile
  // handed to keepalive-agent may trap more, or a container's settings
  // may turn the options off.
  const bool enabled = options_.settings.enabled();
  switch (kind) {
    case CallKind::kSocket:
      if (!enabled) return Verdict::let_through();
      return emulate_socket(req);
    case CallKind::kConnect:
      if (!enabled || options_.mode == Mode::kListen) {
        return Verdict::let_through();
      }
      return apply_in_place(req, options_.mode);
    case CallKind::kListen:
      if (!enabled || options_.mode == Mode::kConnect) {
        return Verdict::let_through();
      }
      return apply_in_place(req, options_.mode);
    case CallKind::kIoUringSetup:
      return note_io_uring(req);
    case CallKind::kIdentity:
      caller_check_.forget_caller(req);
      return Verdict::let_through();
    case CallKind::kExec:
      caller_check_.note_exec(req);
      return Verdict::let_through();
    case CallKind::kOther:
      break;
  }
  return Verdict::let_through();
}

Verdict NotificationHandler::emulate_socket(const seccomp_notif& req) {
  if (emulation_stopped_) return Verdict::let_through();
  int domain = static_cast<int>(req.data.args[0]);
  int type = static_cast<int>(req.data.args[1]);
  int protocol = static_cast<int>(req.data.args[2]);

  switch (caller_check_.judge(req)) {
    case CallerCheck::Judgement::kSame:
      break;
    case CallerCheck::Judgement::kDifferent:
      return Verdict::let_through();
    case CallerCheck::Judgement::kGone:
      return Verdict::gone();
  }
  // SOCK_CLOEXEC here only protects our copy; the target's copy gets
  // O_CLOEXEC exactly when it asked for it. SOCK_NONBLOCK travels with the
  // open file.
  UniqueFd sock(::socket(domain, type | SOCK_CLOEXEC, protocol));
  if (!sock.valid()) {
    // Our own limits (RLIMIT_NOFILE, memory) are not the target's: let the
    // kernel run the call as the target.
    note_own_shortage(req, errno, "socket()");
    return Verdict::let_through();
  }
  ApplyReport report =
      options_ring_.apply(sock.get(), options_.settings, options_.mode);
  return Verdict::inject(std::move(sock), (type & SOCK_CLOEXEC) != 0, report);
}

void NotificationHandler::answered(const seccomp_notif& req,
                                   const Verdict& verdict, Answered how,
                                   int target_fd) {
  if (verdict.kind != Verdict::Kind::kInject) return;
  if (how == Answered::kLeftFd) {
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
  if (how != Answered::kAsDecided) return;
  ++stats_.emulated;
  if (verdict.report.any_failed()) ++stats_.option_failures;
  if (options_.verbose) {
    ApplyReport report = verdict.report;
    report.fd = target_fd;
    log_line(options_.log_label +
             describe(report, static_cast<pid_t>(req.pid), "emulated"));
    note_options_path();
  }
  log_failures(verdict.report);
}

Verdict NotificationHandler::apply_in_place(const seccomp_notif& req,
                                            Mode mode) {
  int target_fd = static_cast<int>(req.data.args[0]);
  pid_t tid = static_cast<pid_t>(req.pid);
  TaskEntry* entry = tasks_.find(tid);
  TaskPidfd opened;
  if (entry == nullptr) {
    Result<TaskPidfd> pidfd = open_task_pidfd(tid);
    if (!pidfd) {
      note_own_shortage(req, pidfd.error().err, "pidfd_open");
      return Verdict::let_through();
    }
    opened = std::move(*pidfd);
  }
  int pidfd = entry != nullptr ? entry->pidfd.get() : opened.fd.get();
  UniqueFd copy(sys::pidfd_getfd(pidfd, target_fd, 0));
  if (!copy.valid()) {
    int err = errno;
    if ((err == ESRCH || err == EBADF) && entry == nullptr &&
        !opened.of_task) {
      // The leader's pidfd stood in for a thread's (no PIDFD_THREAD): a
      // leader that has exited has no fd table (6.1 answers ESRCH, newer
      // kernels EBADF), whatever fd is asked for.
      Result<pid_t> tgid = thread_group_of(tid);
      if (tgid && leader_exited(*tgid)) {
        warnings_.once("leader-exited",
                       "pid " + std::to_string(*tgid) +
                           " goes on after its main thread exited; its "
                           "sockets get no options from --strategy continue "
                           "before Linux 6.9 (PIDFD_THREAD); --strategy "
                           "emulate covers it");
      }
    }
    if (err == EPERM) {
      ++stats_.unreachable;
      warnings_.once("getfd",
                     "pidfd_getfd on pid " + std::to_string(req.pid) +
                         " refused (EPERM); its sockets get no options (a "
                         "seccomp profile or ptrace restriction; --strategy "
                         "emulate works without it)");
    }
    note_own_shortage(req, err, "pidfd_getfd");
    // EBADF and the like: the call fails in the kernel exactly as it would.
    return Verdict::let_through();
  }
  if (entry == nullptr) {
    // The tid could have been recycled between the notification and
    // pidfd_open: trust the new pidfd (and keep it) only if the
    // notification is still alive. A cached one is alive by construction.
    if (!listener_.alive(req.id)) return Verdict::gone();
    if (opened.of_task) tasks_.insert(tid, std::move(opened.fd));
  }
  if (options_ring_.classify(copy.get()) == SocketKind::kTcp) {
    ApplyReport report =
        options_ring_.apply(copy.get(), options_.settings, mode);
    ++stats_.in_place;
    if (report.any_failed()) ++stats_.option_failures;
    if (options_.verbose) {
      report.fd = target_fd;
      log_line(options_.log_label +
               describe(report, static_cast<pid_t>(req.pid), "in place"));
      note_options_path();
    }
    log_failures(report);
  }
  return Verdict::let_through();
}

Verdict NotificationHandler::note_io_uring(const seccomp_notif& req) {
  warnings_.once("io_uring",
                 "pid " + std::to_string(req.pid) +
                     " set up io_uring; sockets it makes through io_uring "
                     "bypass seccomp and get no options (--deny-io-uring "
                     "makes io_uring_setup fail with ENOSYS so programs "
                     "fall back)");
  return Verdict::let_through();
}

void NotificationHandler::note_own_shortage(const seccomp_notif& req, int err,
                                            const char* call) {
  if (err != EMFILE && err != ENFILE) return;
  ++stats_.unreachable;
  warnings_.limited(
      "descriptors",
      options_.log_label + "pid " + std::to_string(req.pid) +
          "'s socket gets no options: " + call + ": " + strerrordesc_np(err) +
          (err == EMFILE ? " (raise RLIMIT_NOFILE: ulimit -n, LimitNOFILE=)"
                         : " (the system's file table is full)"));
}

void NotificationHandler::note_options_path() {
  // The ring is set up at the first socket, by the thread that uses it,
  // so that it never delays the command's start.
  if (options_ring_.path() != OptionRing::Path::kSetsockopt) return;
  warnings_.once("options-path", "options are set with one setsockopt() each (" +
                                     options_ring_.fallback_reason() + ")");
}

void NotificationHandler::log_failures(const ApplyReport& report) {
  // Once per line, that is per option, value and errno: a program whose
  // sockets all refuse an option (MPTCP refuses TCP_USER_TIMEOUT) would
  // otherwise log a line per socket.
  for_each_failure(
      report,
      [](const char* line, void* warnings) {
        static_cast<Warnings*>(warnings)->once(
            line, std::string(line) + " (not repeated)");
      },
      &warnings_);
}

}  // namespace keepalive
