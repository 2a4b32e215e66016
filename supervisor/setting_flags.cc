// SPDX-License-Identifier: Apache-2.0
#include "supervisor/setting_flags.h"

#include <set>
#include <vector>

#include "common/quote.h"

namespace keepalive {

std::string quoted(std::string_view word) {
  char text[kQuoteBufferSize];
  quote_value(word.data(), word.size(), text, sizeof text);
  return std::string("'") + text + "'";
}

std::expected<Mode, std::string> mode_flag_value(std::string_view text) {
  for (Mode mode : {Mode::kSocket, Mode::kConnect, Mode::kListen}) {
    if (text == mode_name(mode)) return mode;
  }
  return std::unexpected("--mode: invalid value " + quoted(text) +
                         " (expected socket, connect or listen)");
}

std::expected<Settings, std::string> with_flag_value(const Settings& settings,
                                                     const SettingFlag& flag,
                                                     const char* text) {
  ParsedValue parsed = parse_option_value(flag.option, text);
  if (!parsed.ok) {
    return std::unexpected(std::string("--") + flag.name + ": invalid value " +
                           quoted(text) + " (expected " + parsed.expected +
                           ")");
  }
  return settings.with_value(flag.option, parsed.value);
}

namespace {

// Any ASCII white space separates words: an annotation written with CRLF
// line ends, say, means the same as one written with spaces.
bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

std::vector<std::string_view> blank_separated(std::string_view text) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_blank(text[i])) ++i;
    size_t start = i;
    while (i < text.size() && !is_blank(text[i])) ++i;
    if (i > start) words.push_back(text.substr(start, i - start));
  }
  return words;
}

}  // namespace

std::expected<WorkloadOptions, std::string> parse_option_words(
    std::string_view text, const WorkloadOptions& base) {
  WorkloadOptions result = base;
  std::vector<std::string_view> words = blank_separated(text);
  std::set<std::string_view> seen;
  for (size_t i = 0; i < words.size(); ++i) {
    std::string_view word = words[i];
    if (word.substr(0, 2) != "--" || word.size() == 2) {
      return std::unexpected("unexpected word " + quoted(word) +
                             " (expected --NAME=VALUE)");
    }
    size_t equals = word.find('=');
    std::string_view name = word.substr(2, equals - 2);
    std::string value;
    if (equals != std::string_view::npos) {
      value = word.substr(equals + 1);
    } else if (i + 1 < words.size()) {
      value = words[++i];
    }
    const SettingFlag* flag = nullptr;
    for (const SettingFlag& f : kSettingFlags) {
      if (name == f.name) flag = &f;
    }
    if (flag == nullptr && name != "mode") {
      return std::unexpected("unknown option " + quoted(word) +
                             " (expected --mode or a socket option such as "
                             "--keepidle)");
    }
    if (value.empty()) {
      return std::unexpected("option '--" + std::string(name) +
                             "' needs a value");
    }
    if (value.find('\0') != std::string::npos) {
      return std::unexpected("--" + std::string(name) + ": invalid value " +
                             quoted(value) + " (it holds a NUL byte)");
    }
    if (!seen.insert(name).second) {
      return std::unexpected("option '--" + std::string(name) +
                             "' given more than once");
    }
    if (flag == nullptr) {
      auto mode = mode_flag_value(value);
      if (!mode) return std::unexpected(mode.error());
      result.mode = *mode;
      continue;
    }
    auto settings = with_flag_value(result.settings, *flag, value.c_str());
    if (!settings) return std::unexpected(settings.error());
    result.settings = *settings;
  }
  return result;
}

}  // namespace keepalive
