// SPDX-License-Identifier: Apache-2.0
#include "supervisor/check.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string_view>

#include "common/unique_fd.h"
#include "supervisor/error.h"
#include "supervisor/filter.h"
#include "supervisor/launch.h"
#include "supervisor/listener.h"
#include "supervisor/option_ring.h"
#include "supervisor/server.h"
#include "supervisor/strategy.h"
#include "supervisor/syscalls.h"

namespace keepalive {
namespace {

std::string yes_no(bool yes) { return yes ? "yes" : "no"; }

// The report, built with << as with a stream. Not an ostringstream: that
// links libstdc++'s locale and iostream machinery into keepalive-supervise,
// whose vtables and relocations every start pays for (more than half of
// the binary's text and two thirds of its relocations), for a report made
// of plain strings.
class ReportText {
 public:
  ReportText& operator<<(std::string_view part) {
    text_ += part;
    return *this;
  }
  const std::string& str() const { return text_; }

 private:
  std::string text_;
};

// Whether the kernel knows SECCOMP_ADDFD_FLAG_SEND (Linux 5.14). It checks
// the flags before it looks the id up, so for an id that names no call it
// fails with ENOENT if it knows them and EINVAL if not.
bool addfd_send_known(int listener) {
  seccomp_notif_addfd addfd{};
  addfd.id = ~0ULL;
  addfd.flags = SECCOMP_ADDFD_FLAG_SEND;
  addfd.srcfd = static_cast<__u32>(listener);  // any open fd
  return !(ioctl(listener, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) < 0 &&
           errno == EINVAL);
}

// What the probe child found, through its exit status.
enum ProbeExit { kGotOptions = 0, kNoOptions = 1, kSocketFailed = 2 };

struct Probe {
  bool user_notif = false;
  int user_notif_error = 0;
  bool launched = false;
  std::string launch_error;
  bool getfd_probed = false;  // the plan chooser ran
  bool getfd_permitted = false;
  int getfd_error = 0;
  bool wait_killable = false;
  bool sync_wake_up = false;
  bool addfd_send = false;
  bool emulated = false;
  int child_result = -1;
};

Probe probe_supervision() {
  Probe probe;
  if (sys::seccomp_action_available(SECCOMP_RET_USER_NOTIF) != 0) {
    probe.user_notif_error = errno;
    return probe;
  }
  probe.user_notif = true;

  Result<Identity> own = own_identity();
  if (!own) {
    probe.launch_error = own.error().message();
    return probe;
  }
  // The probe target is this very program, re-run as a tiny client: it
  // makes one TCP socket and reports whether it carries SO_KEEPALIVE.
  std::vector<std::string> command = {"/proc/self/exe", "--probe-target"};
  sigset_t mask;
  sigprocmask(SIG_SETMASK, nullptr, &mask);
  Result<PausedChild> child = start_paused(command, mask);
  if (!child) {
    probe.launch_error = child.error().message();
    return probe;
  }
  probe.getfd_probed = true;
  probe.getfd_permitted = child->getfd_permitted();
  probe.getfd_error = child->getfd_error();
  auto program = build_filter({.mode = Mode::kSocket,
                               .strategy = Strategy::kEmulate,
                               .watch_exec = false});
  if (!program) {
    probe.launch_error = program.error().message();
    return probe;
  }
  FilterPlan plan;
  plan.program = std::move(*program);
  plan.wait_killable_recv = kernel_has_wait_killable_recv();
  Result<Launched> launched = child->install(plan);
  if (!launched) {
    probe.launch_error = launched.error().message();
    return probe;
  }
  probe.launched = true;
  probe.wait_killable = launched->wait_killable_recv;
  probe.sync_wake_up = request_sync_wake_up(launched->listener.get());
  probe.addfd_send = addfd_send_known(launched->listener.get());

  HandlerOptions options{.settings = Settings(),
                         .mode = Mode::kSocket,
                         .verbose = false,
                         .log_label = {},
                         .own = *own,
                         .wait_killable_recv = launched->wait_killable_recv};
  Result<std::unique_ptr<KernelListener>> listener =
      KernelListener::open(launched->listener);
  if (!listener) {
    probe.launch_error = listener.error().message();
    // Unanswered, the probe target's socket() fails with ENOSYS and it
    // exits: nothing waits for it forever.
    launched->listener.reset();
  } else {
    Server server(**listener, std::move(options));
    pollfd p{(*listener)->fd(), POLLIN, 0};
    if (poll(&p, 1, 5000) == 1 && (p.revents & POLLIN)) {
      server.handle_one();
      probe.emulated = server.handler().stats().emulated == 1;
    }
  }
  int status = 0;
  while (waitpid(launched->pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) probe.child_result = WEXITSTATUS(status);
  return probe;
}

}  // namespace

int run_probe_target() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return kSocketFailed;
  int on = 0;
  socklen_t len = sizeof on;
  getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, &len);
  return on == 1 ? kGotOptions : kNoOptions;
}

CheckReport run_check(const Config& config) {
  ReportText out;
  utsname uts{};
  uname(&uts);
  out << "kernel: " << uts.release << "\n";

  Probe probe = probe_supervision();
  // EPERM/EACCES: seccomp() itself is refused (a seccomp profile or an
  // LSM), whatever the kernel's version.
  const bool refused = probe.user_notif_error == EPERM ||
                       probe.user_notif_error == EACCES;
  out << "seccomp user notification: "
      << (probe.user_notif ? "yes"
                           : "no (" + errno_text(probe.user_notif_error) +
                                 (refused ? "; seccomp() is refused here"
                                          : "; Linux 5.0+ needed") +
                                 ")")
      << "\n";
  // What only a supervised child can show is "not probed" without one,
  // never a "no" the kernel did not say.
  auto probed = [&](bool found) {
    return probe.launched ? yes_no(found)
                          : std::string("not probed (no supervised child)");
  };
  if (probe.user_notif) {
    if (!probe.launch_error.empty()) {
      out << "supervised child: failed: " << probe.launch_error << "\n";
    } else {
      out << "supervised child: " << (probe.launched ? "started" : "exec failed")
          << "\n";
    }
    out << "ADDFD (emulation, Linux 5.9+): " << probed(probe.emulated)
        << "\n";
    out << "ADDFD_FLAG_SEND (Linux 5.14+): " << probed(probe.addfd_send)
        << (!probe.launched ? ""
            : probe.addfd_send
                ? " (not used: when the supervisor is stopped or frozen it "
                  "can make socket() return 0; the fd is added, then the "
                  "call answered)"
                : " (not needed: the fd is added, then the call answered)")
        << "\n";
    out << "emulated socket carried the options: "
        << probed(probe.child_result == kGotOptions) << "\n";
    out << "pidfd_getfd on the target (continue strategy): "
        << (!probe.getfd_probed ? std::string("not probed (no child)")
            : probe.getfd_permitted
                ? std::string("permitted")
                : "refused (" + errno_text(probe.getfd_error) + ")")
        << "\n";
    out << "WAIT_KILLABLE_RECV (Linux 5.19+): " << probed(probe.wait_killable)
        << "\n";
    if (probe.launched) {
      out << "emulation leaves no fd behind: "
          << (probe.wait_killable
                  ? std::string("yes")
                  : "no (without WAIT_KILLABLE_RECV a signal to the program "
                    "between adding the socket and answering leaves the fd "
                    "in it; emulation stops after " +
                        std::to_string(kMaxLeakedFds) +
                        " such leaks; auto prefers continue where "
                        "pidfd_getfd is permitted)")
          << "\n";
    }
    out << "SYNC_WAKE_UP (Linux 6.6+): " << probed(probe.sync_wake_up)
        << "\n";
  }
  UniqueFd thread_pidfd(sys::pidfd_open(getpid(), PIDFD_THREAD));
  out << "PIDFD_THREAD (Linux 6.9+): " << yes_no(thread_pidfd.valid())
      << "\n";
  io_uring_params params{};
  UniqueFd ring(sys::io_uring_setup(1, &params));
  int ring_errno = errno;
  out << "io_uring: "
      << (ring.valid() ? "available (its sockets bypass seccomp; see "
                         "--deny-io-uring)"
                       : "unavailable (" + errno_text(ring_errno) + ")")
      << "\n";
  // As the supervisor would choose: the ring where it is also the faster
  // way here, with the two times when it is not.
  OptionRing options_ring;
  options_ring.keep_ring_only_if_faster();
  out << "options in one io_uring_enter (Linux 6.7+): "
      << (options_ring.prepare() == OptionRing::Path::kIoUring
              ? std::string("yes")
              : "no, one setsockopt each (" + options_ring.fallback_reason() +
                    ")")
      << "\n";

  bool emulation_works = probe.child_result == kGotOptions;
  // What the supervisor itself would find before its choice.
  bool can_leak = probe.launched ? !probe.wait_killable
                                 : !kernel_has_wait_killable_recv();
  for (Mode mode : {Mode::kSocket, Mode::kConnect, Mode::kListen}) {
    StrategyChoice choice =
        choose_strategy(config.strategy, mode, probe.getfd_permitted,
                        probe.getfd_error, can_leak);
    out << "mode " << mode_name(mode) << ": ";
    if (!probe.launched) {
      out << "cannot work: no child could be supervised here (see above)\n";
      continue;
    }
    if (!choice.ok) {
      out << "cannot work: " << choice.error << "\n";
      continue;
    }
    out << strategy_name(choice.strategy) << " (" << choice.reason << ")";
    if (choice.strategy == Strategy::kEmulate && !emulation_works) {
      out << " -- but emulation failed in the probe";
    }
    if (!choice.degraded.empty()) out << "; degraded: " << choice.degraded;
    out << "\n";
  }

  // The verdict is for what was asked: --mode and --strategy (defaults:
  // socket, auto).
  StrategyChoice asked =
      choose_strategy(config.strategy, config.mode, probe.getfd_permitted,
                      probe.getfd_error, can_leak);
  CheckReport report;
  report.can_work =
      probe.user_notif && probe.launched && asked.ok &&
      (asked.strategy == Strategy::kEmulate ? emulation_works
                                            : probe.getfd_permitted);
  out << "verdict: keepalive-supervise " << (report.can_work ? "can" : "cannot")
      << " work here (mode " << mode_name(config.mode) << ", strategy "
      << strategy_name(config.strategy) << ")\n";
  report.text = out.str();
  return report;
}

}  // namespace keepalive
