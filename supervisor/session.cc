#include "supervisor/session.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/syscalls.h"

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
    listener_ = std::make_unique<Descriptor>(io, launched.listener.release());
    handler_ = std::make_unique<NotificationHandler>(
        listener_->native_handle(), std::move(handler_options));
  }
}

int Session::run() {
  wait_child();
  wait_signals();
  if (listener_) wait_notifications();
  io_.run();
  return status_.value_or(125);
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

void Session::wait_notifications() {
  listener_->async_wait(Descriptor::wait_read, [this](const auto& ec) {
    if (!ec) drain();
  });
}

// Answers what is pending, then waits again. RECV blocks and ignores
// O_NONBLOCK, so poll first; a bounded batch keeps signals and the child's
// exit responsive.
void Session::drain() {
  for (int i = 0; i < 64; ++i) {
    pollfd p{listener_->native_handle(), POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) break;
    if (!(p.revents & POLLIN)) {
      // POLLHUP alone: every task under the filter is gone.
      if (p.revents & (POLLHUP | POLLERR)) return;
      break;
    }
    handler_->handle_one();
  }
  wait_notifications();
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
