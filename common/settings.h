// SPDX-License-Identifier: Apache-2.0
// The option model shared by every mode: which TCP options we set, their
// environment variables, their kernel ranges, and a validated, immutable
// Settings value parsed from the environment.
//
// Pure code: nothing here touches a socket. It is compiled without
// exceptions, RTTI or any libstdc++ symbol so that the preload libraries can
// link it without pulling the C++ runtime into the target program.
#pragma once

#include <cstddef>
#include <cstdint>

namespace keepalive {

// Which calls get options. Connect: client sockets. Listen: server sockets
// (accepted sockets inherit). Socket: every TCP socket.
enum class Mode : uint8_t { kConnect, kListen, kSocket };

// Returns "connect", "listen" or "socket".
const char* mode_name(Mode mode);

// The options, in the order upstream libkeepalive applies them, so that
// `strace -e trace=network` prints the same lines.
enum class Option : uint8_t {
  kKeepAlive,
  kKeepIdle,
  kKeepCnt,
  kKeepIntvl,
  kUserTimeout,
  kSynCnt,
  kDeferAccept,
  kMaxSeg,
  kWindowClamp,
};
inline constexpr int kOptionCount = 9;

struct OptionInfo {
  const char* env_name;     // e.g. "TCP_KEEPIDLE"; SO_KEEPALIVE has none
  const char* sockopt_name; // e.g. "TCP_KEEPIDLE", as strace prints it
  int level;                // SOL_SOCKET or IPPROTO_TCP
  int optname;
  int min;                  // kernel range for a non-zero value
  int max;
  const char* unit;         // "seconds", "milliseconds", "" (a count)
  int default_value;        // upstream's default
};

// Static facts about one option.
const OptionInfo& option_info(Option option);

// Whether `mode` sets `option` at all (SYNCNT: connect and socket modes;
// DEFER_ACCEPT: listen and socket modes; the rest: every mode).
bool option_applies(Option option, Mode mode);

// TCP_USER_TIMEOUT's value meaning "derive from the keepalive options".
inline constexpr int kDeriveUserTimeout = -1;

// A validated option set. Every value is either 0 ("leave the system
// default"), inside the option's kernel range, or, for kUserTimeout only,
// kDeriveUserTimeout. Build it with parse_settings or with_value.
class Settings {
 public:
  // Upstream's defaults: 15/9/15, derived user timeout, the rest 0.
  // constexpr so that a global Settings is constant-initialized and never
  // re-initialized after a library constructor has filled it in.
  constexpr Settings() = default;

  // Debian's libkeepalive0's semantics: SO_KEEPALIVE and only the values
  // given, no user timeout, set in its order (see parse_settings).
  static constexpr Settings libkeepalive0() {
    Settings settings;
    for (int i = 1; i < kOptionCount; ++i) settings.values_[i] = 0;
    settings.libkeepalive0_ = true;
    return settings;
  }

  int value(Option option) const { return values_[static_cast<int>(option)]; }
  bool enabled() const { return enabled_; }
  bool debug() const { return debug_; }
  // Whether these are libkeepalive0()'s semantics: apply_to then sets the
  // options in its order (SO_KEEPALIVE, KEEPCNT, KEEPIDLE, KEEPINTVL).
  bool libkeepalive0_order() const { return libkeepalive0_; }

  // A copy with `option` set to `value`, which must already be valid
  // (see parse_option_value).
  Settings with_value(Option option, int value) const;
  Settings with_enabled(bool enabled) const;
  Settings with_debug(bool debug) const;

 private:
  // In Option order; must agree with OptionInfo::default_value.
  int values_[kOptionCount] = {1, 15, 9, 15, kDeriveUserTimeout, 0, 0, 0, 0};
  bool enabled_ = true;
  bool debug_ = false;
  bool libkeepalive0_ = false;
};

// Outcome of checking one textual value against an option's rules.
struct ParsedValue {
  bool ok;
  int value;            // valid only when ok
  const char* expected; // when !ok: what was expected, in words
};

// Parses `text` strictly: decimal digits only (no sign, blank, prefix or
// trailing garbage), except "-1" for kUserTimeout; 0, or a value inside the
// kernel's range.
ParsedValue parse_option_value(Option option, const char* text);

// (keepidle + keepintvl * keepcnt) * 1000 in milliseconds, saturated at
// INT_MAX instead of wrapping. Negative inputs count as 0.
int derive_user_timeout(int keepidle, int keepintvl, int keepcnt);

// Looks up an environment variable; returns nullptr when unset.
using EnvLookup = const char* (*)(const char* name, void* ctx);
// Receives one warning line, without prefix or newline.
using WarningSink = void (*)(const char* line, void* ctx);

// Reads the settings from the environment:
//  - TCP_<NAME> for each option; LIBKEEPALIVE_DEBUG (set, even empty = on);
//  - the original libkeepalive's KEEPALIVE (off = disable everything),
//    KEEPIDLE, KEEPCNT, KEEPINTVL, used only where the TCP_* name is unset.
// When only those old names are set (none of the TCP_* names), the result
// is libkeepalive0()'s: what Debian's libkeepalive0 did with them, so that
// its users get what they asked for and nothing more.
// An invalid value produces one warning naming the variable, the value and
// what is used instead (the system default, i.e. 0), and never an error.
Settings parse_settings(EnvLookup lookup, void* lookup_ctx, WarningSink warn,
                        void* warn_ctx);

// The variable name a warning or message should quote for `option` as it was
// found (e.g. "KEEPIDLE" when only the legacy name was set). Exposed for
// tests; returns nullptr for SO_KEEPALIVE.
const char* legacy_env_name(Option option);

}  // namespace keepalive
