// SPDX-License-Identifier: Apache-2.0
#include "tests/supervisor/options_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "common/settings.h"

namespace keepalive::tests {
namespace {

using Clock = std::chrono::steady_clock;

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
  Outcome probe = run({sockopt_probe_path(), std::to_string(pid),
                          std::to_string(port), std::to_string(wait.count())},
                         {}, wait + 10s);
  Options options;
  if (probe.shell_status() != 0) {
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

std::string self_path() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n <= 0 ? "" : std::string(buf, n);
}

bool bring_up_loopback() {
  UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ifreq req{};
  strncpy(req.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(fd.get(), SIOCGIFFLAGS, &req) != 0) return false;
  req.ifr_flags |= IFF_UP;
  return ioctl(fd.get(), SIOCSIFFLAGS, &req) == 0;
}

void rerun_in_namespaces(const std::vector<std::string>& unshare_flags,
                         const char* variable, milliseconds timeout) {
  constexpr const char* kUnshare = "/usr/bin/unshare";
  std::vector<std::string> argv = {kUnshare};
  argv.insert(argv.end(), unshare_flags.begin(), unshare_flags.end());
  std::vector<std::string> probe_argv = argv;
  probe_argv.push_back("true");
  Outcome probe = run(probe_argv, {}, 10s);
  if (probe.shell_status() != 0) {
    GTEST_SKIP() << "namespaces refused here (unshare: " << probe.err << ")";
  }
  const ::testing::TestInfo* me =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::string filter = std::string(me->test_suite_name()) + "." + me->name();
  argv.insert(argv.end(), {"--", self_path(), "--gtest_filter=" + filter});
  Outcome inner = run(argv, {std::string(variable) + "=1"}, timeout);
  std::string transcript = "--- inner run ---\n" + inner.out + inner.err;
  if (inner.out.find("[  SKIPPED ] 1 test") != std::string::npos) {
    GTEST_SKIP() << transcript;
  }
  ASSERT_TRUE(inner.shell_status()) << "inner run still going after "
                                    << timeout.count() << " ms\n"
                                    << transcript;
  EXPECT_EQ(*inner.shell_status(), 0) << transcript;
  // gtest exits 0 when the filter matches nothing: make sure it ran.
  EXPECT_NE(inner.out.find("[  PASSED  ] 1 test"), std::string::npos)
      << transcript;
}

}  // namespace keepalive::tests
