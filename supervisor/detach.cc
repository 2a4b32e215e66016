// SPDX-License-Identifier: Apache-2.0
#include "supervisor/detach.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "common/unique_fd.h"
#include "supervisor/server.h"

namespace keepalive {
namespace {

// Whether `fd` is one of the supervisor's own: all of them carry
// FD_CLOEXEC, and with a standard descriptor closed by the caller one of
// them may sit at 0, 1 or 2.
bool ours(int fd) {
  int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && (flags & FD_CLOEXEC) != 0;
}

// Puts standard descriptor `fd` on /dev/null (`null`, an fd above 2).
void to_null(int fd, int null) {
  if (null >= 0 && !ours(fd)) dup2(null, fd);
}

// Whether warnings had better not go to `fd`: closed (the next descriptor
// opened would take its number), or a pipe or FIFO, whose reader may be
// waiting for its end.
bool unfit_for_warnings(int fd) {
  struct stat st;
  return fstat(fd, &st) != 0 || S_ISFIFO(st.st_mode);
}

// Closes the descriptors above stderr that lack FD_CLOEXEC: those the
// supervisor inherited and passed on to the command.
void close_inherited() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;  // without /proc: left open
  std::vector<int> inherited;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long fd = strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd <= STDERR_FILENO ||
        fd == dirfd(dir)) {
      continue;
    }
    int flags = fcntl(static_cast<int>(fd), F_GETFD);
    if (flags >= 0 && (flags & FD_CLOEXEC) == 0) {
      inherited.push_back(static_cast<int>(fd));
    }
  }
  closedir(dir);
  for (int fd : inherited) UniqueFd{fd};  // closes it
}

void default_signals() {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    signal(sig, sig == SIGPIPE ? SIG_IGN : SIG_DFL);  // EINVAL: not a signal
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

}  // namespace

bool filter_in_use(int listener) {
  pollfd fd{listener, POLLIN, 0};
  for (;;) {
    int n = poll(&fd, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    // A failed poll says nothing: serving on costs little, ENOSYS a lot.
    return n <= 0 || (fd.revents & (POLLHUP | POLLERR | POLLNVAL)) == 0;
  }
}

Result<pid_t> serve_detached(Server& server) {
  pid_t pid = fork();
  if (pid < 0) return errno_error("fork");
  if (pid > 0) return pid;

  setsid();
  if (chdir("/") != 0) {
    // Staying in the old directory only pins its mount.
  }
  UniqueFd opened(open("/dev/null", O_RDWR | O_CLOEXEC));
  UniqueFd null(opened.valid() ? fcntl(opened.get(), F_DUPFD_CLOEXEC, 3) : -1);
  opened.reset();
  to_null(STDIN_FILENO, null.get());
  to_null(STDOUT_FILENO, null.get());
  if (unfit_for_warnings(STDERR_FILENO)) to_null(STDERR_FILENO, null.get());
  null.reset();
  close_inherited();
  default_signals();
  server.serve(-1);  // poll() ignores a negative fd: no stop but signals
  _exit(0);
}

}  // namespace keepalive
