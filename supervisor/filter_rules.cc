// SPDX-License-Identifier: Apache-2.0
#include "supervisor/filter_rules.h"

#include <errno.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "common/tcp.h"
#include "common/unique_fd.h"

namespace keepalive {
namespace {

using FilterCtx = std::unique_ptr<void, decltype(&seccomp_release)>;

// libseccomp returns -errno.
Result<void> check(int rc, const char* what) {
  if (rc == 0) return {};
  return std::unexpected(SysError{-rc, what});
}

// libseccomp names the calls an architecture lacks with pseudo numbers at
// or below this (__PNR_*); the muxed socket calls of i386 (socketcall) sit
// above it, at -101 to -120.
constexpr int kPseudoCallCeiling = -10000;

// socket() of the TCP kinds only, checked on the low 32 bits of each
// argument: the kernel reads ints, so a 64-bit register with high bits set
// makes the same socket. libseccomp compares all 64 bits with SCMP_CMP_EQ
// on a 64-bit architecture; a 0xffffffff mask drops the high word (32-bit
// architectures compare only the low word anyway).
Result<void> add_socket_rules(scmp_filter_ctx ctx, int nr) {
  constexpr scmp_datum_t kInt = 0xffffffff;
  for (int domain : tcp::kDomains) {
    for (int protocol : tcp::kSocketProtocols) {
      auto rc = check(
          seccomp_rule_add(
              ctx, SCMP_ACT_NOTIFY, nr, 3,
              SCMP_A0(SCMP_CMP_MASKED_EQ, kInt,
                      static_cast<scmp_datum_t>(domain)),
              SCMP_A1(SCMP_CMP_MASKED_EQ, tcp::kTypeMask, SOCK_STREAM),
              SCMP_A2(SCMP_CMP_MASKED_EQ, kInt,
                      static_cast<scmp_datum_t>(protocol))),
          "seccomp_rule_add(socket)");
      if (!rc) return rc;
    }
  }
  return {};
}

// The rules of `spec` for one architecture, in a context holding only it.
// libseccomp takes native numbers (or pseudo numbers for calls the native
// architecture lacks, such as setuid32) and translates them by name.
//
// On i386 libseccomp adds, beside each direct socket(), connect() and
// listen() rule (359, 362, 363), one for socketcall(SYS_SOCKET/SYS_CONNECT/
// SYS_LISTEN, args), with the first argument replaced by the call number
// and the others tested as given: for socket() that tests the address of
// the argument block against SOCK_STREAM (address & 0xf == 1), which no
// 4-byte aligned block matches; connect() and listen() under kContinue
// trap their socketcall form. Whatever socketcall reaches the supervisor
// is let through (classify_call says kOther: its arguments are in the
// target's memory).
Result<void> add_rules(scmp_filter_ctx ctx, uint32_t arch,
                       const FilterSpec& spec) {
  const bool emulate = spec.strategy == Strategy::kEmulate;
  for (const NamedCall& call : kTrappableCalls) {
    if (seccomp_syscall_resolve_name_arch(arch, call.name) <=
        kPseudoCallCeiling) {
      continue;  // not a call of this architecture
    }
    int nr = seccomp_syscall_resolve_name(call.name);
    bool trap = false;
    uint32_t action = SCMP_ACT_NOTIFY;
    switch (call.kind) {
      case CallKind::kSocket:
        if (emulate && traps_network_calls(arch)) {
          if (auto rc = add_socket_rules(ctx, nr); !rc) return rc;
        }
        break;
      case CallKind::kConnect:
        trap = !emulate && spec.mode != Mode::kListen &&
               traps_network_calls(arch);
        break;
      case CallKind::kListen:
        trap = !emulate && spec.mode != Mode::kConnect &&
               traps_network_calls(arch);
        break;
      case CallKind::kIoUringSetup:
        trap = true;
        if (spec.deny_io_uring) action = SCMP_ACT_ERRNO(ENOSYS);
        break;
      case CallKind::kIdentity:
        trap = emulate;
        break;
      case CallKind::kExec:
        trap = emulate && spec.watch_exec;
        break;
      case CallKind::kOther:
        break;
    }
    if (!trap) continue;
    if (auto rc = check(seccomp_rule_add(ctx, action, nr, 0),
                        "seccomp_rule_add");
        !rc) {
      return rc;
    }
  }
  return {};
}

// A context for `arch` alone, with the filter's attributes (seccomp_merge
// wants them equal).
Result<FilterCtx> new_context(uint32_t arch) {
  FilterCtx ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  if (!ctx) return std::unexpected(SysError{ENOMEM, "seccomp_init"});
  // Calls of an architecture not covered (none the kernel accepts from an
  // x86-64 process) pass untouched rather than killing the target
  // (libseccomp's default for a foreign architecture).
  if (auto rc = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH,
                                       SCMP_ACT_ALLOW),
                      "seccomp_attr_set(BADARCH)");
      !rc) {
    return std::unexpected(rc.error());
  }
  // no_new_privs is the launcher's decision, not libseccomp's.
  if (auto rc = check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0),
                      "seccomp_attr_set(NNP)");
      !rc) {
    return std::unexpected(rc.error());
  }
  if (arch != seccomp_arch_native()) {
    if (auto rc = check(seccomp_arch_add(ctx.get(), arch), "seccomp_arch_add");
        !rc) {
      return std::unexpected(rc.error());
    }
    if (auto rc = check(seccomp_arch_remove(ctx.get(), SCMP_ARCH_NATIVE),
                        "seccomp_arch_remove");
        !rc) {
      return std::unexpected(rc.error());
    }
  }
  return ctx;
}

Result<std::vector<sock_filter>> export_program(scmp_filter_ctx ctx) {
  // libseccomp 2.5 exports only to an fd; a memfd keeps it in memory.
  UniqueFd memfd(memfd_create("keepalive-filter", MFD_CLOEXEC));
  if (!memfd.valid()) return errno_error("memfd_create");
  if (auto rc = check(seccomp_export_bpf(ctx, memfd.get()),
                      "seccomp_export_bpf");
      !rc) {
    return std::unexpected(rc.error());
  }
  off_t size = lseek(memfd.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter) != 0) {
    return std::unexpected(SysError{EINVAL, "seccomp_export_bpf size"});
  }
  std::vector<sock_filter> program(size / sizeof(sock_filter));
  if (pread(memfd.get(), program.data(), size, 0) != size) {
    return errno_error("reading the exported filter");
  }
  return program;
}

}  // namespace

std::vector<uint32_t> filter_architectures() {
  uint32_t native = seccomp_arch_native();
  if (native == SCMP_ARCH_X86_64) {
    // int $0x80 works from any process where the kernel has IA32
    // emulation; x32 calls are x86-64 calls with 0x40000000 in the number.
    return {native, SCMP_ARCH_X86, SCMP_ARCH_X32};
  }
  return {native};
}

bool traps_network_calls(uint32_t scmp_arch) {
  return scmp_arch != SCMP_ARCH_X32;
}

Result<std::vector<sock_filter>> compile_filter(const FilterSpec& spec) {
  // libseccomp accepts SCMP_ACT_NOTIFY only if its own probe of the
  // kernel, a seccomp() call from this process, succeeds. Under a profile
  // that refuses seccomp() building then fails with EINVAL, which reads as
  // "the kernel lacks user notification" and bypasses --fail-open.
  // Building the program is pure: pin the API level that has NOTIFY and let
  // the child's install report the real errno.
  if (seccomp_api_get() < 5) seccomp_api_set(5);
  // One context per architecture, merged: a rule added to a context with
  // several architectures goes to all of them, and x32 must not get the
  // network rules.
  FilterCtx filter(nullptr, seccomp_release);
  for (uint32_t arch : filter_architectures()) {
    Result<FilterCtx> ctx = new_context(arch);
    if (!ctx) return std::unexpected(ctx.error());
    if (auto rc = add_rules(ctx->get(), arch, spec); !rc) {
      return std::unexpected(rc.error());
    }
    if (!filter) {
      filter = std::move(*ctx);
      continue;
    }
    // seccomp_merge releases the context it merges from, on success only.
    if (auto rc = check(seccomp_merge(filter.get(), ctx->get()),
                        "seccomp_merge");
        !rc) {
      return std::unexpected(rc.error());
    }
    (void)ctx->release();
  }
  return export_program(filter.get());
}

}  // namespace keepalive
