// SPDX-License-Identifier: Apache-2.0
// build_filter: a program for every mode and strategy, the one libseccomp
// compiles for it, and, installed in a real child, exactly the calls it
// should trap leave the kernel.
#include "supervisor/filter.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "common/tcp.h"
#include "common/unique_fd.h"
#include "supervisor/filter_rules.h"
#include "supervisor/syscalls.h"


namespace keepalive {
namespace {

// Generous: the machine is shared and noisy.
constexpr int kBoundMs = 10000;

using Spec = std::tuple<Mode, Strategy, bool>;

std::string spec_name(const ::testing::TestParamInfo<Spec>& param) {
  return std::string(mode_name(std::get<0>(param.param))) + "_" +
         strategy_name(std::get<1>(param.param)) +
         (std::get<2>(param.param) ? "_deny_io_uring" : "");
}

const auto kAllSpecs = ::testing::Combine(
    ::testing::Values(Mode::kSocket, Mode::kConnect, Mode::kListen),
    ::testing::Values(Strategy::kEmulate, Strategy::kContinue),
    ::testing::Bool());

class BuildFilterTest : public ::testing::TestWithParam<Spec> {};

TEST_P(BuildFilterTest, ProducesAProgramTheKernelCanTake) {
  const auto [mode, strategy, deny] = GetParam();
  Result<std::vector<sock_filter>> program =
      build_filter({mode, strategy, deny});
  ASSERT_TRUE(program) << program.error().message();
  EXPECT_FALSE(program->empty());
  EXPECT_LE(program->size(), 4096u);  // BPF_MAXINSNS
  // Every path ends in a return: the last instruction is one.
  EXPECT_EQ(BPF_CLASS(program->back().code), BPF_RET);
}

INSTANTIATE_TEST_SUITE_P(All, BuildFilterTest, kAllSpecs, spec_name);

// The programs compiled in at build time are libseccomp's for each spec,
// found under the right number.
TEST(CompiledFilterTest, EverySpecHasLibseccompsProgram) {
  for (size_t i = 0; i < kFilterSpecCount; ++i) {
    FilterSpec spec = filter_spec_at(i);
    SCOPED_TRACE(std::string(mode_name(spec.mode)) + " " +
                 strategy_name(spec.strategy) +
                 (spec.deny_io_uring ? " deny_io_uring" : "") +
                 (spec.watch_exec ? " watch_exec" : ""));
    EXPECT_EQ(filter_spec_index(spec), i);
    Result<std::vector<sock_filter>> compiled = compile_filter(spec);
    Result<std::vector<sock_filter>> built = build_filter(spec);
    ASSERT_TRUE(compiled) << compiled.error().message();
    ASSERT_TRUE(built) << built.error().message();
    ASSERT_EQ(built->size(), compiled->size());
    for (size_t n = 0; n < built->size(); ++n) {
      EXPECT_EQ((*built)[n].code, (*compiled)[n].code) << n;
      EXPECT_EQ((*built)[n].jt, (*compiled)[n].jt) << n;
      EXPECT_EQ((*built)[n].jf, (*compiled)[n].jf) << n;
      EXPECT_EQ((*built)[n].k, (*compiled)[n].k) << n;
    }
  }
}

TEST(CompiledFilterTest, AutoIsNotAFilter) {
  EXPECT_FALSE(build_filter({Mode::kSocket, Strategy::kAuto, false, false}));
}

// The calls a child makes under the filter, one at a time.
enum class Call {
  kTcp4,           // socket(AF_INET, SOCK_STREAM, 0)
  kTcp6WithFlags,  // socket(AF_INET6, SOCK_STREAM|NONBLOCK|CLOEXEC, TCP)
  kMptcp,          // socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)
  kTcp4HighBits,   // socket(AF_INET, SOCK_STREAM, 0), high bits set in the
                   // 64-bit registers: the kernel reads ints
  kUdp,            // socket(AF_INET, SOCK_DGRAM, 0)
  kUdp6,           // socket(AF_INET6, SOCK_DGRAM, 0)
  kUnixStream,     // socket(AF_UNIX, SOCK_STREAM, 0)
  kRawTcp,         // socket(AF_INET, SOCK_RAW, IPPROTO_TCP)
  kTcpOtherProto,  // socket(AF_INET, SOCK_STREAM, IPPROTO_UDP): EPROTO...
  kConnect,        // connect(udp socket, 127.0.0.1:9)
  kListen,         // listen(udp socket, 1)
  kIoUringSetup,   // io_uring_setup(1, &params)
};

const Call kAllCalls[] = {
    Call::kUdp,           Call::kUdp6,   Call::kUnixStream,    Call::kRawTcp,
    Call::kTcpOtherProto, Call::kTcp4,   Call::kTcp6WithFlags, Call::kMptcp,
    Call::kTcp4HighBits,  Call::kConnect, Call::kListen, Call::kIoUringSetup,
};

const char* call_name(Call call) {
  switch (call) {
    case Call::kTcp4:
      return "socket(AF_INET, SOCK_STREAM, 0)";
    case Call::kTcp6WithFlags:
      return "socket(AF_INET6, SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC, "
             "IPPROTO_TCP)";
    case Call::kMptcp:
      return "socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)";
    case Call::kTcp4HighBits:
      return "socket(1 << 32 | AF_INET, 1 << 32 | SOCK_STREAM, 1 << 32)";
    case Call::kUdp:
      return "socket(AF_INET, SOCK_DGRAM, 0)";
    case Call::kUdp6:
      return "socket(AF_INET6, SOCK_DGRAM, 0)";
    case Call::kUnixStream:
      return "socket(AF_UNIX, SOCK_STREAM, 0)";
    case Call::kRawTcp:
      return "socket(AF_INET, SOCK_RAW, IPPROTO_TCP)";
    case Call::kTcpOtherProto:
      return "socket(AF_INET, SOCK_STREAM, IPPROTO_UDP)";
    case Call::kConnect:
      return "connect";
    case Call::kListen:
      return "listen";
    case Call::kIoUringSetup:
      return "io_uring_setup";
  }
  return "?";
}

long syscall_number(Call call) {
  switch (call) {
    case Call::kConnect:
      return SYS_connect;
    case Call::kListen:
      return SYS_listen;
    case Call::kIoUringSetup:
      return SYS_io_uring_setup;
    default:
      return SYS_socket;
  }
}

// Which calls the filter for `spec` must send to the listener.
bool must_trap(Call call, Mode mode, Strategy strategy, bool deny) {
  switch (call) {
    case Call::kTcp4:
    case Call::kTcp6WithFlags:
    case Call::kMptcp:
    case Call::kTcp4HighBits:
      return strategy == Strategy::kEmulate;
    case Call::kConnect:
      return strategy == Strategy::kContinue && mode != Mode::kListen;
    case Call::kListen:
      return strategy == Strategy::kContinue && mode != Mode::kConnect;
    case Call::kIoUringSetup:
      return !deny;
    default:
      return false;  // UDP, UNIX, raw: never leave the kernel
  }
}

// One message from the child over a pipe (small, so each write is atomic).
struct Report {
  int32_t index;  // -1: the listener is installed
  int32_t rc;
  int32_t err;
};

long perform(Call call, int udp) {
  switch (call) {
    case Call::kTcp4:
      return socket(AF_INET, SOCK_STREAM, 0);
    case Call::kTcp6WithFlags:
      return socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    IPPROTO_TCP);
    case Call::kMptcp:
      return socket(AF_INET, SOCK_STREAM, tcp::kMptcpProtocol);
    case Call::kTcp4HighBits: {
      constexpr long kHigh = 1L << 32;
      return syscall(SYS_socket, kHigh | AF_INET, kHigh | SOCK_STREAM, kHigh);
    }
    case Call::kUdp:
      return socket(AF_INET, SOCK_DGRAM, 0);
    case Call::kUdp6:
      return socket(AF_INET6, SOCK_DGRAM, 0);
    case Call::kUnixStream:
      return socket(AF_UNIX, SOCK_STREAM, 0);
    case Call::kRawTcp:
      return socket(AF_INET, SOCK_RAW, IPPROTO_TCP);
    case Call::kTcpOtherProto:
      return socket(AF_INET, SOCK_STREAM, IPPROTO_UDP);
    case Call::kConnect: {
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(9);
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      return connect(udp, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    }
    case Call::kListen:
      return listen(udp, 1);
    case Call::kIoUringSetup: {
      io_uring_params params{};
      return syscall(SYS_io_uring_setup, 1, &params);
    }
  }
  return -1;
}

void send_report(int fd, int index, long rc, int err) {
  Report r{index, static_cast<int32_t>(rc), err};
  ssize_t ignored = write(fd, &r, sizeof r);
  (void)ignored;
}

// In the child: install `program` with a new listener, report its number,
// then make each call when told to (one byte on `go_fd`) and report its
// result. Waiting in between means nothing is in flight while the test
// looks at the listener. Only raw calls, no allocation.
[[noreturn]] void run_child(const std::vector<sock_filter>& program,
                            int report_fd, int go_fd) {
  int udp = socket(AF_INET, SOCK_DGRAM, 0);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) _exit(10);
  sock_fprog prog{static_cast<unsigned short>(program.size()),
                  const_cast<sock_filter*>(program.data())};
  int listener =
      sys::seccomp_set_filter(SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  send_report(report_fd, -1, listener, listener < 0 ? errno : 0);
  if (listener < 0) _exit(11);
  int index = 0;
  for (Call call : kAllCalls) {
    char go;
    if (read(go_fd, &go, 1) != 1) _exit(12);
    errno = 0;
    long rc = perform(call, udp);
    send_report(report_fd, index++, rc, rc < 0 ? errno : 0);
  }
  _exit(0);
}

// Kills and reaps the child whatever happens to the test.
struct ChildGuard {
  pid_t pid = -1;
  ~ChildGuard() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  }
};

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

// Reads the next report, waiting at most kBoundMs.
bool next_report(int fd, Report* r) {
  if (!readable(fd, kBoundMs)) return false;
  return read(fd, r, sizeof *r) == static_cast<ssize_t>(sizeof *r);
}

class InstalledFilterTest : public ::testing::TestWithParam<Spec> {};

TEST_P(InstalledFilterTest, TrapsExactlyTheCallsItShould) {
  const auto [mode, strategy, deny] = GetParam();
  Result<std::vector<sock_filter>> program =
      build_filter({mode, strategy, deny});
  ASSERT_TRUE(program) << program.error().message();

  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  UniqueFd report_in(fds[0]), report_out(fds[1]);
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  UniqueFd go_in(fds[0]), go_out(fds[1]);
  ChildGuard child;
  child.pid = fork();
  ASSERT_GE(child.pid, 0);
  if (child.pid == 0) run_child(*program, report_out.get(), go_in.get());
  report_out.reset();
  go_in.reset();

  Report r{};
  ASSERT_TRUE(next_report(report_in.get(), &r)) << "child never installed";
  ASSERT_EQ(r.index, -1);
  ASSERT_GE(r.rc, 0) << "seccomp(NEW_LISTENER): " << strerror(r.err);
  // Take a copy of the child's listener; nobody reads it unless a call
  // must be trapped, so an untrapped call completes only if it never left
  // the kernel.
  UniqueFd pidfd(sys::pidfd_open(child.pid, 0));
  ASSERT_TRUE(pidfd.valid()) << strerror(errno);
  UniqueFd listener(sys::pidfd_getfd(pidfd.get(), r.rc, 0));
  ASSERT_TRUE(listener.valid()) << strerror(errno);

  seccomp_notif* req = nullptr;
  seccomp_notif_resp* resp = nullptr;
  ASSERT_EQ(seccomp_notify_alloc(&req, &resp), 0);
  struct FreeNotify {
    seccomp_notif* req;
    seccomp_notif_resp* resp;
    ~FreeNotify() { seccomp_notify_free(req, resp); }
  } free_notify{req, resp};

  int index = 0;
  for (Call call : kAllCalls) {
    SCOPED_TRACE(call_name(call));
    ASSERT_EQ(write(go_out.get(), "g", 1), 1);
    if (must_trap(call, mode, strategy, deny)) {
      // The call waits in the kernel for an answer...
      ASSERT_TRUE(readable(listener.get(), kBoundMs))
          << "not trapped: no notification";
      EXPECT_FALSE(readable(report_in.get(), 200))
          << "completed although nobody answered";
      memset(req, 0, sizeof *req);
      ASSERT_EQ(seccomp_notify_receive(listener.get(), req), 0);
      EXPECT_EQ(static_cast<long>(req->data.nr), syscall_number(call));
      EXPECT_EQ(static_cast<pid_t>(req->pid), child.pid);
      // ...and completes, run by the kernel, once answered CONTINUE.
      memset(resp, 0, sizeof *resp);
      resp->id = req->id;
      resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
      ASSERT_EQ(seccomp_notify_respond(listener.get(), resp), 0);
      ASSERT_TRUE(next_report(report_in.get(), &r)) << "still blocked";
      ASSERT_EQ(r.index, index);
    } else {
      ASSERT_TRUE(next_report(report_in.get(), &r))
          << "blocked: trapped although it must not be";
      ASSERT_EQ(r.index, index);
      EXPECT_FALSE(readable(listener.get(), 0)) << "a notification is pending";
      switch (call) {
        case Call::kUdp:
        case Call::kUdp6:
        case Call::kUnixStream:
        case Call::kRawTcp:  // the tests run as root
          EXPECT_GE(r.rc, 0) << strerror(r.err);
          break;
        case Call::kIoUringSetup:
          // Denied in the filter itself.
          EXPECT_EQ(r.rc, -1);
          EXPECT_EQ(r.err, ENOSYS) << strerror(r.err);
          break;
        default:
          break;
      }
    }
    ++index;
  }

  int status = 0;
  pid_t pid = child.pid;
  child.pid = -1;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

INSTANTIATE_TEST_SUITE_P(All, InstalledFilterTest, kAllSpecs, spec_name);

}  // namespace
}  // namespace keepalive
