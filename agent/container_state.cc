// SPDX-License-Identifier: Apache-2.0
#include "agent/container_state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/quote.h"

namespace keepalive::agent {
namespace {

using nlohmann::json;

std::unexpected<SysError> invalid(const std::string& id,
                                  const std::string& what) {
  std::string where = id.empty() ? "" : "container " + id + ": ";
  return std::unexpected(SysError{0, where + what});
}

// A field of the runtime's, quoted for a message (bounded, one line).
std::string shown(std::string_view text) {
  char quoted[kQuoteBufferSize];
  quote_value(text.data(), text.size(), quoted, sizeof quoted);
  return quoted;
}

// Whether this process has no descriptor free: a duplicate of `fd` fails
// with EMFILE.
bool table_full(int fd) {
  int probe = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (probe >= 0) {
    close(probe);
    return false;
  }
  return errno == EMFILE;
}

}  // namespace

bool is_seccomp_listener(int fd) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  char target[64];
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0) return false;
  target[n] = '\0';
  return strcmp(target, "anon_inode:seccomp notify") == 0;
}

Result<ContainerState> parse_container_state(std::string_view text,
                                             std::vector<UniqueFd> fds) {
  json doc = json::parse(text.begin(), text.end(), nullptr,
                         /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return invalid("", "the runtime's message is not a JSON object");
  }
  ContainerState state;
  if (auto it = doc.find("state"); it != doc.end() && it->is_object() &&
                                   it->contains("id") &&
                                   (*it)["id"].is_string()) {
    state.id = shown((*it)["id"].get<std::string>());
  }
  if (auto it = doc.find("state"); it != doc.end() && it->is_object()) {
    auto annotations = it->find("annotations");
    if (annotations != it->end() && annotations->is_object()) {
      auto options = annotations->find(kOptionsAnnotation);
      if (options != annotations->end()) {
        // Not a string: its JSON text, which the options check refuses
        // with the rest of the container's settings.
        state.annotation = options->is_string() ? options->get<std::string>()
                                                : options->dump();
      }
    }
  }
  auto pid = doc.find("pid");
  if (pid == doc.end() || !pid->is_number_integer() ||
      pid->get<long long>() <= 0 || pid->get<long long>() > INT_MAX) {
    return invalid(state.id, "\"pid\" is missing or not a process id");
  }
  state.pid = static_cast<pid_t>(pid->get<long long>());
  if (auto it = doc.find("metadata"); it != doc.end()) {
    // Not a string: its JSON text, refused by the options check, which
    // leaves the container served with the node's settings.
    state.metadata = it->is_string() ? it->get<std::string>() : it->dump();
  }
  auto names = doc.find("fds");
  if (names == doc.end() || !names->is_array()) {
    return invalid(state.id, "\"fds\" is missing or not a list");
  }
  if (names->size() != fds.size()) {
    return invalid(state.id, "\"fds\" names " + std::to_string(names->size()) +
                                 " fds but the message carried " +
                                 std::to_string(fds.size()));
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    if ((*names)[i].is_string() && (*names)[i] == "seccompFd") {
      state.listener = std::move(fds[i]);
      break;
    }
  }
  if (!state.listener.valid()) {
    return invalid(state.id, "no fd named \"seccompFd\"");
  }
  if (!is_seccomp_listener(state.listener.get())) {
    return invalid(state.id,
                   "the fd named \"seccompFd\" is not a seccomp "
                   "listener");
  }
  return state;
}

Result<UniqueFd> save_record(const ContainerState& state) {
  json record = {
      {"id", state.id}, {"pid", state.pid}, {"metadata", state.metadata}};
  if (state.annotation) record["annotation"] = *state.annotation;
  std::string text = record.dump();
  UniqueFd fd(memfd_create("keepalive-agent container",
                           MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return errno_error("memfd_create");
  if (write(fd.get(), text.data(), text.size()) !=
      static_cast<ssize_t>(text.size())) {
    return errno_error("writing a container's record");
  }
  // Nobody writes it again: the next agent reads exactly this.
  if (fcntl(fd.get(), F_ADD_SEALS,
            F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0) {
    return errno_error("sealing a container's record");
  }
  return fd;
}

Result<ContainerState> load_record(int record) {
  std::string text;
  char buf[4096];
  for (off_t at = 0;;) {
    ssize_t n = pread(record, buf, sizeof buf, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("reading a container's record");
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    at += n;
    if (text.size() > kMaxStateBytes) {
      return invalid("", "a container's record is larger than " +
                             std::to_string(kMaxStateBytes) + " bytes");
    }
  }
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  // Written by an earlier agent, but checked as the runtime's message is:
  // whoever could put an fd in the store could forge it.
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("id") ||
      !doc["id"].is_string() || !doc.contains("pid") ||
      !doc["pid"].is_number_integer() || doc["pid"].get<long long>() < 0 ||
      doc["pid"].get<long long>() > INT_MAX || !doc.contains("metadata") ||
      !doc["metadata"].is_string()) {
    return invalid("", "not a container's record");
  }
  // The id was quoted when the runtime's message was read (any UTF-8 kept,
  // controls escaped, bounded): one with a control byte or longer than a
  // quoted value did not come from there.
  std::string id = doc["id"].get<std::string>();
  bool printable = std::ranges::none_of(
      id, [](char c) { return (c >= 0 && c < 0x20) || c == 0x7f; });
  if (id.size() >= kQuoteBufferSize || !printable) {
    return invalid("", "not a container's record (its id is not printable)");
  }
  ContainerState state;
  state.id = id;
  state.pid = static_cast<pid_t>(doc["pid"].get<long long>());
  state.metadata = doc["metadata"].get<std::string>();
  if (doc.contains("annotation") && doc["annotation"].is_string()) {
    state.annotation = doc["annotation"].get<std::string>();
  }
  return state;
}

std::optional<Result<ContainerState>> StateReceiver::read_some(int sock) {
  for (;;) {
    char buf[16 * 1024];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return std::nullopt;
    if (n < 0) return errno_error("receiving from the runtime");
    // Whatever came, every fd is ours to close from here on.
    const size_t held = fds_.size();
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr;
         c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        fds_.emplace_back(fd);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) {
      // The kernel installs what it can and drops the rest: more fds than
      // the room given, or no descriptor free for the next one.
      if (fds_.size() - held < kMaxFds && table_full(sock)) {
        return std::unexpected(SysError{
            EMFILE, "receiving the runtime's fds (raise RLIMIT_NOFILE)"});
      }
      return invalid(
          "", "the runtime sent more than " + std::to_string(kMaxFds) + " fds");
    }
    if (fds_.size() > kMaxFds) {
      return invalid(
          "", "the runtime sent more than " + std::to_string(kMaxFds) + " fds");
    }
    if (n == 0) {
      if (text_.empty() && fds_.empty()) {
        return std::unexpected(SysError{ENODATA, "an empty connection"});
      }
      return parse_container_state(text_, std::move(fds_));
    }
    text_.append(buf, static_cast<size_t>(n));
    if (text_.size() > kMaxStateBytes) {
      return invalid("", "the runtime's message is larger than " +
                             std::to_string(kMaxStateBytes) + " bytes");
    }
    // runc keeps the connection open after its message: a whole JSON
    // document is the end of it.
    if (json::accept(text_)) {
      return parse_container_state(text_, std::move(fds_));
    }
  }
}

}  // namespace keepalive::agent
