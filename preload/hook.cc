// SPDX-License-Identifier: Apache-2.0
#include "preload/hook.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "common/socket_options.h"

namespace keepalive::preload {
namespace {

// Written once under pthread_once, read-only afterwards.
Settings g_settings;
bool g_secure = false;
pthread_once_t g_once = PTHREAD_ONCE_INIT;

// One write() per line so that lines from several threads never interleave.
void print_line(const char* text, void*) {
  char line[600];
  int n = snprintf(line, sizeof line, "libkeepalive: %s\n", text);
  if (n < 0) return;
  size_t len = static_cast<size_t>(n) < sizeof line ? n : sizeof line - 1;
  ssize_t ignored = write(STDERR_FILENO, line, len);
  (void)ignored;
}

const char* lookup_env(const char* name, void*) { return getenv(name); }

// dl_iterate_phdr callback: stops at the first loaded object named
// libkeepalive*, and records whether that object is `*data` (our own path).
int first_of_ours(dl_phdr_info* info, size_t, void* data) {
  const char* base = strrchr(info->dlpi_name, '/');
  base = base != nullptr ? base + 1 : info->dlpi_name;
  if (strncmp(base, "libkeepalive", strlen("libkeepalive")) != 0) return 0;
  auto* self = static_cast<const char**>(data);
  if (strcmp(info->dlpi_name, *self) != 0) *self = nullptr;
  return 1;
}

// Several of our libraries can be preloaded together, each with its own
// copy of this file; only the first in load order reports invalid values,
// so that a process gets each warning once. A copy installed under another
// name is never "first", so it always warns.
bool reports_warnings() {
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&first_of_ours), &self) == 0 ||
      self.dli_fname == nullptr) {
    return true;
  }
  const char* name = self.dli_fname;
  dl_iterate_phdr(first_of_ours, &name);
  return name != nullptr;
}

// The sink for invalid settings: asks reports_warnings() once, on the first
// warning, so that a process with valid settings never walks its objects.
void print_warning(const char* text, void*) {
  static const bool reports = reports_warnings();
  if (reports) print_line(text, nullptr);
}

void init_once() {
  // A setuid program must not be steered by its caller's environment.
  g_secure = getauxval(AT_SECURE) != 0;
  if (g_secure) return;
  g_settings = parse_settings(lookup_env, nullptr, print_warning, nullptr);
}

void init() { pthread_once(&g_once, init_once); }

// Parse at load time, before the program starts threads, so that warnings
// appear once per process even if it never makes a socket.
__attribute__((constructor)) void on_load() {
  int saved = errno;
  init();
  errno = saved;
}

}  // namespace

void apply_if_tcp(int fd, Mode mode) {
  int saved = errno;
  init();
  if (!g_secure && g_settings.enabled() &&
      classify_socket(fd) == SocketKind::kTcp) {
    ApplyReport report = apply_to(fd, g_settings, mode);
    if (g_settings.debug()) {
      char line[512];
      format_applied(report, line, sizeof line);
      print_line(line, nullptr);
      for_each_failure(report, print_line, nullptr);
    }
  }
  errno = saved;
}

void* resolve_next(const char* name, void** slot) {
  void* fn = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (fn != nullptr) return fn;
  int saved = errno;
  // dlsym is idempotent: two threads racing here store the same pointer.
  fn = dlsym(RTLD_NEXT, name);
  if (fn == nullptr) {
    static bool reported = false;
    if (!__atomic_exchange_n(&reported, true, __ATOMIC_RELAXED)) {
      char line[300];
      const char* why = dlerror();
      snprintf(line, sizeof line,
               "cannot find the real %s() (%s); calling the kernel directly",
               name, why != nullptr ? why : "no next definition");
      print_line(line, nullptr);
    }
  } else {
    __atomic_store_n(slot, fn, __ATOMIC_RELEASE);
  }
  errno = saved;
  return fn;
}

}  // namespace keepalive::preload
