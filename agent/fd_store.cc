// SPDX-License-Identifier: Apache-2.0
#include "agent/fd_store.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <charconv>
#include <set>
#include <string_view>
#include <utility>

namespace keepalive::agent {

bool mark_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0;
}

namespace {

// "FD:NAME,..." as reexec wrote it; anything else is skipped, and so is
// an fd named twice (it would have two owners, closed twice).
std::vector<NamedFd> parse_passed(std::string_view text) {
  std::vector<NamedFd> fds;
  std::set<int> taken;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? "" : text.substr(comma + 1);
    size_t colon = item.find(':');
    int fd = -1;
    if (colon == std::string_view::npos ||
        std::from_chars(item.data(), item.data() + colon, fd).ptr !=
            item.data() + colon ||
        fd < 3 || taken.contains(fd) || !mark_cloexec(fd)) {
      continue;
    }
    taken.insert(fd);
    fds.push_back({std::string(item.substr(colon + 1)), UniqueFd(fd)});
  }
  return fds;
}

}  // namespace

std::vector<NamedFd> inherited_fds() {
  if (const char* passed = getenv(kPassedFdsVariable)) {
    std::vector<NamedFd> fds = parse_passed(passed);
    unsetenv(kPassedFdsVariable);
    return fds;
  }
  char** names = nullptr;
  int count = sd_listen_fds_with_names(/*unset_environment=*/1, &names);
  std::vector<NamedFd> fds;
  for (int i = 0; i < count; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    std::string name = names != nullptr && names[i] != nullptr ? names[i] : "";
    if (mark_cloexec(fd)) fds.push_back({std::move(name), UniqueFd(fd)});
  }
  if (names != nullptr) {
    for (int i = 0; i < count; ++i) free(names[i]);
    free(static_cast<void*>(names));
  }
  return fds;
}

void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

ServiceManager::ServiceManager() {
  const char* socket = getenv("NOTIFY_SOCKET");
  present_ = socket != nullptr && *socket != '\0';
  // systemd 254 and later say how many fds the store takes.
  if (const char* max = getenv("FDSTORE")) {
    size_t value = 0;
    const char* end = max + strlen(max);
    if (*max != '\0' && std::from_chars(max, end, value).ptr == end) {
      capacity_ = value;
    }
  }
}

Result<void> ServiceManager::keep(int fd, const std::string& name) {
  if (!present_) return {};
  if (capacity_ && stored_ >= *capacity_) {
    return std::unexpected(
        SysError{0, "the service manager's fd store is full (FDSTORE=" +
                        std::to_string(*capacity_) +
                        ", from "
                        "FileDescriptorStoreMax=); " +
                        name + " is not in it"});
  }
  std::string message = "FDSTORE=1\nFDNAME=" + name;
  int r = sd_pid_notify_with_fds(0, 0, message.c_str(), &fd, 1);
  if (r <= 0) {
    return std::unexpected(
        SysError{r < 0 ? -r : 0,
                 "handing " + name + " to the service manager's fd store"});
  }
  ++stored_;
  return {};
}

void ServiceManager::forget(const std::string& name) {
  if (!present_) return;
  std::string message = "FDSTOREREMOVE=1\nFDNAME=" + name;
  sd_notify(0, message.c_str());
  if (stored_ > 0) --stored_;
}

std::string ServiceManager::describe() const {
  if (!present_) return "no fd store (a restart fails their calls)";
  if (!capacity_) {
    // Before systemd 254 nothing says whether the store took them: it
    // drops what is beyond FileDescriptorStoreMax= without a word.
    return "listeners handed to the service manager's fd store";
  }
  return "listeners kept in the service manager's fd store (" +
         std::to_string(stored_) + " of its " + std::to_string(*capacity_) +
         " fds)";
}

void ServiceManager::ready(const std::string& status) {
  if (!present_) return;
  sd_notify(0, ("READY=1\nSTATUS=" + status).c_str());
}

void ServiceManager::stopping() {
  if (present_) sd_notify(0, "STOPPING=1");
}

SysError reexec(const std::string& program, char** argv,
                const std::vector<std::pair<int, std::string>>& fds) {
  std::string passed;
  for (const auto& [fd, name] : fds) {
    if (!passed.empty()) passed += ',';
    passed += std::to_string(fd) + ":" + name;
  }
  for (const auto& [fd, name] : fds) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  setenv(kPassedFdsVariable, passed.c_str(), 1);
  // Until the new program handles SIGHUP, another one would kill it
  // (default action): it stays pending until then.
  sigset_t hangup, old;
  sigemptyset(&hangup);
  sigaddset(&hangup, SIGHUP);
  sigprocmask(SIG_BLOCK, &hangup, &old);
  execv(program.c_str(), argv);
  SysError error{errno, "re-executing " + program};
  sigprocmask(SIG_SETMASK, &old, nullptr);
  unsetenv(kPassedFdsVariable);
  for (const auto& [fd, name] : fds) mark_cloexec(fd);
  return error;
}

}  // namespace keepalive::agent
