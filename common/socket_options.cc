// SPDX-License-Identifier: Apache-2.0
#include "common/socket_options.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "common/tcp.h"

namespace keepalive {
namespace {

int get_int_option(int fd, int level, int name, int* out) {
  socklen_t len = sizeof *out;
  return getsockopt(fd, level, name, out, &len);
}

// The value the kernel uses for a keepalive option: ours when we set it,
// otherwise the socket's current one (the system default).
int effective(int fd, const OptionOutcome& outcome, Option option) {
  if (outcome.state == OptionState::kApplied) return outcome.value;
  int value = 0;
  const OptionInfo& info = option_info(option);
  if (get_int_option(fd, info.level, info.optname, &value) != 0) return 0;
  return value;
}

}  // namespace

SocketKind classify_socket(int fd) {
  int domain = 0, type = 0, protocol = 0;
  if (get_int_option(fd, SOL_SOCKET, SO_DOMAIN, &domain) != 0 ||
      get_int_option(fd, SOL_SOCKET, SO_TYPE, &type) != 0 ||
      get_int_option(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) != 0) {
    return SocketKind::kError;
  }
  return socket_kind_of(domain, type, protocol);
}

SocketKind socket_kind_of(int domain, int type, int protocol) {
  return tcp::socket_is_tcp(domain, type, protocol) ? SocketKind::kTcp
                                                     : SocketKind::kNotTcp;
}

bool ApplyReport::any_failed() const {
  for (const OptionOutcome& o : outcomes) {
    if (o.state == OptionState::kFailed) return true;
  }
  return false;
}

ApplyReport apply_to(int fd, const Settings& settings, Mode mode) {
  ApplyReport report;
  report.fd = fd;
  report.mode = mode;
  if (!settings.enabled()) return report;
  // Upstream's order, so that strace shows the lines its users know; or
  // libkeepalive0's, for its semantics.
  static constexpr Option kUpstreamOrder[kOptionCount] = {
      Option::kKeepAlive,   Option::kKeepIdle,    Option::kKeepCnt,
      Option::kKeepIntvl,   Option::kUserTimeout, Option::kSynCnt,
      Option::kDeferAccept, Option::kMaxSeg,      Option::kWindowClamp};
  static constexpr Option kLibkeepalive0Order[kOptionCount] = {
      Option::kKeepAlive,   Option::kKeepCnt,     Option::kKeepIdle,
      Option::kKeepIntvl,   Option::kUserTimeout, Option::kSynCnt,
      Option::kDeferAccept, Option::kMaxSeg,      Option::kWindowClamp};
  const Option* order = settings.libkeepalive0_order() ? kLibkeepalive0Order
                                                       : kUpstreamOrder;
  for (int k = 0; k < kOptionCount; ++k) {
    Option option = order[k];
    int i = static_cast<int>(option);
    if (!option_applies(option, mode)) continue;
    int value = settings.value(option);
    if (option == Option::kUserTimeout && value == kDeriveUserTimeout) {
      value = derive_user_timeout_on(fd, report);
    }
    if (value == 0) continue;  // 0 leaves the system default
    const OptionInfo& info = option_info(option);
    OptionOutcome& outcome = report.outcomes[i];
    outcome.value = value;
    if (setsockopt(fd, info.level, info.optname, &value, sizeof value) == 0) {
      outcome.state = OptionState::kApplied;
    } else {
      outcome.state = OptionState::kFailed;
      outcome.error = errno;
    }
  }
  return report;
}

int derive_user_timeout_on(int fd, const ApplyReport& report) {
  return derive_user_timeout(
      effective(fd, report.outcome(Option::kKeepIdle), Option::kKeepIdle),
      effective(fd, report.outcome(Option::kKeepIntvl), Option::kKeepIntvl),
      effective(fd, report.outcome(Option::kKeepCnt), Option::kKeepCnt));
}

void format_applied(const ApplyReport& report, char* buf, size_t size) {
  if (size == 0) return;
  int used = snprintf(buf, size, "fd %d (%s):", report.fd,
                      mode_name(report.mode));
  bool any = false;
  for (int i = 0; i < kOptionCount; ++i) {
    const OptionOutcome& o = report.outcomes[i];
    if (o.state != OptionState::kApplied) continue;
    if (used < 0 || static_cast<size_t>(used) >= size) return;
    used += snprintf(buf + used, size - used, " %s=%d",
                     option_info(static_cast<Option>(i)).sockopt_name, o.value);
    any = true;
  }
  if (!any && used >= 0 && static_cast<size_t>(used) < size) {
    snprintf(buf + used, size - used, " nothing applied");
  }
}

void for_each_failure(const ApplyReport& report,
                      void (*sink)(const char* line, void* ctx), void* ctx) {
  for (int i = 0; i < kOptionCount; ++i) {
    const OptionOutcome& o = report.outcomes[i];
    if (o.state != OptionState::kFailed) continue;
    char err[128];
    // GNU strerror_r: thread-safe, returns the message (maybe not in err).
    const char* text = strerror_r(o.error, err, sizeof err);
    char line[256];
    snprintf(line, sizeof line, "setsockopt(%s, %d): %s",
             option_info(static_cast<Option>(i)).sockopt_name, o.value, text);
    sink(line, ctx);
  }
}

}  // namespace keepalive
