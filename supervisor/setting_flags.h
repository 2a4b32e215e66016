// SPDX-License-Identifier: Apache-2.0
// The command-line options that set socket options, shared by
// keepalive-supervise, keepalive-agent and the agent's per-container
// settings (a profile's listenerMetadata, an annotation), so that the
// three speak one syntax with one set of checks.
#pragma once

#include <expected>
#include <string>
#include <string_view>

#include "common/settings.h"

namespace keepalive {

// An option such as --keepidle and the socket option it sets.
struct SettingFlag {
  const char* name;  // without the dashes
  Option option;
};

inline constexpr SettingFlag kSettingFlags[] = {
    {"keepidle", Option::kKeepIdle},   {"keepcnt", Option::kKeepCnt},
    {"keepintvl", Option::kKeepIntvl}, {"user-timeout", Option::kUserTimeout},
    {"syncnt", Option::kSynCnt},       {"defer-accept", Option::kDeferAccept},
    {"maxseg", Option::kMaxSeg},       {"window-clamp", Option::kWindowClamp},
};

// --help's lines for kSettingFlags, in that order.
#define KEEPALIVE_SETTING_FLAGS_HELP                                         \
  "      --keepidle=S         TCP_KEEPIDLE: idle seconds before the first\n" \
  "                             probe (15)\n"                                \
  "      --keepcnt=N          TCP_KEEPCNT: unanswered probes before the\n"   \
  "                             connection drops (9)\n"                      \
  "      --keepintvl=S        TCP_KEEPINTVL: seconds between probes (15)\n"  \
  "      --user-timeout=MS    TCP_USER_TIMEOUT; -1 derives it from the\n"    \
  "                             three above (default)\n"                     \
  "      --syncnt=N           TCP_SYNCNT: SYN retries (connect, socket)\n"   \
  "      --defer-accept=S     TCP_DEFER_ACCEPT (listen, socket; 0: off)\n"   \
  "      --maxseg=BYTES       TCP_MAXSEG\n"                                  \
  "      --window-clamp=BYTES TCP_WINDOW_CLAMP\n"

// A word of the user's, in single quotes, as a message shows it: bounded
// in length and on one line whatever it holds (see quote_value).
std::string quoted(std::string_view word);

// The mode --mode=`text` names ("socket", "connect", "listen"), or the
// message for a bad value.
std::expected<Mode, std::string> mode_flag_value(std::string_view text);

// `settings` with `flag` set to `text`, or the message for a bad value:
// "--keepidle: invalid value 'x' (expected ...)".
std::expected<Settings, std::string> with_flag_value(const Settings& settings,
                                                     const SettingFlag& flag,
                                                     const char* text);

// What a container's options say: the settings and the mode.
struct WorkloadOptions {
  Settings settings;
  Mode mode = Mode::kSocket;
};

// Applies options written as on the command line ("--keepidle=30
// --mode=connect", words separated by blanks; "--NAME VALUE" too) over
// `base`. Takes --mode and the options of kSettingFlags; anything else, a
// missing or bad value, or an option given twice is refused with a message
// naming the word and what was expected.
std::expected<WorkloadOptions, std::string> parse_option_words(
    std::string_view text, const WorkloadOptions& base);

}  // namespace keepalive
