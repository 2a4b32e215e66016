#include "supervisor/strategy.h"

#include <string.h>

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

}  // namespace

StrategyChoice choose_strategy(Strategy requested, Mode mode,
                               bool getfd_permitted, int getfd_error) {
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
  if (mode == Mode::kSocket) {
    choice.strategy = Strategy::kEmulate;
    choice.reason =
        "socket mode: only TCP socket() calls are trapped, checked in the "
        "filter";
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
  choice.degraded = emulate_in_mode_note(mode);
  return choice;
}

}  // namespace keepalive
