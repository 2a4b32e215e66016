#include "supervisor/filter.h"

#include <errno.h>

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

}  // namespace

bool changes_identity(int nr) {
  for (int call : kIdentityCalls) {
    if (nr == call) return true;
  }
  return nr == SCMP_SYS(execve) || nr == SCMP_SYS(execveat);
}

Result<std::vector<sock_filter>> build_filter(const FilterSpec& spec) {
  // libseccomp's notification calls (seccomp_notify_*), which the handler
  // makes, refuse to work below API level 5, and would otherwise find the
  // level with a dozen seccomp() probes of the kernel at the first of them,
  // while the child waits in its trapped exec. Under a profile that
  // refuses seccomp() those probes fail, and every notification would be
  // refused too. The child's install is what says whether the kernel has
  // user notification; pin the level here, where it used to be pinned as a
  // side effect of compiling the filter at run time.
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
