// SPDX-License-Identifier: Apache-2.0
// The filter across architectures: classify_call() on the numbers of the
// kernel's tables, and the programs compiled in, run on seccomp_data for
// x86-64, i386 and x32 calls by a small BPF interpreter, agree on which
// calls leave the kernel.
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "supervisor/filter.h"

namespace keepalive {
namespace {

#if defined(__x86_64__)

constexpr uint32_t kX32Bit = 0x40000000;
constexpr uint32_t kNotify = SECCOMP_RET_USER_NOTIF;
constexpr uint32_t kAllow = SECCOMP_RET_ALLOW;
constexpr uint32_t kEnosys = SECCOMP_RET_ERRNO | ENOSYS;

// Runs a classic BPF seccomp program on `data`, as the kernel would;
// nullopt for an instruction this interpreter does not know (the test
// then fails rather than guessing).
std::optional<uint32_t> run_bpf(const std::vector<sock_filter>& program,
                                const seccomp_data& data) {
  uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {};
  for (size_t pc = 0; pc < program.size(); ++pc) {
    const sock_filter& insn = program[pc];
    switch (insn.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (insn.k + 4 > sizeof data || insn.k % 4 != 0) return std::nullopt;
        std::memcpy(&a, reinterpret_cast<const char*>(&data) + insn.k, 4);
        break;
      case BPF_LD | BPF_MEM:
        a = mem[insn.k % BPF_MEMWORDS];
        break;
      case BPF_LDX | BPF_MEM:
        x = mem[insn.k % BPF_MEMWORDS];
        break;
      case BPF_ST:
        mem[insn.k % BPF_MEMWORDS] = a;
        break;
      case BPF_STX:
        mem[insn.k % BPF_MEMWORDS] = x;
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        a &= insn.k;
        break;
      case BPF_MISC | BPF_TAX:
        x = a;
        break;
      case BPF_MISC | BPF_TXA:
        a = x;
        break;
      case BPF_JMP | BPF_JA:
        pc += insn.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += a == insn.k ? insn.jt : insn.jf;
        break;
      case BPF_JMP | BPF_JGT | BPF_K:
        pc += a > insn.k ? insn.jt : insn.jf;
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        pc += a >= insn.k ? insn.jt : insn.jf;
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        pc += (a & insn.k) != 0 ? insn.jt : insn.jf;
        break;
      case BPF_RET | BPF_K:
        return insn.k;
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;  // ran off the end: the kernel refuses such programs
}

seccomp_data call(uint32_t arch, uint32_t nr, uint64_t a0 = 0, uint64_t a1 = 0,
                  uint64_t a2 = 0) {
  seccomp_data data{};
  data.nr = static_cast<int>(nr);
  data.arch = arch;
  data.args[0] = a0;
  data.args[1] = a1;
  data.args[2] = a2;
  return data;
}

std::string spec_text(const FilterSpec& spec) {
  return std::string(mode_name(spec.mode)) + " " +
         strategy_name(spec.strategy) +
         (spec.deny_io_uring ? " deny_io_uring" : "") +
         (spec.watch_exec ? " watch_exec" : "");
}

// What the filter for `spec` must answer a call of `kind` (made with the
// arguments of a TCP socket()).
uint32_t expected_action(const FilterSpec& spec, CallKind kind) {
  const bool emulate = spec.strategy == Strategy::kEmulate;
  switch (kind) {
    case CallKind::kSocket:
      return emulate ? kNotify : kAllow;
    case CallKind::kConnect:
      return !emulate && spec.mode != Mode::kListen ? kNotify : kAllow;
    case CallKind::kListen:
      return !emulate && spec.mode != Mode::kConnect ? kNotify : kAllow;
    case CallKind::kIoUringSetup:
      return spec.deny_io_uring ? kEnosys : kNotify;
    case CallKind::kIdentity:
      return emulate ? kNotify : kAllow;
    case CallKind::kExec:
      return emulate && spec.watch_exec ? kNotify : kAllow;
    case CallKind::kOther:
      return kAllow;
  }
  return kAllow;
}

TEST(ClassifyCallTest, KnowsEveryArchitecturesNumbers) {
  // x86-64 (syscall_64.tbl)
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 41), CallKind::kSocket);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 42), CallKind::kConnect);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 50), CallKind::kListen);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 425), CallKind::kIoUringSetup);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 117), CallKind::kIdentity);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 272), CallKind::kIdentity);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 59), CallKind::kExec);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 322), CallKind::kExec);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, 208), CallKind::kOther);
  // i386 (syscall_32.tbl), also int $0x80 from a 64-bit program
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 359), CallKind::kSocket);
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 362), CallKind::kConnect);
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 363), CallKind::kListen);
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 102), CallKind::kOther);
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 425), CallKind::kIoUringSetup);
  for (int nr : {23, 46, 70, 71, 81, 138, 139, 164, 170, 203, 204, 206, 208,
                 210, 213, 214, 215, 216, 310, 346}) {
    EXPECT_EQ(classify_call(AUDIT_ARCH_I386, nr), CallKind::kIdentity) << nr;
  }
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 11), CallKind::kExec);
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 358), CallKind::kExec);
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 41), CallKind::kOther);  // dup
  // x32: x86-64's arch, numbers with 0x40000000; network calls let through
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, kX32Bit | 41), CallKind::kOther);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, kX32Bit | 42), CallKind::kOther);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, kX32Bit | 105),
            CallKind::kIdentity);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, kX32Bit | 117),
            CallKind::kIdentity);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, kX32Bit | 520), CallKind::kExec);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, kX32Bit | 545), CallKind::kExec);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, kX32Bit | 59), CallKind::kOther);
  EXPECT_EQ(classify_call(AUDIT_ARCH_X86_64, kX32Bit | 425),
            CallKind::kIoUringSetup);
  // Another architecture entirely.
  EXPECT_EQ(classify_call(AUDIT_ARCH_AARCH64, 198), CallKind::kOther);
}

// Every program compiled in, on every number of every architecture: the
// program notifies exactly the calls classify_call() names for its spec.
TEST(CompiledFilterArchTest, NotifiesWhatClassifyCallNames) {
  struct Range {
    uint32_t arch;
    uint32_t first, last;
  };
  const Range kRanges[] = {{AUDIT_ARCH_X86_64, 0, 600},
                           {AUDIT_ARCH_I386, 0, 600},
                           {AUDIT_ARCH_X86_64, kX32Bit, kX32Bit + 600}};
  for (size_t i = 0; i < kFilterSpecCount; ++i) {
    FilterSpec spec = filter_spec_at(i);
    SCOPED_TRACE(spec_text(spec));
    Result<std::vector<sock_filter>> program = build_filter(spec);
    ASSERT_TRUE(program) << program.error().message();
    for (const Range& range : kRanges) {
      for (uint32_t nr = range.first; nr <= range.last; ++nr) {
        // A TCP socket()'s arguments; for socketcall a0 = 2 (SYS_BIND).
        std::optional<uint32_t> action =
            run_bpf(*program, call(range.arch, nr, AF_INET, SOCK_STREAM, 0));
        ASSERT_TRUE(action) << "instruction not interpreted";
        EXPECT_EQ(*action, expected_action(
                               spec, classify_call(range.arch,
                                                   static_cast<int>(nr))))
            << std::hex << "arch 0x" << range.arch << " nr 0x" << nr;
      }
    }
  }
}

std::vector<sock_filter> program_for(const FilterSpec& spec) {
  Result<std::vector<sock_filter>> program = build_filter(spec);
  return program ? *program : std::vector<sock_filter>{};
}

uint32_t action_of(const std::vector<sock_filter>& program,
                   const seccomp_data& data) {
  return run_bpf(program, data).value_or(0xdeadbeef);
}

TEST(CompiledFilterArchTest, I386CallsUnderEmulate) {
  auto program = program_for({Mode::kSocket, Strategy::kEmulate, false, true});
  ASSERT_FALSE(program.empty());
  // setgroups32, setresgid32, setresuid32: the drop of raw_tcp --int80.
  for (uint32_t nr : {206u, 210u, 208u}) {
    EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, nr)), kNotify) << nr;
  }
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 11)), kNotify);  // exec
  // The direct socket(): TCP only, judged on its arguments.
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 359, AF_INET,
                                    SOCK_STREAM | SOCK_CLOEXEC, 0)),
            kNotify);
  EXPECT_EQ(action_of(program,
                      call(AUDIT_ARCH_I386, 359, AF_INET6, SOCK_STREAM,
                           IPPROTO_TCP)),
            kNotify);
  EXPECT_EQ(action_of(program,
                      call(AUDIT_ARCH_I386, 359, AF_INET, SOCK_DGRAM, 0)),
            kAllow);
  EXPECT_EQ(action_of(program,
                      call(AUDIT_ARCH_I386, 359, AF_UNIX, SOCK_STREAM, 0)),
            kAllow);
  // socketcall(SYS_SOCKET, args): the arguments are in memory; let through.
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 102, 1, 0xffffd100, 0)),
            kAllow);
  // getuid32 and the like stay in the kernel.
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 199)), kAllow);
}

TEST(CompiledFilterArchTest, X32CallsUnderEmulate) {
  auto program = program_for({Mode::kSocket, Strategy::kEmulate, false, true});
  ASSERT_FALSE(program.empty());
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_X86_64, kX32Bit | 105)),
            kNotify);  // setuid
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_X86_64, kX32Bit | 308)),
            kNotify);  // setns
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_X86_64, kX32Bit | 520)),
            kNotify);  // execve
  // socket(): let through, the kernel may not run x32 calls at all.
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_X86_64, kX32Bit | 41, AF_INET,
                                    SOCK_STREAM, 0)),
            kAllow);
}

TEST(CompiledFilterArchTest, I386CallsUnderContinue) {
  auto program =
      program_for({Mode::kSocket, Strategy::kContinue, false, false});
  ASSERT_FALSE(program.empty());
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 362, 3)), kNotify);
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 363, 3, 1)), kNotify);
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 359, AF_INET,
                                    SOCK_STREAM, 0)),
            kAllow);
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 208)), kAllow);
  // libseccomp traps socketcall(SYS_CONNECT) beside connect(); the
  // supervisor lets it through (classify_call: kOther).
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_I386, 102, 3, 0xffffd100)),
            kNotify);
  EXPECT_EQ(classify_call(AUDIT_ARCH_I386, 102), CallKind::kOther);
}

// The kernel reads socket()'s arguments as ints: high bits in the 64-bit
// registers must not take a TCP socket past the filter.
TEST(CompiledFilterArchTest, SocketArgumentsAreComparedOnTheLow32Bits) {
  auto program = program_for({Mode::kSocket, Strategy::kEmulate, false, false});
  ASSERT_FALSE(program.empty());
  constexpr uint64_t kHigh = uint64_t{0xdead} << 32;
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_X86_64, 41, kHigh | AF_INET,
                                    kHigh | SOCK_STREAM, kHigh)),
            kNotify);
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_X86_64, 41, kHigh | AF_INET6,
                                    SOCK_STREAM, kHigh | IPPROTO_TCP)),
            kNotify);
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_X86_64, 41, kHigh | AF_UNIX,
                                    SOCK_STREAM, 0)),
            kAllow);
  EXPECT_EQ(action_of(program, call(AUDIT_ARCH_X86_64, 41, AF_INET,
                                    kHigh | SOCK_DGRAM, 0)),
            kAllow);
}

#endif  // __x86_64__

}  // namespace
}  // namespace keepalive
