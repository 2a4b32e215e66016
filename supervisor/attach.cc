// SPDX-License-Identifier: Apache-2.0
#include "supervisor/attach.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "common/socket_options.h"
#include "supervisor/error.h"
#include "supervisor/exit_codes.h"
#include "supervisor/log.h"
#include "supervisor/setting_flags.h"
#include "supervisor/syscalls.h"
#include "supervisor/text_file.h"

namespace keepalive {
namespace {

// How deep --cgroup looks below the directory it is given.
constexpr int kMaxCgroupDepth = 64;
// SO_NETNS_COOKIE (Linux 5.14): which network namespace a socket is in.
constexpr int kSoNetnsCookie = 71;

void walk_cgroup(int dirfd, int depth, std::vector<pid_t>* pids) {
  // A cgroup removed while we look is simply empty.
  if (Result<std::string> procs = read_small_file_at(dirfd, "cgroup.procs")) {
    const char* p = procs->c_str();
    while (*p != '\0') {
      char* end = nullptr;
      long pid = strtol(p, &end, 10);
      if (end == p) break;
      if (pid > 0) pids->push_back(static_cast<pid_t>(pid));
      p = end;
      while (*p == '\n') ++p;
    }
  }
  if (depth >= kMaxCgroupDepth) return;
  int copy = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return;
  DIR* dir = fdopendir(copy);
  if (dir == nullptr) {
    close(copy);
    return;
  }
  while (dirent* entry = readdir(dir)) {
    if (entry->d_type != DT_DIR || strcmp(entry->d_name, ".") == 0 ||
        strcmp(entry->d_name, "..") == 0) {
      continue;
    }
    UniqueFd child(openat(dirfd, entry->d_name,
                          O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (child.valid()) walk_cgroup(child.get(), depth + 1, pids);
  }
  closedir(dir);
}

// The kernel's names of the TCP states (tcpi_state), as `ss` spells them.
const char* state_name(int state) {
  static constexpr const char* kNames[] = {
      "",           "established", "syn-sent",  "syn-recv",
      "fin-wait-1", "fin-wait-2",  "time-wait", "closed",
      "close-wait", "last-ack",    "listening", "closing"};
  if (state <= 0 || state >= static_cast<int>(std::size(kNames))) return "";
  return kNames[state];
}

// "127.0.0.1:8080", "[::1]:8080"; `address` gets its bytes for matching.
std::string address_text(const sockaddr_storage& storage, bool* valid,
                         uint8_t bytes[16], uint16_t* port) {
  char text[INET6_ADDRSTRLEN] = "";
  *valid = false;
  if (storage.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
    *port = ntohs(in.sin_port);
    memset(bytes, 0, 16);
    bytes[10] = bytes[11] = 0xff;  // v4-mapped, to compare with IPv6
    memcpy(bytes + 12, &in.sin_addr, 4);
    *valid = true;
    return std::string(text) + ":" + std::to_string(*port);
  }
  if (storage.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    *port = ntohs(in6.sin6_port);
    memcpy(bytes, &in6.sin6_addr, 16);
    *valid = true;
    return "[" + std::string(text) + "]:" + std::to_string(*port);
  }
  return "";
}

bool is_unspecified(const uint8_t bytes[16]) {
  static constexpr uint8_t kAny[16] = {};
  static constexpr uint8_t kMappedAny[16] = {0, 0, 0, 0, 0,    0,    0, 0,
                                             0, 0, 0xff, 0xff, 0, 0, 0, 0};
  return memcmp(bytes, kAny, 16) == 0 || memcmp(bytes, kMappedAny, 16) == 0;
}

// Ptrace access decides whether another process's descriptors may be
// read or copied: what Yama adds to that, when it is there.
std::string ptrace_hint() {
  std::string hint =
      "needs ptrace access: run as its user (and it dumpable) or with "
      "CAP_SYS_PTRACE";
  UniqueFd fd(open("/proc/sys/kernel/yama/ptrace_scope", O_RDONLY | O_CLOEXEC));
  char c = 0;
  if (fd.valid() && read(fd.get(), &c, 1) == 1 && c >= '1' && c <= '3') {
    hint += std::string("; kernel.yama.ptrace_scope is ") + c;
    if (c == '3') hint += " (no ptrace at all until reboot)";
  }
  return hint;
}

// The options `mode` sets on a socket whose values are now `current`, as
// apply_to would set them (0: left alone).
void planned_values(const Settings& settings, Mode mode,
                    const int current[kOptionCount],
                    int planned[kOptionCount]) {
  for (int i = 0; i < kOptionCount; ++i) {
    Option option = static_cast<Option>(i);
    planned[i] = option_applies(option, mode) ? settings.value(option) : 0;
  }
  int& timeout = planned[static_cast<int>(Option::kUserTimeout)];
  if (timeout == kDeriveUserTimeout) {
    auto in_effect = [&](Option option) {
      int i = static_cast<int>(option);
      return planned[i] != 0 ? planned[i] : current[i];
    };
    timeout = derive_user_timeout(in_effect(Option::kKeepIdle),
                                  in_effect(Option::kKeepIntvl),
                                  in_effect(Option::kKeepCnt));
  }
}

// The mode whose options a socket of `role` takes: a listening socket's
// (TCP_DEFER_ACCEPT), a connected one's (TCP_SYNCNT, which an established
// connection ignores), or every option for a socket not yet either.
Mode options_mode(SocketRole role) {
  switch (role) {
    case SocketRole::kListening:
      return Mode::kListen;
    case SocketRole::kAccepted:
    case SocketRole::kConnected:
      return Mode::kConnect;
    case SocketRole::kUnconnected:
      break;
  }
  return Mode::kSocket;
}

// " SO_KEEPALIVE=1 TCP_KEEPIDLE=15 ..." for the options `shown` selects.
std::string option_list(const int values[kOptionCount],
                        const bool shown[kOptionCount]) {
  std::string text;
  for (int i = 0; i < kOptionCount; ++i) {
    if (!shown[i]) continue;
    text += ' ';
    text += option_info(static_cast<Option>(i)).sockopt_name;
    text += '=';
    text += std::to_string(values[i]);
  }
  return text;
}

}  // namespace

const char* role_name(SocketRole role) {
  switch (role) {
    case SocketRole::kListening:
      return "listening";
    case SocketRole::kAccepted:
      return "accepted";
    case SocketRole::kConnected:
      return "connected";
    case SocketRole::kUnconnected:
      break;
  }
  return "unconnected";
}

std::optional<bool> mode_takes(Mode mode, SocketRole role) {
  switch (mode) {
    case Mode::kSocket:
      return true;
    case Mode::kConnect:
      if (role == SocketRole::kUnconnected) return std::nullopt;
      return role == SocketRole::kConnected;
    case Mode::kListen:
      if (role == SocketRole::kUnconnected) return std::nullopt;
      return role == SocketRole::kListening || role == SocketRole::kAccepted;
  }
  return false;
}

bool task_runs(const std::string& task_dir) {
  std::string text = read_small_file(task_dir + "/stat").value_or("");
  size_t paren = text.rfind(')');  // the name may hold anything
  char state = paren != std::string::npos && paren + 2 < text.size()
                   ? text[paren + 2]
                   : '?';
  return state != 'Z' && state != 'X';
}

pid_t live_thread(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return pid;
  pid_t chosen = 0;
  while (dirent* entry = readdir(tasks)) {
    pid_t tid = atoi(entry->d_name);
    if (tid <= 0) continue;
    if (!task_runs(dir + "/" + entry->d_name)) continue;
    if (tid == pid) {
      chosen = tid;
      break;
    }
    if (chosen == 0) chosen = tid;
  }
  closedir(tasks);
  return chosen != 0 ? chosen : pid;
}

std::expected<std::vector<pid_t>, std::string> cgroup_processes(
    const std::string& dir) {
  UniqueFd root(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    return std::unexpected(quoted(dir) + ": " + errno_text(errno));
  }
  if (faccessat(root.get(), "cgroup.procs", R_OK, 0) != 0) {
    return std::unexpected(quoted(dir) +
                           " is not a cgroup directory (no readable "
                           "cgroup.procs: " + errno_text(errno) + ")");
  }
  std::vector<pid_t> pids;
  walk_cgroup(root.get(), 0, &pids);
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

// A thread that closes the copies handed to it, one after another. Its
// state is shared with the thread, which may outlive the Closer.
class Closer {
 public:
  Closer() : state_(std::make_shared<State>()) {
    std::thread([state = state_] { state->run(); }).detach();
  }
  // Lets the thread go without waiting for it: a close it is blocked in
  // ends with the process (the kernel does not linger for an exiting one).
  ~Closer() {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->stopping = true;
    }
    state_->ready.notify_one();
  }
  void close(int fd) {
    {
      std::lock_guard<std::mutex> lock(state_->mutex);
      state_->fds.push_back(fd);
    }
    state_->ready.notify_one();
  }

 private:
  struct State {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<int> fds;
    bool stopping = false;

    void run() {
      std::unique_lock<std::mutex> lock(mutex);
      for (;;) {
        ready.wait(lock, [this] { return stopping || !fds.empty(); });
        if (fds.empty()) return;
        int fd = fds.front();
        fds.pop_front();
        lock.unlock();
        ::close(fd);
        lock.lock();
      }
    }
  };
  std::shared_ptr<State> state_;
};

namespace {

// Our own lines of /proc/PID/cgroup for the v1 controllers whose class a
// received socket takes from its receiver (net_cls, net_prio).
std::string class_lines(pid_t pid) {
  std::string lines;
  for_each_line(pid == 0 ? std::string("/proc/self/cgroup")
                         : "/proc/" + std::to_string(pid) + "/cgroup",
                [&](std::string_view line) {
                  if (line.find(":net_cls") != std::string_view::npos ||
                      line.find(":net_prio") != std::string_view::npos ||
                      line.find(",net_cls") != std::string_view::npos ||
                      line.find(",net_prio") != std::string_view::npos) {
                    lines.append(line);
                    lines += '\n';
                  }
                });
  return lines;
}

// The protocol the socket behind /proc/PID/fd/N is (its sockfs
// "system.sockprotoname": TCP, TCPv6, MPTCP, UDP, UNIX-STREAM, ...), read
// without copying it. Empty with errno set when it cannot be read.
std::string protocol_of(const std::string& fd_path) {
  char name[32];
  ssize_t n = getxattr(fd_path.c_str(), "system.sockprotoname", name,
                       sizeof name - 1);
  if (n <= 0) return "";
  name[n] = '\0';
  return name;
}

bool is_tcp_protocol(const std::string& name) {
  return name == "TCP" || name == "TCPv6" || name == "MPTCP" ||
         name == "MPTCPv6";
}

uint64_t netns_cookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, kSoNetnsCookie, &cookie, &len) != 0) return 0;
  return cookie;
}

}  // namespace

Attacher::Attacher(const Config& config, FILE* out)
    : config_(config),
      out_(out),
      own_classes_(class_lines(0)),
      closer_(std::make_unique<Closer>()) {
  for (pid_t pid : config_.attach.pids) {
    if (std::any_of(named_.begin(), named_.end(),
                    [pid](const auto& p) { return p.first == pid; })) {
      continue;
    }
    UniqueFd pidfd(sys::pidfd_open(pid, 0));
    if (!pidfd.valid()) {
      unreachable(pid, errno == ESRCH ? "no such process"
                                      : "pidfd_open: " + errno_text(errno));
      continue;
    }
    pollfd exited{pidfd.get(), POLLIN, 0};
    if (poll(&exited, 1, 0) == 1) {
      unreachable(pid, "has exited (a zombie its parent has not reaped)");
      continue;
    }
    named_.emplace_back(pid, std::move(pidfd));
  }
}

Attacher::~Attacher() = default;

void Attacher::dispose(UniqueFd copy) {
  if (copy.valid()) closer_->close(copy.release());
}

void Attacher::unreachable(pid_t pid, const std::string& why) {
  unreachable_now_.insert(pid);
  if (ever_unreachable_.insert(pid).second) ++totals_.unreachable;
  std::string line = "pid " + std::to_string(pid) + ": " + why;
  if (said_.insert(line).second) log_line(line);  // each once
}

bool Attacher::class_differs(pid_t pid, std::string* which) {
  if (own_classes_.empty()) return false;  // no v1 net_cls/net_prio here
  std::string theirs = class_lines(pid);
  if (theirs.empty() || theirs == own_classes_) return false;
  *which = theirs.substr(0, theirs.find('\n'));
  return true;
}

std::vector<Attacher::Process> Attacher::current_processes() {
  std::vector<Process> processes;
  if (config_.attach.cgroup.empty()) {
    // The named ones still running: a pidfd turns readable when its
    // process has exited (a zombie too), whatever the pid has become since.
    std::erase_if(named_, [](const auto& p) {
      pollfd exited{p.second.get(), POLLIN, 0};
      return poll(&exited, 1, 0) != 0;
    });
    for (const auto& [pid, pidfd] : named_) {
      processes.push_back(Process{pid, pidfd.get(), UniqueFd()});
    }
    if (named_.empty() && !stop_) {
      if (generation_ > 1) log_line("every process of --pid has exited");
      stop_ = true;
    }
    return processes;
  }
  auto pids = cgroup_processes(config_.attach.cgroup);
  if (!pids) {
    log_line("--cgroup: the cgroup is gone (" + pids.error() + ")");
    stop_ = true;
    return processes;
  }
  pid_t self = getpid();
  for (pid_t pid : *pids) {
    if (pid == self) continue;
    UniqueFd pidfd(sys::pidfd_open(pid, 0));
    if (!pidfd.valid()) {
      if (errno != ESRCH) unreachable(pid, "pidfd_open: " + errno_text(errno));
      continue;  // ESRCH: gone since the cgroup was read
    }
    int fd = pidfd.get();
    processes.push_back(Process{pid, fd, std::move(pidfd)});
  }
  return processes;
}

void Attacher::list_sockets(const Process& process, std::vector<Found>* found) {
  std::string base = "/proc/" + std::to_string(process.pid);
  std::string path = base + "/fd";
  if (!list_directory(process, path, found)) {
    // A leader that has exited lists nothing; a live thread of it shows
    // the descriptors its threads share.
    pid_t tid = live_thread(process.pid);
    if (tid != process.pid) {
      list_directory(process, base + "/task/" + std::to_string(tid) + "/fd",
                     found);
    }
  }
}

bool Attacher::list_directory(const Process& process, const std::string& path,
                              std::vector<Found>* found) {
  UniqueFd dirfd(open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirfd.valid()) {
    int error = errno;
    // A leader that has exited has no fd directory, its process may.
    if (error == ENOENT) return false;
    if (error == ESRCH) return true;  // exited meanwhile
    unreachable(process.pid,
                error == EACCES || error == EPERM
                    ? "not permitted to read its descriptors (" +
                          ptrace_hint() + ")"
                    : path + ": " + errno_text(error));
    return true;
  }
  int copy = fcntl(dirfd.get(), F_DUPFD_CLOEXEC, 0);
  DIR* dir = copy >= 0 ? fdopendir(copy) : nullptr;
  if (dir == nullptr) {
    if (copy >= 0) close(copy);
    unreachable(process.pid, path + ": " + errno_text(errno));
    return true;
  }
  static constexpr char kPrefix[] = "socket:[";
  bool class_checked = false;
  bool any = false;
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    any = true;
    char link[64];
    ssize_t n = readlinkat(dirfd.get(), entry->d_name, link, sizeof link - 1);
    ++last_listed_;
    if (n <= 0) continue;
    link[n] = '\0';
    if (strncmp(link, kPrefix, sizeof kPrefix - 1) != 0) continue;
    ino_t inode = strtoull(link + sizeof kPrefix - 1, nullptr, 10);
    auto known = known_.find(inode);
    if (known != known_.end()) {
      known->second.generation = generation_;
      continue;
    }
    // Told apart without a copy: a copy of a socket is not without
    // effects (see class_differs), and UDP or unix sockets are none of
    // our business.
    std::string protocol = protocol_of(path + "/" + entry->d_name);
    if (protocol.empty()) {
      if (errno == EACCES || errno == EPERM) {
        unreachable(process.pid, "not permitted to read its descriptors (" +
                                     ptrace_hint() + ")");
        break;
      }
      continue;  // closed meanwhile
    }
    if (!is_tcp_protocol(protocol)) {
      known_[inode] = Known{generation_, false, {}};  // never looked at again
      continue;
    }
    if (!class_checked) {
      class_checked = true;
      std::string which;
      if (class_differs(process.pid, &which)) {
        unreachable(process.pid,
                    "left alone: it is in cgroup v1 " + quoted(which) +
                        ", whose class its sockets would lose to ours if "
                        "copied (run keepalive-supervise in that cgroup)");
        break;
      }
    }
    found->push_back(Found{&process, atoi(entry->d_name), inode});
  }
  closedir(dir);
  return any;
}

UniqueFd Attacher::copy_of(const Found& found) {
  UniqueFd copy(sys::pidfd_getfd(found.process->pidfd, found.fd, 0));
  ++last_copied_;
  if (!copy.valid()) {
    int error = errno;
    if (error == EBADF || error == ESRCH) {  // closed or exited meanwhile
    } else if (error == EPERM || error == EACCES) {
      unreachable(found.process->pid,
                  "not permitted to copy its sockets (" + ptrace_hint() + ")");
    } else {
      unreachable(found.process->pid,
                  "pidfd_getfd(fd " + std::to_string(found.fd) +
                      "): " + errno_text(error));
    }
    return copy;
  }
  // The descriptor may have been closed and reused since it was listed.
  struct stat st{};
  if (fstat(copy.get(), &st) != 0 || !S_ISSOCK(st.st_mode) ||
      st.st_ino != found.inode) {
    dispose(std::move(copy));
    return UniqueFd();
  }
  return copy;
}

std::optional<Attacher::Look> Attacher::look_at(const Found& found,
                                                UniqueFd* copy_out) {
  UniqueFd copy = copy_of(found);
  if (!copy.valid()) return std::nullopt;
  Look look;
  look.found = found;
  if (classify_socket(copy.get()) != SocketKind::kTcp) {
    known_[found.inode] = Known{generation_, false, {}};  // not TCP: never
    dispose(std::move(copy));
    return std::nullopt;
  }
  int listening = 0;
  socklen_t len = sizeof listening;
  getsockopt(copy.get(), SOL_SOCKET, SO_ACCEPTCONN, &listening, &len);
  tcp_info info{};
  len = sizeof info;
  if (getsockopt(copy.get(), IPPROTO_TCP, TCP_INFO, &info, &len) == 0 &&
      len >= 1) {
    look.state = info.tcpi_state;
  }
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof local, peer_len = sizeof peer;
  bool valid = false;
  uint8_t bytes[16];
  uint16_t port = 0;
  if (getsockname(copy.get(), reinterpret_cast<sockaddr*>(&local),
                  &local_len) == 0) {
    look.local = address_text(local, &look.local_address.valid,
                              look.local_address.bytes,
                              &look.local_address.port);
    if (look.local_address.port == 0) look.local.clear();  // not bound
  }
  look.local_address.netns = netns_cookie(copy.get());
  bool connected = getpeername(copy.get(), reinterpret_cast<sockaddr*>(&peer),
                               &peer_len) == 0;
  if (connected) look.peer = address_text(peer, &valid, bytes, &port);
  if (listening != 0) {
    look.role = SocketRole::kListening;
  } else if (connected || look.state == TCP_SYN_SENT) {
    look.role = SocketRole::kConnected;
  }
  for (int i = 0; i < kOptionCount; ++i) {
    const OptionInfo& o = option_info(static_cast<Option>(i));
    socklen_t vlen = sizeof look.current[i];
    if (getsockopt(copy.get(), o.level, o.optname, &look.current[i], &vlen) !=
        0) {
      look.current[i] = 0;
    }
  }
  *copy_out = std::move(copy);
  return look;
}

void Attacher::judge(Look& look, const std::vector<Address>& listeners,
                     UniqueFd copy) {
  if (look.role == SocketRole::kConnected && look.local_address.valid) {
    for (const Address& l : listeners) {
      if (l.port == look.local_address.port &&
          l.netns == look.local_address.netns &&
          (is_unspecified(l.bytes) ||
           memcmp(l.bytes, look.local_address.bytes, 16) == 0)) {
        look.role = SocketRole::kAccepted;
        break;
      }
    }
  }
  const Found& found = look.found;
  std::optional<bool> takes = mode_takes(config_.mode, look.role);
  Mode mode = options_mode(look.role);
  int planned[kOptionCount];
  planned_values(config_.settings, mode, look.current, planned);
  bool shown[kOptionCount];
  bool already = true;
  for (int i = 0; i < kOptionCount; ++i) {
    shown[i] = planned[i] != 0 || i <= static_cast<int>(Option::kUserTimeout);
    if (planned[i] != 0 && planned[i] != look.current[i]) already = false;
  }
  std::string line = "pid " + std::to_string(found.process->pid) + " fd " +
                     std::to_string(found.fd) + " " + role_name(look.role);
  if (!look.local.empty()) line += " " + look.local;
  if (!look.peer.empty()) line += " -> " + look.peer;
  const char* state = state_name(look.state);
  if (*state != '\0' && (look.role == SocketRole::kConnected ||
                         look.role == SocketRole::kAccepted)) {
    line += std::string(" (") + state + ")";
  }
  line += ":";
  const bool dry = config_.attach.dry_run;
  std::string has = " has" + option_list(look.current, shown);

  if (!takes.has_value()) {  // may still connect or listen: look again
    ++totals_.not_connected;
    if (dry) {
      fprintf(out_, "%s%s; not connected yet\n", line.c_str(), has.c_str());
    }
    dispose(std::move(copy));
    return;
  }
  Known& known = known_[found.inode];
  known = Known{generation_, look.role == SocketRole::kListening,
                look.local_address};
  if (!*takes) {
    ++totals_.left_alone;
    if (dry) {
      fprintf(out_, "%s%s; left alone by --mode %s\n", line.c_str(),
              has.c_str(), mode_name(config_.mode));
    }
    dispose(std::move(copy));
    return;
  }
  if (already) {
    ++totals_.already;
    if (dry) fprintf(out_, "%s%s; already set\n", line.c_str(), has.c_str());
    dispose(std::move(copy));
    return;
  }
  if (dry) {
    bool set[kOptionCount];
    for (int i = 0; i < kOptionCount; ++i) set[i] = planned[i] != 0;
    ++totals_.changed;
    fprintf(out_, "%s%s; would set%s\n", line.c_str(), has.c_str(),
            option_list(planned, set).c_str());
    dispose(std::move(copy));
    return;
  }
  if (!copy.valid()) copy = copy_of(found);
  if (!copy.valid()) {
    known_.erase(found.inode);  // look again if it is still there
    return;
  }
  ApplyReport report = apply_to(copy.get(), config_.settings, mode);
  int applied[kOptionCount] = {};
  bool set[kOptionCount] = {};
  for (int i = 0; i < kOptionCount; ++i) {
    set[i] = report.outcomes[i].state == OptionState::kApplied;
    applied[i] = report.outcomes[i].value;
  }
  if (report.any_failed()) {
    ++totals_.failed;
    struct Context {
      const std::string* line;
    } context{&line};
    for_each_failure(
        report,
        [](const char* text, void* ctx) {
          log_line(*static_cast<Context*>(ctx)->line + " " + text);
        },
        &context);
  } else {
    ++totals_.changed;
  }
  dispose(std::move(copy));
  fprintf(out_, "%s%s\n", line.c_str(), option_list(applied, set).c_str());
}

bool Attacher::scan() {
  ++generation_;
  last_listed_ = last_copied_ = 0;
  totals_.not_connected = 0;
  unreachable_now_.clear();
  std::vector<Process> processes = current_processes();
  std::vector<Found> found;
  for (const Process& process : processes) {
    seen_processes_.insert(process.pid);
    list_sockets(process, &found);
  }
  // One look per socket, however many processes share it. A socket whose
  // verdict does not depend on the listeners is judged on its first copy;
  // a connected one, under connect or listen mode, once every listening
  // socket is known (and copied again if it is to change).
  // Listening sockets, to tell accepted connections from connected ones:
  // those judged before, then those of this scan as they come (in socket
  // mode, where the role is only shown, a connection met before its
  // listener in the first scan shows as connected).
  std::vector<Address> listeners;
  for (const auto& [inode, known] : known_) {
    if (known.listening && known.generation == generation_) {
      listeners.push_back(known.local_address);
    }
  }
  std::unordered_set<ino_t> looked;
  std::vector<Look> deferred;
  for (const Found& f : found) {
    if (!looked.insert(f.inode).second) continue;
    if (unreachable_now_.contains(f.process->pid)) continue;
    UniqueFd copy;
    std::optional<Look> look = look_at(f, &copy);
    if (!look) continue;
    if (look->role == SocketRole::kListening) {
      listeners.push_back(look->local_address);
    }
    if (config_.mode == Mode::kSocket || look->role != SocketRole::kConnected) {
      judge(*look, listeners, std::move(copy));
    } else {
      dispose(std::move(copy));
      deferred.push_back(std::move(*look));
    }
  }
  for (Look& look : deferred) judge(look, listeners, UniqueFd());
  std::erase_if(known_, [this](const auto& entry) {
    return entry.second.generation != generation_;
  });
  fflush(out_);
  return !stop_;
}

std::string Attacher::summary() const {
  const AttachTotals& t = totals_;
  long sockets = t.changed + t.already + t.left_alone + t.not_connected +
                 t.failed;
  auto plural = [](long n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
  };
  std::string text = "summary: " +
                     plural(static_cast<long>(seen_processes_.size()),
                            "process", "processes") +
                     ", " + plural(sockets, "TCP socket", "TCP sockets") +
                     ": " + std::to_string(t.changed) +
                     (config_.attach.dry_run ? " would be given options"
                                             : " given options");
  text += ", " + std::to_string(t.already) + " already had them";
  if (t.left_alone > 0) {
    text += ", " + std::to_string(t.left_alone) + " left alone by --mode " +
            mode_name(config_.mode);
  }
  if (t.not_connected > 0) {
    text += ", " + std::to_string(t.not_connected) + " not connected yet";
  }
  if (t.failed > 0) text += ", " + std::to_string(t.failed) + " failed";
  if (t.unreachable > 0) {
    text += "; " + plural(t.unreachable, "process", "processes") +
            " could not be reached";
  }
  return text;
}

int Attacher::exit_status() const {
  return totals_.unreachable > 0 || totals_.failed > 0 ? 1 : 0;
}

int run_attach(const Config& config) {
  if (!config.settings.enabled()) {
    log_line("KEEPALIVE=off: no options to set");
    return 0;
  }
  if (!config.attach.cgroup.empty()) {
    auto pids = cgroup_processes(config.attach.cgroup);
    if (!pids) {
      log_line("--cgroup: " + pids.error());
      return kExitUsage;
    }
  }
  // A descriptor per process of the cgroup while a scan looks at it.
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  // Lines as they come, also into a pipe: --watch runs for long.
  setvbuf(stdout, nullptr, _IOLBF, 0);
  // Blocked before the closer thread starts, so that it never takes them.
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
  if (config.attach.watch_ms != 0) sigprocmask(SIG_BLOCK, &stop, nullptr);
  Attacher attacher(config, stdout);
  if (config.attach.watch_ms == 0) {
    attacher.scan();
  } else {
    timespec interval{config.attach.watch_ms / 1000,
                      (config.attach.watch_ms % 1000) * 1000000L};
    while (attacher.scan()) {
      int sig = sigtimedwait(&stop, nullptr, &interval);
      if (sig > 0) break;
    }
  }
  fprintf(stdout, "%s\n", attacher.summary().c_str());
  if (fflush(stdout) != 0 || ferror(stdout)) {
    log_line("standard output: " + errno_text(errno));
    return 1;
  }
  return attacher.exit_status();
}

}  // namespace keepalive
