#include "supervisor/supervisor.h"

#include <errno.h>
#include <linux/capability.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "common/quote.h"
#include "common/syscalls.h"
#include "supervisor/filter.h"
#include "supervisor/launch.h"
#include "supervisor/log.h"
#include "supervisor/notification_handler.h"
#include "supervisor/session.h"
#include "supervisor/strategy.h"

namespace keepalive {
namespace {

// Whether CAP_SYS_ADMIN is in our effective set: then the filter may be
// installed without no_new_privs, and setuid programs keep working.
bool has_cap_sys_admin() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (sys::capget(&header, data) != 0) return false;
  return (data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &
          CAP_TO_MASK(CAP_SYS_ADMIN)) != 0;
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
  // As init (PID 1, or --init as a subreaper), SIGCHLD joins them so that
  // orphans are reaped.
  bool init = config.init || getpid() == 1;
  if (init && getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    log_line(SysError{errno, "prctl(PR_SET_CHILD_SUBREAPER)"}.message());
    return kExitFailure;
  }
  sigset_t original_mask, forwarded;
  sigemptyset(&forwarded);
  for (int sig : kForwardedSignals) sigaddset(&forwarded, sig);
  if (init) sigaddset(&forwarded, SIGCHLD);
  sigprocmask(SIG_BLOCK, &forwarded, &original_mask);
  UniqueFd signals(signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals.valid()) {
    log_line(SysError{errno, "signalfd"}.message());
    return kExitFailure;
  }

  StrategyChoice choice;
  bool getfd_refused = false;
  bool no_new_privs = !has_cap_sys_admin();
  PlanChooser chooser = [&](bool getfd_permitted,
                            int getfd_error) -> Result<FilterPlan> {
    getfd_refused = !getfd_permitted;
    // Before the choice, as the filter's install will: emulation can leak
    // fds without WAIT_KILLABLE_RECV (see emulate_socket).
    choice = choose_strategy(config.strategy, config.mode, getfd_permitted,
                             getfd_error, !kernel_has_wait_killable_recv());
    if (!choice.ok) return std::unexpected(SysError{getfd_error, choice.error});
    FilterSpec spec{config.mode, choice.strategy, config.deny_io_uring,
                    !no_new_privs};
    Result<std::vector<sock_filter>> program = build_filter(spec);
    if (!program) return std::unexpected(program.error());
    FilterPlan plan;
    plan.program = std::move(*program);
    plan.no_new_privs = no_new_privs;
    plan.fail_open = config.fail_open;
    plan.own_process_group = config.signal_group;
    return plan;
  };

  Result<Launched> launched = launch(config.command, chooser, original_mask);
  if (!launched) {
    const SysError& err = launched.error();
    if (!choice.ok) {
      log_line(choice.error);
    } else {
      log_line(err.message() + install_hint(err.err) +
               (err.err == EBUSY ? "; --fail-open runs the command without "
                                   "options instead"
                                 : ""));
    }
    return kExitFailure;
  }
  if (launched->install_error != 0) {
    char name[kQuoteBufferSize];
    quote_value(config.command[0].data(), config.command[0].size(), name,
                sizeof name);
    log_line(std::string("running ") + name + " WITHOUT keepalive options: " +
             SysError{launched->install_error, "installing the seccomp filter"}
                 .message() +
             install_hint(launched->install_error) + " (--fail-open)");
  } else {
    if (config.verbose) {
      log_line(std::string("mode ") + mode_name(config.mode) + ", strategy " +
               strategy_name(choice.strategy) + " (" + choice.reason + ")" +
               (launched->wait_killable_recv ? "" : "; no WAIT_KILLABLE_RECV"));
    }
    if (!choice.degraded.empty()) {
      log_line("degraded: " + choice.degraded);
    } else if (getfd_refused && config.mode == Mode::kSocket) {
      // Socket mode emulates anyway; what is lost is the fallback for tasks
      // that change credentials or network namespace.
      log_line("degraded: pidfd_getfd is refused here; sockets are emulated "
               "and tasks that change credentials or network namespace get "
               "no options");
    }
  }

  HandlerOptions options{config.settings, config.mode, choice.strategy,
                         config.verbose, *own};
  options.wait_killable_recv = launched->wait_killable_recv;
  boost::asio::io_context io;
  // As PID 1 the container ends with its command: the kernel kills the
  // rest of the pid namespace as we exit, so nothing is left to serve.
  SessionOptions session_options{
      .reap_orphans = init,
      .signal_group = config.signal_group,
      .detach = !config.exit_with_command && getpid() != 1,
      .verbose = config.verbose};
  Session session(io, std::move(*launched), std::move(signals),
                  std::move(options), session_options);
  return session.run();
}

}  // namespace keepalive
