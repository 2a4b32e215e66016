// SPDX-License-Identifier: Apache-2.0
#include "supervisor/attach_follow.h"

#include <dirent.h>
#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "supervisor/attach.h"
#include "supervisor/detach.h"
#include "supervisor/exit_codes.h"
#include "supervisor/filter.h"
#include "supervisor/listener.h"
#include "supervisor/log.h"
#include "supervisor/notification_handler.h"
#include "supervisor/remote_call.h"
#include "supervisor/server.h"
#include "supervisor/setting_flags.h"
#include "supervisor/syscalls.h"
#include "supervisor/target.h"
#include "supervisor/text_file.h"

#ifndef SECCOMP_FILTER_FLAG_TSYNC_ESRCH
#define SECCOMP_FILTER_FLAG_TSYNC_ESRCH (1UL << 4)
#endif

namespace keepalive {
namespace {

constexpr int kCapSysAdmin = 21;

// The fields of /proc/PID/status that decide whether and how to follow.
struct Status {
  pid_t tracer = 0;
  int seccomp = 0;  // 0 none, 1 strict, 2 filter
  bool cap_sys_admin = false;
  bool read = false;
};

Status status_of(pid_t pid) {
  Status status;
  // Each line ends at its newline in the file's text, so that the numbers
  // after a field's name can be parsed in place.
  status.read =
      for_each_line("/proc/" + std::to_string(pid) + "/status",
                    [&](std::string_view line) {
                      if (line.starts_with("TracerPid:")) {
                        status.tracer = atoi(line.data() + 10);
                      } else if (line.starts_with("Seccomp:")) {
                        status.seccomp = atoi(line.data() + 8);
                      } else if (line.starts_with("CapEff:")) {
                        unsigned long long caps =
                            strtoull(line.data() + 7, nullptr, 16);
                        status.cap_sys_admin = (caps >> kCapSysAdmin) & 1;
                      }
                    }) != 0;
  return status;
}

// Why installing failed, in words, for the errors a step explains.
std::string install_error_hint(const SysError& error) {
  if (error.context.rfind("ptrace(PTRACE_SEIZE", 0) == 0 &&
      (error.err == EPERM || error.err == EACCES)) {
    return " (--follow needs ptrace access: the same user and a dumpable "
           "process, or CAP_SYS_PTRACE)";
  }
  if (error.context == "seccomp() in it" && error.err == EBUSY) {
    return " (it already has a seccomp listener: another supervisor, or a "
           "container runtime intercepting its calls)";
  }
  return "";
}

// The first seccomp mode other than 0 among the threads of `pid` (the
// leader's status speaks for itself alone), 0 if none, -1 if unreadable.
int threads_seccomp(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return -1;
  int mode = 0;
  while (dirent* entry = readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    for_each_line(dir + "/" + entry->d_name + "/status",
                  [&](std::string_view line) {
                    if (line.starts_with("Seccomp:") &&
                        atoi(line.data() + 8) != 0) {
                      mode = atoi(line.data() + 8);
                    }
                  });
    if (mode != 0) break;
  }
  closedir(tasks);
  return mode;
}

// Whether a thread blocked in system call `nr` would see it fail with
// EINTR once interrupted, rather than restarted (signal(7)): those the
// kernel never restarts after a stop.
bool interruption_shows(long nr) {
  switch (nr) {
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
    case 441:  // epoll_pwait2
    case SYS_rt_sigtimedwait:
    case SYS_io_getevents:
    case SYS_io_pgetevents:
    case SYS_semop:
    case SYS_semtimedop:
    case SYS_msgrcv:
    case SYS_msgsnd:
      return true;
    default:
      return false;
  }
}

// The thread to make the calls: a live one (a zombie leader's threads run
// on) that is not blocked in a call its interruption would fail; the
// leader when it qualifies.
pid_t quiet_thread(pid_t pid) {
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* tasks = opendir(dir.c_str());
  if (tasks == nullptr) return pid;
  pid_t chosen = 0, fallback = 0;
  while (dirent* entry = readdir(tasks)) {
    pid_t tid = atoi(entry->d_name);
    if (tid <= 0) continue;
    std::string base = dir + "/" + entry->d_name;
    if (!task_runs(base)) continue;
    if (fallback == 0 || tid == pid) fallback = tid;
    // "NR ARGS...", or "running" (-1 here) or "-1 SP PC" (not in a call).
    std::string text = read_small_file(base + "/syscall").value_or("");
    char* end = nullptr;
    long nr = strtol(text.c_str(), &end, 10);
    if (end == text.c_str()) nr = -1;
    if (interruption_shows(nr)) continue;
    if (chosen == 0 || tid == pid) chosen = tid;
  }
  closedir(tasks);
  if (chosen != 0) return chosen;
  return fallback != 0 ? fallback : pid;
}

// Whether `fd` (ours) is a seccomp user-notification listener.
bool is_listener(int fd) {
  char link[64];
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
  if (n <= 0) return false;
  link[n] = '\0';
  return strcmp(link, "anon_inode:seccomp notify") == 0;
}

// A connection to keepalive-agent's socket at `path`.
Result<UniqueFd> connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return std::unexpected(SysError{ENAMETOOLONG, quoted(path)});
  }
  memcpy(addr.sun_path, path.data(), path.size());
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return errno_error("socket");
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) !=
      0) {
    return errno_error(quoted(path));
  }
  return sock;
}

// The options as keepalive-agent reads a container's ("--mode=connect
// --keepidle=15 ..."), every value spelled out so that the agent's own
// defaults do not change them.
std::string option_words(const Config& config) {
  std::string words = std::string("--mode=") + mode_name(config.mode);
  for (const SettingFlag& flag : kSettingFlags) {
    words += std::string(" --") + flag.name + "=" +
             std::to_string(config.settings.value(flag.option));
  }
  return words;
}

// Sends the agent what an OCI runtime sends for a container (see
// agent/container_state.h): the state of process `pid`, named
// "pid-PID", with the options as metadata and the listener.
Result<void> send_to_agent(int sock, pid_t pid, const std::string& words,
                           int listener) {
  std::string state =
      "{\"ociVersion\":\"1.0.2\",\"fds\":[\"seccompFd\"],\"pid\":" +
      std::to_string(pid) + ",\"metadata\":\"" + words +
      "\",\"state\":{\"ociVersion\":\"1.0.2\",\"id\":\"pid-" +
      std::to_string(pid) + "\",\"status\":\"running\",\"pid\":" +
      std::to_string(pid) + ",\"bundle\":\"/\"}}";
  char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{state.data(), state.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
  if (sendmsg(sock, &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(state.size())) {
    return errno_error("sending the listener to keepalive-agent");
  }
  return {};
}

// The status of the agent whose control socket is `control`, once it
// lists process `pid` (within about `timeout_ms`); nullopt if it does not.
std::optional<std::string> agent_serves(const std::string& control, pid_t pid,
                                        int timeout_ms) {
  std::string line = "container pid-" + std::to_string(pid) + ": pid " +
                     std::to_string(pid) + ",";
  for (int waited = 0; waited <= timeout_ms; waited += 50) {
    if (Result<UniqueFd> sock = connect_unix(control)) {
      std::string text;
      char buf[4096];
      for (ssize_t n; (n = read(sock->get(), buf, sizeof buf)) > 0;) {
        text.append(buf, n);
      }
      if (text.find(line) != std::string::npos) return text;
    }
    usleep(50 * 1000);
  }
  return std::nullopt;
}

}  // namespace

Result<UniqueFd> install_filter_into(pid_t pid,
                                     const std::vector<sock_filter>& program,
                                     bool no_new_privs) {
  UniqueFd pidfd(sys::pidfd_open(pid, 0));
  if (!pidfd.valid()) return errno_error("pidfd_open");
  auto thread = RemoteThread::seize(pid, quiet_thread(pid));
  if (!thread) return std::unexpected(thread.error());
  RemoteThread& remote = **thread;

  // The program and its sock_fprog, on a page of the process's own.
  size_t code_size = program.size() * sizeof(sock_filter);
  size_t size = (16 + code_size + 4095) & ~size_t{4095};
  Result<long> page = remote.call(SYS_mmap, 0, static_cast<long>(size),
                                  PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!page) return std::unexpected(page.error());
  if (*page < 0 && *page > -4096) {
    return std::unexpected(SysError{static_cast<int>(-*page), "mmap in it"});
  }
  auto unmap = [&] {
    (void)remote.call(SYS_munmap, *page, static_cast<long>(size));
  };
  struct RemoteProgram {
    uint16_t len;
    uint16_t pad[3];
    uint64_t filter;
  } fprog{static_cast<uint16_t>(program.size()), {}, uint64_t(*page) + 16};
  if (auto w = remote.write(*page, &fprog, sizeof fprog); !w) {
    unmap();
    return std::unexpected(w.error());
  }
  if (auto w = remote.write(*page + 16, program.data(), code_size); !w) {
    unmap();
    return std::unexpected(w.error());
  }
  if (no_new_privs) {
    Result<long> r = remote.call(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (!r || *r != 0) {
      unmap();
      if (!r) return std::unexpected(r.error());
      return std::unexpected(
          SysError{static_cast<int>(-*r), "prctl(PR_SET_NO_NEW_PRIVS) in it"});
    }
  }
  Result<long> listener = remote.call(
      SYS_seccomp, SECCOMP_SET_MODE_FILTER,
      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC |
          SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
      *page);
  unmap();
  if (!listener) return std::unexpected(listener.error());
  if (*listener < 0) {
    return std::unexpected(
        SysError{static_cast<int>(-*listener), "seccomp() in it"});
  }
  UniqueFd taken(sys::pidfd_getfd(pidfd.get(), static_cast<int>(*listener), 0));
  if (!taken.valid()) return errno_error("pidfd_getfd of the listener");
  // What came back must be the new listener (a filter of the process's
  // own could have skipped the call and left a number of its fds in rax):
  // only then does its own copy go. The filter is then ours alone, and
  // its calls fail (ENOSYS) rather than wait for ever if we are gone.
  if (!is_listener(taken.get())) {
    return std::unexpected(SysError{
        0, "seccomp() in it did not return a listener (" +
               std::to_string(*listener) + ")"});
  }
  (void)remote.call(SYS_close, *listener);
  return taken;
}

int run_follow(const Config& config) {
  pid_t pid = config.attach.pids.front();
  std::string who = "pid " + std::to_string(pid);
  if (!config.settings.enabled()) {
    log_line("KEEPALIVE=off: no options to set");
    return 0;
  }
  // The agent first: if it cannot be reached, nothing is done.
  UniqueFd agent;
  if (!config.attach.agent.empty()) {
    Result<UniqueFd> sock = connect_unix(config.attach.agent);
    if (!sock) {
      log_line("--agent: cannot reach keepalive-agent at " +
               sock.error().message());
      return 1;
    }
    agent = std::move(*sock);
  }
  Status status = status_of(pid);
  if (!status.read) {
    log_line(who + ": no such process");
    return 1;
  }
  if (status.tracer != 0) {
    log_line(who + ": --follow: already traced by pid " +
             std::to_string(status.tracer) + " (a debugger or strace)");
    return 1;
  }
  // A filter of its own could trap or kill the calls made in it (and
  // leaves it no_new_privs for nothing if ours cannot join it): refused.
  int seccomp_mode = threads_seccomp(pid);
  if (status.seccomp != 0 || seccomp_mode != 0) {
    log_line(who + ": --follow: it (or a thread of it) already runs under "
             "seccomp (a sandbox, a container profile or another "
             "supervisor), whose filter could trap or kill the calls "
             "--follow would make in it; left as it was");
    return 1;
  }
  Result<std::vector<sock_filter>> program = build_filter(
      FilterSpec{.mode = config.mode, .strategy = Strategy::kContinue});
  Result<Identity> own = own_identity();
  if (!program || !own) {
    log_line((!program ? program.error() : own.error()).message());
    return kExitFailure;
  }

  // The signals that end following are taken from here on: one arriving
  // while the filter goes in must not kill us with the listener half-way.
  sigset_t stop;
  sigemptyset(&stop);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&stop, sig);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  UniqueFd signals(signalfd(-1, &stop, SFD_CLOEXEC | SFD_NONBLOCK));

  setvbuf(stdout, nullptr, _IOLBF, 0);
  Attacher attacher(config, stdout);
  attacher.scan();  // the sockets it has
  if (attacher.totals().unreachable > 0) {
    fprintf(stdout, "%s\n", attacher.summary().c_str());
    return 1;
  }
  log_line(who + ": --follow: putting the filter into it; from now on its "
           "connect() and listen() calls wait for a supervisor, and fail "
           "with ENOSYS if none holds the listener any more " +
           (agent.valid() ? std::string("(keepalive-agent will hold it)")
                          : std::string("(SIGINT or SIGTERM hands it to a "
                                        "background process; --agent hands "
                                        "it to keepalive-agent, which keeps "
                                        "it across restarts)")));
  Result<UniqueFd> listener_fd =
      install_filter_into(pid, *program, !status.cap_sys_admin);
  if (!listener_fd) {
    log_line(who + ": --follow: " + listener_fd.error().message() +
             install_error_hint(listener_fd.error()));
    fprintf(stdout, "%s\n", attacher.summary().c_str());
    return 1;
  }
  attacher.scan();  // those made while the filter went in
  if (agent.valid()) {
    std::string path = config.attach.agent;
    size_t slash = path.rfind('/');
    std::string control =
        (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) +
        "/control.sock";
    Result<void> sent =
        send_to_agent(agent.get(), pid, option_words(config), listener_fd->get());
    agent.reset();
    std::optional<std::string> agent_status;
    if (sent) agent_status = agent_serves(control, pid, 5000);
    if (agent_status) {
      log_line(who + ": keepalive-agent serves its filter from now on" +
               (agent_status->find("no fd store") != std::string::npos
                    ? std::string(" (that agent has no fd store: a restart "
                                  "of it would fail this process's calls)")
                    : std::string(", across the agent's restarts")));
      fprintf(stdout, "%s\n", attacher.summary().c_str());
      return attacher.exit_status();
    }
    // Served here as well: two servers of one listener each take calls.
    log_line(who + ": keepalive-agent did not confirm that it serves it (" +
             (sent ? "its status at " + quoted(control) + " does not list it"
                   : sent.error().message()) +
             "): serving it here");
  }
  Result<std::unique_ptr<KernelListener>> listener =
      KernelListener::open(*listener_fd);
  if (!listener) {
    log_line(listener.error().message());
    return kExitFailure;
  }
  (*listener)->request_sync_wake_up();
  log_line(who + ": following: its new TCP sockets get their options as "
           "they " +
           (config.mode == Mode::kListen    ? std::string("listen")
            : config.mode == Mode::kConnect ? std::string("connect")
                                            : std::string("connect or listen")));
  HandlerOptions options{.settings = config.settings,
                         .mode = config.mode,
                         .verbose = config.verbose,
                         .log_label = {},
                         .own = *own,
                         .wait_killable_recv = false};
  Server server(**listener, options);
  server.serve(signals.get());
  pollfd signalled{signals.get(), POLLIN, 0};
  if (poll(&signalled, 1, 0) == 1) {
    Result<pid_t> background = serve_detached(server);
    if (!background) {
      log_line(who + ": " + background.error().message() +
               "; its trapped calls now fail with ENOSYS");
      return kExitFailure;
    }
    log_line(who + ": still under the filter: served on in the background "
             "by pid " + std::to_string(*background) + " until it exits");
  } else {
    log_line(who + " has exited, with every process it started under the "
             "filter");
  }
  const HandlerStats& stats = server.handler().stats();
  fprintf(stdout, "%s; %llu new sockets given options by the filter\n",
          attacher.summary().c_str(),
          static_cast<unsigned long long>(stats.in_place));
  return attacher.exit_status();
}

}  // namespace keepalive
