// SPDX-License-Identifier: Apache-2.0
// keepalive-agent across its own restarts: re-executing on SIGHUP, and
// stopped and started by a service manager that keeps its fds (played by
// FakeServiceManager). Whatever goes wrong in the new agent, a container
// it took over goes on being served: none of its calls fails.
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "agent/fd_store.h"
#include "tests/agent/agent_harness.h"

namespace keepalive::agent {
namespace {

// A seccomp listener whose filtered task stays alive (as a container's
// does) until this is destroyed: the agent serves it for as long.
class LiveListener {
 public:
  LiveListener() : fd_(make_listener(&pid_)) {}
  ~LiveListener() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int fd() const { return fd_.get(); }
  UniqueFd take() { return std::move(fd_); }

 private:
  pid_t pid_ = -1;
  UniqueFd fd_;
};

// Binds a listening Unix socket at `path` (which must not exist).
UniqueFd listening_at(const std::string& path) {
  UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  if (bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(sock.get(), 16) != 0) {
    ADD_FAILURE() << "binding " << path << ": " << strerror(errno);
    return {};
  }
  return sock;
}

// Waits until `log` (a file) says `needle`.
bool wait_in_file(const std::string& log, const std::string& needle,
                  std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (file_text(log).find(needle) == std::string::npos) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Waits until `manager` holds `count` fds under names starting `prefix`.
bool wait_stored(FakeServiceManager& manager, const std::string& prefix,
                 int count, std::chrono::milliseconds timeout = 10s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    manager.receive();
    if (manager.stored(prefix) == count) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

// The verdict of a `raw_tcp signals 30000` loop: every call made, none
// failed, every socket with the options. `context` goes with a failure.
void expect_every_call_served(Child& client, const std::string& context = "") {
  tests::Options result = loop_result(client);
  EXPECT_EQ(result["calls"], 30000);
  EXPECT_EQ(result["errors"], 0) << client.transcript() << context;
  EXPECT_EQ(result["missing"], 0) << "sockets without options";
}

int stop(pid_t pid) {
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// ---- restarts -------------------------------------------------------------

// SIGHUP: the agent re-executes itself and serves the container on, while
// the container connects in a loop: not one call fails, every socket gets
// the options, and the agent holds no more fds after three re-execs.
TEST_F(AgentTest, ReexecutingOnSighupKeepsServingAContainerMidLoop) {
  std::unique_ptr<Child> agent = start_agent({"--keepidle", "27"});
  AcceptingServer server;
  Child client({KEEPALIVE_OCI_RUNTIME, socket_path(), "loop", "--",
                tests::raw_tcp_path(), "signals", "30000", "--connect",
                std::to_string(server.port())});
  ASSERT_TRUE(wait_for_status("1 container,")) << agent->transcript();
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
  expect_every_call_served(client);
  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(10s), 0) << agent->transcript();
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
  ASSERT_TRUE(wait_stored(manager, "listener-", 1));
  EXPECT_TRUE(manager.ready);
  EXPECT_EQ(manager.stored("record-"), 1);
  EXPECT_EQ(manager.stored("socket"), 1);

  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(10s), 0) << agent->transcript();
  // The container's calls wait for the next agent.
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(client.running());

  std::string log = path("agent2.log");
  pid_t next = manager.start(argv, log);
  EXPECT_TRUE(wait_in_file(log, "took over 1 of 1")) << file_text(log);
  expect_every_call_served(client);
  // The container is gone: its fds left the store.
  EXPECT_TRUE(wait_stored(manager, "listener-", 0));
  EXPECT_EQ(manager.stored("record-"), 0);
  EXPECT_EQ(stop(next), 0) << file_text(log);
}

// Socket activation: the listening socket comes from the service manager
// (keepalive-agent.socket), and the agent serves on it as it is.
TEST_F(AgentTest, ASocketFromSocketActivationIsServed) {
  FakeServiceManager manager(path("notify.sock"));
  std::filesystem::create_directories(path("run"));
  UniqueFd sock = listening_at(socket_path());
  ASSERT_TRUE(sock.valid());
  manager.hand("keepalive-agent.socket", std::move(sock));
  std::string log = path("agent.log");
  // --socket names another path: the activated socket wins.
  pid_t agent = manager.start({KEEPALIVE_AGENT, "--socket",
                               path("unused/agent.sock"), "--keepidle", "29"},
                              log);
  EXPECT_TRUE(wait_in_file(log, "listening on " + socket_path()))
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
  EXPECT_EQ(stop(agent), 0) << file_text(log);
  EXPECT_FALSE(std::filesystem::exists(path("unused/agent.sock")));
}
// SIGHUP while a runtime's message is half read: the agent reads the rest
// before it re-executes (the fd it carries would not pass), and the next
// agent serves that container.
TEST_F(AgentTest, ASighupWaitsForTheMessageBeingRead) {
  std::unique_ptr<Child> agent = start_agent({});
  LiveListener listener;
  ASSERT_TRUE(is_open(listener.fd()));
  int fds_idle = open_fds(agent->pid());
  UniqueFd runtime = connect_to_agent();
  std::string state = state_json();
  size_t half = state.size() / 2;
  ASSERT_EQ(send_with_fd(runtime.get(), state.data(), half, listener.fd()),
            static_cast<ssize_t>(half));
  // As runc does: its copy is closed once sent.
  listener.take();
  // Read by the agent: it holds the connection and the listener it carried.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (open_fds(agent->pid()) < fds_idle + 2 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_GE(open_fds(agent->pid()), fds_idle + 2) << agent->transcript();
  kill(agent->pid(), SIGHUP);
  ASSERT_TRUE(
      agent->wait_for_output("re-executing once 1 runtime's message is in", 5s))
      << agent->transcript();
  ASSERT_EQ(write(runtime.get(), state.data() + half, state.size() - half),
            static_cast<ssize_t>(state.size() - half));
  EXPECT_TRUE(wait_for_count(*agent, "took over 1 of 1 containers", 1, 10s))
      << agent->transcript();
  ASSERT_TRUE(wait_for_count(*agent, "listening on", 2, 10s))
      << agent->transcript();
  tests::Outcome status = tests::run(
      {KEEPALIVE_AGENT, "status", "--control", path("run/control.sock")});
  EXPECT_EQ(status.exit_code(), 0) << status.transcript();
  EXPECT_NE(status.out.find("1 container,"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("container web: pid 4242"), std::string::npos)
      << status.out;
  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(10s), 0) << agent->transcript();
}

// A re-executed agent that cannot make its control socket (the path is
// taken now) serves on without it: exiting would close the only copy of
// the container's listener, and its calls would fail with ENOSYS.
TEST_F(AgentTest, AReexecutedAgentThatCannotMakeItsControlSocketServesOn) {
  std::unique_ptr<Child> agent = start_agent({"--keepidle", "26"});
  AcceptingServer server;
  Child client({KEEPALIVE_OCI_RUNTIME, socket_path(), "loop", "--",
                tests::raw_tcp_path(), "signals", "30000", "--connect",
                std::to_string(server.port())});
  ASSERT_TRUE(wait_for_count(*agent, "listening on", 1, 10s));
  // The container is the agent's before the restart.
  ASSERT_TRUE(wait_for_status("1 container,")) << agent->transcript();
  std::string control = path("run/control.sock");
  ASSERT_EQ(unlink(control.c_str()), 0);
  UniqueFd squatter = listening_at(control);
  kill(agent->pid(), SIGHUP);
  EXPECT_TRUE(agent->wait_for_output(
      "serving on without `keepalive-agent status`", 10s))
      << agent->transcript();
  EXPECT_TRUE(wait_for_count(*agent, "listening on", 2, 10s))
      << agent->transcript();
  EXPECT_TRUE(agent->running());
  expect_every_call_served(client);
  agent->signal_group(SIGTERM);
  EXPECT_EQ(agent->wait_exit(10s), 0) << agent->transcript();
}

// Started with containers from the fd store and a command line it refuses
// (an upgrade that dropped a flag, say), the agent says so and serves
// those containers on, with the environment's settings, taking no new
// ones; it does not leave them waiting for an agent that never comes.
TEST_F(AgentTest, AStartWithARefusedCommandLineServesTheContainersItTookOver) {
  FakeServiceManager manager(path("notify.sock"));
  std::vector<std::string> argv = {KEEPALIVE_AGENT, "--socket", socket_path()};
  pid_t first = manager.start(argv, path("agent1.log"));
  ASSERT_TRUE(wait_in_file(path("agent1.log"), "listening on"));
  AcceptingServer server;
  Child client({KEEPALIVE_OCI_RUNTIME, socket_path(), "kept", "--metadata",
                "--keepidle=24", "--", tests::raw_tcp_path(), "signals",
                "30000", "--connect", std::to_string(server.port())});
  ASSERT_TRUE(wait_stored(manager, "listener-", 1));
  EXPECT_EQ(stop(first), 0) << file_text(path("agent1.log"));

  argv.push_back("--no-such-flag");
  std::string log = path("agent2.log");
  pid_t second = manager.start(argv, log);
  EXPECT_TRUE(wait_in_file(
      log, "serving 1 container taken over, accepting no new ones"))
      << file_text(log);
  EXPECT_NE(file_text(log).find("--no-such-flag"), std::string::npos);
  expect_every_call_served(client, file_text(log));
  EXPECT_EQ(stop(second), 0) << file_text(log);
  // The socket stayed in the store for an agent that takes the command
  // line.
  manager.receive();
  EXPECT_EQ(manager.stored("socket"), 1);
}

// Fds an environment names twice, or names without passing them, are
// skipped: one fd never gets two owners, and the agent's own fds are
// never taken for inherited ones.
TEST(InheritedFdsTest, AnFdNamedTwiceOrNeverPassedIsSkipped) {
  UniqueFd passed(open("/dev/null", O_RDONLY | O_CLOEXEC));
  int never = dup(passed.get());
  close(never);
  std::string list = std::to_string(passed.get()) + ":socket," +
                     std::to_string(passed.get()) + ":record-x," +
                     std::to_string(never) + ":listener-y,2:listener-z,junk";
  setenv(kPassedFdsVariable, list.c_str(), 1);
  std::vector<NamedFd> fds = inherited_fds();
  EXPECT_EQ(getenv(kPassedFdsVariable), nullptr);
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_EQ(fds[0].name, "socket");
  EXPECT_EQ(fds[0].fd.get(), passed.get());
  fds[0].fd.release();  // `passed` owns it
}

TEST_F(AgentTest, AnAgentNamedFdsItWasNeverPassedStartsAsUsual) {
  Child agent({KEEPALIVE_AGENT, "--socket", socket_path()},
              {std::string(kPassedFdsVariable) + "=3:x,4:y,5:z,6:socket"});
  ASSERT_TRUE(agent.wait_for_output("listening on " + socket_path(), 10s))
      << agent.transcript();
  tests::Outcome status = tests::run(
      {KEEPALIVE_AGENT, "status", "--control", path("run/control.sock")});
  EXPECT_EQ(status.exit_code(), 0) << status.transcript();
  EXPECT_NE(status.out.find("0 containers"), std::string::npos) << status.out;
  Listener server;
  Child target({KEEPALIVE_OCI_RUNTIME, socket_path(), "plain", "--",
                tests::raw_tcp_path(), "connect",
                std::to_string(server.port())});
  ASSERT_TRUE(target.wait_line("connected", 10s)) << agent.transcript();
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0);
  agent.signal_group(SIGTERM);
  EXPECT_EQ(agent.wait_exit(10s), 0) << agent.transcript();
}

// systemd 254 and later give the store's size in $FDSTORE: the agent
// counts what it hands over, says when a container's listener does not
// fit, and status says how full the store is.
TEST_F(AgentTest, AFullFdStoreIsSaidAndCounted) {
  FakeServiceManager manager(path("notify.sock"));
  Child agent({KEEPALIVE_AGENT, "--socket", socket_path()},
              {manager.notify_env(), "FDSTORE=3"});
  ASSERT_TRUE(agent.wait_for_output("listening on", 10s));
  Listener server;
  std::vector<std::unique_ptr<Child>> containers;
  for (const char* id : {"first", "second"}) {
    containers.push_back(std::make_unique<Child>(std::vector<std::string>{
        KEEPALIVE_OCI_RUNTIME, socket_path(), id, "--", tests::raw_tcp_path(),
        "connect", std::to_string(server.port())}));
    ASSERT_TRUE(containers.back()->wait_line("connected", 10s))
        << agent.transcript();
  }
  EXPECT_TRUE(agent.wait_for_output("fd store is full (FDSTORE=3", 5s))
      << agent.transcript();
  EXPECT_NE(agent.err().find("container second"), std::string::npos)
      << agent.transcript();
  ASSERT_TRUE(wait_stored(manager, "", 3));
  tests::Outcome status = tests::run(
      {KEEPALIVE_AGENT, "status", "--control", path("run/control.sock")});
  EXPECT_NE(status.out.find("2 containers, listeners kept in the service "
                            "manager's fd store (3 of its 3 fds)"),
            std::string::npos)
      << status.out;
  for (auto& container : containers) container->close_stdin();
  for (auto& container : containers) EXPECT_EQ(container->wait_exit(10s), 0);
  agent.signal_group(SIGTERM);
  EXPECT_EQ(agent.wait_exit(10s), 0) << agent.transcript();
}

// Without $FDSTORE nothing says whether systemd kept an fd: status says
// the listeners were handed over, no more.
TEST_F(AgentTest, WithoutItsSizeTheStoreIsOnlySaidToBeHandedTheListeners) {
  FakeServiceManager manager(path("notify.sock"));
  Child agent({KEEPALIVE_AGENT, "--socket", socket_path()},
              {manager.notify_env()});
  ASSERT_TRUE(agent.wait_for_output("listening on", 10s));
  tests::Outcome status = tests::run(
      {KEEPALIVE_AGENT, "status", "--control", path("run/control.sock")});
  EXPECT_NE(status.out.find("0 containers, listeners handed to the service "
                            "manager's fd store"),
            std::string::npos)
      << status.out;
  agent.signal_group(SIGTERM);
  EXPECT_EQ(agent.wait_exit(10s), 0);
}

// The store keeps the agent's socket across restarts; after --socket is
// changed, the agent listens where it now says and drops the old one.
TEST_F(AgentTest, AMovedSocketIsListenedOnAnew) {
  FakeServiceManager manager(path("notify.sock"));
  pid_t first = manager.start({KEEPALIVE_AGENT, "--socket", socket_path()},
                              path("agent1.log"));
  ASSERT_TRUE(wait_in_file(path("agent1.log"), "listening on"));
  ASSERT_TRUE(wait_stored(manager, "socket", 1));
  EXPECT_EQ(stop(first), 0);
  std::string moved = path("moved/agent.sock");
  std::string log = path("agent2.log");
  pid_t second = manager.start({KEEPALIVE_AGENT, "--socket", moved}, log);
  EXPECT_TRUE(wait_in_file(log, "listening on " + moved)) << file_text(log);
  EXPECT_NE(file_text(log).find("listening anew"), std::string::npos)
      << file_text(log);
  EXPECT_TRUE(wait_stored(manager, "socket", 1));
  Listener server;
  Child target({KEEPALIVE_OCI_RUNTIME, moved, "moved", "--",
                tests::raw_tcp_path(), "connect",
                std::to_string(server.port())});
  ASSERT_TRUE(target.wait_line("connected", 10s)) << file_text(log);
  target.close_stdin();
  EXPECT_EQ(target.wait_exit(10s), 0);
  EXPECT_EQ(stop(second), 0) << file_text(log);
}

// A listener given back without its record is served with the node's
// settings, and gets a record in the store, so that the next restart
// takes it over without a word.
TEST_F(AgentTest, AListenerKeptWithoutItsRecordGetsOne) {
  FakeServiceManager manager(path("notify.sock"));
  LiveListener listener;
  manager.hand("listener-lost", listener.take());
  std::string log = path("agent.log");
  pid_t agent =
      manager.start({KEEPALIVE_AGENT, "--socket", socket_path()}, log);
  // Said before it handles SIGTERM; "listening on" after.
  EXPECT_TRUE(wait_in_file(log, "listening on")) << file_text(log);
  EXPECT_NE(file_text(log).find("took over 1 of 1"), std::string::npos)
      << file_text(log);
  EXPECT_NE(file_text(log).find("listener-lost: no record kept with it"),
            std::string::npos)
      << file_text(log);
  EXPECT_TRUE(wait_stored(manager, "record-lost", 1)) << file_text(log);
  EXPECT_EQ(stop(agent), 0);
  std::string log2 = path("agent2.log");
  pid_t next =
      manager.start({KEEPALIVE_AGENT, "--socket", socket_path()}, log2);
  EXPECT_TRUE(wait_in_file(log2, "listening on")) << file_text(log2);
  EXPECT_NE(file_text(log2).find("took over 1 of 1"), std::string::npos)
      << file_text(log2);
  EXPECT_EQ(file_text(log2).find("no record"), std::string::npos)
      << file_text(log2);
  EXPECT_EQ(stop(next), 0);
}

}  // namespace
}  // namespace keepalive::agent
