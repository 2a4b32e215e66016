// SPDX-License-Identifier: Apache-2.0
#include "supervisor/launch.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "supervisor/command_path.h"
#include "supervisor/exec_failure.h"
#include "supervisor/exit_codes.h"
#include "supervisor/syscalls.h"

namespace keepalive {
namespace {

// Largest program the kernel accepts (BPF_MAXINSNS).
constexpr size_t kMaxInstructions = 4096;

// The child's stack: its deepest path (the exec failure message) needs a
// few kilobytes; the rest is margin, for sanitizer builds too.
constexpr size_t kChildStackSize = size_t{64} * 1024;

struct PlanHeader {
  uint32_t count;
  uint32_t no_new_privs;
  uint32_t wait_killable_recv;
  uint32_t fail_open;
  uint32_t own_process_group;
  uint32_t restore_nofile;  // set command_nofile before exec
  rlimit command_nofile;
};

// The plan as the child receives it: the header, then `count`
// instructions, in one message.
struct PlanMessage {
  PlanHeader header;
  sock_filter program[kMaxInstructions];
};

enum class ChildReport : int32_t {
  kInstalled = 1,
  kInstallFailed,    // the child exits
  kRunUnsupervised,  // install failed, fail_open: the child goes on to exec
};

struct ReportMessage {
  ChildReport kind;
  int32_t value;  // errno, or for kInstalled whether WAIT_KILLABLE_RECV took
};

// Everything the child reads, prepared before the clone. The child runs on
// our memory (clone with CLONE_VM: no page tables to copy, no copy-on-write
// faults on either side), so it must allocate nothing, touch no errno, lock,
// buffer or lazily bound symbol of libc's, and write nothing but its own
// stack, `plan` and script_argv[1]. Nothing here changes after the clone.
struct ChildContext {
  int sock = -1;         // the child's end of the socketpair
  int parent_sock = -1;  // ours: the child closes its copy
  pid_t parent = 0;
  sigset_t exec_mask;  // the mask the command starts with
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* const* candidates = nullptr;  // null-terminated
  bool search = false;                      // see CommandPath
  int lookup_error = 0;
  // {"/bin/sh", candidate, argv[1], ..., nullptr}: how execvp runs a file
  // the kernel refuses with ENOEXEC (a script without "#!").
  char** script_argv = nullptr;
  // strerrordesc_np, bound in the parent: no PLT lazy binding in the child.
  const char* (*describe)(int) = nullptr;
  PlanMessage* plan = nullptr;  // where the child receives the plan
};

// Owns what a ChildContext points to, and the child's stack.
struct ChildMemory {
  ChildMemory() = default;
  ChildMemory(const ChildMemory&) = delete;
  ChildMemory& operator=(const ChildMemory&) = delete;
  ~ChildMemory() {
    if (stack != MAP_FAILED) munmap(stack, kChildStackSize + page_size);
  }

  ChildContext context;
  std::vector<std::string> command;
  std::vector<char*> argv;
  std::vector<char*> envp;
  CommandPath path;
  std::vector<const char*> candidates;
  std::vector<char*> script_argv;
  // Left uninitialised: only what the plan fills is ever touched.
  std::unique_ptr<PlanMessage> plan{new PlanMessage};
  void* stack = MAP_FAILED;  // kChildStackSize, above a guard page
  size_t page_size = 0;
  UniqueFd ours;  // our end of the socketpair: hangs up when the child is done
  std::unique_ptr<ChildMemory> next;  // in ChildMemoryKeeper's list
};

// A child runs on its ChildMemory until it execs or exits, which can be long
// after install() returns: its execve may be trapped, and answered only by
// the caller's notification loop. So install() leaves the memory here, and
// frees it once our end of the socketpair hangs up: the child's end is
// close-on-exec, so that happens when it has exec'd or exited.
class ChildMemoryKeeper {
 public:
  // Takes `memory` and frees what earlier children are done with. Allocates
  // nothing, so that it cannot fail after the child is running.
  void keep(std::unique_ptr<ChildMemory> memory) noexcept {
    std::lock_guard lock(mutex_);
    for (std::unique_ptr<ChildMemory>* link = &kept_; *link != nullptr;) {
      pollfd p{(*link)->ours.get(), POLLIN, 0};
      if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)) != 0) {
        *link = std::move((*link)->next);
      } else {
        link = &(*link)->next;
      }
    }
    memory->next = std::move(kept_);
    kept_ = std::move(memory);
  }

 private:
  std::mutex mutex_;
  std::unique_ptr<ChildMemory> kept_;  // a list, through ChildMemory::next
};

ChildMemoryKeeper& child_memory_keeper() {
  // Never destroyed: at exit a child may still run on what it keeps.
  static ChildMemoryKeeper* keeper = new ChildMemoryKeeper;
  return *keeper;
}

// ---------------------------------------------------------------------------
// The child. Everything from here to the parent's part runs on the parent's
// memory: raw system calls only (sys::raw), no sanitizer runtime.

#define KEEPALIVE_CHILD_CODE \
  __attribute__((no_sanitize("address", "undefined")))

KEEPALIVE_CHILD_CODE void send_report(int sock, ChildReport kind, int value,
                                      int fd = -1) {
  ReportMessage msg{kind, value};
  iovec iov{&msg, sizeof msg};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr hdr{};
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  if (fd >= 0) {
    hdr.msg_control = control;
    hdr.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&hdr);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    *reinterpret_cast<int*>(CMSG_DATA(cmsg)) = fd;
  }
  while (sys::raw::sendmsg(sock, &hdr, MSG_NOSIGNAL) == -EINTR) {
  }
}

// execvp, as glibc does it (see CommandPath), on the prepared candidates.
// Returns the errno execvp would leave.
KEEPALIVE_CHILD_CODE int exec_command(const ChildContext& ctx) {
  if (ctx.lookup_error != 0) return ctx.lookup_error;
  int err = ENOENT;
  bool got_eacces = false;
  for (const char* const* candidate = ctx.candidates; *candidate != nullptr;
       ++candidate) {
    long rc = sys::raw::execve(*candidate, ctx.argv, ctx.envp);
    if (rc == -ENOEXEC) {
      ctx.script_argv[1] = const_cast<char*>(*candidate);
      rc = sys::raw::execve(ctx.script_argv[0], ctx.script_argv, ctx.envp);
    }
    err = static_cast<int>(-rc);
    if (!ctx.search || !search_goes_on(err)) return err;
    if (err == EACCES) got_eacces = true;
  }
  return got_eacces ? EACCES : err;
}

// Runs in the child. Never returns.
[[noreturn]] KEEPALIVE_CHILD_CODE void run_child(const ChildContext& ctx) {
  sys::raw::close(ctx.parent_sock);
  // The target must not outlive the supervisor: without it every trapped
  // call would fail with ENOSYS. SIGKILL it instead (see README).
  sys::raw::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (sys::raw::getppid() != ctx.parent) sys::raw::exit_group(kExitFailure);

  // Every signal stays blocked (as clone left it) until just before exec, so
  // that nothing of the supervisor's runs here. Dispositions are left as
  // inherited: exec resets handled ones, and ignored ones pass through.
  long n;
  do {
    n = sys::raw::recv(ctx.sock, ctx.plan, sizeof *ctx.plan);
  } while (n == -EINTR);
  // Short: the parent is gone (EOF) or broke the protocol.
  if (n < static_cast<long>(sizeof(PlanHeader))) {
    sys::raw::exit_group(kExitFailure);
  }
  const PlanHeader& header = ctx.plan->header;
  if (header.count > kMaxInstructions ||
      static_cast<size_t>(n) !=
          sizeof(PlanHeader) + header.count * sizeof(sock_filter)) {
    sys::raw::exit_group(kExitFailure);
  }
  sock_fprog prog{static_cast<unsigned short>(header.count), ctx.plan->program};

  if (header.own_process_group) {
    // Its own group, so that signals can go to all of it; in the terminal's
    // foreground if we were (SIGTTOU is blocked here, so this cannot stop us).
    sys::raw::setpgid(0, 0);
    pid_t foreground = 0;
    if (sys::raw::ioctl(STDIN_FILENO, TIOCGPGRP, &foreground) == 0 &&
        foreground == sys::raw::getpgid(ctx.parent)) {
      pid_t self = static_cast<pid_t>(sys::raw::getpid());
      sys::raw::ioctl(STDIN_FILENO, TIOCSPGRP, &self);
    }
  }

  long listener = 0;  // the listener's fd, or -errno
  bool killable = header.wait_killable_recv != 0;
  if (header.no_new_privs) listener = sys::raw::prctl(PR_SET_NO_NEW_PRIVS, 1);
  if (listener == 0) {
    unsigned flags = SECCOMP_FILTER_FLAG_NEW_LISTENER;
    listener = sys::raw::seccomp_set_filter(
        flags | (killable ? SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV : 0), &prog);
    if (listener == -EINVAL && killable) {  // before Linux 5.19
      killable = false;
      listener = sys::raw::seccomp_set_filter(flags, &prog);
    }
  }
  if (listener < 0) {
    int err = static_cast<int>(-listener);
    if (!header.fail_open) {
      send_report(ctx.sock, ChildReport::kInstallFailed, err);
      sys::raw::exit_group(kExitFailure);
    }
    send_report(ctx.sock, ChildReport::kRunUnsupervised, err);
  } else {
    // No trapped call from here until exec: sendmsg and close are not
    // trapped.
    send_report(ctx.sock, ChildReport::kInstalled, killable ? 1 : 0,
                static_cast<int>(listener));
    sys::raw::close(static_cast<int>(listener));
  }

  // Only now: the listener needed a descriptor under the supervisor's limit.
  if (header.restore_nofile != 0) {
    sys::raw::set_rlimit(RLIMIT_NOFILE, &header.command_nofile);
  }
  sys::raw::set_signal_mask(&ctx.exec_mask);
  int err = exec_command(ctx);
  // The parent does not wait for the exec (the filter may trap execve, and
  // the parent must be free to answer), so the child says what went wrong.
  char line[kExecFailureLineSize];
  size_t length = 0;
  int status = describe_exec_failure(ctx.argv[0], ctx.candidates, err,
                                     ctx.describe, line, sizeof line, &length);
  sys::raw::write(STDERR_FILENO, line, length);
  sys::raw::exit_group(status);
}

KEEPALIVE_CHILD_CODE int child_main(void* context) {
  run_child(*static_cast<const ChildContext*>(context));
}

// ---------------------------------------------------------------------------
// The parent.

// The child's memory for `command`, all but the socketpair.
Result<std::unique_ptr<ChildMemory>> prepare_child(
    const std::vector<std::string>& command, const sigset_t& target_mask) {
  auto memory = std::make_unique<ChildMemory>();
  // Copies, so that nothing the child reads belongs to the caller.
  memory->command = command;
  for (std::string& arg : memory->command) memory->argv.push_back(arg.data());
  memory->argv.push_back(nullptr);
  // The environment's strings are never freed by libc; its array may be, by
  // a setenv while the child runs.
  for (char** e = environ; *e != nullptr; ++e) memory->envp.push_back(*e);
  memory->envp.push_back(nullptr);

  memory->path = command_path(command[0], getenv("PATH"));
  for (const std::string& candidate : memory->path.candidates) {
    memory->candidates.push_back(candidate.c_str());
  }
  memory->candidates.push_back(nullptr);
  memory->script_argv.push_back(const_cast<char*>("/bin/sh"));
  memory->script_argv.push_back(nullptr);  // the candidate, set by the child
  memory->script_argv.insert(memory->script_argv.end(),
                             memory->argv.begin() + 1, memory->argv.end());

  // The stack, above a guard page.
  memory->page_size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  memory->stack =
      mmap(nullptr, kChildStackSize + memory->page_size, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (memory->stack == MAP_FAILED) return errno_error("mmap (child stack)");
  if (mprotect(memory->stack, memory->page_size, PROT_NONE) != 0) {
    return errno_error("mprotect (child stack guard)");
  }

  ChildContext& ctx = memory->context;
  ctx.parent = getpid();
  ctx.exec_mask = target_mask;
  ctx.argv = memory->argv.data();
  ctx.envp = memory->envp.data();
  ctx.candidates = memory->candidates.data();
  ctx.search = memory->path.search;
  ctx.lookup_error = memory->path.error;
  ctx.script_argv = memory->script_argv.data();
  ctx.describe = strerrordesc_np;
  ctx.plan = memory->plan.get();
  return memory;
}

Result<ReportMessage> receive_report(int sock, UniqueFd* fd) {
  ReportMessage msg{};
  iovec iov{&msg, sizeof msg};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr hdr{};
  hdr.msg_iov = &iov;
  hdr.msg_iovlen = 1;
  hdr.msg_control = control;
  hdr.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sock, &hdr, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_error("receiving from the child");
  if (n == 0) return ReportMessage{};  // EOF: the child died first
  if (n != sizeof msg || (hdr.msg_flags & MSG_CTRUNC)) {
    return std::unexpected(SysError{EPROTO, "message from the child"});
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&hdr); c != nullptr;
       c = CMSG_NXTHDR(&hdr, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int received;
      memcpy(&received, CMSG_DATA(c), sizeof received);
      fd->reset(received);
    }
  }
  return msg;
}

}  // namespace

struct PausedChild::State {
  std::unique_ptr<ChildMemory> memory;
  pid_t pid = -1;  // killed and reaped with the state unless released
  UniqueFd pidfd;
  int getfd_error = 0;

  ~State() {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
};

PausedChild::PausedChild(std::unique_ptr<State> state)
    : state_(std::move(state)) {}
PausedChild::PausedChild(PausedChild&&) noexcept = default;
PausedChild& PausedChild::operator=(PausedChild&&) noexcept = default;
PausedChild::~PausedChild() = default;

pid_t PausedChild::pid() const { return state_->pid; }
int PausedChild::getfd_error() const { return state_->getfd_error; }

Result<PausedChild> start_paused(const std::vector<std::string>& command,
                                 const sigset_t& target_mask) {
  if (command.empty()) return std::unexpected(SysError{EINVAL, "no command"});
  Result<std::unique_ptr<ChildMemory>> prepared =
      prepare_child(command, target_mask);
  if (!prepared) return std::unexpected(prepared.error());
  auto state = std::make_unique<PausedChild::State>();
  state->memory = std::move(*prepared);
  ChildMemory& memory = *state->memory;

  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return errno_error("socketpair");
  }
  memory.ours.reset(pair[0]);
  UniqueFd theirs(pair[1]);
  memory.context.parent_sock = memory.ours.get();
  memory.context.sock = theirs.get();

  // Signals stay blocked across the clone so that no handler of the
  // supervisor's runs in the child, on the supervisor's memory.
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
#if KEEPALIVE_DIRECT_SYSCALLS
  // Not CLONE_VFORK: we must go on, to send the plan and to answer the
  // child's execve if the filter traps it.
  char* stack_top =
      static_cast<char*>(memory.stack) + memory.page_size + kChildStackSize;
  pid_t pid = clone(child_main, stack_top, CLONE_VM | SIGCHLD, &memory.context);
#else
  // The child's system calls would set our errno: it gets a copy of our
  // memory instead.
  pid_t pid = fork();
  if (pid == 0) child_main(&memory.context);
#endif
  int clone_errno = errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    errno = clone_errno;
    return errno_error("clone");
  }
  state->pid = pid;
  int theirs_number = theirs.get();
  theirs.reset();

  state->pidfd.reset(sys::pidfd_open(pid, 0));
  if (!state->pidfd.valid()) return errno_error("pidfd_open");
  // The probe that decides between strategies: can we copy an fd out of
  // this very child? (the child's end of the socketpair is at the same
  // number as ours was before we closed it)
  UniqueFd probe(sys::pidfd_getfd(state->pidfd.get(), theirs_number, 0));
  state->getfd_error = probe.valid() ? 0 : errno;
  return PausedChild(std::move(state));
}

Result<Launched> PausedChild::install(const FilterPlan& plan) {
  State& state = *state_;
  if (state.pid <= 0 || !state.memory) {
    return std::unexpected(SysError{EINVAL, "the child was installed already"});
  }
  if (plan.program.size() > kMaxInstructions) {
    return std::unexpected(SysError{E2BIG, "seccomp filter"});
  }
  PlanHeader header{.count = static_cast<uint32_t>(plan.program.size()),
                    .no_new_privs = plan.no_new_privs,
                    .wait_killable_recv = plan.wait_killable_recv,
                    .fail_open = plan.fail_open,
                    .own_process_group = plan.own_process_group,
                    .restore_nofile = plan.command_nofile.has_value(),
                    .command_nofile = plan.command_nofile.value_or(rlimit{})};
  // Written where the child receives it: the bytes it receives are these
  // (with fork, where it has a copy of our memory, only the message brings
  // them).
  ChildMemory& memory = *state.memory;
  PlanMessage& message = *memory.plan;
  message.header = header;
  std::copy(plan.program.begin(), plan.program.end(), message.program);
  size_t size = sizeof header + plan.program.size() * sizeof(sock_filter);
  if (send(memory.ours.get(), &message, size, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(size)) {
    return errno_error("sending the filter to the child");
  }

  Launched launched;
  Result<ReportMessage> report =
      receive_report(memory.ours.get(), &launched.listener);
  bool unsupervised = report && report->kind == ChildReport::kRunUnsupervised;
  if (unsupervised) launched.install_error = report->value;
  if (!unsupervised && (!report || report->kind != ChildReport::kInstalled ||
                        !launched.listener.valid())) {
    return std::unexpected(
        !report ? report.error()
        : report->kind == ChildReport::kInstallFailed
            ? SysError{report->value, "installing the seccomp filter"}
            : SysError{EPROTO,
                       "the child exited before installing the "
                       "seccomp filter"});
  }
  launched.wait_killable_recv = !unsupervised && report->value != 0;
  launched.pid = state.pid;
  launched.pidfd = std::move(state.pidfd);
  state.pid = -1;  // the caller's now
  child_memory_keeper().keep(std::move(state.memory));
  return launched;
}

}  // namespace keepalive
