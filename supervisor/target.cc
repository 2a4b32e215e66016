// SPDX-License-Identifier: Apache-2.0
#include "supervisor/target.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <string>

#include "supervisor/syscalls.h"
#include "supervisor/text_file.h"

namespace keepalive {
namespace {

std::string proc_path(pid_t tid, const char* leaf) {
  return "/proc/" + std::to_string(tid) + "/" + leaf;
}

// The numbers after "Name:\t" on the line that starts with `name`.
std::vector<long> status_numbers(const std::string& status, const char* name) {
  std::vector<long> numbers;
  std::string key = std::string("\n") + name + ":";
  size_t at = status.find(key);
  if (at == std::string::npos) return numbers;
  const char* p = status.c_str() + at + key.size();
  for (;;) {
    while (*p == ' ' || *p == '\t') ++p;
    if (*p < '0' || *p > '9') break;
    char* end;
    numbers.push_back(strtol(p, &end, 10));
    p = end;
  }
  return numbers;
}

// The network namespace is identified by the inode of the namespace's own
// "dev" entry under /proc/PID/net, not by /proc/PID/ns/net: the latter needs
// ptrace read access, which a non-dumpable target refuses to a supervisor
// without CAP_SYS_PTRACE (an ordinary user, root in a container), so
// emulation would silently skip it; /proc/PID/net needs none. Each
// namespace registers its own entries, whose inode numbers are unique while
// it lives. /proc/TID resolves to the thread itself, whose namespace is
// its own.
Result<void> read_netns(const std::string& path, Identity* id) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return errno_error("stat " + path);
  id->netns = st.st_ino;
  id->netns_dev = st.st_dev;
  return {};
}

// Reads `fd` from offset 0 into `out`, at most `limit` bytes, in one
// pread: /proc's seq_files and attr files hand out their whole text in
// one read when it fits, and a read at another offset would generate the
// text again.
Result<void> pread_once(int fd, std::string* out, size_t limit,
                        const char* what) {
  out->resize(limit);
  ssize_t n;
  do {
    n = pread(fd, out->data(), limit, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_error(std::string("read ") + what);
  out->resize(static_cast<size_t>(n));
  return {};
}

// Whether PIDFD_THREAD works is probed once, on ourselves: learnt from a
// target's task, the EINVAL of a task that happens to be exiting would be
// taken for an old kernel for good, and every later thread would go the
// leader's way (which newer kernels answer with ENOENT, not EINVAL).
bool pidfd_thread_works() {
  static const bool works = [] {
    UniqueFd self(sys::pidfd_open(getpid(), PIDFD_THREAD));
    return self.valid();
  }();
  return works;
}

}  // namespace

Result<Identity> own_identity() {
  Identity id;
  if (getresuid(&id.uid[0], &id.uid[1], &id.uid[2]) != 0) {
    return errno_error("getresuid");
  }
  if (getresgid(&id.gid[0], &id.gid[1], &id.gid[2]) != 0) {
    return errno_error("getresgid");
  }
  // setfsuid(-1) fails and returns the current value without changing it.
  id.uid[3] = static_cast<uid_t>(setfsuid(static_cast<uid_t>(-1)));
  id.gid[3] = static_cast<gid_t>(setfsgid(static_cast<gid_t>(-1)));
  int count = getgroups(0, nullptr);
  if (count < 0) return errno_error("getgroups");
  id.groups.resize(count);
  if (getgroups(count, id.groups.data()) < 0) return errno_error("getgroups");
  if (auto rc = read_netns("/proc/thread-self/net/dev", &id); !rc) {
    // Without /proc (a bare chroot or container) nothing about a target can
    // be known: say that, rather than which file was missing.
    struct statfs fs;
    if (statfs("/proc", &fs) != 0 || fs.f_type != PROC_SUPER_MAGIC) {
      return std::unexpected(SysError{
          0,
          "/proc is not mounted: the supervisor reads its targets' identity "
          "there (mount proc on /proc)"});
    }
    return std::unexpected(rc.error());
  }
  return id;
}

Result<Identity> task_identity(pid_t tid, pid_t* tgid) {
  Result<std::string> status = read_small_file(proc_path(tid, "status"));
  if (!status) return std::unexpected(status.error());
  std::string text = "\n" + *status;
  std::vector<long> uids = status_numbers(text, "Uid");
  std::vector<long> gids = status_numbers(text, "Gid");
  if (uids.size() != 4 || gids.size() != 4) {
    return std::unexpected(SysError{EPROTO, "parse " + proc_path(tid, "status")});
  }
  Identity id;
  for (int i = 0; i < 4; ++i) {
    id.uid[i] = static_cast<uid_t>(uids[i]);
    id.gid[i] = static_cast<gid_t>(gids[i]);
  }
  for (long g : status_numbers(text, "Groups")) {
    id.groups.push_back(static_cast<gid_t>(g));
  }
  if (tgid != nullptr) {
    std::vector<long> group = status_numbers(text, "Tgid");
    *tgid = group.size() == 1 ? static_cast<pid_t>(group[0]) : 0;
  }
  if (auto rc = read_netns(proc_path(tid, "net/dev"), &id); !rc) {
    return std::unexpected(rc.error());
  }
  return id;
}

Result<pid_t> thread_group_of(pid_t tid) {
  Result<std::string> status = read_small_file(proc_path(tid, "status"));
  if (!status) return std::unexpected(status.error());
  std::vector<long> tgid = status_numbers("\n" + *status, "Tgid");
  if (tgid.size() != 1) {
    return std::unexpected(SysError{EPROTO, "parse " + proc_path(tid, "status")});
  }
  return static_cast<pid_t>(tgid[0]);
}

bool leader_exited(pid_t tgid) {
  Result<std::string> status = read_small_file(proc_path(tgid, "status"));
  return status && status->find("\nState:\tZ") != std::string::npos;
}

Result<TaskPidfd> open_task_pidfd(pid_t tid) {
  if (pidfd_thread_works()) {
    int fd = sys::pidfd_open(tid, PIDFD_THREAD);
    if (fd >= 0) return TaskPidfd{.fd = UniqueFd(fd), .of_task = true};
    if (errno == EINVAL) errno = ESRCH;  // the flag works: the task is dying
    return errno_error("pidfd_open");
  }
  // Before 6.9: only a thread group leader has a pidfd. A thread that
  // unshared its fd table is not reached this way (its leader's table is).
  int fd = sys::pidfd_open(tid, 0);
  if (fd >= 0) return TaskPidfd{.fd = UniqueFd(fd), .of_task = true};
  if (errno != EINVAL) return errno_error("pidfd_open");
  Result<pid_t> tgid = thread_group_of(tid);
  if (!tgid) return std::unexpected(SysError{ESRCH, "pidfd_open"});
  fd = sys::pidfd_open(*tgid, 0);
  if (fd < 0) {
    if (errno == EINVAL) errno = ESRCH;
    return errno_error("pidfd_open");
  }
  return TaskPidfd{.fd = UniqueFd(fd), .of_task = false};
}

Result<Placement> own_placement(PlacementKinds* kinds) {
  Placement own;
  Result<std::string> cgroups = read_small_file("/proc/thread-self/cgroup");
  kinds->cgroups = cgroups.has_value();
  if (cgroups) {
    own.cgroups = std::move(*cgroups);
  } else if (cgroups.error().err != ENOENT) {  // ENOENT: no cgroups at all
    return std::unexpected(cgroups.error());
  }
  // EINVAL (no LSM gives a context) or ENOENT: no labels to compare.
  Result<std::string> label = read_small_file("/proc/thread-self/attr/current");
  kinds->label = label.has_value();
  if (label) own.label = std::move(*label);
  return own;
}

Result<PlacementFiles> open_placement(pid_t tid, PlacementKinds kinds) {
  PlacementFiles files;
  std::string path;
  if (kinds.cgroups) {
    path = proc_path(tid, "cgroup");
    files.cgroups = UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!files.cgroups.valid()) return errno_error("open " + path);
  }
  if (kinds.label) {
    path = proc_path(tid, "attr/current");
    files.label = UniqueFd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!files.label.valid()) return errno_error("open " + path);
  }
  return files;
}

Result<bool> same_placement(const PlacementFiles& files, const Placement& own,
                            std::string* scratch) {
  // One byte more than ours is enough to tell a longer text apart.
  if (files.cgroups.valid()) {
    auto rc = pread_once(files.cgroups.get(), scratch, own.cgroups.size() + 1,
                         "/proc/TID/cgroup");
    if (!rc) return std::unexpected(rc.error());
    if (*scratch != own.cgroups) return false;
  }
  if (!files.label.valid()) return true;
  auto rc = pread_once(files.label.get(), scratch, own.label.size() + 1,
                 "/proc/TID/attr/current");
  if (!rc) return std::unexpected(rc.error());
  return *scratch == own.label;
}

Result<ExecWatch> watch_exec(pid_t tid) {
  ExecWatch watch;
  // Only a thread group leader has a pidfd without PIDFD_THREAD.
  if (UniqueFd leader(sys::pidfd_open(tid, 0)); leader.valid()) {
    watch.tgid = tid;
    watch.by_leader = true;
    return watch;
  }
  if (errno != EINVAL && errno != ENOENT) return errno_error("pidfd_open");
  Result<pid_t> tgid = thread_group_of(tid);
  if (!tgid) return std::unexpected(tgid.error());
  watch.tgid = *tgid;
  if (watch.tgid == tid) return std::unexpected(SysError{ESRCH, "pidfd_open"});
  int fd = pidfd_thread_works() ? sys::pidfd_open(tid, PIDFD_THREAD)
                                : sys::pidfd_open(watch.tgid, 0);
  if (fd < 0) {
    if (errno == EINVAL) errno = ESRCH;
    return errno_error("pidfd_open");
  }
  watch.fd = UniqueFd(fd);
  return watch;
}

}  // namespace keepalive
