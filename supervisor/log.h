// Messages from the supervisor: one write() per line on stderr, prefixed
// with the program name, so they never interleave with the target's output.
#pragma once

#include <initializer_list>
#include <string>

namespace keepalive {

// Writes "keepalive-supervise: <text>\n" to stderr.
void log_line(const std::string& text);

// The same for `parts`, joined, without allocating (truncated at 1 KiB):
// for paths that run out of memory.
void log_line_noexcept(std::initializer_list<const char*> parts) noexcept;

// Sink for parse_settings warnings (ctx unused).
void log_warning_sink(const char* line, void* ctx);

}  // namespace keepalive
