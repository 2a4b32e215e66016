// SPDX-License-Identifier: Apache-2.0
// The seccomp filter installed on the target: which calls leave the kernel
// as user notifications. It covers every architecture the kernel accepts
// calls of from an x86-64 process: x86-64, i386 (int $0x80, also from a
// 64-bit program) and x32. Everything else is allowed untouched.
#pragma once

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#include <vector>

#include "common/settings.h"
#include "supervisor/config.h"
#include "supervisor/error.h"

namespace keepalive {

struct FilterSpec {
  Mode mode = Mode::kSocket;
  Strategy strategy = Strategy::kEmulate;  // kEmulate or kContinue
  bool deny_io_uring = false;
  // Emulate only: also trap execve/execveat, which change credentials when
  // no_new_privs is off (setuid programs).
  bool watch_exec = false;
};

// What a trapped call is, whatever the architecture it was made through.
enum class CallKind {
  kSocket,        // socket(): x86-64 41, i386 359
  kConnect,       // connect(): x86-64 42, i386 362
  kListen,        // listen(): x86-64 50, i386 363
  kIoUringSetup,  // io_uring_setup(), every architecture
  // Can give the calling thread other credentials or another network
  // namespace: the setuid family (with i386's *32 variants), setgroups,
  // unshare, setns. Under kEmulate the filter traps them so that the
  // supervisor can forget what it knew of the thread (see task_cache.h);
  // they are rare, and answered at once with CONTINUE.
  kIdentity,
  kExec,  // execve/execveat: a new identity for the whole thread group
  // Anything else, among them i386 socketcall() and x32's network calls,
  // which the filter lets through (see filter_rules.h).
  kOther,
};

// Classifies a notification by seccomp_data.arch and .nr. x32 calls come
// with AUDIT_ARCH_X86_64 and numbers carrying 0x40000000; i386 calls, also
// those a 64-bit program makes through int $0x80, with AUDIT_ARCH_I386.
CallKind classify_call(uint32_t arch, int nr);

// The programs are compiled by libseccomp when the supervisor is built
// (filter_rules.h), one for each FilterSpec: building one at run time cost
// every start about a third of a millisecond, with the child waiting.

// How many FilterSpecs there are, and a numbering of them.
inline constexpr size_t kFilterSpecCount = size_t{3} * 2 * 2 * 2;
constexpr size_t filter_spec_index(const FilterSpec& spec) {
  size_t mode = spec.mode == Mode::kSocket    ? 0
                : spec.mode == Mode::kConnect ? 1
                                              : 2;
  size_t emulate = spec.strategy == Strategy::kEmulate ? 1 : 0;
  return ((mode * 2 + emulate) * 2 + (spec.deny_io_uring ? 1 : 0)) * 2 +
         (spec.watch_exec ? 1 : 0);
}
constexpr FilterSpec filter_spec_at(size_t index) {
  constexpr Mode kModes[] = {Mode::kSocket, Mode::kConnect, Mode::kListen};
  return {kModes[index / 8],
          (index / 4) % 2 != 0 ? Strategy::kEmulate : Strategy::kContinue,
          (index / 2) % 2 != 0, index % 2 != 0};
}

// The BPF program for `spec` (and libseccomp's API level pinned at 5, for
// the notification handler's calls, see filter.cc):
//  - kEmulate: x86-64 and i386 socket() with domain AF_INET/AF_INET6,
//    (type & 0xf) == SOCK_STREAM and protocol 0, IPPROTO_TCP or
//    IPPROTO_MPTCP, checked in BPF on the low 32 bits of each argument (the
//    kernel reads ints) so that no other socket() call leaves the kernel;
//  - kContinue: x86-64 and i386 connect() in connect and socket modes,
//    listen() in listen and socket modes;
//  - kEmulate: also the kIdentity calls of every architecture, and kExec
//    with watch_exec;
//  - io_uring_setup of every architecture: a notification (the supervisor
//    warns once), or ENOSYS in the filter itself when deny_io_uring.
Result<std::vector<sock_filter>> build_filter(const FilterSpec& spec);

}  // namespace keepalive
