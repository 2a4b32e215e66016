// SPDX-License-Identifier: Apache-2.0
// The rules of the seccomp filters, compiled to BPF by libseccomp. Only the
// build runs this (keepalive_filter_gen writes every program into the
// supervisor, see filter.h) and so does a test that checks the programs
// compiled in against it; the supervisor itself never builds a filter.
#pragma once

#include <linux/filter.h>
#include <seccomp.h>
#include <stdint.h>

#include <vector>

#include "supervisor/error.h"
#include "supervisor/filter.h"

namespace keepalive {

// A call the filter may trap, by its name in libseccomp's tables; each
// architecture that has the name gets the rule under its own number.
struct NamedCall {
  const char* name;
  CallKind kind;
};

// The kIdentity calls are those after which a thread's credentials or
// network namespace may differ (commit_creds and switch_task_namespaces
// callers a process can reach); the *32 names exist on i386 only. clone and
// clone3 make new threads, which are judged afresh.
inline constexpr NamedCall kTrappableCalls[] = {
    {"socket", CallKind::kSocket},
    {"connect", CallKind::kConnect},
    {"listen", CallKind::kListen},
    {"io_uring_setup", CallKind::kIoUringSetup},
    {"setuid", CallKind::kIdentity},
    {"setgid", CallKind::kIdentity},
    {"setreuid", CallKind::kIdentity},
    {"setregid", CallKind::kIdentity},
    {"setresuid", CallKind::kIdentity},
    {"setresgid", CallKind::kIdentity},
    {"setfsuid", CallKind::kIdentity},
    {"setfsgid", CallKind::kIdentity},
    {"setgroups", CallKind::kIdentity},
    {"setuid32", CallKind::kIdentity},
    {"setgid32", CallKind::kIdentity},
    {"setreuid32", CallKind::kIdentity},
    {"setregid32", CallKind::kIdentity},
    {"setresuid32", CallKind::kIdentity},
    {"setresgid32", CallKind::kIdentity},
    {"setfsuid32", CallKind::kIdentity},
    {"setfsgid32", CallKind::kIdentity},
    {"setgroups32", CallKind::kIdentity},
    {"unshare", CallKind::kIdentity},
    {"setns", CallKind::kIdentity},
    {"execve", CallKind::kExec},
    {"execveat", CallKind::kExec},
};

// The architectures the filter covers (libseccomp's tokens): the native one
// first, then those whose calls the kernel accepts from a native process or
// its exec'd programs.
std::vector<uint32_t> filter_architectures();

// Whether the filter traps socket(), connect() and listen() made through
// `scmp_arch`. Not x32's: on kernels built without x32 the kernel answers
// ENOSYS after the filter, which emulating would turn into a working
// socket. x32 programs make their own sockets, without options.
bool traps_network_calls(uint32_t scmp_arch);

// Compiles the program for `spec` with libseccomp (see build_filter for
// what it traps).
Result<std::vector<sock_filter>> compile_filter(const FilterSpec& spec);

}  // namespace keepalive
