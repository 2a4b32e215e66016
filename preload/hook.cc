// SPDX-License-Identifier: Apache-2.0
#include "preload/hook.h"

#include <dlfcn.h>
#include <errno.h>
#include <elf.h>
#include <link.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "common/socket_options.h"
#include "common/tcp.h"

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

// What marks an object as one of our libraries, whatever its file name: an
// ELF note (owner "keepalive", type 1) in a PT_NOTE segment of its own.
// Another preloaded libkeepalive*.so (upstream's, libkeepalive0's) lacks
// it; a renamed copy of ours has it.
constexpr char kNoteOwner[] = "keepalive";
constexpr uint32_t kNoteType = 1;
struct OurNote {
  ElfW(Nhdr) header;
  char owner[(sizeof kNoteOwner + 3) & ~size_t{3}];
  uint32_t desc;
};
__attribute__((section(".note.keepalive"), used, aligned(4)))
const OurNote kOurNote = {{sizeof kNoteOwner, sizeof(uint32_t), kNoteType},
                          "keepalive",
                          1};

bool carries_our_note(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_NOTE) continue;
    // Notes are padded to 4 bytes, or 8 in a segment aligned to 8.
    const size_t align = segment.p_align == 8 ? 8 : 4;
    const ElfW(Addr) address = info->dlpi_addr + segment.p_vaddr;
    // NOLINTNEXTLINE(performance-no-int-to-ptr): the loader gives an integer
    const char* at = reinterpret_cast<const char*>(address);
    const char* end = at + segment.p_memsz;
    while (end - at >= static_cast<ptrdiff_t>(sizeof(ElfW(Nhdr)))) {
      ElfW(Nhdr) note;
      memcpy(&note, at, sizeof note);
      const char* owner = at + sizeof note;
      size_t owner_size = (note.n_namesz + align - 1) & ~(align - 1);
      size_t desc_size = (note.n_descsz + align - 1) & ~(align - 1);
      if (owner_size + desc_size > static_cast<size_t>(end - owner)) break;
      if (note.n_type == kNoteType && note.n_namesz == sizeof kNoteOwner &&
          memcmp(owner, kNoteOwner, sizeof kNoteOwner) == 0) {
        return true;
      }
      at = owner + owner_size + desc_size;
    }
  }
  return false;
}

// dl_iterate_phdr callback: stops at the first loaded object that carries
// our note, and records whether that object is `*data` (our own path).
int first_of_ours(dl_phdr_info* info, size_t, void* data) {
  if (!carries_our_note(info)) return 0;
  auto* self = static_cast<const char**>(data);
  if (strcmp(info->dlpi_name, *self) != 0) *self = nullptr;
  return 1;
}

// Several of our libraries can be preloaded together, each with its own
// copy of this file; only the first in load order reports invalid values,
// so that a process gets each warning once, whatever else is preloaded.
bool reports_warnings() {
  Dl_info self{};
  if (dladdr(reinterpret_cast<void*>(&first_of_ours), &self) == 0 ||
      self.dli_fname == nullptr) {
    return true;
  }
  const char* name = self.dli_fname;
  dl_iterate_phdr(first_of_ours, static_cast<void*>(&name));
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

namespace {

// The options on `fd` if the process takes them and `is_tcp(fd)` holds
// (asked only then), with debug a line saying so; errno as it was.
template <typename Check>
void apply_when(int fd, Mode mode, Check is_tcp) {
  int saved = errno;
  init();
  if (!g_secure && g_settings.enabled() && is_tcp(fd)) {
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

}  // namespace

void apply_if_tcp(int fd, Mode mode) {
  apply_when(fd, mode,
             [](int s) { return classify_socket(s) == SocketKind::kTcp; });
}

void apply_if_tcp_protocol(int fd, Mode mode) {
  apply_when(fd, mode, [](int s) {
    int protocol = 0;
    socklen_t length = sizeof protocol;
    return getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &protocol, &length) == 0 &&
           tcp::is_tcp_protocol(protocol);
  });
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
