#include "supervisor/supervisor.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <fstream>
#include <optional>
#include <string>

#include "common/syscalls.h"
#include "supervisor/filter.h"
#include "supervisor/launch.h"
#include "supervisor/log.h"
#include "supervisor/notification_handler.h"
#include "supervisor/strategy.h"

namespace keepalive {
namespace {

namespace asio = boost::asio;

constexpr int kCapSysAdmin = 21;

// Whether CAP_SYS_ADMIN is in our effective set: then the filter may be
// installed without no_new_privs, and setuid programs keep working.
bool has_cap_sys_admin() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      unsigned long long caps = std::stoull(line.substr(7), nullptr, 16);
      return (caps >> kCapSysAdmin) & 1;
    }
  }
  return false;
}

std::string install_hint(int err) {
  switch (err) {
    case EBUSY:
      return " (a seccomp listener is already installed for this process: "
             "another supervisor, or a container runtime intercepting "
             "syscalls)";
    case EACCES:
      return " (no_new_privs is off and CAP_SYS_ADMIN is missing)";
    case EINVAL:
    case ENOSYS:
      return " (the kernel lacks seccomp user notification: Linux 5.0 or "
             "newer with CONFIG_SECCOMP_FILTER is needed)";
    case EPERM:
      return " (seccomp() refused: the supervisor itself runs under a "
             "seccomp profile that forbids it)";
    default:
      return "";
  }
}

// Reads the child's status from its pidfd; -1 if it has not exited yet.
int collect_status(int pidfd) {
  siginfo_t info{};
  if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info,
             WEXITED | WNOHANG) != 0 ||
      info.si_pid == 0) {
    return -1;
  }
  if (info.si_code == CLD_EXITED) return info.si_status;
  return 128 + info.si_status;  // CLD_KILLED or CLD_DUMPED
}

// Everything alive while the target runs.
class Session {
 public:
  Session(asio::io_context& io, Launched launched, UniqueFd signals,
          HandlerOptions options)
      : io_(io),
        pid_(launched.pid),
        // Asio owns these fds from here on and closes them.
        child_(io, launched.pidfd.release()),
        listener_(io, launched.listener.release()),
        signals_(io, signals.release()),
        handler_(listener_.native_handle(), std::move(options)) {}

  void start() {
    wait_child();
    wait_notifications();
    wait_signals();
  }
  std::optional<int> status() const { return status_; }

 private:
  void wait_signals() {
    signals_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [this](const boost::system::error_code& ec) {
                          if (ec) return;
                          forward_signals();
                          wait_signals();
                        });
  }

  void forward_signals() {
    signalfd_siginfo info;
    while (read(signals_.native_handle(), &info, sizeof info) ==
           sizeof info) {
      // A signal from the terminal (Ctrl-C, window resize) already went to
      // the whole foreground process group, the child included when it
      // shares ours: forwarding it would deliver it twice.
      if (info.ssi_code == SI_KERNEL && getpgid(pid_) == getpgrp()) continue;
      // ESRCH: the child is exiting; its status is on its way.
      sys::pidfd_send_signal(child_.native_handle(),
                             static_cast<int>(info.ssi_signo), nullptr, 0);
    }
  }

  void wait_child() {
    child_.async_wait(asio::posix::stream_descriptor::wait_read,
                      [this](const boost::system::error_code& ec) {
                        if (ec) return;
                        int status = collect_status(child_.native_handle());
                        if (status < 0) return wait_child();
                        status_ = status;
                        io_.stop();
                      });
  }

  void wait_notifications() {
    listener_.async_wait(asio::posix::stream_descriptor::wait_read,
                         [this](const boost::system::error_code& ec) {
                           if (!ec) drain();
                         });
  }

  // Answers what is pending, then waits again. RECV blocks and ignores
  // O_NONBLOCK, so poll first; a bounded batch keeps signals and the
  // child's exit responsive.
  void drain() {
    for (int i = 0; i < 64; ++i) {
      pollfd p{listener_.native_handle(), POLLIN, 0};
      if (poll(&p, 1, 0) <= 0) break;
      if (!(p.revents & POLLIN)) {
        // POLLHUP alone: every task under the filter is gone.
        if (p.revents & (POLLHUP | POLLERR)) return;
        break;
      }
      handler_.handle_one();
    }
    wait_notifications();
  }

  asio::io_context& io_;
  pid_t pid_;
  asio::posix::stream_descriptor child_;
  asio::posix::stream_descriptor listener_;
  asio::posix::stream_descriptor signals_;
  NotificationHandler handler_;
  std::optional<int> status_;
};

}  // namespace

int run_supervisor(const Config& config) {
  Result<Identity> own = own_identity();
  if (!own) {
    log_line(own.error().message());
    return kExitFailure;
  }

  // The forwarded signals are blocked and read from a signalfd, which says
  // who sent each one. Blocked from the start, a signal arriving during
  // start-up is kept and forwarded once the child exists. The child starts
  // with the mask we were given.
  sigset_t original_mask, forwarded;
  sigemptyset(&forwarded);
  for (int sig : kForwardedSignals) sigaddset(&forwarded, sig);
  sigprocmask(SIG_BLOCK, &forwarded, &original_mask);
  UniqueFd signals(signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals.valid()) {
    log_line(SysError{errno, "signalfd"}.message());
    return kExitFailure;
  }

  StrategyChoice choice;
  bool no_new_privs = !has_cap_sys_admin();
  PlanChooser chooser = [&](bool getfd_permitted,
                            int getfd_error) -> Result<FilterPlan> {
    choice = choose_strategy(config.strategy, config.mode, getfd_permitted,
                             getfd_error);
    if (!choice.ok) return std::unexpected(SysError{getfd_error, choice.error});
    FilterSpec spec{config.mode, choice.strategy, config.deny_io_uring};
    Result<std::vector<sock_filter>> program = build_filter(spec);
    if (!program) return std::unexpected(program.error());
    return FilterPlan{std::move(*program), no_new_privs, true};
  };

  Result<Launched> launched = launch(config.command, chooser, original_mask);
  if (!launched) {
    const SysError& err = launched.error();
    if (!choice.ok) {
      log_line(choice.error);
    } else {
      log_line(err.message() + install_hint(err.err));
    }
    return kExitFailure;
  }
  if (launched->exec_error != 0) {
    int err = launched->exec_error;
    char buf[128];
    log_line(config.command[0] + ": " +
             (err == ENOENT ? std::string("command not found")
                            : strerror_r(err, buf, sizeof buf)));
    while (waitpid(launched->pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    return err == ENOENT ? kExitNotFound : kExitNotExecutable;
  }

  if (config.verbose) {
    log_line(std::string("mode ") + mode_name(config.mode) + ", strategy " +
             strategy_name(choice.strategy) + " (" + choice.reason + ")" +
             (launched->wait_killable_recv ? "" : "; no WAIT_KILLABLE_RECV"));
  }
  if (!choice.degraded.empty()) log_line("degraded: " + choice.degraded);

  HandlerOptions options{config.settings, config.mode, choice.strategy,
                         config.verbose, *own};
  asio::io_context io;
  Session session(io, std::move(*launched), std::move(signals),
                  std::move(options));
  session.start();
  io.run();
  return session.status().value_or(kExitFailure);
}

}  // namespace keepalive
