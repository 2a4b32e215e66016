// SPDX-License-Identifier: Apache-2.0
// keepalive-agent: what a runtime's message must hold (container_state.h),
// and the real agent serving a container handed over as runc does
// (tests/helpers/oci_runtime), with the options read back from outside.
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "agent/container_state.h"
#include "tests/agent/agent_harness.h"
#include "tests/common/scratch_dir.h"
#include "tests/supervisor/options_harness.h"

namespace keepalive::agent {
namespace {

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

// Out of descriptors, the kernel drops the fds it cannot install and says
// MSG_CTRUNC, as it does for too many: the agent says which it was. In a
// child process, whose fd table is made full by its soft limit.
TEST(StateReceiverTest, NamesAFullDescriptorTable) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd ours(pair[0]), theirs(pair[1]);
  std::string json = state_json();
  UniqueFd listener = make_listener();
  ASSERT_EQ(send_with_fd(theirs.get(), json.data(), json.size(),
                         listener.get()),
            static_cast<ssize_t>(json.size()));
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The lowest free fd as the limit: every fd below it is open.
    int lowest = fcntl(ours.get(), F_DUPFD_CLOEXEC, 0);
    close(lowest);
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = static_cast<rlim_t>(lowest);
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(2);
    StateReceiver receiver;
    std::optional<Result<ContainerState>> got = receiver.read_some(ours.get());
    bool named = got.has_value() && !*got && got->error().err == EMFILE &&
                 got->error().message().find("Too many open files") !=
                     std::string::npos;
    _exit(named ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "1: read_some did not say EMFILE; 2: setrlimit failed";
}

// A record is checked as the runtime's message is: whoever could put an
// fd in the store could forge one.
TEST(ContainerStateTest, RefusesAForgedRecord) {
  for (const char* text :
       {R"({"id":"a","pid":-1,"metadata":""})",
        R"({"id":"a","pid":4294967297,"metadata":""})",
        "{\"id\":\"a\\u001b[31m\\n\",\"pid\":1,\"metadata\":\"\"}",
        R"({"id":"a","pid":1})"}) {
    UniqueFd fd(memfd_create("record", MFD_CLOEXEC));
    ASSERT_EQ(write(fd.get(), text, strlen(text)),
              static_cast<ssize_t>(strlen(text)));
    EXPECT_FALSE(load_record(fd.get())) << text;
  }
  ContainerState state;
  state.id = "wéb\\n";  // as quoted from the runtime's message
  state.pid = 7;
  state.metadata = "--keepidle=3";
  Result<UniqueFd> saved = save_record(state);
  ASSERT_TRUE(saved) << saved.error().message();
  Result<ContainerState> loaded = load_record(saved->get());
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ(loaded->id, "wéb\\n");
  EXPECT_EQ(loaded->pid, 7);
}

// ---- the real agent ------------------------------------------------------

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
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
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

// `keepalive-agent profile` with a base that is JSON but not the profile
// it looks like: one line naming what is wrong, exit 1, never an internal
// error.
TEST_F(AgentTest, ProfileRefusesAMalformedBaseInOneLine) {
  const std::pair<std::string, std::string> bases[] = {
      {R"({"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["connect"],"action":5}]})",
       "rule 1's \"action\" is not a string"},
      {R"({"defaultAction":"SCMP_ACT_ERRNO","flags":"x"})",
       "\"flags\" is not a list"},
      {R"({"defaultAction":"SCMP_ACT_ALLOW","listenerMetadata":"--keepidle=1"})",
       "already has listenerMetadata"},
  };
  for (const auto& [base, said] : bases) {
    std::string file = path("base.json");
    std::ofstream(file) << base;
    tests::Outcome o = tests::run(
        {KEEPALIVE_AGENT, "profile", "--base", file, "--wait-killable-recv"});
    EXPECT_EQ(o.exit_code(), 1) << base << "\n" << o;
    EXPECT_EQ(o.err_lines().size(), 1u) << o;
    EXPECT_NE(o.err.find(said), std::string::npos) << o;
    EXPECT_EQ(o.err.find("internal error"), std::string::npos) << o;
  }
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
      tests::run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                  KEEPALIVE_AGENT, "check"});
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
  tests::Options a =
      options_of_container(*agent, "a", {"--metadata", "--keepidle=31"});
  EXPECT_EQ(a["TCP_KEEPIDLE"], 31);
  EXPECT_EQ(a["TCP_KEEPCNT"], 4);
  tests::Options b =
      options_of_container(*agent, "b",
                           {"--metadata", "--keepidle=32 --keepintvl=7",
                            "--annotation", "--keepidle=45"});
  EXPECT_EQ(b["TCP_KEEPIDLE"], 45);
  EXPECT_EQ(b["TCP_KEEPINTVL"], 7);
  EXPECT_EQ(b["TCP_KEEPCNT"], 4);
  // A server-only container's client socket is left alone.
  tests::Options c =
      options_of_container(*agent, "c", {"--metadata", "--mode=listen"});
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

// Whoever reaches the metrics address must neither hold the agent's
// descriptors nor keep scrapers out: 4 scrapes at once at most, a new one
// making room by closing the oldest that has sent no request, and each
// closed 2 s after it connected without one.
TEST_F(AgentTest, IdleScrapesNeitherPileUpNorKeepScrapersOut) {
  std::unique_ptr<Child> agent = start_agent({"--metrics", "127.0.0.1:0"});
  ASSERT_TRUE(agent->wait_for_output("metrics on http://127.0.0.1:", 5s));
  size_t at = agent->err().find("http://127.0.0.1:") + 17;
  int port = std::stoi(agent->err().substr(at));
  // EOF within `bound`: the agent closed it.
  auto closed_within = [](int fd, std::chrono::milliseconds bound) {
    pollfd p{fd, POLLIN, 0};
    char byte;
    return poll(&p, 1, static_cast<int>(bound.count())) == 1 &&
           read(fd, &byte, 1) == 0;
  };
  auto scrape = [port] {
    UniqueFd http = tests::connect_to(port, 5s);
    const char request[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (!http.valid() ||
        write(http.get(), request, sizeof request - 1) !=
            static_cast<ssize_t>(sizeof request - 1)) {
      return std::string("(not sent)");
    }
    std::string response;
    char buf[4096];
    for (ssize_t n; (n = read(http.get(), buf, sizeof buf)) > 0;) {
      response.append(buf, static_cast<size_t>(n));
    }
    return response;
  };
  std::vector<UniqueFd> idle;
  std::vector<std::chrono::steady_clock::time_point> opened;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(tests::connect_to(port, 5s));
    opened.push_back(std::chrono::steady_clock::now());
    ASSERT_TRUE(idle.back().valid());
    // Accepted in turn: the next one is seen with the earlier ones open.
    std::this_thread::sleep_for(50ms);
  }
  // Four idle connections keep no scraper out: the oldest makes room.
  std::string response = scrape();
  EXPECT_EQ(response.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << response;
  EXPECT_TRUE(closed_within(idle[0].get(), 1s))
      << "the oldest idle scrape was not closed";
  // A younger one stays open until its own timeout, 2 s after it was
  // accepted: looked at only while well short of that.
  if (std::chrono::steady_clock::now() - opened[1] < 1500ms) {
    EXPECT_FALSE(closed_within(idle[1].get(), 200ms))
        << "a younger idle scrape was closed at once";
  } else {
    std::cout << "not checked that the second idle scrape stayed open: the "
                 "scrape took so long that its timeout was near\n";
  }
  // The rest are closed at their timeout.
  for (size_t i = 1; i < idle.size(); ++i) {
    EXPECT_TRUE(closed_within(idle[i].get(), 3s))
        << "idle scrape " << i + 1 << " still open after the timeout";
  }
  response = scrape();
  EXPECT_EQ(response.rfind("HTTP/1.0 200 OK\r\n", 0), 0u) << response;
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
  Child member({"setpriv", "--reuid=65534", "--regid=" + gid, "--clear-groups",
                KEEPALIVE_OCI_RUNTIME, socket_path(), "member", "--",
                tests::raw_tcp_path(), "connect",
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
  EXPECT_TRUE(agent->wait_for_output("refused a connection from uid 65534", 5s))
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
  EXPECT_NE(
      status.out.find("container seen: pid " + std::to_string(target.pid()) +
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
        *agent, "bad",
        {"--metadata", "--keepintvl=5", "--annotation", "--keepidle=forever"});
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

// A container killed while its threads are in the middle of trapped calls:
// the agent drops it, holds no more fds than before, and serves the next.
TEST_F(AgentTest, AContainerKilledMidCallIsDroppedCleanly) {
  std::unique_ptr<Child> agent = start_agent({});
  AcceptingServer server;
  // A first container sets up what the agent keeps (its options ring).
  EXPECT_EQ(options_of_container(*agent, "first", {})["SO_KEEPALIVE"], 1);
  ASSERT_TRUE(wait_for_status("0 containers")) << agent->transcript();
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
           "mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"", "crun",
           "--cgroup-manager=disabled", "--root", state}};
}

class RuntimeTest : public AgentTest {
 protected:
  // Skips unless `runtime` is installed.
  bool usable(const Runtime& runtime) {
    if (tests::run({runtime.name, "--version"}).exit_code() != 0) {
      ADD_FAILURE() << runtime.name
                    << " is not installed (Debian: " << runtime.name
                    << "); packaging/dev.sh installs it";
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
    for (const std::string& arg : args)
      config["process"]["args"].push_back(arg);
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
  tests::run(
      {"runc", "--root", path("runc-state"), "delete", "--force", "own-pidns"});
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
  tests::run(
      {"runc", "--root", path("runc-state"), "delete", "--force", "userns"});
}

// 50 containers started by runc one after another, each making a few
// connections and exiting: the agent serves each, and holds as many fds
// and about as much memory after the last as after the tenth.
TEST_F(RuntimeTest, FiftyContainersInTurnLeaveTheAgentAsTheyFoundIt) {
  Runtime runc = runc_runtime(path("runc-state"));
  if (!usable(runc)) return;
  std::unique_ptr<Child> agent = start_agent({});
  AcceptingServer server;
  std::string bundle = make_bundle(
      "bundle", {"signals", "5", "--connect", std::to_string(server.port())});
  int fds_after_10 = 0, rss_after_10 = 0;
  for (int i = 1; i <= 50; ++i) {
    tests::Outcome run = tests::run(
        run_argv(runc, bundle, "churn-" + std::to_string(i)), {}, 30s);
    ASSERT_EQ(run.exit_code(), 0)
        << "container " << i << ": " << run << agent->transcript();
    ASSERT_NE(run.out.find("errors=0 first_errno=0 missing=0"),
              std::string::npos)
        << run;
    if (i == 10) {
      // The agent takes the container's end as its listener's hang-up.
      ASSERT_TRUE(wait_for_status("0 containers")) << agent->transcript();
      fds_after_10 = open_fds(agent->pid());
      rss_after_10 = rss_kib(agent->pid());
    }
  }
  ASSERT_TRUE(wait_for_status("0 containers")) << agent->transcript();
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

// keepalive-supervise --pid --follow --agent: the filter put into a running
// client is served by the agent once the supervisor has exited, and the
// client, connecting all along, loses no call.
TEST_F(AgentTest, FollowHandsARunningProcessToTheAgent) {
  std::unique_ptr<Child> agent = start_agent({});
  AcceptingServer server;
  Child client({KEEPALIVE_CONNECT_LOOP, std::to_string(server.port()), "4"});
  std::optional<std::string> started = client.wait_line("started", 10s);
  ASSERT_TRUE(started) << client.transcript();
  std::string pid = std::to_string(tests::word_as_int(*started, 2));

  // An agent that is not there: refused before the process is touched.
  tests::Outcome refused =
      tests::run({tests::supervise_path(), "--pid", pid, "--follow",
                  "--agent=" + path("run/none.sock")});
  EXPECT_EQ(refused.shell_status(), 1) << refused;
  EXPECT_NE(refused.err.find("cannot reach keepalive-agent"),
            std::string::npos)
      << refused;
  EXPECT_NE(file_text("/proc/" + pid + "/status").find("Seccomp:\t0"),
            std::string::npos);

  tests::Outcome handed = tests::run(
      {tests::supervise_path(), "--pid", pid, "--follow",
       "--agent=" + socket_path(), "--keepidle", "7"});
  EXPECT_EQ(handed.shell_status(), 0) << handed << agent->transcript();
  EXPECT_NE(handed.err.find("keepalive-agent serves its filter from now on"),
            std::string::npos)
      << handed;
  std::this_thread::sleep_for(500ms);  // the agent alone serves it now
  client.close_stdin();
  tests::Outcome outcome = client.wait(20s);
  tests::Options totals;
  for (const std::string& line : outcome.out_lines()) {
    if (line.rfind("made=", 0) == 0) totals = tests::parse_pairs(line);
  }
  EXPECT_EQ(totals["failed"], 0) << outcome << agent->transcript();
  EXPECT_GT(totals["keepalive"], 0) << outcome << agent->transcript();
}

}  // namespace
}  // namespace keepalive::agent
