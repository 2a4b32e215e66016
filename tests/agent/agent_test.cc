// SPDX-License-Identifier: Apache-2.0
// keepalive-agent: what a runtime's message must hold (container_state.h),
// and the real agent serving a container handed over as runc does
// (tests/helpers/oci_runtime), with the options read back from outside.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <poll.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/container_state.h"
#include "tests/common/scratch_dir.h"
#include "tests/supervisor/options_harness.h"

namespace keepalive::agent {
namespace {

using namespace std::chrono_literals;
using tests::Child;
using tests::Listener;

// Sends `size` bytes of `data` on `sock` with `fd` in SCM_RIGHTS.
ssize_t send_with_fd(int sock, const void* data, size_t size, int fd) {
  char control[CMSG_SPACE(sizeof(int))] = {};
  iovec iov{const_cast<void*>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, 0);
}

// A real seccomp listener: a child installs a filter (trapping a call
// nobody makes here) with a new listener and passes the fd up.
UniqueFd make_listener() {
  int pair[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_acct, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog = {sizeof code / sizeof code[0], code};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    int fd = static_cast<int>(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                      SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog));
    char byte = 0;
    _exit(fd >= 0 && send_with_fd(pair[1], &byte, 1, fd) == 1 ? 0 : 1);
  }
  close(pair[1]);
  char control[CMSG_SPACE(sizeof(int))] = {};
  char byte;
  iovec iov{&byte, 1};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  int fd = -1;
  if (recvmsg(pair[0], &msg, MSG_CMSG_CLOEXEC) == 1 && CMSG_FIRSTHDR(&msg)) {
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof fd);
  }
  close(pair[0]);
  waitpid(pid, nullptr, 0);
  return UniqueFd(fd);
}

std::string state_json(const std::string& fds = "[\"seccompFd\"]",
                       const std::string& id = "web") {
  return "{\"ociVersion\":\"1.0.2\",\"fds\":" + fds +
         ",\"pid\":4242,\"metadata\":\"--keepidle=30\",\"state\":{"
         "\"ociVersion\":\"1.0.2\",\"id\":\"" + id +
         "\",\"status\":\"creating\",\"pid\":4242,\"bundle\":\"/b\"}}";
}

std::vector<UniqueFd> one(UniqueFd fd) {
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(fd));
  return fds;
}

bool is_open(int fd) { return fcntl(fd, F_GETFD) >= 0; }

TEST(ContainerStateTest, ReadsTheRuntimesState) {
  UniqueFd listener = make_listener();
  ASSERT_TRUE(listener.valid());
  ASSERT_TRUE(is_seccomp_listener(listener.get()));
  Result<ContainerState> state =
      parse_container_state(state_json(), one(std::move(listener)));
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_EQ(state->id, "web");
  EXPECT_EQ(state->pid, 4242);
  EXPECT_EQ(state->metadata, "--keepidle=30");
  EXPECT_TRUE(is_seccomp_listener(state->listener.get()));
}

TEST(ContainerStateTest, TakesTheFdNamedSeccompFdAndClosesTheOthers) {
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  close(pipe_fds[1]);
  int other = pipe_fds[0];
  std::vector<UniqueFd> fds;
  fds.emplace_back(other);
  fds.push_back(make_listener());
  Result<ContainerState> state = parse_container_state(
      state_json("[\"other\",\"seccompFd\"]"), std::move(fds));
  ASSERT_TRUE(state) << state.error().message();
  EXPECT_TRUE(is_seccomp_listener(state->listener.get()));
  EXPECT_FALSE(is_open(other));
}

TEST(ContainerStateTest, RefusesWhatIsNotAState) {
  struct Case {
    std::string json;
    const char* says;
  };
  const Case cases[] = {
      {"not json", "not a JSON object"},
      {"[1,2]", "not a JSON object"},
      {"{\"fds\":[\"seccompFd\"]}", "\"pid\""},
      {"{\"pid\":-4,\"fds\":[\"seccompFd\"]}", "\"pid\""},
      {"{\"pid\":4,\"fds\":\"seccompFd\"}", "\"fds\""},
      {state_json("[\"seccompFd\",\"extra\"]"), "names 2 fds"},
      {state_json("[\"notTheOne\"]"), "no fd named"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    Result<ContainerState> state =
        parse_container_state(c.json, one(make_listener()));
    ASSERT_FALSE(state);
    EXPECT_NE(state.error().message().find(c.says), std::string::npos)
        << state.error().message();
  }
}

TEST(ContainerStateTest, NamesTheContainerAndRefusesAnFdOfAnotherKind) {
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  close(pipe_fds[1]);
  Result<ContainerState> state =
      parse_container_state(state_json(), one(UniqueFd(pipe_fds[0])));
  ASSERT_FALSE(state);
  EXPECT_NE(state.error().message().find("container web"), std::string::npos);
  EXPECT_NE(state.error().message().find("not a seccomp listener"),
            std::string::npos)
      << state.error().message();
}

// A stream socket may deliver the runtime's one sendmsg in pieces: the
// state is taken once it is a whole JSON document, without waiting for
// the runtime to close (runc does not).
TEST(StateReceiverTest, WaitsForAWholeDocument) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd ours(pair[0]), theirs(pair[1]);
  std::string json = state_json();
  UniqueFd listener = make_listener();
  ASSERT_EQ(send_with_fd(theirs.get(), json.data(), 10, listener.get()), 10);
  StateReceiver receiver;
  EXPECT_FALSE(receiver.read_some(ours.get()).has_value());
  ASSERT_EQ(write(theirs.get(), json.data() + 10, json.size() - 10),
            static_cast<ssize_t>(json.size() - 10));
  std::optional<Result<ContainerState>> got = receiver.read_some(ours.get());
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(*got) << got->error().message();
  EXPECT_EQ((*got)->id, "web");
}

TEST(StateReceiverTest, RefusesAHugeMessage) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd ours(pair[0]), theirs(pair[1]);
  fcntl(theirs.get(), F_SETFL, O_NONBLOCK);
  StateReceiver receiver;
  std::string chunk(4096, ' ');
  std::optional<Result<ContainerState>> got;
  for (int i = 0; i < 64 && !got; ++i) {
    ASSERT_GT(write(theirs.get(), chunk.data(), chunk.size()), 0);
    got = receiver.read_some(ours.get());
  }
  ASSERT_TRUE(got.has_value()) << "never refused";
  ASSERT_FALSE(*got);
  EXPECT_NE(got->error().message().find("larger than"), std::string::npos);
}

// ---- the real agent ------------------------------------------------------

class AgentTest : public tests::ScratchDirTest {
 protected:
  std::string socket_path() const { return path("run/agent.sock"); }

  // A connection to the agent's socket, as a runtime makes one; invalid
  // (after a failure) if it cannot be made.
  UniqueFd connect_to_agent() const {
    UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s",
             socket_path().c_str());
    if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr),
                sizeof addr) != 0) {
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

  // Runs a container that connects to a loopback server, handed to the
  // agent with `runtime_flags` (--metadata, --annotation), and returns the
  // options its socket reads back.
  tests::Options options_of_container(
      const Child& agent, const std::string& id,
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

TEST_F(AgentTest, AContainerHandedOverGetsTheOptionsOnItsSocket) {
  std::unique_ptr<Child> agent = start_agent({"-v", "--keepidle", "33"});
  Listener server;
  Child target({KEEPALIVE_OCI_RUNTIME, socket_path(), "web", "--",
                tests::raw_tcp_path(), "connect",
                std::to_string(server.port())});
  std::optional<std::string> connected = target.wait_line("connected", 10s);
  ASSERT_TRUE(connected) << target.transcript() << agent->transcript();
  std::string detail;
  tests::Options options =
      tests::probe_options(target.pid(), server.port(), 5s, &detail);
  EXPECT_EQ(options["SO_KEEPALIVE"], 1) << detail;
  EXPECT_EQ(options["TCP_KEEPIDLE"], 33) << detail;
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0) << target.transcript();
  EXPECT_TRUE(agent->wait_for_output("container web: done", 10s))
      << agent->transcript();
  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(10s), 0) << agent->transcript();
}

TEST_F(AgentTest, AHostileMessageIsRefusedAndOthersAreStillServed) {
  std::unique_ptr<Child> agent = start_agent({});
  {
    UniqueFd sock = connect_to_agent();
    ASSERT_TRUE(sock.valid());
    const char garbage[] = "{\"pid\": \"\n\x01 not a state";
    ASSERT_GT(write(sock.get(), garbage, sizeof garbage - 1), 0);
  }
  EXPECT_TRUE(agent->wait_for_output("refused a runtime's message", 10s))
      << agent->transcript();

  Listener server;
  Child target({KEEPALIVE_OCI_RUNTIME, socket_path(), "next", "--",
                tests::raw_tcp_path(), "connect",
                std::to_string(server.port())});
  ASSERT_TRUE(target.wait_line("connected", 10s))
      << target.transcript() << agent->transcript();
  tests::Options options = tests::probe_options(target.pid(), server.port());
  EXPECT_EQ(options["SO_KEEPALIVE"], 1);
  EXPECT_EQ(options["TCP_KEEPIDLE"], 15);
  // One line for the bad message.
  size_t first = agent->err().find("refused");
  EXPECT_EQ(agent->err().find("refused", first + 1), std::string::npos)
      << agent->transcript();
}

// A runtime that trickles its message in keeps no connection beyond the
// one deadline: more bytes do not buy more time.
TEST_F(AgentTest, ASlowSenderIsCutOffAtTheDeadline) {
  std::unique_ptr<Child> agent = start_agent({});
  UniqueFd sock = connect_to_agent();
  ASSERT_TRUE(sock.valid());
  auto start = std::chrono::steady_clock::now();
  bool closed = false;
  for (int i = 0; i < 9 && !closed; ++i) {
    // A byte a second; the agent hangs up after 5 s in all.
    if (write(sock.get(), " ", 1) != 1) closed = true;
    pollfd fd{sock.get(), POLLIN, 0};
    if (poll(&fd, 1, 1000) == 1) {
      char byte;
      closed = read(sock.get(), &byte, 1) <= 0;
    }
  }
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
  EXPECT_TRUE(closed) << "still open after " << seconds << " s";
  EXPECT_LT(seconds, 7.5);
  EXPECT_TRUE(agent->wait_for_output("within 5 s", 5s)) << agent->transcript();
}

TEST_F(AgentTest, BadUsageIsOneLineAndExit2) {
  tests::Outcome o = tests::run({KEEPALIVE_AGENT, "--keepidle", "abc"});
  EXPECT_EQ(o.exit_code(), 2) << o;
  EXPECT_EQ(o.err_lines().size(), 1u) << o;
  EXPECT_NE(o.err.find("--keepidle"), std::string::npos) << o;
  o = tests::run({KEEPALIVE_AGENT, "stray"});
  EXPECT_EQ(o.exit_code(), 2) << o;
}

// keepalive-agent check: as root it can work; as another user it cannot
// copy containers' sockets, and says what then happens.
TEST_F(AgentTest, CheckSaysWhetherTheAgentCanWorkHere) {
  tests::Outcome root = tests::run({KEEPALIVE_AGENT, "check"});
  EXPECT_EQ(root.exit_code(), 0) << root;
  EXPECT_NE(root.out.find("pidfd_getfd on another user's process: permitted"),
            std::string::npos)
      << root;
  tests::Outcome nobody =
      tests::run({"setpriv", "--reuid=65534", "--regid=65534",
                  "--clear-groups", KEEPALIVE_AGENT, "check"});
  EXPECT_EQ(nobody.exit_code(), 1) << nobody;
  EXPECT_NE(nobody.out.find("refused (Operation not permitted): containers' "
                            "sockets get no options and their calls go on "
                            "untouched"),
            std::string::npos)
      << nobody;
}

TEST_F(AgentTest, ASocketPathTakenBySomethingElseIsRefused) {
  std::string taken = path("file");
  { std::ofstream(taken) << "x"; }
  tests::Outcome o = tests::run({KEEPALIVE_AGENT, "--socket", taken});
  EXPECT_EQ(o.exit_code(), 1) << o;
  EXPECT_NE(o.err.find("not a socket"), std::string::npos) << o;
}

// Each container's own settings: the profile's listenerMetadata over the
// agent's flags, and the annotation over both.
TEST_F(AgentTest, EachContainerGetsItsOwnSettings) {
  std::unique_ptr<Child> agent = start_agent({"-v", "--keepcnt", "4"});
  tests::Options a = options_of_container(*agent, "a", {"--metadata",
                                                        "--keepidle=31"});
  EXPECT_EQ(a["TCP_KEEPIDLE"], 31);
  EXPECT_EQ(a["TCP_KEEPCNT"], 4);
  tests::Options b = options_of_container(
      *agent, "b",
      {"--metadata", "--keepidle=32 --keepintvl=7", "--annotation",
       "--keepidle=45"});
  EXPECT_EQ(b["TCP_KEEPIDLE"], 45);
  EXPECT_EQ(b["TCP_KEEPINTVL"], 7);
  EXPECT_EQ(b["TCP_KEEPCNT"], 4);
  // A server-only container's client socket is left alone.
  tests::Options c = options_of_container(*agent, "c", {"--metadata",
                                                        "--mode=listen"});
  EXPECT_EQ(c["SO_KEEPALIVE"], 0);
  EXPECT_TRUE(agent->wait_for_output("container c (pid", 1s));
  EXPECT_NE(agent->err().find("serving, mode listen"), std::string::npos)
      << agent->transcript();
}

// --metrics: the same counters, in the Prometheus text format.
TEST_F(AgentTest, MetricsServeTheCountersOverHttp) {
  std::unique_ptr<Child> agent = start_agent({"--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(agent->wait_for_output("metrics on http://127.0.0.1:", 5s));
  size_t at = agent->err().find("http://127.0.0.1:") + 17;
  int port = std::stoi(agent->err().substr(at));
  Listener server;
  Child target({KEEPALIVE_OCI_RUNTIME, socket_path(), "scraped", "--",
                tests::raw_tcp_path(), "connect",
                std::to_string(server.port())});
  ASSERT_TRUE(target.wait_line("connected", 10s)) << target.transcript();
  UniqueFd http = tests::connect_to(port, 5s);
  ASSERT_TRUE(http.valid());
  const char request[] = "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n";
  ASSERT_EQ(write(http.get(), request, sizeof request - 1),
            static_cast<ssize_t>(sizeof request - 1));
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = read(http.get(), buf, sizeof buf)) > 0;) {
    response.append(buf, static_cast<size_t>(n));
  }
  EXPECT_EQ(response.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << response;
  EXPECT_NE(response.find("\nkeepalive_agent_containers 1\n"),
            std::string::npos)
      << response;
  EXPECT_NE(response.find("\nkeepalive_agent_sockets_total{container="
                          "\"scraped\",pid=\"" +
                          std::to_string(target.pid()) + "\"} 1\n"),
            std::string::npos)
      << response;
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0);
}

// --group: processes of that (primary) group may hand over a listener;
// others still may not.
TEST_F(AgentTest, GroupLetsItsProcessesHandOverAListener) {
  const group* nogroup = getgrnam("nogroup");
  if (nogroup == nullptr) GTEST_SKIP() << "no group named nogroup here";
  std::string gid = std::to_string(nogroup->gr_gid);
  // The scratch directory is root's alone; the agent makes run/ for the
  // group.
  ASSERT_EQ(chmod(path("").c_str(), 0755), 0);
  std::unique_ptr<Child> agent = start_agent({"--group", "nogroup"});
  struct stat st {};
  ASSERT_EQ(stat(socket_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_gid, nogroup->gr_gid);
  EXPECT_EQ(st.st_mode & 0777, 0660u);

  Listener server;
  Child member({"setpriv", "--reuid=65534", "--regid=" + gid,
                "--clear-groups", KEEPALIVE_OCI_RUNTIME, socket_path(),
                "member", "--", tests::raw_tcp_path(), "connect",
                std::to_string(server.port())});
  ASSERT_TRUE(member.wait_line("connected", 10s))
      << member.transcript() << agent->transcript();
  tests::Options options = tests::probe_options(member.pid(), server.port());
  EXPECT_EQ(options["SO_KEEPALIVE"], 1);
  member.close_stdin();
  EXPECT_EQ(member.wait_exit(10s), 0);

  // In the group only as a supplementary one: the file system lets it
  // connect, SO_PEERCRED does not show the group, and the agent refuses.
  tests::Outcome refused = tests::run(
      {"setpriv", "--reuid=65534", "--regid=65533", "--groups=" + gid, "--",
       KEEPALIVE_OCI_RUNTIME, socket_path(), "stranger", "--", "true"});
  EXPECT_TRUE(agent->wait_for_output("refused a connection from uid 65534",
                                     5s))
      << refused << agent->transcript();
}

// keepalive-agent status: a line per container, with what it got.
TEST_F(AgentTest, StatusSaysWhatEachContainerGot) {
  std::unique_ptr<Child> agent = start_agent({});
  Listener server;
  Child target({KEEPALIVE_OCI_RUNTIME, socket_path(), "seen", "--metadata",
                "--keepidle=61", "--", tests::raw_tcp_path(), "connect",
                std::to_string(server.port())});
  ASSERT_TRUE(target.wait_line("connected", 10s)) << target.transcript();
  tests::Outcome status = tests::run(
      {KEEPALIVE_AGENT, "status", "--control", path("run/control.sock")});
  EXPECT_EQ(status.exit_code(), 0) << status;
  EXPECT_NE(status.out.find("1 container, no fd store"), std::string::npos)
      << status;
  EXPECT_NE(status.out.find("container seen: pid " +
                            std::to_string(target.pid()) +
                            ", sockets given options 1, options failed 0, "
                            "unreachable 0; mode socket, keepidle 61"),
            std::string::npos)
      << status;
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0);
  tests::Outcome none = tests::run(
      {KEEPALIVE_AGENT, "status", "--control", path("run/nothing.sock")});
  EXPECT_EQ(none.exit_code(), 1) << none;
  EXPECT_NE(none.err.find("no agent answers on"), std::string::npos) << none;
}

// A bad value: one line naming the container and the value; the container
// is served with the node's settings, or with none under --strict. Its
// calls succeed either way.
TEST_F(AgentTest, ABadContainerSettingIsOneLineAndTheNodesSettingsApply) {
  for (bool strict : {false, true}) {
    SCOPED_TRACE(strict ? "--strict" : "default");
    std::vector<std::string> flags = {"--keepidle", "21"};
    if (strict) flags.push_back("--strict");
    std::unique_ptr<Child> agent = start_agent(flags);
    tests::Options o = options_of_container(
        *agent, "bad", {"--metadata", "--keepintvl=5", "--annotation",
                        "--keepidle=forever"});
    EXPECT_EQ(o["SO_KEEPALIVE"], strict ? 0 : 1);
    if (!strict) {
      EXPECT_EQ(o["TCP_KEEPIDLE"], 21);
      EXPECT_EQ(o["TCP_KEEPINTVL"], 15);  // metadata dropped with the rest
    }
    const std::string said =
        "container bad: annotation org.keepalive.options: --keepidle: "
        "invalid value 'forever'";
    EXPECT_TRUE(agent->wait_for_output(said, 5s)) << agent->transcript();
    size_t first = agent->err().find(said);
    EXPECT_EQ(agent->err().find(said, first + 1), std::string::npos)
        << agent->transcript();
    agent->signal_group(SIGTERM);
    EXPECT_EQ(agent->wait_exit(10s), 0);
  }
}

// ---- restarts -------------------------------------------------------------

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
bool wait_for_count(Child& agent, const std::string& needle, int count,
                    std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (tests::count_of(agent.err(), needle) < static_cast<size_t>(count)) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    agent.wait_for_output("\x01never said", 20ms);
  }
  return true;
}

int open_fds(pid_t pid) {
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
int open_fds_but_ring(pid_t pid) {
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

// AddressSanitizer keeps freed memory in quarantine: RSS budgets mean
// nothing in a sanitizer build (the fd counts still do).
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

int rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stoi(line.substr(6));
  }
  return -1;
}

// The verdict line of `raw_tcp signals`, once it has exited.
tests::Options loop_result(Child& client) {
  EXPECT_TRUE(client.wait_exit(60s)) << "the connect loop never ended";
  std::optional<std::string> line = client.wait_line("result", 1s);
  if (!line) {
    ADD_FAILURE() << client.transcript();
    return {};
  }
  return tests::parse_pairs(*line);
}

// SIGHUP: the agent re-executes itself and serves the container on, while
// the container connects in a loop: not one call fails, every socket gets
// the options, and the agent holds no more fds after three re-execs.
TEST_F(AgentTest, ReexecutingOnSighupKeepsServingAContainerMidLoop) {
  std::unique_ptr<Child> agent = start_agent({"--keepidle", "27"});
  AcceptingServer server;
  Child client({KEEPALIVE_OCI_RUNTIME, socket_path(), "loop", "--",
                tests::raw_tcp_path(), "signals", "30000", "--connect",
                std::to_string(server.port())});
  std::this_thread::sleep_for(100ms);
  int fds_before = open_fds_but_ring(agent->pid());
  for (int i = 1; i <= 3; ++i) {
    kill(agent->pid(), SIGHUP);
    ASSERT_TRUE(wait_for_count(*agent, "took over 1 of 1 containers", i, 10s))
        << agent->transcript();
    ASSERT_TRUE(wait_for_count(*agent, "listening on", i + 1, 10s))
        << agent->transcript();
  }
  // A leak in the re-exec would add one per restart; a cached pidfd of
  // the container's may come or go with its calls.
  EXPECT_LE(open_fds_but_ring(agent->pid()), fds_before + 1);
  // The restarts happened while the container was making its calls.
  EXPECT_TRUE(client.running()) << "the loop ended before the restarts";
  tests::Options result = loop_result(client);
  EXPECT_EQ(result["calls"], 30000);
  EXPECT_EQ(result["errors"], 0) << client.transcript();
  EXPECT_EQ(result["missing"], 0) << "sockets without options";
  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(10s), 0) << agent->transcript();
}

// A container killed while its threads are in the middle of trapped calls:
// the agent drops it, holds no more fds than before, and serves the next.
TEST_F(AgentTest, AContainerKilledMidCallIsDroppedCleanly) {
  std::unique_ptr<Child> agent = start_agent({});
  AcceptingServer server;
  // A first container sets up what the agent keeps (its options ring).
  EXPECT_EQ(options_of_container(*agent, "first", {})["SO_KEEPALIVE"], 1);
  std::this_thread::sleep_for(50ms);
  int fds_before = open_fds(agent->pid());
  for (int round = 0; round < 3; ++round) {
    Child storm({KEEPALIVE_OCI_RUNTIME, socket_path(), "storm", "--",
                 tests::raw_tcp_path(), "storm", "4", "--connect",
                 std::to_string(server.port())});
    ASSERT_TRUE(storm.wait_line("storming", 10s)) << storm.transcript();
    std::this_thread::sleep_for(150ms);
    storm.signal_group(SIGKILL);
    EXPECT_EQ(storm.wait_exit(10s), 128 + SIGKILL);
  }
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (open_fds(agent->pid()) != fds_before &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(open_fds(agent->pid()), fds_before);
  tests::Options next = options_of_container(*agent, "next", {});
  EXPECT_EQ(next["SO_KEEPALIVE"], 1);
  EXPECT_TRUE(agent->running()) << agent->transcript();
}

// 100 containers served at once: what each costs the agent, in memory and
// descriptors. Five fds each: the listener, the loop's copy of it, the
// record for the fd store, the task cache's epoll and a cached pidfd (the
// io_uring ring the options go through is the agent's, shared).
TEST_F(AgentTest, AHundredContainersAtOnceCostLittleEach) {
  std::unique_ptr<Child> agent = start_agent({});
  AcceptingServer server;
  std::this_thread::sleep_for(50ms);
  int fds_before = open_fds(agent->pid());
  int rss_before = rss_kib(agent->pid());
  std::vector<std::unique_ptr<Child>> containers;
  for (int i = 0; i < 100; ++i) {
    containers.push_back(std::make_unique<Child>(std::vector<std::string>{
        KEEPALIVE_OCI_RUNTIME, socket_path(), "c" + std::to_string(i), "--",
        tests::raw_tcp_path(), "connect", std::to_string(server.port())}));
  }
  for (auto& container : containers) {
    ASSERT_TRUE(container->wait_line("connected", 20s))
        << container->transcript() << agent->transcript();
  }
  int fds = open_fds(agent->pid());
  int rss = rss_kib(agent->pid());
  double kib_each = (rss - rss_before) / 100.0;
  RecordProperty("agent_rss_kib_before", rss_before);
  RecordProperty("agent_rss_kib_with_100", rss);
  RecordProperty("agent_fds_with_100", fds);
  EXPECT_LE(fds - fds_before, 501)
      << "at most five fds per container, and the agent's ring";
  if (!kSanitized) {
    EXPECT_LE(kib_each, 64.0) << "KiB per container";
  }
  tests::Outcome status = tests::run(
      {KEEPALIVE_AGENT, "status", "--control", path("run/control.sock")});
  EXPECT_NE(status.out.find("100 containers"), std::string::npos) << status;
  for (auto& container : containers) container->close_stdin();
  for (auto& container : containers) EXPECT_EQ(container->wait_exit(10s), 0);
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
    EXPECT_EQ(bind(sock_.get(), reinterpret_cast<sockaddr*>(&addr),
                   sizeof addr),
              0);
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
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
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

std::string file_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Stopped with SIGTERM and started again by the service manager, the agent
// takes each container back from the fd store: the container's calls
// wait meanwhile, and none fails.
TEST_F(AgentTest, TheFdStoreCarriesAContainerAcrossAStopAndStart) {
  FakeServiceManager manager(path("notify.sock"));
  std::vector<std::string> argv = {KEEPALIVE_AGENT, "--socket", socket_path(),
                                   "--keepidle", "28"};
  auto agent = std::make_unique<Child>(
      argv, std::vector<std::string>{manager.notify_env()});
  ASSERT_TRUE(agent->wait_for_output("listening on", 10s));
  AcceptingServer server;
  Child client({KEEPALIVE_OCI_RUNTIME, socket_path(), "stored", "--metadata",
                "--keepintvl=6", "--", tests::raw_tcp_path(), "signals",
                "30000", "--connect", std::to_string(server.port())});
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (manager.stored("listener-") < 1 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    manager.receive();
  }
  EXPECT_TRUE(manager.ready);
  ASSERT_EQ(manager.stored("listener-"), 1);
  EXPECT_EQ(manager.stored("record-"), 1);
  EXPECT_EQ(manager.stored("socket"), 1);

  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(10s), 0) << agent->transcript();
  // The container's calls wait for the next agent.
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(client.running());

  std::string log = path("agent2.log");
  pid_t next = manager.start(argv, log);
  deadline = std::chrono::steady_clock::now() + 10s;
  while (file_text(log).find("took over 1 of 1") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(file_text(log).find("took over 1 of 1"), std::string::npos)
      << file_text(log);
  tests::Options result = loop_result(client);
  EXPECT_EQ(result["calls"], 30000);
  EXPECT_EQ(result["errors"], 0) << client.transcript();
  EXPECT_EQ(result["missing"], 0) << "sockets without options";
  // The container is gone: its fds left the store.
  deadline = std::chrono::steady_clock::now() + 10s;
  while (manager.stored("listener-") > 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
    manager.receive();
  }
  EXPECT_EQ(manager.stored("listener-"), 0);
  EXPECT_EQ(manager.stored("record-"), 0);
  kill(next, SIGTERM);
  int status = 0;
  waitpid(next, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << file_text(log);
}

// Socket activation: the listening socket comes from the service manager
// (keepalive-agent.socket), and the agent serves on it as it is.
TEST_F(AgentTest, ASocketFromSocketActivationIsServed) {
  FakeServiceManager manager(path("notify.sock"));
  std::filesystem::create_directories(path("run"));
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket_path().c_str());
  ASSERT_EQ(bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr),
            0);
  ASSERT_EQ(listen(sock.get(), 16), 0);
  manager.hand("keepalive-agent.socket", std::move(sock));
  std::string log = path("agent.log");
  // --socket names another path: the activated socket wins.
  pid_t agent = manager.start({KEEPALIVE_AGENT, "--socket",
                               path("unused/agent.sock"), "--keepidle", "29"},
                              log);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (file_text(log).find("listening on") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_NE(file_text(log).find("listening on " + socket_path()),
            std::string::npos)
      << file_text(log);
  Listener server;
  Child target({KEEPALIVE_OCI_RUNTIME, socket_path(), "activated", "--",
                tests::raw_tcp_path(), "connect",
                std::to_string(server.port())});
  ASSERT_TRUE(target.wait_line("connected", 10s))
      << target.transcript() << file_text(log);
  tests::Options options = tests::probe_options(target.pid(), server.port());
  EXPECT_EQ(options["TCP_KEEPIDLE"], 29);
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0);
  kill(agent, SIGTERM);
  int status = 0;
  waitpid(agent, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << file_text(log);
  EXPECT_FALSE(std::filesystem::exists(path("unused/agent.sock")));
}

// ---- with runc and crun ----------------------------------------------------

// How to run an OCI runtime here. runc runs a bundle as it is; crun 1.8
// refuses the hybrid cgroup layout of these machines and runs in a mount
// namespace of its own with cgroup2 on /sys/fs/cgroup and no cgroup
// manager.
struct Runtime {
  const char* name;
  std::vector<std::string> prefix;  // up to and including the global flags
};

Runtime runc_runtime(const std::string& state) {
  return {"runc", {"runc", "--root", state}};
}

Runtime crun_runtime(const std::string& state) {
  return {"crun",
          {"unshare", "--mount", "sh", "-c",
           "mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"",
           "crun", "--cgroup-manager=disabled", "--root", state}};
}

class RuntimeTest : public AgentTest {
 protected:
  // Skips unless `runtime` is installed.
  bool usable(const Runtime& runtime) {
    if (tests::run({runtime.name, "--version"}).exit_code() != 0) {
      ADD_FAILURE() << runtime.name << " is not installed (Debian: "
                    << runtime.name << "); packaging/dev.sh installs it";
      return false;
    }
    return true;
  }

  // A bundle whose root holds only the static raw_tcp helper, run with
  // `args`, sharing the host's network and pid namespaces (so that it
  // reaches the test's loopback server and its pid is the one
  // sockopt_probe needs), with the profile `keepalive-agent profile
  // --metadata METADATA` prints for the test's socket.
  std::string make_bundle(const std::string& name,
                          const std::vector<std::string>& args,
                          const std::string& metadata = "",
                          bool own_pid_namespace = false,
                          bool user_namespace = false) {
    std::string bundle = path(name);
    std::filesystem::create_directories(bundle + "/rootfs");
    std::filesystem::copy_file(tests::raw_tcp_path(),
                               bundle + "/rootfs/raw_tcp",
                               std::filesystem::copy_options::skip_existing);
    tests::Outcome spec = tests::run({"runc", "spec", "--bundle", bundle});
    EXPECT_EQ(spec.exit_code(), 0) << spec;
    nlohmann::json config;
    std::ifstream(bundle + "/config.json") >> config;
    config["process"]["terminal"] = false;
    config["process"]["args"] = {"/raw_tcp"};
    for (const std::string& arg : args) config["process"]["args"].push_back(arg);
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& ns : config["linux"]["namespaces"]) {
      if (ns["type"] == "network") continue;
      if (ns["type"] == "pid" && !own_pid_namespace) continue;
      kept.push_back(ns);
    }
    if (user_namespace) {
      // Root inside is uid 100000 outside. Without a network namespace of
      // its own it may not mount sysfs: /sys is bound instead.
      kept.push_back({{"type", "user"}});
      nlohmann::json mapping = {
          {{"containerID", 0}, {"hostID", 100000}, {"size", 65536}}};
      config["linux"]["uidMappings"] = mapping;
      config["linux"]["gidMappings"] = mapping;
      // The mapped root makes the mount points in its root file system.
      EXPECT_EQ(chown((bundle + "/rootfs").c_str(), 100000, 100000), 0);
      for (auto& mount : config["mounts"]) {
        if (mount["type"] == "sysfs") {
          mount = {{"destination", "/sys"},
                   {"type", "none"},
                   {"source", "/sys"},
                   {"options", {"rbind", "nosuid", "noexec", "nodev", "ro"}}};
        }
      }
    }
    config["linux"]["namespaces"] = kept;
    std::vector<std::string> profile_argv = {KEEPALIVE_AGENT, "profile",
                                             "--socket", socket_path()};
    if (!metadata.empty()) profile_argv.push_back("--metadata=" + metadata);
    tests::Outcome profile = tests::run(profile_argv);
    EXPECT_EQ(profile.exit_code(), 0) << profile;
    config["linux"]["seccomp"] = nlohmann::json::parse(profile.out);
    std::ofstream(bundle + "/config.json") << config.dump(2);
    return bundle;
  }

  // The host pid of container `id`, as `RUNTIME state` reports it; 0
  // (after a failure) if it cannot say.
  pid_t host_pid_of(const Runtime& runtime, const std::string& id) {
    std::vector<std::string> argv = runtime.prefix;
    argv.insert(argv.end(), {"state", id});
    tests::Outcome state = tests::run(argv);
    if (state.exit_code() != 0) {
      ADD_FAILURE() << state;
      return 0;
    }
    return nlohmann::json::parse(state.out)["pid"].get<pid_t>();
  }

  std::vector<std::string> run_argv(const Runtime& runtime,
                                    const std::string& bundle,
                                    const std::string& id) {
    std::vector<std::string> argv = runtime.prefix;
    argv.insert(argv.end(), {"run", "--bundle", bundle, id});
    return argv;
  }

  // One container connecting to a loopback server under `runtime`, its
  // socket's options read back from outside.
  void check_container(const Runtime& runtime) {
    std::unique_ptr<Child> agent = start_agent({"-v", "--keepidle", "44"});
    Listener server;
    std::string bundle = make_bundle(
        "bundle", {"connect", std::to_string(server.port())}, "--keepcnt=3");
    std::string id = std::string("keepalive-agent-test-") + runtime.name;
    Child container(run_argv(runtime, bundle, id));
    std::optional<std::string> connected =
        container.wait_line("connected", 20s);
    ASSERT_TRUE(connected) << container.transcript() << agent->transcript();
    pid_t pid = tests::word_as_int(*connected, 3);
    std::string detail;
    tests::Options options =
        tests::probe_options(pid, server.port(), 5s, &detail);
    EXPECT_EQ(options["SO_KEEPALIVE"], 1) << detail;
    EXPECT_EQ(options["TCP_KEEPIDLE"], 44) << detail;
    EXPECT_EQ(options["TCP_KEEPCNT"], 3) << detail;  // the profile's metadata
    EXPECT_TRUE(agent->wait_for_output("container " + id + " (pid", 5s))
        << agent->transcript();
    container.close_stdin();
    EXPECT_EQ(container.wait_exit(20s), 0) << container.transcript();
    std::vector<std::string> remove = runtime.prefix;
    remove.insert(remove.end(), {"delete", "--force", id});
    tests::run(remove);
  }
};

TEST_F(RuntimeTest, RuncHandsTheAgentAContainerWhoseSocketGetsTheOptions) {
  Runtime runc = runc_runtime(path("runc-state"));
  if (!usable(runc)) return;
  check_container(runc);
}

TEST_F(RuntimeTest, CrunHandsTheAgentAContainerWhoseSocketGetsTheOptions) {
  Runtime crun = crun_runtime(path("crun-state"));
  if (!usable(crun)) return;
  check_container(crun);
}

// A container in a pid namespace of its own: the runtime reports its
// host pid, and the kernel gives the agent host pids in each notification.
TEST_F(RuntimeTest, AContainerInItsOwnPidNamespaceGetsTheOptions) {
  Runtime runc = runc_runtime(path("runc-state"));
  if (!usable(runc)) return;
  std::unique_ptr<Child> agent = start_agent({"-v", "--keepidle", "46"});
  Listener server;
  std::string bundle = make_bundle(
      "bundle", {"connect", std::to_string(server.port())}, "", true);
  Child container(run_argv(runc, bundle, "own-pidns"));
  std::optional<std::string> connected = container.wait_line("connected", 20s);
  ASSERT_TRUE(connected) << container.transcript() << agent->transcript();
  EXPECT_EQ(tests::word_as_int(*connected, 3), 1) << *connected;
  pid_t host_pid = host_pid_of(runc, "own-pidns");
  ASSERT_GT(host_pid, 0);
  std::string detail;
  tests::Options options =
      tests::probe_options(host_pid, server.port(), 5s, &detail);
  EXPECT_EQ(options["SO_KEEPALIVE"], 1) << detail;
  EXPECT_EQ(options["TCP_KEEPIDLE"], 46) << detail;
  EXPECT_TRUE(agent->wait_for_output(
      "container own-pidns (pid " + std::to_string(host_pid) + ")", 5s))
      << agent->transcript();
  container.close_stdin();
  EXPECT_EQ(container.wait_exit(20s), 0) << container.transcript();
  tests::run({"runc", "--root", path("runc-state"), "delete", "--force",
              "own-pidns"});
}

// A user-namespaced container (root inside is uid 100000 outside; with a
// pid namespace of its own, to mount /proc): the agent, root on the host
// with CAP_SYS_PTRACE, reaches its socket too.
TEST_F(RuntimeTest, AUserNamespacedContainerGetsTheOptions) {
  Runtime runc = runc_runtime(path("runc-state"));
  if (!usable(runc)) return;
  std::unique_ptr<Child> agent = start_agent({"--keepidle", "47"});
  Listener server;
  std::string bundle = make_bundle(
      "bundle", {"connect", std::to_string(server.port())}, "", true, true);
  // The mapped root must reach the bundle's root file system.
  ASSERT_EQ(chmod(path("").c_str(), 0755), 0);
  Child container(run_argv(runc, bundle, "userns"));
  std::optional<std::string> connected = container.wait_line("connected", 20s);
  ASSERT_TRUE(connected) << container.transcript() << agent->transcript();
  pid_t pid = host_pid_of(runc, "userns");
  ASSERT_GT(pid, 0);
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line) && !line.starts_with("Uid:")) {
  }
  EXPECT_NE(line.find("100000"), std::string::npos) << line;
  std::string detail;
  tests::Options options =
      tests::probe_options(pid, server.port(), 5s, &detail);
  EXPECT_EQ(options["SO_KEEPALIVE"], 1) << detail;
  EXPECT_EQ(options["TCP_KEEPIDLE"], 47) << detail;
  container.close_stdin();
  EXPECT_EQ(container.wait_exit(20s), 0) << container.transcript();
  tests::run({"runc", "--root", path("runc-state"), "delete", "--force",
              "userns"});
}

// 50 containers started by runc one after another, each making a few
// connections and exiting: the agent serves each, and holds as many fds
// and about as much memory after the last as after the tenth.
TEST_F(RuntimeTest, FiftyContainersInTurnLeaveTheAgentAsTheyFoundIt) {
  Runtime runc = runc_runtime(path("runc-state"));
  if (!usable(runc)) return;
  std::unique_ptr<Child> agent = start_agent({});
  AcceptingServer server;
  std::string bundle =
      make_bundle("bundle", {"signals", "5", "--connect",
                             std::to_string(server.port())});
  int fds_after_10 = 0, rss_after_10 = 0;
  for (int i = 1; i <= 50; ++i) {
    tests::Outcome run = tests::run(
        run_argv(runc, bundle, "churn-" + std::to_string(i)), {}, 30s);
    ASSERT_EQ(run.exit_code(), 0) << "container " << i << ": " << run
                                  << agent->transcript();
    ASSERT_NE(run.out.find("errors=0 first_errno=0 missing=0"),
              std::string::npos)
        << run;
    if (i == 10) {
      // The agent takes the container's end as its listener's hang-up.
      std::this_thread::sleep_for(100ms);
      fds_after_10 = open_fds(agent->pid());
      rss_after_10 = rss_kib(agent->pid());
    }
  }
  std::this_thread::sleep_for(100ms);
  int fds = open_fds(agent->pid());
  int rss = rss_kib(agent->pid());
  RecordProperty("agent_fds", fds);
  RecordProperty("agent_rss_kib_after_10", rss_after_10);
  RecordProperty("agent_rss_kib_after_50", rss);
  EXPECT_EQ(fds, fds_after_10);
  if (!kSanitized) {
    EXPECT_LE(rss, rss_after_10 + 128) << "KiB";
  }
  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(10s), 0) << agent->transcript();
}

}  // namespace
}  // namespace keepalive::agent
