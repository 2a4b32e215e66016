// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: a container's own options (parse_option_words), as
// keepalive-agent applies them: the profile's listenerMetadata over the
// node's settings, then the org.keepalive.options annotation, if any, over
// the result (container_options in agent/agent.cc). The input is the
// metadata, then, after the first blank line ("\n\n"), the annotation.
// What must hold whatever the input: no crash or undefined behaviour; a
// refusal is one bounded line; every value is in its option's range; and
// words the agent takes mean the same on keepalive-supervise's command
// line: parse_command_line accepts them, with the same settings and mode.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/cli.h"
#include "supervisor/setting_flags.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using keepalive::WorkloadOptions;

const char* no_variable(const char*, void*) { return nullptr; }

void ignore_warning(const char*, void*) {}

// The node's options as keepalive-agent starts with them without flags.
WorkloadOptions node_options() {
  return WorkloadOptions{.settings = keepalive::parse_settings(
                             no_variable, nullptr, ignore_warning, nullptr),
                         .mode = keepalive::Mode::kSocket};
}

// `text` applied over `base`, checked.
std::optional<WorkloadOptions> apply(std::string_view text,
                                     const WorkloadOptions& base) {
  auto options = keepalive::parse_option_words(text, base);
  if (!options) {
    keepalive::fuzz::check_one_line("a refusal", options.error());
    return std::nullopt;
  }
  keepalive::fuzz::check_in_range(options->settings);
  return *options;
}

// The words of `text`, split at ASCII white space. parse_option_words may
// take fewer of these bytes as blanks, but a word it accepts holds none
// of them, so whenever it succeeds its words are these.
std::vector<std::string> blank_separated(std::string_view text) {
  constexpr std::string_view kWhiteSpace = " \t\n\v\f\r";
  std::vector<std::string> words;
  size_t i = 0;
  while ((i = text.find_first_not_of(kWhiteSpace, i)) != text.npos) {
    size_t end = std::min(text.find_first_of(kWhiteSpace, i), text.size());
    words.emplace_back(text.substr(i, end - i));
    i = end;
  }
  return words;
}

// Aborts unless keepalive-supervise takes `text`'s words as `expected`.
void check_same_on_command_line(std::string_view text,
                                const WorkloadOptions& expected) {
  std::vector<std::string> words = blank_separated(text);
  std::vector<const char*> argv = {"keepalive-supervise"};
  for (const std::string& word : words) argv.push_back(word.c_str());
  argv.push_back("--");
  argv.push_back("true");
  argv.push_back(nullptr);
  keepalive::CliResult result = keepalive::parse_command_line(
      static_cast<int>(argv.size() - 1), argv.data(), no_variable, nullptr,
      ignore_warning, nullptr);
  if (result.action != keepalive::CliAction::kRun) {
    fprintf(stderr, "the agent takes these words, the command line not: %s\n",
            result.text.c_str());
    abort();
  }
  if (!keepalive::fuzz::same_settings(result.config.settings,
                                      expected.settings) ||
      result.config.mode != expected.mode) {
    fprintf(stderr,
            "the agent and the command line read these words "
            "differently\n");
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t blank_line = input.find("\n\n");
  std::string_view metadata = input.substr(0, blank_line);
  std::optional<std::string_view> annotation;
  if (blank_line != std::string_view::npos) {
    annotation = input.substr(blank_line + 2);
  }

  WorkloadOptions node = node_options();
  std::optional<WorkloadOptions> options = apply(metadata, node);
  // A NUL ends a word on a command line: such words cannot be compared.
  if (options && metadata.find('\0') == std::string_view::npos) {
    check_same_on_command_line(metadata, *options);
  }
  if (options && annotation) apply(*annotation, *options);
  return 0;
}
