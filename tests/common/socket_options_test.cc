// SPDX-License-Identifier: Apache-2.0
// classify_socket and apply_to on real loopback sockets, with every value
// read back from the kernel with getsockopt.
#include "common/socket_options.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "common/tcp.h"
#include "common/unique_fd.h"
#include "tests/common/every_option.h"


namespace keepalive {
namespace {

int ReadOption(int fd, Option option) {
  const OptionInfo& info = option_info(option);
  int value = -1;
  socklen_t len = sizeof value;
  EXPECT_EQ(getsockopt(fd, info.level, info.optname, &value, &len), 0)
      << info.sockopt_name << ": " << strerror(errno);
  return value;
}

UniqueFd TcpSocket() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM, 0));
  EXPECT_TRUE(fd.valid()) << strerror(errno);
  return fd;
}

// A listening socket on 127.0.0.1 with an ephemeral port.
struct Listener {
  UniqueFd fd;
  sockaddr_in addr{};
};

Listener Listen(int fd) {
  Listener l;
  l.addr.sin_family = AF_INET;
  l.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof l.addr;
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&l.addr), len), 0);
  EXPECT_EQ(listen(fd, 8), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&l.addr), &len), 0);
  l.fd = UniqueFd(fd);
  return l;
}

void Connect(int fd, const sockaddr_in& addr) {
  ASSERT_EQ(connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr),
            0)
      << strerror(errno);
}

// The kernel's value for `option` on a socket nobody has touched.
int SystemDefault(Option option) {
  return ReadOption(TcpSocket().get(), option);
}

TEST(ClassifySocketTest, TcpOverIpv4AndIpv6IsTcp) {
  EXPECT_EQ(classify_socket(TcpSocket().get()), SocketKind::kTcp);
  UniqueFd explicit_tcp(socket(AF_INET, SOCK_STREAM, IPPROTO_TCP));
  EXPECT_EQ(classify_socket(explicit_tcp.get()), SocketKind::kTcp);
  UniqueFd v6(socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0));
  if (!v6.valid()) GTEST_SKIP() << "no IPv6: " << strerror(errno);
  EXPECT_EQ(classify_socket(v6.get()), SocketKind::kTcp);
}

TEST(ClassifySocketTest, MptcpIsTcp) {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM, tcp::kMptcpProtocol));
  if (!fd.valid()) GTEST_SKIP() << "MPTCP unavailable: " << strerror(errno);
  EXPECT_EQ(classify_socket(fd.get()), SocketKind::kTcp);
}

TEST(ClassifySocketTest, UdpAndUnixAreNotTcp) {
  UniqueFd udp(socket(AF_INET, SOCK_DGRAM, 0));
  UniqueFd udp6(socket(AF_INET6, SOCK_DGRAM, 0));
  UniqueFd unix_stream(socket(AF_UNIX, SOCK_STREAM, 0));
  UniqueFd unix_dgram(socket(AF_UNIX, SOCK_DGRAM, 0));
  UniqueFd unix_seqpacket(socket(AF_UNIX, SOCK_SEQPACKET, 0));
  EXPECT_EQ(classify_socket(udp.get()), SocketKind::kNotTcp);
  if (udp6.valid()) {
    EXPECT_EQ(classify_socket(udp6.get()), SocketKind::kNotTcp);
  }
  EXPECT_EQ(classify_socket(unix_stream.get()), SocketKind::kNotTcp);
  EXPECT_EQ(classify_socket(unix_dgram.get()), SocketKind::kNotTcp);
  EXPECT_EQ(classify_socket(unix_seqpacket.get()), SocketKind::kNotTcp);
}

TEST(ClassifySocketTest, RawSocketWithTcpProtocolIsNotTcp) {
  // Protocol TCP alone is not enough: a raw socket is not a stream.
  UniqueFd raw(socket(AF_INET, SOCK_RAW, IPPROTO_TCP));
  if (!raw.valid()) GTEST_SKIP() << "raw sockets refused: " << strerror(errno);
  EXPECT_EQ(classify_socket(raw.get()), SocketKind::kNotTcp);
}

TEST(ClassifySocketTest, NonSocketsAreErrorsWithErrno) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  errno = 0;
  EXPECT_EQ(classify_socket(read_end.get()), SocketKind::kError);
  EXPECT_EQ(errno, ENOTSOCK);
  errno = 0;
  EXPECT_EQ(classify_socket(-1), SocketKind::kError);
  EXPECT_EQ(errno, EBADF);
}

TEST(ApplyToTest, DefaultsInConnectMode) {
  Listener server = Listen(TcpSocket().release());
  UniqueFd client = TcpSocket();
  ApplyReport report = apply_to(client.get(), Settings(), Mode::kConnect);
  EXPECT_FALSE(report.any_failed());
  Connect(client.get(), server.addr);
  EXPECT_EQ(ReadOption(client.get(), Option::kKeepAlive), 1);
  EXPECT_EQ(ReadOption(client.get(), Option::kKeepIdle), 15);
  EXPECT_EQ(ReadOption(client.get(), Option::kKeepCnt), 9);
  EXPECT_EQ(ReadOption(client.get(), Option::kKeepIntvl), 15);
  EXPECT_EQ(ReadOption(client.get(), Option::kUserTimeout), 150000);
  EXPECT_EQ(ReadOption(client.get(), Option::kSynCnt),
            SystemDefault(Option::kSynCnt));
  EXPECT_EQ(report.outcome(Option::kUserTimeout).state, OptionState::kApplied);
  EXPECT_EQ(report.outcome(Option::kUserTimeout).value, 150000);
  EXPECT_EQ(report.outcome(Option::kSynCnt).state, OptionState::kSkipped);
}

TEST(ApplyToTest, ConnectModeSetsSynCntButNotDeferAccept) {
  UniqueFd fd = TcpSocket();
  ApplyReport report = apply_to(fd.get(), every_option_set(), Mode::kConnect);
  EXPECT_FALSE(report.any_failed());
  EXPECT_EQ(ReadOption(fd.get(), Option::kKeepIdle), 40);
  EXPECT_EQ(ReadOption(fd.get(), Option::kKeepCnt), 4);
  EXPECT_EQ(ReadOption(fd.get(), Option::kKeepIntvl), 7);
  EXPECT_EQ(ReadOption(fd.get(), Option::kUserTimeout), 2000);
  EXPECT_EQ(ReadOption(fd.get(), Option::kSynCnt), 3);
  EXPECT_EQ(ReadOption(fd.get(), Option::kDeferAccept), 0);
  EXPECT_EQ(ReadOption(fd.get(), Option::kMaxSeg), 1400);
  EXPECT_EQ(ReadOption(fd.get(), Option::kWindowClamp), 9999);
  EXPECT_EQ(report.outcome(Option::kDeferAccept).state, OptionState::kSkipped);
}

TEST(ApplyToTest, ListenModeSetsDeferAcceptButNotSynCnt) {
  UniqueFd fd = TcpSocket();
  ApplyReport report = apply_to(fd.get(), every_option_set(), Mode::kListen);
  EXPECT_FALSE(report.any_failed());
  Listener server = Listen(fd.release());
  EXPECT_EQ(ReadOption(server.fd.get(), Option::kKeepIdle), 40);
  EXPECT_EQ(ReadOption(server.fd.get(), Option::kSynCnt),
            SystemDefault(Option::kSynCnt));
  // The kernel stores DEFER_ACCEPT as SYN-ACK retransmissions and reports
  // the time they cover, so 10 reads back as 15.
  EXPECT_GE(ReadOption(server.fd.get(), Option::kDeferAccept), 10);
  EXPECT_EQ(ReadOption(server.fd.get(), Option::kMaxSeg), 1400);
  EXPECT_EQ(report.outcome(Option::kSynCnt).state, OptionState::kSkipped);
}

TEST(ApplyToTest, AcceptedSocketsInheritFromTheListener) {
  // Why trapping listen() is enough for servers.
  UniqueFd fd = TcpSocket();
  apply_to(fd.get(), every_option_set(), Mode::kListen);
  Listener server = Listen(fd.release());
  UniqueFd client = TcpSocket();
  Connect(client.get(), server.addr);
  // With TCP_DEFER_ACCEPT the connection is only accepted once data arrives.
  ASSERT_EQ(send(client.get(), "x", 1, 0), 1);
  UniqueFd accepted(accept(server.fd.get(), nullptr, nullptr));
  ASSERT_TRUE(accepted.valid()) << strerror(errno);
  EXPECT_EQ(ReadOption(accepted.get(), Option::kKeepAlive), 1);
  EXPECT_EQ(ReadOption(accepted.get(), Option::kKeepIdle), 40);
  EXPECT_EQ(ReadOption(accepted.get(), Option::kKeepCnt), 4);
  EXPECT_EQ(ReadOption(accepted.get(), Option::kKeepIntvl), 7);
  EXPECT_EQ(ReadOption(accepted.get(), Option::kUserTimeout), 2000);
  EXPECT_EQ(ReadOption(accepted.get(), Option::kWindowClamp), 9999);
  // The client was never touched.
  EXPECT_EQ(ReadOption(client.get(), Option::kKeepAlive), 0);
}

TEST(ApplyToTest, SocketModeSetsBoth) {
  UniqueFd fd = TcpSocket();
  ApplyReport report = apply_to(fd.get(), every_option_set(), Mode::kSocket);
  EXPECT_FALSE(report.any_failed());
  EXPECT_EQ(ReadOption(fd.get(), Option::kSynCnt), 3);
  EXPECT_GE(ReadOption(fd.get(), Option::kDeferAccept), 10);
}

TEST(ApplyToTest, ZeroLeavesTheSystemDefault) {
  UniqueFd fd = TcpSocket();
  Settings settings = Settings()
                          .with_value(Option::kKeepIdle, 0)
                          .with_value(Option::kUserTimeout, 0);
  ApplyReport report = apply_to(fd.get(), settings, Mode::kSocket);
  EXPECT_EQ(report.outcome(Option::kKeepIdle).state, OptionState::kSkipped);
  EXPECT_EQ(report.outcome(Option::kUserTimeout).state, OptionState::kSkipped);
  EXPECT_EQ(ReadOption(fd.get(), Option::kKeepAlive), 1);
  EXPECT_EQ(ReadOption(fd.get(), Option::kKeepIdle),
            SystemDefault(Option::kKeepIdle));
  EXPECT_EQ(ReadOption(fd.get(), Option::kUserTimeout), 0);
}

TEST(ApplyToTest, DerivedTimeoutUsesKernelValuesForUnsetKeepaliveOptions) {
  int idle = SystemDefault(Option::kKeepIdle);
  int intvl = SystemDefault(Option::kKeepIntvl);
  int cnt = SystemDefault(Option::kKeepCnt);
  UniqueFd fd = TcpSocket();
  Settings settings = Settings().with_value(Option::kKeepIdle, 0);
  apply_to(fd.get(), settings, Mode::kConnect);
  EXPECT_EQ(ReadOption(fd.get(), Option::kUserTimeout), (idle + 15 * 9) * 1000);

  UniqueFd all_zero = TcpSocket();
  settings = settings.with_value(Option::kKeepCnt, 0)
                 .with_value(Option::kKeepIntvl, 0);
  apply_to(all_zero.get(), settings, Mode::kConnect);
  EXPECT_EQ(ReadOption(all_zero.get(), Option::kUserTimeout),
            (idle + intvl * cnt) * 1000);
}

TEST(ApplyToTest, DerivedTimeoutUsesWhatTheProgramAlreadySet) {
  // "Values in effect": a program that set its own TCP_KEEPIDLE keeps it,
  // and the derived timeout follows it rather than the sysctl.
  UniqueFd fd = TcpSocket();
  int own_idle = 100;
  ASSERT_EQ(setsockopt(fd.get(), IPPROTO_TCP, TCP_KEEPIDLE, &own_idle,
                       sizeof own_idle),
            0);
  apply_to(fd.get(), Settings().with_value(Option::kKeepIdle, 0),
           Mode::kConnect);
  EXPECT_EQ(ReadOption(fd.get(), Option::kKeepIdle), 100);
  EXPECT_EQ(ReadOption(fd.get(), Option::kUserTimeout), (100 + 15 * 9) * 1000);
}

TEST(ApplyToTest, DerivedTimeoutSaturates) {
  UniqueFd fd = TcpSocket();
  Settings settings = Settings()
                          .with_value(Option::kKeepIdle, 32767)
                          .with_value(Option::kKeepIntvl, 32767)
                          .with_value(Option::kKeepCnt, 127);
  ApplyReport report = apply_to(fd.get(), settings, Mode::kConnect);
  EXPECT_FALSE(report.any_failed());
  EXPECT_EQ(ReadOption(fd.get(), Option::kUserTimeout), INT_MAX);
}

TEST(ApplyToTest, DisabledAppliesNothing) {
  UniqueFd fd = TcpSocket();
  ApplyReport report =
      apply_to(fd.get(), every_option_set().with_enabled(false), Mode::kSocket);
  for (const OptionOutcome& o : report.outcomes) {
    EXPECT_EQ(o.state, OptionState::kSkipped);
  }
  EXPECT_EQ(ReadOption(fd.get(), Option::kKeepAlive), 0);
  EXPECT_EQ(ReadOption(fd.get(), Option::kUserTimeout), 0);
}

TEST(ApplyToTest, FailuresAreReportedWithErrno) {
  // apply_to does not classify; on a UDP socket the TCP-level options fail.
  UniqueFd udp(socket(AF_INET, SOCK_DGRAM, 0));
  ApplyReport report = apply_to(udp.get(), Settings(), Mode::kConnect);
  EXPECT_TRUE(report.any_failed());
  const OptionOutcome& idle = report.outcome(Option::kKeepIdle);
  EXPECT_EQ(idle.state, OptionState::kFailed);
  EXPECT_EQ(idle.value, 15);
  EXPECT_NE(idle.error, 0);

  std::vector<std::string> lines;
  for_each_failure(
      report,
      [](const char* line, void* ctx) {
        static_cast<std::vector<std::string>*>(ctx)->emplace_back(line);
      },
      &lines);
  ASSERT_FALSE(lines.empty());
  std::string expected =
      std::string("setsockopt(TCP_KEEPIDLE, 15): ") + strerror(idle.error);
  EXPECT_EQ(lines[0], expected);
}

TEST(FormatAppliedTest, ListsAppliedOptionsInOrder) {
  UniqueFd fd = TcpSocket();
  ApplyReport report = apply_to(fd.get(), Settings(), Mode::kConnect);
  char line[512];
  format_applied(report, line, sizeof line);
  EXPECT_EQ(std::string(line),
            "fd " + std::to_string(fd.get()) +
                " (connect): SO_KEEPALIVE=1 TCP_KEEPIDLE=15 TCP_KEEPCNT=9 "
                "TCP_KEEPINTVL=15 TCP_USER_TIMEOUT=150000");
}

TEST(FormatAppliedTest, SaysWhenNothingWasApplied) {
  UniqueFd fd = TcpSocket();
  ApplyReport report =
      apply_to(fd.get(), Settings().with_enabled(false), Mode::kListen);
  char line[512];
  format_applied(report, line, sizeof line);
  EXPECT_EQ(std::string(line),
            "fd " + std::to_string(fd.get()) + " (listen): nothing applied");
}

TEST(FormatAppliedTest, TruncatesSafely) {
  UniqueFd fd = TcpSocket();
  ApplyReport report = apply_to(fd.get(), every_option_set(), Mode::kSocket);
  for (size_t size : {1, 5, 20, 40}) {
    char buf[64];
    memset(buf, 'X', sizeof buf);
    format_applied(report, buf, size);
    EXPECT_LT(strlen(buf), size);
    EXPECT_EQ(buf[size], 'X') << "wrote past " << size;
  }
}

}  // namespace
}  // namespace keepalive
