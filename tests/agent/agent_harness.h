// SPDX-License-Identifier: Apache-2.0
// What the agent's tests share: a real seccomp listener, the runtime's
// message, the agent started on a scratch socket, a loopback server that
// accepts for as long as a client loops, and the service manager's side
// of the fd store protocol.
#pragma once

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"
#include "tests/common/scratch_dir.h"
#include "tests/common/seccomp_listener.h"
#include "tests/supervisor/options_harness.h"
#include "tests/support/agent_status.h"

namespace keepalive::agent {

using namespace std::chrono_literals;
using tests::Child;
using tests::Listener;

using tests::make_listener;
using tests::send_with_fd;

inline std::string state_json(const std::string& fds = "[\"seccompFd\"]",
                              const std::string& id = "web") {
  return "{\"ociVersion\":\"1.0.2\",\"fds\":" + fds +
         ",\"pid\":4242,\"metadata\":\"--keepidle=30\",\"state\":{"
         "\"ociVersion\":\"1.0.2\",\"id\":\"" +
         id + "\",\"status\":\"creating\",\"pid\":4242,\"bundle\":\"/b\"}}";
}

inline std::vector<UniqueFd> one(UniqueFd fd) {
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(fd));
  return fds;
}

inline bool is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

class AgentTest : public tests::ScratchDirTest {
 protected:
  std::string socket_path() const { return path("run/agent.sock"); }

  // A connection to the agent's socket, as a runtime makes one; invalid
  // (after a failure) if it cannot be made.
  UniqueFd connect_to_agent() const {
    UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path().c_str());
    if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) !=
        0) {
      ADD_FAILURE() << "connect " << socket_path() << ": " << strerror(errno);
      return {};
    }
    return sock;
  }

  // Starts the agent and waits until it listens.
  std::unique_ptr<Child> start_agent(std::vector<std::string> flags) {
    std::vector<std::string> argv = {KEEPALIVE_AGENT, "--socket",
                                     socket_path()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto agent = std::make_unique<Child>(argv);
    EXPECT_TRUE(agent->wait_for_output("listening on", 10s))
        << agent->transcript();
    return agent;
  }

  // Waits up to `bound` until the agent's status begins with `start`
  // ("0 containers", "1 container,"): it has taken a container in, or
  // dropped it and closed what it held of it.
  bool wait_for_status(const std::string& start,
                       std::chrono::milliseconds bound = 10s) const {
    std::string last;
    if (tests::wait_for_agent_status(path("run/control.sock"), start, bound,
                                     &last)) {
      return true;
    }
    ADD_FAILURE() << "the agent's status never began with '" << start
                  << "'; it said: " << last;
    return false;
  }

  // Runs a container that connects to a loopback server, handed to the
  // agent with `runtime_flags` (--metadata, --annotation), and returns the
  // options its socket reads back.
  tests::Options options_of_container(const Child& agent, const std::string& id,
                                      std::vector<std::string> runtime_flags) {
    Listener server;
    std::vector<std::string> argv = {KEEPALIVE_OCI_RUNTIME, socket_path(), id};
    argv.insert(argv.end(), runtime_flags.begin(), runtime_flags.end());
    argv.insert(argv.end(), {"--", tests::raw_tcp_path(), "connect",
                             std::to_string(server.port())});
    Child target(argv);
    if (!target.wait_line("connected", 10s)) {
      ADD_FAILURE() << target.transcript() << agent.transcript();
      return {};
    }
    std::string detail;
    tests::Options options =
        tests::probe_options(target.pid(), server.port(), 5s, &detail);
    target.close_stdin();
    EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
    return options;
  }
};

// A loopback server that accepts (and closes) every connection, so that a
// client can connect in a loop for as long as a test needs.
class AcceptingServer {
 public:
  AcceptingServer() : thread_([this] { run(); }) {}
  ~AcceptingServer() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return listener_.port(); }

 private:
  void run() {
    while (!stop_) {
      UniqueFd accepted = listener_.accept(50ms);
    }
  }
  Listener listener_{AF_INET, 4096};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Waits until `agent` has said `needle` `count` times.
inline bool wait_for_count(Child& agent, const std::string& needle, int count,
                           std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (tests::count_of(agent.err(), needle) < static_cast<size_t>(count)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    agent.wait_for_output("\x01never said", 20ms);
  }
  return true;
}

inline int open_fds(pid_t pid) {
  int count = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(
           "/proc/" + std::to_string(pid) + "/fd")) {
    ++count;
  }
  return count;
}

// The same, without the agent's io_uring options ring, which it sets up
// at the first socket after each start (so whether it is there depends on
// when one looks).
inline int open_fds_but_ring(pid_t pid) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           "/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code error;
    auto target = std::filesystem::read_symlink(entry.path(), error);
    if (!error && target.string() == "anon_inode:[io_uring]") continue;
    ++count;
  }
  return count;
}

// AddressSanitizer keeps freed memory in quarantine, ThreadSanitizer grows
// its shadow as the process runs: RSS budgets mean nothing in a sanitizer
// build (the fd counts still do).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

inline int rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stoi(line.substr(6));
  }
  return -1;
}

// The verdict line of `raw_tcp signals`, once it has exited.
inline tests::Options loop_result(Child& client) {
  EXPECT_TRUE(client.wait_exit(60s)) << "the connect loop never ended";
  std::optional<std::string> line = client.wait_line("result", 1s);
  if (!line) {
    ADD_FAILURE() << client.transcript();
    return {};
  }
  return tests::parse_pairs(*line);
}

// The service manager's side of the fd store protocol (sd_notify(3),
// sd_listen_fds(3)), as systemd plays it with FileDescriptorStoreMax=:
// keeps what FDSTORE=1 hands it, drops what FDSTOREREMOVE=1 names, and
// starts the next agent with the fds at 3... and LISTEN_FDS, LISTEN_PID,
// LISTEN_FDNAMES.
class FakeServiceManager {
 public:
  explicit FakeServiceManager(std::string path) : path_(std::move(path)) {
    sock_.reset(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path_.c_str());
    EXPECT_EQ(
        bind(sock_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  std::string notify_env() const { return "NOTIFY_SOCKET=" + path_; }

  // Takes every message sent so far.
  void receive() {
    for (;;) {
      char text[4096];
      alignas(cmsghdr) char control[CMSG_SPACE(16 * sizeof(int))];
      iovec iov{text, sizeof text - 1};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = recvmsg(sock_.get(), &msg, MSG_CMSG_CLOEXEC);
      if (n < 0) return;
      text[n] = '\0';
      std::vector<UniqueFd> fds;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_type != SCM_RIGHTS) continue;
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); ++i) {
          int fd;
          memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          fds.emplace_back(fd);
        }
      }
      std::string message(text);
      std::string name;
      if (size_t at = message.find("FDNAME="); at != std::string::npos) {
        name = message.substr(at + 7, message.find('\n', at) - at - 7);
      }
      if (message.find("READY=1") != std::string::npos) ready = true;
      if (message.find("FDSTOREREMOVE=1") != std::string::npos) {
        store_.erase(name);
      } else if (message.find("FDSTORE=1") != std::string::npos) {
        for (UniqueFd& fd : fds) store_[name].push_back(std::move(fd));
      }
    }
  }

  int stored(const std::string& prefix) const {
    int count = 0;
    for (const auto& [name, fds] : store_) {
      if (name.starts_with(prefix)) count += static_cast<int>(fds.size());
    }
    return count;
  }

  // Starts `argv` as the next activation, its stderr to `log`.
  pid_t start(const std::vector<std::string>& argv, const std::string& log) {
    std::vector<int> fds;
    std::string names;
    for (const auto& [name, held] : store_) {
      for (const UniqueFd& fd : held) {
        fds.push_back(fd.get());
        names += (names.empty() ? "" : ":") + name;
      }
    }
    pid_t pid = fork();
    if (pid == 0) {
      // Out of the way of 3..3+n first, then into place.
      std::vector<int> high;
      for (int fd : fds) high.push_back(fcntl(fd, F_DUPFD, 100));
      for (size_t i = 0; i < high.size(); ++i) {
        dup2(high[i], 3 + static_cast<int>(i));
      }
      int err = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(err, 2);
      std::string listen_pid = "LISTEN_PID=" + std::to_string(getpid());
      std::string listen_fds = "LISTEN_FDS=" + std::to_string(fds.size());
      std::string listen_names = "LISTEN_FDNAMES=" + names;
      std::string notify = notify_env();
      const char* env[] = {listen_pid.c_str(), listen_fds.c_str(),
                           listen_names.c_str(), notify.c_str(), nullptr};
      std::vector<char*> args;
      for (const std::string& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execve(args[0], args.data(), const_cast<char**>(env));
      _exit(127);
    }
    return pid;
  }

  // Holds `fd` under `name`, as a socket unit's FileDescriptorName= does.
  void hand(const std::string& name, UniqueFd fd) {
    store_[name].push_back(std::move(fd));
  }

  bool ready = false;

 private:
  std::string path_;
  UniqueFd sock_;
  std::map<std::string, std::vector<UniqueFd>> store_;
};

inline std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace keepalive::agent
