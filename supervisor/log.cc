#include "supervisor/log.h"

#include <unistd.h>

namespace keepalive {

void log_line(const std::string& text) {
  std::string line = "keepalive-supervise: " + text + "\n";
  ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

void log_warning_sink(const char* line, void*) { log_line(line); }

}  // namespace keepalive
