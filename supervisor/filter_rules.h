// The rules of the seccomp filters, compiled to BPF by libseccomp. Only the
// build runs this (keepalive_filter_gen writes every program into the
// supervisor, see filter.h) and so does a test that checks the programs
// compiled in against it; the supervisor itself never builds a filter.
#pragma once

#include <linux/filter.h>
#include <seccomp.h>

#include <vector>

#include "supervisor/error.h"
#include "supervisor/filter.h"

namespace keepalive {

// The calls after which a thread's credentials or network namespace may
// differ (commit_creds and switch_task_namespaces callers a process can
// reach). clone and clone3 make new threads, which are judged afresh.
inline constexpr int kIdentityCalls[] = {
    SCMP_SYS(setuid),   SCMP_SYS(setgid),    SCMP_SYS(setreuid),
    SCMP_SYS(setregid), SCMP_SYS(setresuid), SCMP_SYS(setresgid),
    SCMP_SYS(setfsuid), SCMP_SYS(setfsgid),  SCMP_SYS(setgroups),
    SCMP_SYS(unshare),  SCMP_SYS(setns),
};

// Compiles the program for `spec` with libseccomp (see build_filter for
// what it traps).
Result<std::vector<sock_filter>> compile_filter(const FilterSpec& spec);

}  // namespace keepalive
