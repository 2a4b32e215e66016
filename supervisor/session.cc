#include "supervisor/session.h"

#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <system_error>
#include <thread>

#include "common/syscalls.h"
#include "supervisor/detach.h"
#include "supervisor/log.h"
#include "supervisor/supervisor.h"

namespace keepalive {
namespace {

namespace asio = boost::asio;
using Descriptor = asio::posix::stream_descriptor;

int status_of(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return info.si_status;
  return 128 + info.si_status;  // CLD_KILLED or CLD_DUMPED
}

}  // namespace

Session::Session(asio::io_context& io, Launched launched, UniqueFd signals,
                 HandlerOptions handler_options, SessionOptions options)
    : io_(io),
      pid_(launched.pid),
      options_(options),
      child_(io, launched.pidfd.release()),
      signals_(io, signals.release()) {
  if (launched.listener.valid()) {
    // The target wakes us as it blocks in its trapped call: a synchronous
    // wake-up lets the scheduler run us on its CPU, where the hand-over
    // costs least (Linux 6.6+; older kernels refuse, harmlessly).
    uint64_t sync_flag = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
    ioctl(launched.listener.get(), SECCOMP_IOCTL_NOTIF_SET_FLAGS, sync_flag);
    listener_ = std::move(launched.listener);
    handler_ = std::make_unique<NotificationHandler>(
        listener_.get(), std::move(handler_options));
  }
}

int Session::run() {
  wait_child();
  wait_signals();
  UniqueFd stop;
  std::thread serving;
  if (handler_) {
    stop.reset(eventfd(0, EFD_CLOEXEC));
    if (!stop.valid()) {
      log_line(SysError{errno, "eventfd"}.message());
      return kExitFailure;
    }
    // Every signal stays blocked on the serving thread, so that the
    // forwarded ones reach the signalfd and no other lands there.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    try {
      serving = std::thread([this, fd = stop.get()] { handler_->serve(fd); });
    } catch (const std::system_error& e) {
      log_line(std::string("starting the notification thread: ") + e.what());
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    // The child is killed as we exit (PR_SET_PDEATHSIG).
    if (!serving.joinable()) return kExitFailure;
  }
  io_.run();
  if (serving.joinable()) {
    uint64_t one = 1;
    ssize_t ignored = write(stop.get(), &one, sizeof one);
    (void)ignored;
    serving.join();
  }
  if (status_ && handler_) hand_over(*status_);
  return status_.value_or(kExitFailure);
}

void Session::hand_over(int status) {
  // An orphan we have not reaped yet still counts as a user of the filter.
  if (options_.reap_orphans) reap_orphans();
  if (!filter_in_use(listener_.get())) return;
  std::string exited =
      "the command exited (status " + std::to_string(status) + ")";
  if (!options_.detach) {
    if (options_.verbose) {
      log_line(exited + " and left tasks under the filter; as the supervisor "
                        "exits with it, their trapped calls fail with ENOSYS");
    }
    return;
  }
  // The serving thread has been joined: this is the only thread, as fork
  // requires. Notifications meanwhile wait in the kernel for the server.
  Result<pid_t> server = serve_detached(*handler_);
  if (!server) {
    log_line("serving the tasks the command left under the filter: " +
             server.error().message() +
             " (their trapped calls now fail with ENOSYS)");
    return;
  }
  if (options_.verbose) {
    log_line(exited + " and left tasks under the filter; pid " +
             std::to_string(*server) +
             " goes on serving them in the background until the last one "
             "exits");
  }
}

void Session::finish(int status) {
  status_ = status;
  io_.stop();
}

void Session::wait_child() {
  child_.async_wait(Descriptor::wait_read, [this](const auto& ec) {
    if (ec) return;
    siginfo_t info{};
    if (waitid(static_cast<idtype_t>(P_PIDFD),
               static_cast<id_t>(child_.native_handle()), &info,
               WEXITED | WNOHANG) != 0 ||
        info.si_pid == 0) {
      return wait_child();
    }
    finish(status_of(info));
  });
}

void Session::wait_signals() {
  signals_.async_wait(Descriptor::wait_read, [this](const auto& ec) {
    if (ec) return;
    on_signals();
    if (!status_) wait_signals();
  });
}

void Session::on_signals() {
  signalfd_siginfo info;
  while (!status_ && read(signals_.native_handle(), &info, sizeof info) ==
                         static_cast<ssize_t>(sizeof info)) {
    if (info.ssi_signo == SIGCHLD) {
      reap_orphans();
    } else {
      forward(static_cast<int>(info.ssi_signo), info.ssi_code);
    }
  }
}

void Session::forward(int sig, int code) {
  pid_t group = getpgid(pid_);
  bool shares_our_group = group == getpgrp();
  // A signal from the terminal (Ctrl-C, window resize) already went to the
  // whole foreground process group, the child included when it shares
  // ours: forwarding it would deliver it twice.
  if (code == SI_KERNEL && shares_our_group) return;
  if (options_.signal_group && group > 0 && !shares_our_group) {
    kill(-group, sig);
    return;
  }
  // ESRCH: the child is exiting; its status is on its way.
  sys::pidfd_send_signal(child_.native_handle(), sig, nullptr, 0);
}

// Reaps every exited child but the main one, which is collected through its
// pidfd so that its status is never lost to a wait for "any child".
void Session::reap_orphans() {
  for (;;) {
    siginfo_t info{};
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid == 0) {
      return;
    }
    if (info.si_pid == pid_) {
      siginfo_t main{};
      if (waitid(static_cast<idtype_t>(P_PIDFD),
                 static_cast<id_t>(child_.native_handle()), &main,
                 WEXITED | WNOHANG) == 0 &&
          main.si_pid != 0) {
        finish(status_of(main));
      }
      return;
    }
    siginfo_t reaped{};
    waitid(P_PID, static_cast<id_t>(info.si_pid), &reaped, WEXITED);
  }
}

}  // namespace keepalive
