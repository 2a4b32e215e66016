// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: keepalive-supervise's command line (parse_command_line,
// getopt_long underneath). The input is the words after the program name,
// separated by NUL or newline bytes; the environment is empty (the
// settings target covers it). What must hold whatever the input: no crash
// or undefined behaviour; a usage error is one bounded line; a run has a
// command, a check none; every value is in its option's range; and a
// second parse of the same words gives the same result (getopt keeps
// state between calls, which the parser must reset).
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <string>
#include <string_view>
#include <vector>

#include "supervisor/cli.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using keepalive::CliAction;
using keepalive::CliResult;

const char* no_variable(const char*, void*) { return nullptr; }

void check_warning(const char* line, void*) {
  keepalive::fuzz::check_one_line("a warning", line);
}

CliResult parse(const std::vector<std::string>& words) {
  std::vector<const char*> argv = {"keepalive-supervise"};
  for (const std::string& word : words) argv.push_back(word.c_str());
  argv.push_back(nullptr);
  return keepalive::parse_command_line(static_cast<int>(argv.size() - 1),
                                       argv.data(), no_variable, nullptr,
                                       check_warning, nullptr);
}

bool same(const CliResult& a, const CliResult& b) {
  const keepalive::Config& x = a.config;
  const keepalive::Config& y = b.config;
  return a.action == b.action && a.text == b.text &&
         keepalive::fuzz::same_settings(x.settings, y.settings) &&
         x.mode == y.mode && x.strategy == y.strategy &&
         x.verbose == y.verbose && x.deny_io_uring == y.deny_io_uring &&
         x.init == y.init && x.signal_group == y.signal_group &&
         x.fail_open == y.fail_open &&
         x.exit_with_command == y.exit_with_command && x.command == y.command;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> words;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    size_t end = rest.find_first_of(std::string_view("\0\n", 2));
    words.emplace_back(rest.substr(0, end));
    rest = end == std::string_view::npos ? "" : rest.substr(end + 1);
  }
  CliResult result = parse(words);
  switch (result.action) {
    case CliAction::kUsageError:
      if (result.text.empty()) abort();
      keepalive::fuzz::check_one_line("a usage error", result.text);
      break;
    case CliAction::kRun:
      if (result.config.command.empty()) abort();
      break;
    case CliAction::kCheck:
      if (!result.config.command.empty()) abort();
      break;
    case CliAction::kHelp:
    case CliAction::kVersion:
      if (result.text.empty()) abort();
      break;
  }
  keepalive::fuzz::check_in_range(result.config.settings);
  if (!same(result, parse(words))) {
    fprintf(stderr, "a second parse of the same words differs\n");
    abort();
  }
  return 0;
}
