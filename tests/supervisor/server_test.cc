// SPDX-License-Identifier: Apache-2.0
// Server and NotificationHandler without a kernel listener: notifications
// are made up here, with the test process (or a child of it) as the
// caller, and FakeListener records every answer. What each test checks is
// what the caller would observe: the fd it gets and the options read back
// from it, its socket's options, and that exactly one answer (or none, for
// a caller that is gone) was sent.
#include "supervisor/server.h"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <set>
#include <vector>

#include "../common/every_option.h"
#include "common/unique_fd.h"
#include "supervisor/target.h"

namespace keepalive {
namespace {

struct Answer {
  uint64_t id;
  bool continued;  // CONTINUE; otherwise `value`
  int64_t value;
};

class FakeListener final : public Listener {
 public:
  FakeListener() : ready_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

  void push(const seccomp_notif& req) {
    queue_.push_back(req);
    uint64_t one = 1;
    EXPECT_EQ(write(ready_.get(), &one, sizeof one), 8);
  }

  int fd() const override { return ready_.get(); }

  Result<const seccomp_notif*> receive() override {
    if (queue_.empty()) {
      errno = ENOENT;
      return errno_error("receive");
    }
    current_ = queue_.front();
    queue_.pop_front();
    if (queue_.empty()) {
      uint64_t count;
      EXPECT_EQ(read(ready_.get(), &count, sizeof count), 8);
      if (drained_ >= 0) {
        uint64_t one = 1;
        EXPECT_EQ(write(drained_, &one, sizeof one), 8);
      }
    }
    return &current_;
  }

  bool alive(uint64_t id) override { return !gone_.contains(id); }

  Result<int> add_fd(uint64_t id, int fd, bool cloexec) override {
    if (add_error_ != 0) {
      errno = add_error_;
      return errno_error("add_fd");
    }
    int copy = fcntl(fd, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    added_.push_back(UniqueFd(copy));
    (void)id;
    return copy;
  }

  Result<void> send_continue(uint64_t id) override {
    return record(Answer{id, true, 0});
  }
  Result<void> send_value(uint64_t id, int64_t value) override {
    if (interrupt_answers_) {
      errno = ENOENT;
      return errno_error("send");
    }
    return record(Answer{id, false, value});
  }

  // Calls with these ids are gone: alive() says so, answers fail ENOENT.
  std::set<uint64_t> gone_;
  int add_error_ = 0;  // add_fd fails with it, unless 0
  // Calls are interrupted after add_fd: send_value fails with ENOENT.
  bool interrupt_answers_ = false;
  int drained_ = -1;  // written to once the queue is empty
  std::vector<Answer> answers_;
  std::vector<UniqueFd> added_;  // the callers' copies (ours, here)

 private:
  Result<void> record(const Answer& answer) {
    if (gone_.contains(answer.id)) {
      errno = ENOENT;
      return errno_error("send");
    }
    answers_.push_back(answer);
    return {};
  }

  UniqueFd ready_;
  std::deque<seccomp_notif> queue_;
  seccomp_notif current_{};
};

seccomp_notif call(uint64_t id, pid_t pid, int nr, uint64_t a0 = 0,
                   uint64_t a1 = 0, uint64_t a2 = 0) {
  seccomp_notif req{};
  req.id = id;
  req.pid = static_cast<__u32>(pid);
  req.data.arch = AUDIT_ARCH_X86_64;
  req.data.nr = nr;
  req.data.args[0] = a0;
  req.data.args[1] = a1;
  req.data.args[2] = a2;
  return req;
}

pid_t self() { return static_cast<pid_t>(syscall(SYS_gettid)); }

int option(int fd, int level, int name) {
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(getsockopt(fd, level, name, &value, &len), 0);
  return value;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<Identity> own = own_identity();
    ASSERT_TRUE(own.has_value()) << own.error().message();
    options_.settings = every_option_set();
    options_.own = *own;
    options_.wait_killable_recv = true;
  }

  HandlerOptions options_;
  FakeListener listener_;
};

TEST_F(ServerTest, EmulatedSocketReachesTheCallerWithItsOptions) {
  Server server(listener_, options_);
  listener_.push(call(1, self(), __NR_socket, AF_INET, SOCK_STREAM, 0));
  server.handle_one();

  ASSERT_EQ(listener_.answers_.size(), 1u);
  EXPECT_FALSE(listener_.answers_[0].continued);
  ASSERT_EQ(listener_.added_.size(), 1u);
  int fd = listener_.added_[0].get();
  EXPECT_EQ(listener_.answers_[0].value, fd);
  EXPECT_EQ(option(fd, SOL_SOCKET, SO_TYPE), SOCK_STREAM);
  EXPECT_EQ(option(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(option(fd, IPPROTO_TCP, TCP_KEEPIDLE), 40);
  EXPECT_EQ(option(fd, IPPROTO_TCP, TCP_KEEPCNT), 4);
  EXPECT_EQ(option(fd, IPPROTO_TCP, TCP_KEEPINTVL), 7);
  EXPECT_EQ(option(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 2000);
  EXPECT_EQ(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(server.handler().stats().emulated, 1u);
}

TEST_F(ServerTest, CloseOnExecFollowsTheCallersFlag) {
  Server server(listener_, options_);
  listener_.push(call(1, self(), __NR_socket, AF_INET6,
                      SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  server.handle_one();
  ASSERT_EQ(listener_.added_.size(), 1u);
  int fd = listener_.added_[0].get();
  EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_NE(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
}

TEST_F(ServerTest, CallerOutsideOurPidNamespaceIsLetThrough) {
  Server server(listener_, options_);
  listener_.push(call(7, 0, __NR_socket, AF_INET, SOCK_STREAM, 0));
  server.handle_one();
  ASSERT_EQ(listener_.answers_.size(), 1u);
  EXPECT_TRUE(listener_.answers_[0].continued);
  EXPECT_EQ(listener_.answers_[0].id, 7u);
  EXPECT_TRUE(listener_.added_.empty());
}

TEST_F(ServerTest, CallerGoneWhileJudgedGetsNoAnswer) {
  Server server(listener_, options_);
  listener_.gone_.insert(3);
  listener_.push(call(3, self(), __NR_socket, AF_INET, SOCK_STREAM, 0));
  server.handle_one();
  EXPECT_TRUE(listener_.answers_.empty());
  EXPECT_TRUE(listener_.added_.empty());
}

TEST_F(ServerTest, FdRefusedByTheCallerLetsTheKernelAnswer) {
  Server server(listener_, options_);
  listener_.add_error_ = EMFILE;
  listener_.push(call(1, self(), __NR_socket, AF_INET, SOCK_STREAM, 0));
  server.handle_one();
  ASSERT_EQ(listener_.answers_.size(), 1u);
  EXPECT_TRUE(listener_.answers_[0].continued);
  EXPECT_EQ(server.handler().stats().emulated, 0u);
}

TEST_F(ServerTest, InterruptedBeforeTheFdWasAddedGetsNoAnswer) {
  Server server(listener_, options_);
  listener_.add_error_ = ENOENT;
  listener_.push(call(1, self(), __NR_socket, AF_INET, SOCK_STREAM, 0));
  server.handle_one();
  EXPECT_TRUE(listener_.answers_.empty());
}

// Without WAIT_KILLABLE_RECV a call interrupted between the two steps keeps
// the added fd; past kMaxLeakedFds such calls, socket() is let through.
TEST_F(ServerTest, EmulationStopsAfterTooManyLeftFds) {
  options_.wait_killable_recv = false;
  Server server(listener_, options_);
  listener_.interrupt_answers_ = true;
  for (uint64_t id = 1; id <= kMaxLeakedFds; ++id) {
    listener_.push(call(id, self(), __NR_socket, AF_INET, SOCK_STREAM, 0));
    server.handle_one();
  }
  EXPECT_EQ(listener_.added_.size(), kMaxLeakedFds);
  EXPECT_TRUE(listener_.answers_.empty());
  EXPECT_TRUE(server.handler().emulation_stopped());

  listener_.interrupt_answers_ = false;
  uint64_t next = kMaxLeakedFds + 1;
  listener_.push(call(next, self(), __NR_socket, AF_INET, SOCK_STREAM, 0));
  server.handle_one();
  ASSERT_EQ(listener_.answers_.size(), 1u);
  EXPECT_TRUE(listener_.answers_[0].continued);
  EXPECT_EQ(listener_.added_.size(), kMaxLeakedFds);
}

// With WAIT_KILLABLE_RECV only a fatal signal interrupts a received call,
// and the fd goes with the dying caller: nothing to count.
TEST_F(ServerTest, LeftFdsOfDyingCallersDoNotStopEmulation) {
  Server server(listener_, options_);
  listener_.interrupt_answers_ = true;
  for (uint64_t id = 1; id <= kMaxLeakedFds + 1; ++id) {
    listener_.push(call(id, self(), __NR_socket, AF_INET, SOCK_STREAM, 0));
    server.handle_one();
  }
  EXPECT_FALSE(server.handler().emulation_stopped());
  EXPECT_EQ(listener_.added_.size(), kMaxLeakedFds + 1);
}

TEST_F(ServerTest, ConnectGivesTheCallersOwnSocketItsOptions) {
  options_.mode = Mode::kConnect;
  Server server(listener_, options_);
  UniqueFd sock(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(sock.valid());
  listener_.push(
      call(5, self(), __NR_connect, static_cast<uint64_t>(sock.get())));
  server.handle_one();
  ASSERT_EQ(listener_.answers_.size(), 1u);
  EXPECT_TRUE(listener_.answers_[0].continued);
  EXPECT_EQ(option(sock.get(), SOL_SOCKET, SO_KEEPALIVE), 1);
  EXPECT_EQ(option(sock.get(), IPPROTO_TCP, TCP_KEEPIDLE), 40);
  EXPECT_EQ(option(sock.get(), IPPROTO_TCP, TCP_USER_TIMEOUT), 2000);
}

TEST_F(ServerTest, CallerWithOtherCredentialsIsLetThrough) {
  int ready[2];
  ASSERT_EQ(pipe2(ready, O_CLOEXEC), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (setresuid(65534, 65534, 65534) != 0) _exit(1);
    char byte = 1;
    if (write(ready[1], &byte, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char byte = 0;
  ASSERT_EQ(read(ready[0], &byte, 1), 1);
  close(ready[0]);

  Server server(listener_, options_);
  listener_.push(call(1, child, __NR_socket, AF_INET, SOCK_STREAM, 0));
  server.handle_one();
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(listener_.answers_.size(), 1u);
  EXPECT_TRUE(listener_.answers_[0].continued);
  EXPECT_TRUE(listener_.added_.empty());
}

TEST_F(ServerTest, ServeAnswersEveryQueuedCallThenStops) {
  Server server(listener_, options_);
  UniqueFd stop(eventfd(0, EFD_CLOEXEC));
  listener_.drained_ = stop.get();
  for (uint64_t id = 1; id <= 3; ++id) {
    listener_.push(call(id, self(), __NR_socket, AF_INET, SOCK_STREAM, 0));
  }
  server.serve(stop.get());
  ASSERT_EQ(listener_.answers_.size(), 3u);
  for (uint64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(listener_.answers_[i].id, i + 1);
    EXPECT_FALSE(listener_.answers_[i].continued);
  }
}

}  // namespace
}  // namespace keepalive
