// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the environment every preloaded process hands us.
// The input is an environment block, "NAME=VALUE" entries separated by NUL
// bytes; parse_settings reads it as getenv would. What must hold whatever
// the input: no crash or undefined behaviour (ASan, UBSan), every warning
// one bounded line, every value in its option's range, and the quoted form
// of any value one bounded line.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <string_view>
#include <vector>

#include "common/quote.h"
#include "common/settings.h"

namespace {

using keepalive::Option;

struct Environment {
  std::vector<std::string> entries;
};

const char* lookup(const char* name, void* ctx) {
  const auto* env = static_cast<const Environment*>(ctx);
  size_t length = strlen(name);
  for (const std::string& entry : env->entries) {
    if (entry.size() > length && entry.compare(0, length, name) == 0 &&
        entry[length] == '=') {
      return entry.c_str() + length + 1;
    }
  }
  return nullptr;
}

void check_warning(const char* line, void*) {
  size_t length = strlen(line);
  if (length > 1024 || memchr(line, '\n', length) != nullptr) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Environment env;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    size_t end = rest.find('\0');
    env.entries.emplace_back(rest.substr(0, end));
    rest = end == std::string_view::npos ? "" : rest.substr(end + 1);
  }
  keepalive::Settings settings =
      keepalive::parse_settings(lookup, &env, check_warning, nullptr);
  for (int i = 1; i < keepalive::kOptionCount; ++i) {
    Option option = static_cast<Option>(i);
    int value = settings.value(option);
    const keepalive::OptionInfo& info = keepalive::option_info(option);
    bool derived = option == Option::kUserTimeout &&
                   value == keepalive::kDeriveUserTimeout;
    if (value != 0 && !derived && (value < info.min || value > info.max)) {
      abort();
    }
  }
  // Each entry's value, as a message would quote it.
  for (const std::string& entry : env.entries) {
    char quoted[keepalive::kQuoteBufferSize];
    keepalive::quote_value(entry.data(), entry.size(), quoted, sizeof quoted);
    size_t length = strnlen(quoted, sizeof quoted);
    if (length == sizeof quoted || memchr(quoted, '\n', length) != nullptr) {
      abort();
    }
    for (int i = 1; i < keepalive::kOptionCount; ++i) {
      keepalive::parse_option_value(static_cast<Option>(i), entry.c_str());
    }
  }
  return 0;
}
