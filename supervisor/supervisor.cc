// SPDX-License-Identifier: Apache-2.0
#include "supervisor/supervisor.h"

#include <errno.h>
#include <linux/capability.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <system_error>
#include <string>

#include "common/quote.h"
#include "supervisor/command_path.h"
#include "supervisor/exec_failure.h"
#include "supervisor/fd_limit.h"
#include "supervisor/filter.h"
#include "supervisor/launch.h"
#include "supervisor/log.h"
#include "supervisor/notification_handler.h"
#include "supervisor/session.h"
#include "supervisor/strategy.h"
#include "supervisor/syscalls.h"

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

// The --fail-open warning: the command runs without options, and why.
void warn_unsupervised(const Config& config, const std::string& why) {
  char name[kQuoteBufferSize];
  quote_value(config.command[0].data(), config.command[0].size(), name,
              sizeof name);
  log_line(std::string("running ") + name + " WITHOUT keepalive options: " +
           why + " (--fail-open)");
}

// Runs the command in place of the supervisor, without options, after one
// line saying why (--fail-open). Returns only if the exec failed, with the
// line and status the launch child would give (see exec_failure.h).
int exec_unsupervised(const Config& config, const std::string& why) {
  warn_unsupervised(config, why);
  std::vector<char*> argv;
  argv.reserve(config.command.size() + 1);
  for (const std::string& arg : config.command) {
    argv.push_back(const_cast<char*>(arg.c_str()));
  }
  argv.push_back(nullptr);
  CommandPath path = command_path(config.command[0], getenv("PATH"));
  execvp(argv[0], argv.data());
  int err = path.error != 0 ? path.error : errno;
  std::vector<const char*> candidates;
  candidates.reserve(path.candidates.size() + 1);
  for (const std::string& candidate : path.candidates) {
    candidates.push_back(candidate.c_str());
  }
  candidates.push_back(nullptr);
  char line[kExecFailureLineSize];
  size_t length = 0;
  int status = describe_exec_failure(argv[0], candidates.data(), err,
                                     strerrordesc_np, line, sizeof line,
                                     &length);
  ssize_t ignored = write(STDERR_FILENO, line, length);
  (void)ignored;
  return status;
}

// What supervising cannot start without: fails with one line, or under
// --fail-open runs the command unsupervised.
int cannot_supervise(const Config& config, const std::string& why) {
  if (config.fail_open) return exec_unsupervised(config, why);
  log_line(why);
  return kExitFailure;
}

// The filter and the child's set-up for `strategy`. Without CAP_SYS_ADMIN
// the filter needs no_new_privs, and setuid programs lose their privilege.
Result<FilterPlan> filter_plan(const Config& config, Strategy strategy,
                               bool wait_killable_recv,
                               const DescriptorBudget& budget) {
  bool no_new_privs = !has_cap_sys_admin();
  Result<std::vector<sock_filter>> program =
      build_filter(FilterSpec{.mode = config.mode,
                              .strategy = strategy,
                              .deny_io_uring = config.deny_io_uring,
                              .watch_exec = !no_new_privs});
  if (!program) return std::unexpected(program.error());
  FilterPlan plan;
  plan.program = std::move(*program);
  plan.no_new_privs = no_new_privs;
  plan.wait_killable_recv = wait_killable_recv;
  plan.fail_open = config.fail_open;
  plan.own_process_group = config.signal_group;
  if (budget.raised) plan.command_nofile = budget.original;
  return plan;
}

}  // namespace

sigset_t forwarded_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int sig = 1; sig < 32; ++sig) sigaddset(&set, sig);
  for (int sig : {SIGKILL, SIGSTOP, SIGCHLD, SIGSEGV, SIGBUS, SIGFPE, SIGILL,
                  SIGTRAP, SIGSYS}) {
    sigdelset(&set, sig);
  }
  for (int sig = SIGRTMIN; sig <= SIGRTMAX; ++sig) sigaddset(&set, sig);
  return set;
}

int run_supervisor(const Config& config) {
  // First, before anything opens a descriptor.
  DescriptorBudget budget = reserve_descriptors(kSupervisorDescriptors);
  if (!budget.enough) return cannot_supervise(config, describe_shortfall(budget));

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
  sigset_t original_mask;
  sigset_t forwarded = forwarded_signals();
  if (init) sigaddset(&forwarded, SIGCHLD);
  sigprocmask(SIG_BLOCK, &forwarded, &original_mask);
  UniqueFd signals(signalfd(-1, &forwarded, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals.valid()) {
    log_line(SysError{errno, "signalfd"}.message());
    return kExitFailure;
  }

  // What the event loop needs, made before the command starts: a failure
  // here leaves it unstarted (or, with --fail-open, run without us) rather
  // than under a filter that nobody answers.
  std::optional<boost::asio::io_context> io;
  std::optional<ServingThread> serving;
  try {
    try {
      io.emplace(1);
    } catch (const std::system_error& e) {
      throw std::system_error(e.code(), "the event loop's epoll set");
    }
    serving.emplace();
  } catch (const std::exception& e) {
    serving.reset();
    io.reset();
    // As the command would have been started.
    sigprocmask(SIG_SETMASK, &original_mask, nullptr);
    if (budget.raised) setrlimit(RLIMIT_NOFILE, &budget.original);
    return cannot_supervise(
        config, std::string(e.what()) + " (raise the memory limit, ulimit -v)");
  }

  // Start the command paused, probe it, decide, then let it run.
  Result<PausedChild> paused = start_paused(config.command, original_mask);
  if (!paused) {
    log_line(paused.error().message());
    return kExitFailure;
  }
  bool getfd_refused = !paused->getfd_permitted();
  // Emulation can leak fds without WAIT_KILLABLE_RECV (see Server::answer).
  bool killable = kernel_has_wait_killable_recv();
  StrategyChoice choice =
      choose_strategy(config.strategy, config.mode, paused->getfd_permitted(),
                      paused->getfd_error(), !killable);
  if (!choice.ok) {
    log_line(choice.error);
    return kExitFailure;  // the paused child is killed and reaped
  }
  Result<FilterPlan> plan =
      filter_plan(config, choice.strategy, killable, budget);
  if (!plan) {
    log_line(plan.error().message());
    return kExitFailure;
  }
  Result<Launched> launched = paused->install(*plan);
  if (!launched) {
    const SysError& err = launched.error();
    log_line(err.message() + install_hint(err.err) +
             (err.err == EBUSY ? "; --fail-open runs the command without "
                                 "options instead"
                               : ""));
    return kExitFailure;
  }
  if (launched->install_error != 0) {
    warn_unsupervised(
        config,
        SysError{launched->install_error, "installing the seccomp filter"}
                .message() +
            install_hint(launched->install_error));
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

  HandlerOptions options{.settings = config.settings,
                         .mode = config.mode,
                         .verbose = config.verbose,
                         .log_label = {},
                         .own = *own,
                         .wait_killable_recv = launched->wait_killable_recv};
  // As PID 1 the container ends with its command: the kernel kills the
  // rest of the pid namespace as we exit, so nothing is left to serve.
  SessionOptions session_options{
      .reap_orphans = init,
      .signal_group = config.signal_group,
      .detach = !config.exit_with_command && getpid() != 1,
      .verbose = config.verbose};
  pid_t child = launched->pid;
  std::optional<Session> session;
  try {
    session.emplace(*io, std::move(*launched), std::move(signals),
                    std::move(options), session_options, *serving);
  } catch (const std::exception& e) {
    // Killed before our listener closes, so that its trapped calls do not
    // fail with ENOSYS and print a second, misleading line.
    kill(child, SIGKILL);
    while (waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
    log_line_noexcept({"starting the event loop: ", e.what(),
                       " (raise the memory limit)"});
    return kExitFailure;
  }
  return session->run();
}

}  // namespace keepalive
