// SPDX-License-Identifier: Apache-2.0
// OptionRing against apply_to. For each kind of fd, settings and mode, one
// fd goes through OptionRing and a twin through apply_to: the reports must
// be equal, and the kernel must read back the same value (or fail with the
// same errno) for every option on both. Every test runs over io_uring and
// over the forced fallback. What needs a kernel that refuses io_uring is
// made with a seccomp filter in a forked child.
#include "supervisor/option_ring.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/tcp.h"
#include "common/unique_fd.h"
#include "tests/common/every_option.h"


namespace keepalive {

// For gtest's messages (found by argument-dependent lookup).
void PrintTo(OptionRing::Path path, std::ostream* os) {
  *os << path_name(path);
}

namespace {

// What a test fd is made of. domain -1: a pipe's read end; -2: fd -1.
struct FdKind {
  const char* name;
  int domain;
  int type;
  int protocol;
};

constexpr FdKind kTcp4{"tcp4", AF_INET, SOCK_STREAM, 0};
constexpr FdKind kTcp6{"tcp6", AF_INET6, SOCK_STREAM, 0};
constexpr FdKind kKinds[] = {
    kTcp4,
    kTcp6,
    {"mptcp4", AF_INET, SOCK_STREAM, tcp::kMptcpProtocol},
    {"mptcp6", AF_INET6, SOCK_STREAM, tcp::kMptcpProtocol},
    {"udp4", AF_INET, SOCK_DGRAM, 0},
    {"udp6", AF_INET6, SOCK_DGRAM, 0},
    {"unix_stream", AF_UNIX, SOCK_STREAM, 0},
    {"pipe", -1, 0, 0},
    {"no_fd", -2, 0, 0},
};

// An fd of some kind, with what keeps it meaningful (a pipe's other end).
struct TestFd {
  UniqueFd fd;
  UniqueFd other;
  int number = -1;  // fd.get(), or -1
  int error = 0;    // errno when the kernel refused to make one
};

TestFd Make(const FdKind& kind) {
  TestFd t;
  if (kind.domain == -1) {
    int ends[2];
    if (pipe2(ends, O_CLOEXEC) != 0) t.error = errno;
    if (t.error == 0) {
      t.fd.reset(ends[0]);
      t.other.reset(ends[1]);
    }
  } else if (kind.domain != -2) {
    t.fd.reset(socket(kind.domain, kind.type | SOCK_CLOEXEC, kind.protocol));
    if (!t.fd.valid()) t.error = errno;
  }
  if (t.fd.valid()) t.number = t.fd.get();
  return t;
}

// What the kernel says about one option: getsockopt's value, or its errno.
struct Reading {
  int value = 0;
  int error = 0;
  bool operator==(const Reading&) const = default;
};

void PrintTo(const Reading& r, std::ostream* os) {
  if (r.error != 0) {
    *os << strerrorname_np(r.error);
  } else {
    *os << r.value;
  }
}

Reading Read(int fd, Option option) {
  const OptionInfo& info = option_info(option);
  Reading r;
  socklen_t len = sizeof r.value;
  if (getsockopt(fd, info.level, info.optname, &r.value, &len) != 0) {
    r = Reading{0, errno};
  }
  return r;
}

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "?";
}

std::string Describe(const OptionOutcome& o) {
  switch (o.state) {
    case OptionState::kSkipped:
      return "skipped";
    case OptionState::kApplied:
      return "applied " + std::to_string(o.value);
    case OptionState::kFailed:
      return "failed " + std::to_string(o.value) + " " + ErrnoName(o.error);
  }
  return "?";
}

const char* Name(Option option) { return option_info(option).sockopt_name; }

// Empty when the two reports agree (their fds aside), else the differences.
std::string ReportDiff(const ApplyReport& ring, const ApplyReport& plain) {
  std::string diff;
  if (ring.mode != plain.mode) diff += " mode differs;";
  for (int i = 0; i < kOptionCount; ++i) {
    const OptionOutcome& a = ring.outcomes[i];
    const OptionOutcome& b = plain.outcomes[i];
    if (a.state != b.state || a.value != b.value || a.error != b.error) {
      diff += std::string(" ") + Name(static_cast<Option>(i)) + ": ring " +
              Describe(a) + ", apply_to " + Describe(b) + ";";
    }
  }
  return diff;
}

// Empty when the kernel reads the same on both fds for every option.
std::string KernelDiff(int ring_fd, int plain_fd) {
  std::string diff;
  for (int i = 0; i < kOptionCount; ++i) {
    Option option = static_cast<Option>(i);
    Reading a = Read(ring_fd, option), b = Read(plain_fd, option);
    if (a == b) continue;
    diff += std::string(" ") + Name(option) + " reads " +
            (a.error ? ErrnoName(a.error) : std::to_string(a.value)) +
            " after the ring, " +
            (b.error ? ErrnoName(b.error) : std::to_string(b.value)) +
            " after apply_to;";
  }
  return diff;
}

// Empty when every option `report` says was applied reads back from the
// kernel as applied (DEFER_ACCEPT reads back rounded up).
std::string AppliedDiff(int fd, const ApplyReport& report) {
  std::string diff;
  for (int i = 0; i < kOptionCount; ++i) {
    Option option = static_cast<Option>(i);
    const OptionOutcome& o = report.outcomes[i];
    if (o.state != OptionState::kApplied) continue;
    Reading r = Read(fd, option);
    bool ok =
        r.error == 0 && (option == Option::kDeferAccept ? r.value >= o.value
                                                        : r.value == o.value);
    if (!ok) {
      diff += std::string(" ") + Name(option) + " applied " +
              std::to_string(o.value) + " but reads " +
              (r.error ? ErrnoName(r.error) : std::to_string(r.value)) + ";";
    }
  }
  return diff;
}

// Puts `settings` on a new fd of `kind` through `ring` and on a twin through
// apply_to. Returns what differs (empty: nothing); the ring's report in
// `out`. `skipped` says why not, when the kernel cannot make such an fd.
std::string CompareWithApplyTo(OptionRing& ring, const FdKind& kind,
                               const Settings& settings, Mode mode,
                               ApplyReport* out = nullptr,
                               std::string* skipped = nullptr) {
  TestFd a = Make(kind), b = Make(kind);
  if (a.error != 0 || b.error != 0) {
    if (skipped) *skipped = std::string(kind.name) + ": " + strerror(a.error);
    return "";
  }
  ApplyReport by_ring = ring.apply(a.number, settings, mode);
  ApplyReport by_setsockopt = apply_to(b.number, settings, mode);
  if (out) *out = by_ring;
  std::string diff;
  if (by_ring.fd != a.number) diff += " report.fd is wrong;";
  diff += ReportDiff(by_ring, by_setsockopt);
  diff += KernelDiff(a.number, b.number);
  diff += AppliedDiff(a.number, by_ring);
  return diff;
}

struct NamedSettings {
  const char* name;
  Settings settings;
};

std::vector<NamedSettings> AllSettings() {
  return {
      {"defaults", Settings()},
      {"custom", every_option_set()},
      {"derived_from_custom",
       every_option_set().with_value(Option::kUserTimeout, kDeriveUserTimeout)},
      {"derived_from_system_keepidle",
       Settings().with_value(Option::kKeepIdle, 0)},
      {"derived_saturated", Settings()
                                .with_value(Option::kKeepIdle, 32767)
                                .with_value(Option::kKeepIntvl, 32767)
                                .with_value(Option::kKeepCnt, 127)},
      {"without_so_keepalive", every_option_set().with_value(Option::kKeepAlive, 0)},
      {"without_user_timeout", Settings().with_value(Option::kUserTimeout, 0)},
      {"disabled", every_option_set().with_enabled(false)},
  };
}

constexpr Mode kModes[] = {Mode::kConnect, Mode::kListen, Mode::kSocket};

// The fds of this process that are io_uring instances.
std::vector<int> IoUringFds() {
  std::vector<int> fds;
  struct CloseDir {
    void operator()(DIR* d) const { closedir(d); }
  };
  std::unique_ptr<DIR, CloseDir> dir(opendir("/proc/self/fd"));
  if (!dir) return fds;
  while (dirent* entry = readdir(dir.get())) {
    char target[64] = {};
    std::string path = std::string("/proc/self/fd/") + entry->d_name;
    if (readlink(path.c_str(), target, sizeof target - 1) > 0 &&
        strcmp(target, "anon_inode:[io_uring]") == 0) {
      fds.push_back(atoi(entry->d_name));
    }
  }
  return fds;
}

// Bytes of this process's address space mapped from io_uring instances.
size_t IoUringMappedBytes() {
  std::ifstream maps("/proc/self/maps");
  size_t total = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("io_uring") == std::string::npos) continue;
    unsigned long start = 0, end = 0;
    if (sscanf(line.c_str(), "%lx-%lx", &start, &end) == 2) {
      total += end - start;
    }
  }
  return total;
}

// Puts the calling process (a forked child) under a filter that fails the
// syscall `nr` with `err` and allows everything else.
void DenySyscall(int nr, int err) {
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == nullptr || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(err), nr, 0) ||
      seccomp_load(ctx)) {
    fprintf(stderr, "cannot install the seccomp filter\n");
    _exit(125);
  }
  seccomp_release(ctx);
}

// In a forked child: a TCP socket through `ring` and a twin through
// apply_to, compared. Exits 0 when they agree; prints the path, why, and
// any difference.
[[noreturn]] void ExitWithComparison(OptionRing& ring, const Settings& s) {
  std::string diff = CompareWithApplyTo(ring, kTcp4, s, Mode::kConnect);
  fprintf(stderr, "path=%s reason=%s diff=%s\n", path_name(ring.path()),
          ring.fallback_reason().c_str(), diff.c_str());
  _exit(diff.empty() ? 0 : 1);
}

class OptionRingTest : public testing::TestWithParam<OptionRing::Path> {
 protected:
  void SetUp() override {
    if (GetParam() == OptionRing::Path::kSetsockopt) {
      ring_.force_fallback();
    } else if (ring_.prepare() != OptionRing::Path::kIoUring) {
      GTEST_SKIP() << "io_uring cannot set socket options here: "
                   << ring_.fallback_reason();
    }
  }

  OptionRing ring_;
};

TEST_P(OptionRingTest, SameReportAndKernelStateAsApplyTo) {
  for (const FdKind& kind : kKinds) {
    for (const NamedSettings& s : AllSettings()) {
      for (Mode mode : kModes) {
        std::string skipped;
        std::string diff = CompareWithApplyTo(ring_, kind, s.settings, mode,
                                              nullptr, &skipped);
        EXPECT_EQ(diff, "")
            << kind.name << ", " << s.name << ", " << mode_name(mode);
        if (!skipped.empty()) {
          printf("not tried, the kernel refused the socket: %s\n",
                 skipped.c_str());
        }
      }
    }
  }
  // Failures on odd fds are per socket: the path stays.
  EXPECT_EQ(ring_.path(), GetParam()) << ring_.fallback_reason();
}

TEST_P(OptionRingTest, TcpSocketsReadBackDefaults) {
  for (const FdKind& kind : {kTcp4, kTcp6}) {
    TestFd t = Make(kind);
    if (t.error == EAFNOSUPPORT) continue;
    ASSERT_EQ(t.error, 0) << kind.name << ": " << strerror(t.error);
    ApplyReport report = ring_.apply(t.number, Settings(), Mode::kConnect);
    EXPECT_FALSE(report.any_failed());
    EXPECT_EQ(Read(t.number, Option::kKeepAlive), Reading{1});
    EXPECT_EQ(Read(t.number, Option::kKeepIdle), Reading{15});
    EXPECT_EQ(Read(t.number, Option::kKeepCnt), Reading{9});
    EXPECT_EQ(Read(t.number, Option::kKeepIntvl), Reading{15});
    EXPECT_EQ(Read(t.number, Option::kUserTimeout), Reading{150000});
    EXPECT_EQ(report.outcome(Option::kUserTimeout).value, 150000);
    EXPECT_EQ(report.outcome(Option::kSynCnt).state, OptionState::kSkipped);
  }
}

TEST_P(OptionRingTest, TcpSocketsReadBackCustomSettingsInEachMode) {
  for (const FdKind& kind : {kTcp4, kTcp6}) {
    for (Mode mode : kModes) {
      SCOPED_TRACE(std::string(kind.name) + " " + mode_name(mode));
      TestFd t = Make(kind);
      if (t.error == EAFNOSUPPORT) continue;
      ASSERT_EQ(t.error, 0) << strerror(t.error);
      ApplyReport report = ring_.apply(t.number, every_option_set(), mode);
      EXPECT_FALSE(report.any_failed());
      EXPECT_EQ(Read(t.number, Option::kKeepAlive), Reading{1});
      EXPECT_EQ(Read(t.number, Option::kKeepIdle), Reading{40});
      EXPECT_EQ(Read(t.number, Option::kKeepCnt), Reading{4});
      EXPECT_EQ(Read(t.number, Option::kKeepIntvl), Reading{7});
      EXPECT_EQ(Read(t.number, Option::kUserTimeout), Reading{2000});
      EXPECT_EQ(Read(t.number, Option::kMaxSeg), Reading{1400});
      EXPECT_EQ(Read(t.number, Option::kWindowClamp), Reading{9999});
      bool syncnt = mode != Mode::kListen;
      bool defer = mode != Mode::kConnect;
      EXPECT_EQ(Read(t.number, Option::kSynCnt).value == 3, syncnt);
      // The kernel reports DEFER_ACCEPT rounded up to what its SYN-ACK
      // retransmissions cover: 10 reads back as 15.
      EXPECT_EQ(Read(t.number, Option::kDeferAccept).value >= 10, defer);
    }
  }
}

TEST_P(OptionRingTest, DerivedUserTimeout) {
  TestFd from_ours = Make(kTcp4);
  ring_.apply(from_ours.number,
              every_option_set().with_value(Option::kUserTimeout, kDeriveUserTimeout),
              Mode::kConnect);
  EXPECT_EQ(Read(from_ours.number, Option::kUserTimeout),
            Reading{(40 + 7 * 4) * 1000});

  // The system's TCP_KEEPIDLE: read back from the socket, as apply_to does.
  int system_idle = Read(Make(kTcp4).fd.get(), Option::kKeepIdle).value;
  TestFd from_system = Make(kTcp4);
  ring_.apply(from_system.number, Settings().with_value(Option::kKeepIdle, 0),
              Mode::kConnect);
  EXPECT_EQ(Read(from_system.number, Option::kUserTimeout),
            Reading{(system_idle + 15 * 9) * 1000});

  TestFd saturated = Make(kTcp4);
  ring_.apply(saturated.number,
              Settings()
                  .with_value(Option::kKeepIdle, 32767)
                  .with_value(Option::kKeepIntvl, 32767)
                  .with_value(Option::kKeepCnt, 127),
              Mode::kConnect);
  EXPECT_EQ(Read(saturated.number, Option::kUserTimeout), Reading{INT_MAX});
}

TEST_P(OptionRingTest, FailuresCarryTheErrnoOfSetsockopt) {
  struct Case {
    FdKind kind;
    int keepidle_error;
  };
  const Case cases[] = {
      {{"udp4", AF_INET, SOCK_DGRAM, 0}, ENOPROTOOPT},
      {{"unix_stream", AF_UNIX, SOCK_STREAM, 0}, EOPNOTSUPP},
      {{"pipe", -1, 0, 0}, ENOTSOCK},
      {{"no_fd", -2, 0, 0}, EBADF},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.kind.name);
    ApplyReport report;
    EXPECT_EQ(
        CompareWithApplyTo(ring_, c.kind, Settings(), Mode::kSocket, &report),
        "");
    const OptionOutcome& idle = report.outcome(Option::kKeepIdle);
    EXPECT_EQ(idle.state, OptionState::kFailed);
    EXPECT_EQ(idle.value, 15);
    EXPECT_EQ(idle.error, c.keepidle_error) << ErrnoName(idle.error);
  }
  // A UDP or UNIX socket takes SO_KEEPALIVE; with every keepalive option
  // failed and unreadable, the derived timeout is 0: nothing is set.
  ApplyReport udp;
  CompareWithApplyTo(ring_, cases[0].kind, Settings(), Mode::kSocket, &udp);
  EXPECT_EQ(udp.outcome(Option::kKeepAlive).state, OptionState::kApplied);
  EXPECT_EQ(udp.outcome(Option::kUserTimeout).state, OptionState::kSkipped);
  EXPECT_EQ(ring_.path(), GetParam());
}

TEST_P(OptionRingTest, MptcpTakesWhatItsKernelTakes) {
  // Which TCP options MPTCP accepts depends on the kernel version; both
  // paths must agree with the kernel either way.
  for (const FdKind& kind : kKinds) {
    if (kind.protocol != tcp::kMptcpProtocol) continue;
    SCOPED_TRACE(kind.name);
    TestFd probe = Make(kind);
    if (probe.error != 0) {
      printf("%s not tried: %s\n", kind.name, strerror(probe.error));
      continue;
    }
    for (const Settings& s : {Settings(), every_option_set()}) {
      ApplyReport report;
      EXPECT_EQ(CompareWithApplyTo(ring_, kind, s, Mode::kSocket, &report), "");
      EXPECT_EQ(report.outcome(Option::kKeepAlive).state,
                OptionState::kApplied);
    }
  }
}

TEST_P(OptionRingTest, RingFdIsCloseOnExecAndRingsAreSmall) {
  if (GetParam() == OptionRing::Path::kSetsockopt) {
    EXPECT_TRUE(IoUringFds().empty());
    return;
  }
  std::vector<int> fds = IoUringFds();
  ASSERT_EQ(fds.size(), 1u);
  EXPECT_EQ(fcntl(fds[0], F_GETFD), FD_CLOEXEC);
  // SQ and CQ rings in one mapping, the SQEs in another: a page each.
  size_t mapped = IoUringMappedBytes();
  printf("io_uring mappings: %zu bytes\n", mapped);
  EXPECT_GT(mapped, 0u);
  EXPECT_LE(mapped, 2u * static_cast<size_t>(sysconf(_SC_PAGESIZE)));
}

TEST_P(OptionRingTest, ClassifiesLikeClassifySocket) {
  for (const FdKind& kind : kKinds) {
    TestFd t = Make(kind);
    if (t.error != 0) {
      printf("not tried, the kernel refused the socket: %s\n", kind.name);
      continue;
    }
    SocketKind expected = classify_socket(t.number);
    EXPECT_EQ(ring_.classify(t.number), expected) << kind.name;
  }
  EXPECT_EQ(ring_.path(), GetParam()) << ring_.fallback_reason();
}

TEST_P(OptionRingTest, ClassifiesWithoutGetsockoptOnTheRingPath) {
  // Under a filter that refuses getsockopt only the ring can tell a TCP
  // socket; the fallback path then reports an error, as classify_socket
  // does.
  OptionRing::Path path = GetParam();
  EXPECT_EXIT(
      {
        OptionRing ring;
        if (path == OptionRing::Path::kSetsockopt) ring.force_fallback();
        ring.prepare();
        DenySyscall(SCMP_SYS(getsockopt), EPERM);
        TestFd tcp = Make(kTcp4);
        TestFd udp = Make(FdKind{"udp4", AF_INET, SOCK_DGRAM, 0});
        bool ok = path == OptionRing::Path::kIoUring
                      ? ring.classify(tcp.number) == SocketKind::kTcp &&
                            ring.classify(udp.number) == SocketKind::kNotTcp
                      : ring.classify(tcp.number) == SocketKind::kError;
        _exit(ok ? 0 : 1);
      },
      testing::ExitedWithCode(0), "");
}

TEST_P(OptionRingTest, SetsNoOptionWithSetsockoptOnTheRingPath) {
  // Under a filter that refuses setsockopt, only the ring can set options:
  // proof that it does not quietly use setsockopt.
  // The child sets up a ring of its own: a ring serves only the thread that
  // set it up.
  OptionRing::Path path = GetParam();
  EXPECT_EXIT(
      {
        OptionRing ring;
        if (path == OptionRing::Path::kSetsockopt) ring.force_fallback();
        ring.prepare();
        DenySyscall(SCMP_SYS(setsockopt), EPERM);
        TestFd t = Make(kTcp4);
        ApplyReport report = ring.apply(t.number, every_option_set(), Mode::kSocket);
        std::string applied = AppliedDiff(t.number, report);
        bool ok = path == OptionRing::Path::kIoUring
                      ? !report.any_failed() && applied.empty() &&
                            Read(t.number, Option::kKeepIdle).value == 40
                      : report.outcome(Option::kKeepIdle).error == EPERM;
        fprintf(stderr, "any_failed=%d%s\n", report.any_failed(),
                applied.c_str());
        _exit(ok ? 0 : 1);
      },
      testing::ExitedWithCode(0), "");
}

INSTANTIATE_TEST_SUITE_P(
    BothPaths, OptionRingTest,
    testing::Values(OptionRing::Path::kIoUring, OptionRing::Path::kSetsockopt),
    [](const testing::TestParamInfo<OptionRing::Path>& param) {
      return std::string(param.param == OptionRing::Path::kIoUring
                             ? "io_uring"
                             : "setsockopt");
    });

TEST(OptionRingSetUpTest, NothingBeforeFirstUse) {
  OptionRing ring;
  EXPECT_EQ(ring.path(), OptionRing::Path::kUntried);
  EXPECT_TRUE(IoUringFds().empty());
  // Nothing to do sets nothing up either.
  TestFd t = Make(kTcp4);
  ring.apply(t.number, Settings().with_enabled(false), Mode::kSocket);
  EXPECT_EQ(ring.path(), OptionRing::Path::kUntried);
  ring.apply(t.number, Settings(), Mode::kSocket);
  EXPECT_NE(ring.path(), OptionRing::Path::kUntried);
  printf("path: %s %s\n", path_name(ring.path()),
         ring.fallback_reason().c_str());
  if (ring.path() == OptionRing::Path::kIoUring) {
    EXPECT_EQ(IoUringFds().size(), 1u);
  }
}

// Whether this process runs where io_uring should set socket options:
// Linux 6.7+, io_uring not disabled by sysctl, no seccomp filter. Else why not.
std::string WhyNoRingExpected() {
  utsname u{};
  int major = 0, minor = 0;
  if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2) {
    return "unknown kernel release";
  }
  if (major < 6 || (major == 6 && minor < 7)) {
    return std::string("Linux ") + u.release + " (socket commands: 6.7+)";
  }
  std::ifstream disabled("/proc/sys/kernel/io_uring_disabled");
  int level = 0;
  if (disabled >> level && level != 0) {
    return "kernel.io_uring_disabled = " + std::to_string(level);
  }
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    int mode = 0;
    if (sscanf(line.c_str(), "Seccomp: %d", &mode) == 1 && mode != 0) {
      return "running under a seccomp filter";
    }
  }
  return "";
}

TEST(OptionRingSetUpTest, UsesTheRingWhereTheKernelHasIt) {
  // The other tests skip when the ring is unavailable; this one makes sure
  // that "unavailable" is not our own fault (a wrong SQE layout would fail
  // the self-test and look like an old kernel).
  std::string why_not = WhyNoRingExpected();
  if (!why_not.empty()) GTEST_SKIP() << why_not;
  OptionRing ring;
  EXPECT_EQ(ring.prepare(), OptionRing::Path::kIoUring)
      << ring.fallback_reason();
  EXPECT_EQ(ring.fallback_errno(), 0);
  EXPECT_EQ(ring.fallback_reason(), "");
}

// What the supervisor and the agent ask for: the ring only where it is the
// faster way. Either way is right (the machine decides which is faster),
// but each must be whole: the ring and nothing else, or setsockopt with the
// ring released and the timing given as the reason; and the options come
// out as apply_to sets them.
TEST(OptionRingSetUpTest, KeepsTheRingOnlyWhereItMeasuresFaster) {
  std::string why_not = WhyNoRingExpected();
  if (!why_not.empty()) GTEST_SKIP() << why_not;
  OptionRing ring;
  ring.keep_ring_only_if_faster();
  OptionRing::Path path = ring.prepare();
  printf("path: %s %s\n", path_name(path), ring.fallback_reason().c_str());
  if (path == OptionRing::Path::kIoUring) {
    EXPECT_EQ(ring.fallback_reason(), "");
    EXPECT_EQ(IoUringFds().size(), 1u);
  } else {
    ASSERT_EQ(path, OptionRing::Path::kSetsockopt);
    EXPECT_EQ(ring.fallback_errno(), 0);
    EXPECT_EQ(ring.fallback_reason().rfind(
                  "io_uring is not a tenth faster here: five options in ",
                  0),
              0u)
        << ring.fallback_reason();
    EXPECT_NE(ring.fallback_reason().find(" ns in one io_uring_enter"),
              std::string::npos)
        << ring.fallback_reason();
    EXPECT_TRUE(IoUringFds().empty());
    EXPECT_EQ(IoUringMappedBytes(), 0u);
  }
  for (Mode mode : kModes) {
    EXPECT_EQ(CompareWithApplyTo(ring, kTcp4, Settings(), mode), "")
        << mode_name(mode);
  }
  EXPECT_EQ(ring.path(), path);
}

TEST(OptionRingSetUpTest, ForcedFallbackReleasesTheRing) {
  OptionRing ring;
  if (ring.prepare() != OptionRing::Path::kIoUring) {
    GTEST_SKIP() << "io_uring unavailable: " << ring.fallback_reason();
  }
  ring.force_fallback();
  EXPECT_EQ(ring.path(), OptionRing::Path::kSetsockopt);
  EXPECT_EQ(ring.fallback_errno(), 0);
  EXPECT_TRUE(IoUringFds().empty());
  EXPECT_EQ(IoUringMappedBytes(), 0u);
}

// io_uring refused the way Docker's default profile (EPERM), sysctl
// kernel.io_uring_disabled=2 (EPERM) or Podman's profile (ENOSYS) refuse it.
TEST(OptionRingFallbackTest, IoUringSetupRefused) {
  for (int err : {EPERM, ENOSYS}) {
    std::string expected =
        std::string("path=setsockopt reason=io_uring_setup: ") + strerror(err) +
        " \\(.*\\) diff=\n";
    EXPECT_EXIT(
        {
          DenySyscall(SCMP_SYS(io_uring_setup), err);
          OptionRing ring;
          ExitWithComparison(ring, Settings());
        },
        testing::ExitedWithCode(0), expected);
  }
}

TEST(OptionRingFallbackTest, ProbeRefused) {
  EXPECT_EXIT(
      {
        DenySyscall(SCMP_SYS(io_uring_register), EPERM);
        OptionRing ring;
        ExitWithComparison(ring, every_option_set());
      },
      testing::ExitedWithCode(0),
      "path=setsockopt reason=io_uring_register\\(IORING_REGISTER_PROBE\\): "
      "Operation not permitted diff=\n");
}

TEST(OptionRingFallbackTest, EnterFailsAfterSetUp) {
  {
    OptionRing ring;
    if (ring.prepare() != OptionRing::Path::kIoUring) {
      GTEST_SKIP() << "io_uring unavailable: " << ring.fallback_reason();
    }
  }
  // The socket the enter failed on still gets its options, by setsockopt.
  EXPECT_EXIT(
      {
        OptionRing ring;
        ring.prepare();
        DenySyscall(SCMP_SYS(io_uring_enter), EPERM);
        ExitWithComparison(ring, Settings());
      },
      testing::ExitedWithCode(0),
      "path=setsockopt reason=io_uring_enter: Operation not permitted diff=\n");
}

TEST(OptionRingFallbackTest, AnotherThreadFallsBack) {
  // IORING_SETUP_SINGLE_ISSUER: the ring belongs to the thread that set it
  // up. A call from another thread still gets its options, by setsockopt.
  OptionRing ring;
  if (ring.prepare() != OptionRing::Path::kIoUring) {
    GTEST_SKIP() << "io_uring unavailable: " << ring.fallback_reason();
  }
  std::string diff;
  std::thread other([&] {
    diff = CompareWithApplyTo(ring, kTcp4, Settings(), Mode::kConnect);
  });
  other.join();
  EXPECT_EQ(diff, "");
  EXPECT_EQ(ring.path(), OptionRing::Path::kSetsockopt);
  EXPECT_EQ(ring.fallback_errno(), EEXIST);
  EXPECT_NE(ring.fallback_reason().find("io_uring_enter"), std::string::npos)
      << ring.fallback_reason();
}

}  // namespace
}  // namespace keepalive
