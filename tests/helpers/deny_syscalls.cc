// SPDX-License-Identifier: Apache-2.0
// deny_syscalls SYSCALL[,SYSCALL...] COMMAND [ARG...]
//
// Runs COMMAND under a seccomp filter that fails the named syscalls with
// EPERM and allows everything else. "pidfd_getfd" is what Docker's and
// containerd's default profiles do without CAP_SYS_PTRACE; "seccomp" is a
// profile that forbids sandboxing altogether. Exit status 125 if the filter
// cannot be installed, 127 if COMMAND cannot be executed, else COMMAND's.
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <memory>
#include <sstream>
#include <string>

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr,
            "usage: deny_syscalls SYSCALL[,SYSCALL...] COMMAND [ARG...]\n");
    return 2;
  }
  std::unique_ptr<void, decltype(&seccomp_release)> ctx(
      seccomp_init(SCMP_ACT_ALLOW), seccomp_release);
  if (!ctx) {
    fprintf(stderr, "deny_syscalls: seccomp_init failed\n");
    return 125;
  }
  std::istringstream names(argv[1]);
  std::string name;
  while (std::getline(names, name, ',')) {
    int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) {
      fprintf(stderr, "deny_syscalls: unknown syscall %s\n", name.c_str());
      return 125;
    }
    int rc = seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(EPERM), nr, 0);
    if (rc != 0) {
      fprintf(stderr, "deny_syscalls: %s: %s\n", name.c_str(), strerror(-rc));
      return 125;
    }
  }
  if (int rc = seccomp_load(ctx.get()); rc != 0) {  // sets no_new_privs
    fprintf(stderr, "deny_syscalls: seccomp_load: %s\n", strerror(-rc));
    return 125;
  }
  execvp(argv[2], argv + 2);
  fprintf(stderr, "deny_syscalls: %s: %s\n", argv[2], strerror(errno));
  return 127;
}
