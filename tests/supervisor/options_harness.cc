#include "tests/supervisor/options_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "common/settings.h"

extern char** environ;

namespace keepalive::tests {
namespace {

using Clock = std::chrono::steady_clock;

// Variables that steer the option model; never inherited from the shell
// that runs the tests.
bool steers_options(const std::string& entry) {
  std::string name = entry.substr(0, entry.find('='));
  return name == "LD_PRELOAD" || name == "LIBKEEPALIVE_DEBUG" ||
         name.rfind("TCP_", 0) == 0 || name.rfind("KEEP", 0) == 0;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (std::string& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

int shell_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

int port_of(const sockaddr_storage& addr) {
  if (addr.ss_family == AF_INET6)
    return ntohs(reinterpret_cast<const sockaddr_in6&>(addr).sin6_port);
  return ntohs(reinterpret_cast<const sockaddr_in&>(addr).sin_port);
}

socklen_t loopback(int family, int port, sockaddr_storage* out) {
  memset(out, 0, sizeof *out);
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(out);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    a->sin6_addr = in6addr_loopback;
    return sizeof *a;
  }
  auto* a = reinterpret_cast<sockaddr_in*>(out);
  a->sin_family = AF_INET;
  a->sin_port = htons(static_cast<uint16_t>(port));
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sizeof *a;
}

}  // namespace

std::string supervise_path() { return KEEPALIVE_SUPERVISE_PATH; }
std::string raw_tcp_path() { return KEEPALIVE_RAW_TCP_PATH; }
std::string sockopt_probe_path() { return KEEPALIVE_SOCKOPT_PROBE_PATH; }
std::string fake_old_kernel_path() { return KEEPALIVE_FAKE_OLD_KERNEL_PATH; }

Child::Child(const std::vector<std::string>& argv,
             const std::vector<std::string>& env) {
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls.
  std::vector<std::string> args = argv;
  std::vector<std::string> vars;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!steers_options(*e)) vars.emplace_back(*e);
  }
  vars.insert(vars.end(), env.begin(), env.end());
  std::vector<char*> arg_ptrs = pointers(args);
  std::vector<char*> env_ptrs = pointers(vars);

  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << strerror(errno);
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in_.reset(in[1]);
  out_fd_.reset(out[0]);
  err_fd_.reset(err[0]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return;
  }
  setpgid(pid, pid);  // also here, so that it holds before we signal
  pid_ = pid;
  fcntl(out_fd_.get(), F_SETFL, O_NONBLOCK);
  fcntl(err_fd_.get(), F_SETFL, O_NONBLOCK);
}

Child::~Child() {
  if (pid_ <= 0) return;
  if (!exit_code_) {
    kill(-pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  } else {
    kill(-pid_, SIGKILL);  // stragglers left in the group
  }
}

void Child::pump(milliseconds timeout) {
  pollfd fds[2] = {{out_fd_.get(), POLLIN, 0}, {err_fd_.get(), POLLIN, 0}};
  int n = poll(fds, 2, static_cast<int>(timeout.count()));
  if (n <= 0) return;
  std::string* sinks[2] = {&out_, &err_};
  UniqueFd* owners[2] = {&out_fd_, &err_fd_};
  for (int i = 0; i < 2; ++i) {
    if (fds[i].revents == 0) continue;
    char buf[4096];
    for (;;) {
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, got);
        continue;
      }
      if (got == 0) owners[i]->reset();  // EOF: poll ignores fd -1
      break;
    }
  }
}

std::optional<std::string> Child::wait_line(const std::string& prefix,
                                            milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    // Scan the complete lines not returned yet.
    size_t start = consumed_;
    for (;;) {
      size_t end = out_.find('\n', start);
      if (end == std::string::npos) break;
      std::string line = out_.substr(start, end - start);
      start = end + 1;
      if (line.rfind(prefix, 0) == 0) {
        consumed_ = start;
        return line;
      }
    }
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left <= 0ms || (!out_fd_.valid() && !err_fd_.valid())) {
      return std::nullopt;
    }
    pump(std::min(left, milliseconds(100)));
  }
}

void Child::close_stdin() { in_.reset(); }

bool Child::running() {
  if (pid_ <= 0 || exit_code_) return false;
  int status;
  pid_t got = waitpid(pid_, &status, WNOHANG);
  if (got == pid_) {
    exit_code_ = shell_code(status);
    return false;
  }
  return true;
}

std::optional<int> Child::wait_exit(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (running()) {
    if (Clock::now() >= deadline) return std::nullopt;
    pump(10ms);
  }
  // Collect what is still in the pipes (bounded: grandchildren may hold
  // them open).
  for (int i = 0; i < 20 && (out_fd_.valid() || err_fd_.valid()); ++i) {
    size_t before = out_.size() + err_.size();
    pump(10ms);
    if (out_.size() + err_.size() == before) break;
  }
  return exit_code_;
}

void Child::signal_group(int sig) {
  if (pid_ > 0) kill(-pid_, sig);
}

std::string Child::transcript() const {
  return "--- stdout ---\n" + out_ + "--- stderr ---\n" + err_;
}

RunOutcome run(const std::vector<std::string>& argv,
               const std::vector<std::string>& env, milliseconds timeout) {
  Child child(argv, env);
  child.close_stdin();
  RunOutcome outcome;
  outcome.exit_code = child.wait_exit(timeout);
  outcome.out = child.out();
  outcome.err = child.err();
  return outcome;
}

std::vector<std::string> supervised(const std::vector<std::string>& flags,
                                    const std::vector<std::string>& command) {
  std::vector<std::string> argv = {supervise_path()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

Listener::Listener(int family, int backlog) {
  fd_.reset(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd_.valid()) {
    ADD_FAILURE() << "socket: " << strerror(errno);
    return;
  }
  sockaddr_storage addr;
  socklen_t len = loopback(family, 0, &addr);
  if (bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      listen(fd_.get(), backlog) != 0) {
    ADD_FAILURE() << "bind/listen: " << strerror(errno);
    return;
  }
  port_ = local_port_of(fd_.get());
}

UniqueFd Listener::accept(milliseconds timeout) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(timeout.count())) != 1) return UniqueFd();
  return UniqueFd(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
}

UniqueFd connect_to(int port, milliseconds timeout, int family) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    UniqueFd fd(socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_storage addr;
    socklen_t len = loopback(family, port, &addr);
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) == 0) {
      return fd;
    }
    if (Clock::now() >= deadline) return UniqueFd();
    std::this_thread::sleep_for(20ms);
  }
}

int local_port_of(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return -1;
  }
  return port_of(addr);
}

Options parse_pairs(const std::string& line) {
  Options options;
  std::istringstream words(line);
  for (std::string word; words >> word;) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) continue;
    options[word.substr(0, eq)] = strtoll(word.c_str() + eq + 1, nullptr, 10);
  }
  return options;
}

int word_as_int(const std::string& line, size_t index) {
  std::istringstream words(line);
  std::string word;
  for (size_t i = 0; i <= index; ++i) {
    if (!(words >> word)) return -1;
  }
  return atoi(word.c_str());
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

Options probe_options(pid_t pid, int port, milliseconds wait,
                      std::string* detail) {
  RunOutcome probe = run({sockopt_probe_path(), std::to_string(pid),
                          std::to_string(port), std::to_string(wait.count())},
                         {}, wait + 10s);
  Options options;
  if (probe.exit_code != 0) {
    if (detail != nullptr) {
      *detail = "sockopt_probe " + std::to_string(pid) + " " +
                std::to_string(port) + " failed: " + probe.err;
    }
    return options;
  }
  std::istringstream lines(probe.out);
  for (std::string name; lines >> name;) {
    long long value;
    if (lines >> value) options[name] = value;
  }
  return options;
}

std::optional<pid_t> first_child_of(pid_t pid, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string path = "/proc/" + std::to_string(pid) + "/task/" +
                     std::to_string(pid) + "/children";
  for (;;) {
    std::ifstream children(path);
    pid_t child;
    if (children >> child) return child;
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

Options system_defaults() {
  Options options;
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  for (int i = 0; i < kOptionCount; ++i) {
    const OptionInfo& info = option_info(static_cast<Option>(i));
    int value = 0;
    socklen_t len = sizeof value;
    if (getsockopt(fd.get(), info.level, info.optname, &value, &len) != 0) {
      value = -1;
    }
    options[info.sockopt_name] = value;
  }
  return options;
}

::testing::AssertionResult carries(const Options& got,
                                   const Expectation& want) {
  if (got.empty()) {
    return ::testing::AssertionFailure() << "no options read back";
  }
  static const Options defaults = system_defaults();
  Options expected;
  if (want.applied) {
    expected["SO_KEEPALIVE"] = 1;
    expected["TCP_KEEPIDLE"] = want.keepidle;
    expected["TCP_KEEPINTVL"] = want.keepintvl;
    expected["TCP_KEEPCNT"] = want.keepcnt;
    expected["TCP_USER_TIMEOUT"] = want.user_timeout;
  } else {
    for (const char* name : {"SO_KEEPALIVE", "TCP_KEEPIDLE", "TCP_KEEPINTVL",
                             "TCP_KEEPCNT", "TCP_USER_TIMEOUT"}) {
      expected[name] = defaults.at(name);
    }
  }
  if (want.syncnt) expected["TCP_SYNCNT"] = *want.syncnt;
  if (want.defer_accept) expected["TCP_DEFER_ACCEPT"] = *want.defer_accept;
  if (want.maxseg) expected["TCP_MAXSEG"] = *want.maxseg;
  if (want.window_clamp) expected["TCP_WINDOW_CLAMP"] = *want.window_clamp;

  std::string mismatches;
  for (const auto& [name, value] : expected) {
    auto it = got.find(name);
    long long actual = it == got.end() ? -999 : it->second;
    if (actual != value) {
      mismatches += " " + name + "=" + std::to_string(actual) + " (expected " +
                    std::to_string(value) + ")";
    }
  }
  if (mismatches.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "kernel reports" << mismatches;
}

std::optional<uid_t> socket_uid(int local_port, int remote_port) {
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream table(path);
    std::string line;
    std::getline(table, line);  // header
    while (std::getline(table, line)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid ...
      std::istringstream fields(line);
      std::string sl, local, remote, state, queues, timer, retransmits;
      uid_t uid;
      if (!(fields >> sl >> local >> remote >> state >> queues >> timer >>
            retransmits >> uid)) {
        continue;
      }
      size_t local_colon = local.rfind(':');
      size_t remote_colon = remote.rfind(':');
      if (local_colon == std::string::npos ||
          remote_colon == std::string::npos) {
        continue;
      }
      if (std::stoi(local.substr(local_colon + 1), nullptr, 16) == local_port &&
          std::stoi(remote.substr(remote_colon + 1), nullptr, 16) ==
              remote_port) {
        return uid;
      }
    }
  }
  return std::nullopt;
}

}  // namespace keepalive::tests
