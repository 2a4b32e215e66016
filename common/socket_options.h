// SPDX-License-Identifier: Apache-2.0
// The kernel side of the option model: classify an fd, apply Settings to it,
// describe what was done. Used by the preload libraries (on the target's own
// fd) and by the supervisor (on a copy of it, or on a socket it creates).
// No exceptions, no allocation, no libstdc++ symbols.
#pragma once

#include <cstddef>

#include "common/settings.h"

namespace keepalive {

enum class SocketKind { kTcp, kNotTcp, kError };

// kTcp only for what tcp::socket_is_tcp accepts (common/tcp.h);
// kError (errno set) if the fd cannot be queried, e.g. it is not a socket.
SocketKind classify_socket(int fd);
// The same verdict from the socket's SO_DOMAIN, SO_TYPE and SO_PROTOCOL.
SocketKind socket_kind_of(int domain, int type, int protocol);

enum class OptionState : unsigned char { kSkipped, kApplied, kFailed };

struct OptionOutcome {
  OptionState state = OptionState::kSkipped;
  int value = 0;  // what was passed to setsockopt
  int error = 0;  // errno when kFailed
};

// What apply_to did, option by option, in application order.
struct ApplyReport {
  int fd = -1;
  Mode mode = Mode::kSocket;
  OptionOutcome outcomes[kOptionCount];

  const OptionOutcome& outcome(Option option) const {
    return outcomes[static_cast<int>(option)];
  }
  bool any_failed() const;
};

// Sets the options of `settings` that `mode` uses on `fd`, in upstream's
// order. A derived user timeout is computed from the keepalive values in
// effect on the socket (ours when set, else read back from the kernel).
// Does not check the socket's kind (see classify_socket) and does not
// preserve errno; callers that must, do.
ApplyReport apply_to(int fd, const Settings& settings, Mode mode);

// The TCP_USER_TIMEOUT that apply_to derives on `fd` once `report` holds the
// keepalive options' outcomes: derive_user_timeout over the values in
// effect, ours where applied, else the socket's own (read with getsockopt;
// 0 if unreadable).
int derive_user_timeout_on(int fd, const ApplyReport& report);

// One line: "fd 3 (connect): SO_KEEPALIVE=1 TCP_KEEPIDLE=15 ...".
void format_applied(const ApplyReport& report, char* buf, size_t size);

// Calls `sink` with one line per failed option, of the form
// "setsockopt(TCP_KEEPIDLE, 40000): Invalid argument".
void for_each_failure(const ApplyReport& report,
                      void (*sink)(const char* line, void* ctx), void* ctx);

}  // namespace keepalive
