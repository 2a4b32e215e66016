// SPDX-License-Identifier: Apache-2.0
#include "supervisor/strategy.h"

#include <errno.h>
#include <string.h>

#include "supervisor/syscalls.h"

namespace keepalive {

const char* strategy_name(Strategy strategy) {
  switch (strategy) {
    case Strategy::kAuto:
      return "auto";
    case Strategy::kEmulate:
      return "emulate";
    case Strategy::kContinue:
      return "continue";
  }
  return "?";
}

namespace {

std::string getfd_refusal(int getfd_error) {
  char buf[128];
  return std::string("pidfd_getfd on the target is refused (") +
         strerror_r(getfd_error, buf, sizeof buf) +
         "; a container seccomp profile without CAP_SYS_PTRACE, or a ptrace "
         "restriction)";
}

std::string emulate_in_mode_note(Mode mode) {
  return std::string("in ") + mode_name(mode) +
         " mode the options go on every TCP socket when it is created, "
         "since emulation cannot tell client from server sockets";
}

constexpr const char* kLeakNote =
    "this kernel lacks WAIT_KILLABLE_RECV (Linux 5.19), so a signal to the "
    "program between adding an emulated socket and answering leaves an fd "
    "behind";

}  // namespace

bool kernel_has_wait_killable_recv() {
  // The kernel checks the flags before it reads the program: with none it
  // fails with EFAULT if it knows them and EINVAL if not.
  return !(sys::seccomp_set_filter(SECCOMP_FILTER_FLAG_NEW_LISTENER |
                                       SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
                                   nullptr) < 0 &&
           errno == EINVAL);
}

StrategyChoice choose_strategy(Strategy requested, Mode mode,
                               bool getfd_permitted, int getfd_error,
                               bool emulation_can_leak) {
  StrategyChoice choice;
  switch (requested) {
    case Strategy::kEmulate:
      choice.strategy = Strategy::kEmulate;
      choice.reason = "requested";
      if (mode != Mode::kSocket) choice.degraded = emulate_in_mode_note(mode);
      return choice;
    case Strategy::kContinue:
      if (!getfd_permitted) {
        choice.ok = false;
        choice.error = "--strategy continue: " + getfd_refusal(getfd_error) +
                       "; use --strategy emulate or auto";
        return choice;
      }
      choice.strategy = Strategy::kContinue;
      choice.reason = "requested";
      return choice;
    case Strategy::kAuto:
      break;
  }
  if (mode == Mode::kSocket && emulation_can_leak && getfd_permitted) {
    choice.strategy = Strategy::kContinue;
    choice.reason = std::string("socket mode: ") + kLeakNote +
                    "; continue has no such window and pidfd_getfd is "
                    "permitted (connect and listen are trapped instead)";
    return choice;
  }
  if (mode == Mode::kSocket) {
    choice.strategy = Strategy::kEmulate;
    choice.reason =
        "socket mode: only TCP socket() calls are trapped, checked in the "
        "filter";
    if (emulation_can_leak) {
      choice.reason += std::string("; ") + kLeakNote +
                       " (a few, then emulation stops), and " +
                       getfd_refusal(getfd_error);
    }
    return choice;
  }
  if (getfd_permitted) {
    choice.strategy = Strategy::kContinue;
    choice.reason = std::string(mode_name(mode)) +
                    " mode: exact semantics, pidfd_getfd is permitted";
    return choice;
  }
  choice.strategy = Strategy::kEmulate;
  choice.reason = getfd_refusal(getfd_error);
  if (emulation_can_leak) choice.reason += std::string("; ") + kLeakNote;
  choice.degraded = emulate_in_mode_note(mode);
  return choice;
}

}  // namespace keepalive
