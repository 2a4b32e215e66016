#include "supervisor/log.h"

#include <unistd.h>

namespace keepalive {

void log_line(const std::string& text) {
  std::string line = "keepalive-supervise: " + text + "\n";
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void log_line_noexcept(std::initializer_list<const char*> parts) noexcept {
  char line[1024];
  size_t length = 0;
  auto append = [&](const char* text) {
    while (*text != '\0' && length + 1 < sizeof line) line[length++] = *text++;
  };
  append("keepalive-supervise: ");
  for (const char* part : parts) append(part);
  line[length++] = '\n';
  ssize_t ignored = write(STDERR_FILENO, line, length);
  (void)ignored;
}

void log_warning_sink(const char* line, void*) { log_line(line); }

}  // namespace keepalive
