#include "supervisor/filter_rules.h"

#include <errno.h>
#include <netinet/in.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "common/unique_fd.h"

#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

namespace keepalive {
namespace {

using FilterCtx = std::unique_ptr<void, decltype(&seccomp_release)>;

// libseccomp returns -errno.
Result<void> check(int rc, const char* what) {
  if (rc == 0) return {};
  return std::unexpected(SysError{-rc, what});
}

Result<void> add_emulation_rules(scmp_filter_ctx ctx) {
  constexpr int kSockTypeMask = 0xf;  // SOCK_TYPE_MASK: type without flags
  for (int domain : {AF_INET, AF_INET6}) {
    for (int protocol : {0, static_cast<int>(IPPROTO_TCP),
                         static_cast<int>(IPPROTO_MPTCP)}) {
      auto rc = check(
          seccomp_rule_add(
              ctx, SCMP_ACT_NOTIFY, SCMP_SYS(socket), 3,
              SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(domain)),
              SCMP_A1(SCMP_CMP_MASKED_EQ, kSockTypeMask, SOCK_STREAM),
              SCMP_A2(SCMP_CMP_EQ, static_cast<scmp_datum_t>(protocol))),
          "seccomp_rule_add(socket)");
      if (!rc) return rc;
    }
  }
  return {};
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

Result<std::vector<sock_filter>> compile_filter(const FilterSpec& spec) {
  // libseccomp accepts SCMP_ACT_NOTIFY only if its own probe of the
  // kernel, a seccomp() call from this process, succeeds. Under a profile
  // that refuses seccomp() building then fails with EINVAL, which reads as
  // "the kernel lacks user notification" and bypasses --fail-open.
  // Building the program is pure: pin the API level that has NOTIFY and let
  // the child's install report the real errno.
  if (seccomp_api_get() < 5) seccomp_api_set(5);
  FilterCtx ctx(seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  if (!ctx) return std::unexpected(SysError{ENOMEM, "seccomp_init"});
  // 32-bit and x32 calls pass untouched rather than killing the target
  // (libseccomp's default for a foreign architecture). They are not covered.
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

  Result<void> rc;
  if (spec.strategy == Strategy::kEmulate) {
    rc = add_emulation_rules(ctx.get());
    for (int call : kIdentityCalls) {
      if (rc) {
        rc = check(seccomp_rule_add(ctx.get(), SCMP_ACT_NOTIFY, call, 0),
                   "seccomp_rule_add(identity call)");
      }
    }
    for (int call : {SCMP_SYS(execve), SCMP_SYS(execveat)}) {
      if (rc && spec.watch_exec) {
        rc = check(seccomp_rule_add(ctx.get(), SCMP_ACT_NOTIFY, call, 0),
                   "seccomp_rule_add(exec)");
      }
    }
  } else {
    if (rc && spec.mode != Mode::kListen) {
      rc = check(seccomp_rule_add(ctx.get(), SCMP_ACT_NOTIFY,
                                  SCMP_SYS(connect), 0),
                 "seccomp_rule_add(connect)");
    }
    if (rc && spec.mode != Mode::kConnect) {
      rc = check(
          seccomp_rule_add(ctx.get(), SCMP_ACT_NOTIFY, SCMP_SYS(listen), 0),
          "seccomp_rule_add(listen)");
    }
  }
  if (rc) {
    rc = check(seccomp_rule_add(ctx.get(),
                                spec.deny_io_uring ? SCMP_ACT_ERRNO(ENOSYS)
                                                   : SCMP_ACT_NOTIFY,
                                SCMP_SYS(io_uring_setup), 0),
               "seccomp_rule_add(io_uring_setup)");
  }
  if (!rc) return std::unexpected(rc.error());
  return export_program(ctx.get());
}

}  // namespace keepalive
