// SPDX-License-Identifier: Apache-2.0
#include "common/settings.h"

#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/quote.h"

namespace keepalive {
namespace {

// Kernel limits (include/net/tcp.h): MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL,
// MAX_TCP_KEEPCNT, MAX_TCP_SYNCNT, TCP_MIN_MSS, MAX_TCP_WINDOW.
constexpr OptionInfo kOptions[kOptionCount] = {
    {nullptr, "SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, 1, 1, "", 1},
    {"TCP_KEEPIDLE", "TCP_KEEPIDLE", IPPROTO_TCP, TCP_KEEPIDLE, 1, 32767,
     "seconds", 15},
    {"TCP_KEEPCNT", "TCP_KEEPCNT", IPPROTO_TCP, TCP_KEEPCNT, 1, 127, "probes",
     9},
    {"TCP_KEEPINTVL", "TCP_KEEPINTVL", IPPROTO_TCP, TCP_KEEPINTVL, 1, 32767,
     "seconds", 15},
    {"TCP_USER_TIMEOUT", "TCP_USER_TIMEOUT", IPPROTO_TCP, TCP_USER_TIMEOUT, 1,
     INT_MAX, "milliseconds", kDeriveUserTimeout},
    {"TCP_SYNCNT", "TCP_SYNCNT", IPPROTO_TCP, TCP_SYNCNT, 1, 127, "SYN retries",
     0},
    {"TCP_DEFER_ACCEPT", "TCP_DEFER_ACCEPT", IPPROTO_TCP, TCP_DEFER_ACCEPT, 1,
     INT_MAX, "seconds", 0},
    {"TCP_MAXSEG", "TCP_MAXSEG", IPPROTO_TCP, TCP_MAXSEG, 88, 32767, "bytes",
     0},
    {"TCP_WINDOW_CLAMP", "TCP_WINDOW_CLAMP", IPPROTO_TCP, TCP_WINDOW_CLAMP, 1,
     INT_MAX, "bytes", 0},
};

const char* expected_text(Option option) {
  switch (option) {
    case Option::kKeepAlive:
      return "1";
    case Option::kKeepIdle:
    case Option::kKeepIntvl:
      return "0 or whole seconds from 1 to 32767";
    case Option::kKeepCnt:
      return "0 or a count from 1 to 127";
    case Option::kUserTimeout:
      return "-1 (derive), 0 or whole milliseconds up to 2147483647";
    case Option::kSynCnt:
      return "0 or a count from 1 to 127";
    case Option::kDeferAccept:
      return "0 or whole seconds up to 2147483647";
    case Option::kMaxSeg:
      return "0 or bytes from 88 to 32767";
    case Option::kWindowClamp:
      return "0 or bytes up to 2147483647";
  }
  return "a valid value";
}

const char* env_or_null(EnvLookup lookup, void* ctx, const char* name) {
  return lookup == nullptr ? nullptr : lookup(name, ctx);
}

void warnf(WarningSink warn, void* ctx, const char* variable, const char* text,
           const char* expected, const char* instead) {
  if (warn == nullptr) return;
  // The value is the user's: quoted, so that it cannot forge a line.
  char value[kQuoteBufferSize];
  quote_value(text, value, sizeof value);
  char line[512];
  snprintf(line, sizeof line, "%s=\"%s\" is invalid (expected %s); %s",
           variable, value, expected, instead);
  warn(line, ctx);
}

}  // namespace

const char* mode_name(Mode mode) {
  switch (mode) {
    case Mode::kConnect:
      return "connect";
    case Mode::kListen:
      return "listen";
    case Mode::kSocket:
      return "socket";
  }
  return "?";
}

const OptionInfo& option_info(Option option) {
  return kOptions[static_cast<int>(option)];
}

bool option_applies(Option option, Mode mode) {
  switch (option) {
    case Option::kSynCnt:
      return mode != Mode::kListen;
    case Option::kDeferAccept:
      return mode != Mode::kConnect;
    default:
      return true;
  }
}

Settings Settings::with_value(Option option, int value) const {
  Settings copy = *this;
  copy.values_[static_cast<int>(option)] = value;
  return copy;
}

Settings Settings::with_enabled(bool enabled) const {
  Settings copy = *this;
  copy.enabled_ = enabled;
  return copy;
}

Settings Settings::with_debug(bool debug) const {
  Settings copy = *this;
  copy.debug_ = debug;
  return copy;
}

ParsedValue parse_option_value(Option option, const char* text) {
  const OptionInfo& info = option_info(option);
  ParsedValue bad{.ok = false, .value = 0, .expected = expected_text(option)};
  if (text == nullptr || *text == '\0') return bad;
  if (option == Option::kUserTimeout && text[0] == '-' && text[1] == '1' &&
      text[2] == '\0') {
    return {.ok = true, .value = kDeriveUserTimeout, .expected = nullptr};
  }
  long long value = 0;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p < '0' || *p > '9') return bad;
    value = value * 10 + (*p - '0');
    if (value > INT_MAX) return bad;  // stops before any overflow
  }
  if (value != 0 && (value < info.min || value > info.max)) return bad;
  return {.ok = true, .value = static_cast<int>(value), .expected = nullptr};
}

int derive_user_timeout(int keepidle, int keepintvl, int keepcnt) {
  long long idle = keepidle > 0 ? keepidle : 0;
  long long intvl = keepintvl > 0 ? keepintvl : 0;
  long long cnt = keepcnt > 0 ? keepcnt : 0;
  // Each factor is at most INT_MAX, so intvl * cnt fits in 63 bits; the
  // multiplication by 1000 is checked before it is done.
  long long seconds = idle + intvl * cnt;
  if (seconds > INT_MAX / 1000) return INT_MAX;
  return static_cast<int>(seconds * 1000);
}

const char* legacy_env_name(Option option) {
  switch (option) {
    case Option::kKeepIdle:
      return "KEEPIDLE";
    case Option::kKeepCnt:
      return "KEEPCNT";
    case Option::kKeepIntvl:
      return "KEEPINTVL";
    default:
      return nullptr;
  }
}

Settings parse_settings(EnvLookup lookup, void* lookup_ctx, WarningSink warn,
                        void* warn_ctx) {
  // Each variable is looked up once: which name was found decides the
  // defaults (libkeepalive0's when only old names are set) before any
  // value is applied.
  const char* names[kOptionCount] = {};
  const char* texts[kOptionCount] = {};
  const char* keepalive = env_or_null(lookup, lookup_ctx, "KEEPALIVE");
  bool any_tcp_name = false;
  bool any_old_name = keepalive != nullptr;
  for (int i = 1; i < kOptionCount; ++i) {
    names[i] = kOptions[i].env_name;
    texts[i] = env_or_null(lookup, lookup_ctx, names[i]);
    any_tcp_name = any_tcp_name || texts[i] != nullptr;
    const char* old_name = legacy_env_name(static_cast<Option>(i));
    if (texts[i] == nullptr && old_name != nullptr) {
      names[i] = old_name;
      texts[i] = env_or_null(lookup, lookup_ctx, old_name);
      any_old_name = any_old_name || texts[i] != nullptr;
    }
  }
  Settings settings = !any_tcp_name && any_old_name
                          ? Settings::libkeepalive0()
                          : Settings();
  for (int i = 1; i < kOptionCount; ++i) {
    if (texts[i] == nullptr) continue;
    Option option = static_cast<Option>(i);
    ParsedValue parsed = parse_option_value(option, texts[i]);
    if (parsed.ok) {
      settings = settings.with_value(option, parsed.value);
    } else {
      warnf(warn, warn_ctx, names[i], texts[i], parsed.expected,
            "using the system default");
      settings = settings.with_value(option, 0);
    }
  }

  if (keepalive != nullptr) {
    if (strcasecmp(keepalive, "off") == 0) {
      settings = settings.with_enabled(false);
    } else if (strcasecmp(keepalive, "on") != 0) {
      warnf(warn, warn_ctx, "KEEPALIVE", keepalive, "on or off",
            "keeping keepalive on");
    }
  }
  settings = settings.with_debug(
      env_or_null(lookup, lookup_ctx, "LIBKEEPALIVE_DEBUG") != nullptr);
  return settings;
}

}  // namespace keepalive
