// SPDX-License-Identifier: Apache-2.0
#include "supervisor/log.h"

#include <time.h>
#include <unistd.h>

namespace keepalive {
namespace {

const char* g_prefix = "keepalive-supervise: ";

}  // namespace

void set_log_prefix(const char* prefix) { g_prefix = prefix; }

void log_line(const std::string& text) {
  std::string line = g_prefix + text + "\n";
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void log_line_noexcept(std::initializer_list<const char*> parts) noexcept {
  char line[1024];
  size_t length = 0;
  auto append = [&](const char* text) {
    while (*text != '\0' && length + 1 < sizeof line) line[length++] = *text++;
  };
  append(g_prefix);
  for (const char* part : parts) append(part);
  line[length++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, length);
  (void)ignored;
}

void log_warning_sink(const char* line, void*) { log_line(line); }

std::string suppressed_note(uint64_t count) {
  if (count == 0) return "";
  return " (" + std::to_string(count) + " similar warning" +
         (count == 1 ? "" : "s") + " suppressed)";
}

void RateLimitedLog::warn(const std::string& kind, const std::string& text) {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  warn_at(kind, text, now.tv_sec * int64_t{1000} + now.tv_nsec / 1'000'000);
}

void RateLimitedLog::warn_at(const std::string& kind, const std::string& text,
                             int64_t now_ms) {
  Kind& k = kinds_[kind];
  if (k.printed < kBurst || now_ms - k.last_ms >= kIntervalMs) {
    log_line(text + suppressed_note(k.suppressed));
    ++k.printed;
    k.last_ms = now_ms;
    k.suppressed = 0;
    k.last_suppressed.clear();
    return;
  }
  ++k.suppressed;
  k.last_suppressed = text;
}

void RateLimitedLog::flush() {
  for (auto& [kind, k] : kinds_) {
    if (k.suppressed == 0) continue;
    log_line(k.last_suppressed + suppressed_note(k.suppressed - 1));
    k.suppressed = 0;
    k.last_suppressed.clear();
  }
}

void Warnings::once(const std::string& key, const std::string& text) {
  if (seen_.insert(key).second) log_line(text);
}

}  // namespace keepalive
