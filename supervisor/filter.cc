// SPDX-License-Identifier: Apache-2.0
#include "supervisor/filter.h"

#include <errno.h>
#include <linux/audit.h>
#include <sys/syscall.h>

#include "supervisor/filter_rules.h"

namespace keepalive {
namespace {

struct CompiledProgram {
  const sock_filter* instructions;
  size_t size;
};

// kCompiledPrograms[filter_spec_index(spec)], written by
// keepalive_filter_gen at build time.
#include "supervisor/filter_programs.inc"

static_assert(sizeof kCompiledPrograms / sizeof kCompiledPrograms[0] ==
              kFilterSpecCount);

struct NumberedCall {
  int nr;
  CallKind kind;
};

// The native numbers of kTrappableCalls (filter_rules.h).
constexpr NumberedCall kNativeCalls[] = {
    {SYS_socket, CallKind::kSocket},
    {SYS_connect, CallKind::kConnect},
    {SYS_listen, CallKind::kListen},
    {SYS_io_uring_setup, CallKind::kIoUringSetup},
    {SYS_setuid, CallKind::kIdentity},
    {SYS_setgid, CallKind::kIdentity},
    {SYS_setreuid, CallKind::kIdentity},
    {SYS_setregid, CallKind::kIdentity},
    {SYS_setresuid, CallKind::kIdentity},
    {SYS_setresgid, CallKind::kIdentity},
    {SYS_setfsuid, CallKind::kIdentity},
    {SYS_setfsgid, CallKind::kIdentity},
    {SYS_setgroups, CallKind::kIdentity},
    {SYS_unshare, CallKind::kIdentity},
    {SYS_setns, CallKind::kIdentity},
    {SYS_execve, CallKind::kExec},
    {SYS_execveat, CallKind::kExec},
};

#if defined(__x86_64__)
// arch/x86/entry/syscalls/syscall_32.tbl. socketcall (102) is left out:
// its arguments are in the caller's memory, so it is let through.
constexpr NumberedCall kI386Calls[] = {
    {359, CallKind::kSocket},
    {362, CallKind::kConnect},
    {363, CallKind::kListen},
    {425, CallKind::kIoUringSetup},
    {23, CallKind::kIdentity},   // setuid
    {46, CallKind::kIdentity},   // setgid
    {70, CallKind::kIdentity},   // setreuid
    {71, CallKind::kIdentity},   // setregid
    {164, CallKind::kIdentity},  // setresuid
    {170, CallKind::kIdentity},  // setresgid
    {138, CallKind::kIdentity},  // setfsuid
    {139, CallKind::kIdentity},  // setfsgid
    {81, CallKind::kIdentity},   // setgroups
    {213, CallKind::kIdentity},  // setuid32
    {214, CallKind::kIdentity},  // setgid32
    {203, CallKind::kIdentity},  // setreuid32
    {204, CallKind::kIdentity},  // setregid32
    {208, CallKind::kIdentity},  // setresuid32
    {210, CallKind::kIdentity},  // setresgid32
    {215, CallKind::kIdentity},  // setfsuid32
    {216, CallKind::kIdentity},  // setfsgid32
    {206, CallKind::kIdentity},  // setgroups32
    {310, CallKind::kIdentity},  // unshare
    {346, CallKind::kIdentity},  // setns
    {11, CallKind::kExec},       // execve
    {358, CallKind::kExec},      // execveat
};

// __X32_SYSCALL_BIT: x32 calls are x86-64 calls with this bit in the
// number; the "common" entries of syscall_64.tbl keep their x86-64 number,
// execve and execveat have x32 ones. The network calls are absent: the
// filter lets x32's through (traps_network_calls).
constexpr int kX32Bit = 0x40000000;
constexpr NumberedCall kX32Calls[] = {
    {kX32Bit | SYS_io_uring_setup, CallKind::kIoUringSetup},
    {kX32Bit | SYS_setuid, CallKind::kIdentity},
    {kX32Bit | SYS_setgid, CallKind::kIdentity},
    {kX32Bit | SYS_setreuid, CallKind::kIdentity},
    {kX32Bit | SYS_setregid, CallKind::kIdentity},
    {kX32Bit | SYS_setresuid, CallKind::kIdentity},
    {kX32Bit | SYS_setresgid, CallKind::kIdentity},
    {kX32Bit | SYS_setfsuid, CallKind::kIdentity},
    {kX32Bit | SYS_setfsgid, CallKind::kIdentity},
    {kX32Bit | SYS_setgroups, CallKind::kIdentity},
    {kX32Bit | SYS_unshare, CallKind::kIdentity},
    {kX32Bit | SYS_setns, CallKind::kIdentity},
    {kX32Bit | 520, CallKind::kExec},  // execve
    {kX32Bit | 545, CallKind::kExec},  // execveat
};
#endif

template <size_t N>
CallKind find_call(const NumberedCall (&calls)[N], int nr) {
  for (const NumberedCall& call : calls) {
    if (call.nr == nr) return call.kind;
  }
  return CallKind::kOther;
}

}  // namespace

CallKind classify_call(uint32_t arch, int nr) {
#if defined(__x86_64__)
  if (arch == AUDIT_ARCH_I386) return find_call(kI386Calls, nr);
  if (arch == AUDIT_ARCH_X86_64 && (nr & kX32Bit) != 0) {
    return find_call(kX32Calls, nr);
  }
#endif
  if (arch == seccomp_arch_native()) return find_call(kNativeCalls, nr);
  return CallKind::kOther;
}

Result<std::vector<sock_filter>> build_filter(const FilterSpec& spec) {
  // libseccomp's notification calls (seccomp_notify_*), which the handler
  // makes, refuse to work below API level 5, and would otherwise find the
  // level with a dozen seccomp() probes of the kernel at the first of them,
  // while the child waits in its trapped exec. Under a profile that
  // refuses seccomp() those probes fail, and every notification would be
  // refused too. The child's install is what says whether the kernel has
  // user notification, so the level is pinned here.
  seccomp_api_set(5);
  if (spec.strategy != Strategy::kEmulate &&
      spec.strategy != Strategy::kContinue) {
    return std::unexpected(SysError{EINVAL, "filter for strategy auto"});
  }
  const CompiledProgram& program = kCompiledPrograms[filter_spec_index(spec)];
  return std::vector<sock_filter>(program.instructions,
                                  program.instructions + program.size);
}

}  // namespace keepalive
