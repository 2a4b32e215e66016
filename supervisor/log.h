// SPDX-License-Identifier: Apache-2.0
// Messages from the supervisor: one write() per line on stderr, prefixed
// with the program name, so they never interleave with the target's output.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <set>
#include <unordered_map>

namespace keepalive {

// Sets what every line starts with ("keepalive-supervise: " unless set):
// "keepalive-agent: " for the agent. `prefix` must outlive the process.
void set_log_prefix(const char* prefix);

// Writes "keepalive-supervise: <text>\n" (or the prefix set) to stderr.
void log_line(const std::string& text);

// The same for `parts`, joined, without allocating (truncated at 1 KiB):
// for paths that run out of memory.
void log_line_noexcept(std::initializer_list<const char*> parts) noexcept;

// Sink for parse_settings warnings (ctx unused).
void log_warning_sink(const char* line, void* ctx);

// Warnings grouped by kind (a fixed set of names, never a pid), so that a
// storm of similar events (thousands of children dropping privileges)
// prints a bounded number of lines: the first kBurst of a kind, then at
// most one per kIntervalMs, which says how many were suppressed since the
// last. Memory: one small record per kind.
class RateLimitedLog {
 public:
  static constexpr int kBurst = 5;
  static constexpr int64_t kIntervalMs = 10'000;

  // Logs `text` (of kind `kind`) unless the kind's budget is spent.
  void warn(const std::string& kind, const std::string& text);
  // The same, at monotonic time `now_ms` (for tests).
  void warn_at(const std::string& kind, const std::string& text,
               int64_t now_ms);
  // Logs, for each kind with suppressed warnings, the last one with their
  // count, and forgets them.
  void flush();

 private:
  struct Kind {
    int printed = 0;
    int64_t last_ms = 0;  // when the last line of this kind was printed
    uint64_t suppressed = 0;
    std::string last_suppressed;
  };
  std::unordered_map<std::string, Kind> kinds_;
};

// The warnings of one serving thread: each fixed condition (a key from a
// bounded set: an option's failure, a missing kernel feature, never a pid)
// once, and events that come per task rate-limited by kind.
class Warnings {
 public:
  // Logs `text` the first time `key` is seen.
  void once(const std::string& key, const std::string& text);
  // RateLimitedLog::warn.
  void limited(const std::string& kind, const std::string& text) {
    limited_.warn(kind, text);
  }
  void flush() { limited_.flush(); }

 private:
  std::set<std::string> seen_;
  RateLimitedLog limited_;
};

// " (N similar warnings suppressed)", or nothing when N is 0.
std::string suppressed_note(uint64_t count);

}  // namespace keepalive
