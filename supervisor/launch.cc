#include "supervisor/launch.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/syscalls.h"

namespace keepalive {
namespace {

// Largest program the kernel accepts (BPF_MAXINSNS).
constexpr size_t kMaxInstructions = 4096;

struct PlanHeader {
  uint32_t count;
  uint32_t no_new_privs;
  uint32_t wait_killable_recv;
  uint32_t fail_open;
  uint32_t own_process_group;
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

void send_report(int sock, ChildReport kind, int value, int fd = -1) {
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
    memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);
  }
  while (sendmsg(sock, &hdr, MSG_NOSIGNAL) < 0 && errno == EINTR) {
  }
}

// Runs in the child. Never returns.
[[noreturn]] void run_child(int sock, pid_t parent, char** argv,
                            char* buffer, size_t buffer_size,
                            const sigset_t* exec_mask) {
  // The target must not outlive the supervisor: without it every trapped
  // call would fail with ENOSYS. SIGKILL it instead (see README).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(125);

  // Every signal stays blocked (as fork left it) until just before exec, so
  // that nothing of the supervisor's runs here. Dispositions are left as
  // inherited: exec resets handled ones, and ignored ones pass through.
  ssize_t n;
  do {
    n = recv(sock, buffer, buffer_size, 0);
  } while (n < 0 && errno == EINTR);
  PlanHeader header;
  if (n < static_cast<ssize_t>(sizeof header)) _exit(125);  // parent gone
  memcpy(&header, buffer, sizeof header);
  if (n != static_cast<ssize_t>(sizeof header +
                                header.count * sizeof(sock_filter))) {
    _exit(125);
  }
  sock_fprog prog{static_cast<unsigned short>(header.count),
                  reinterpret_cast<sock_filter*>(buffer + sizeof header)};

  if (header.own_process_group) {
    // Its own group, so that signals can go to all of it; in the terminal's
    // foreground if we were (SIGTTOU is blocked here, so this cannot stop us).
    setpgid(0, 0);
    if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgid(parent)) {
      tcsetpgrp(STDIN_FILENO, getpid());
    }
  }

  int listener = -1;
  bool killable = header.wait_killable_recv != 0;
  if (header.no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    listener = -1;
  } else {
    unsigned flags = SECCOMP_FILTER_FLAG_NEW_LISTENER;
    listener = sys::seccomp_set_filter(
        flags | (killable ? SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV : 0),
        &prog);
    if (listener < 0 && errno == EINVAL && killable) {  // before Linux 5.19
      killable = false;
      listener = sys::seccomp_set_filter(flags, &prog);
    }
  }
  if (listener < 0) {
    if (!header.fail_open) {
      send_report(sock, ChildReport::kInstallFailed, errno);
      _exit(125);
    }
    send_report(sock, ChildReport::kRunUnsupervised, errno);
  } else {
    // No trapped call from here until exec: sendmsg and close are not
    // trapped.
    send_report(sock, ChildReport::kInstalled, killable ? 1 : 0, listener);
    close(listener);
  }

  sigprocmask(SIG_SETMASK, exec_mask, nullptr);
  execvp(argv[0], argv);
  // The parent does not wait for the exec (the filter may trap execve, and
  // the parent must be free to answer), so the child says what went wrong.
  int err = errno;
  char reason[128];
  const char* why = err == ENOENT ? "command not found"
                                  : strerror_r(err, reason, sizeof reason);
  char line[512];
  int len = snprintf(line, sizeof line, "keepalive-supervise: %s: %s\n",
                     argv[0], why);
  if (len > 0) {
    ssize_t ignored = write(STDERR_FILENO, line,
                            static_cast<size_t>(len) < sizeof line
                                ? static_cast<size_t>(len)
                                : sizeof line - 1);
    (void)ignored;
  }
  _exit(err == ENOENT ? 127 : 126);
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

void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

Result<Launched> launch(const std::vector<std::string>& command,
                        const PlanChooser& choose_plan,
                        const sigset_t& target_mask) {
  if (command.empty()) return std::unexpected(SysError{EINVAL, "no command"});
  std::vector<char*> argv;
  for (const std::string& arg : command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  // Allocated before fork so that the child allocates nothing.
  std::vector<char> buffer(sizeof(PlanHeader) +
                           kMaxInstructions * sizeof(sock_filter));

  int pair[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    return errno_error("socketpair");
  }
  UniqueFd ours(pair[0]), theirs(pair[1]);

  // Signals stay blocked across fork so that no handler of the supervisor's
  // runs in the child before it resets them.
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    ours.reset();
    run_child(theirs.get(), parent, argv.data(), buffer.data(), buffer.size(),
              &target_mask);
  }
  int fork_errno = errno;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    errno = fork_errno;
    return errno_error("fork");
  }
  int theirs_number = theirs.get();
  theirs.reset();

  Launched launched;
  launched.pid = pid;
  launched.pidfd.reset(sys::pidfd_open(pid, 0));
  if (!launched.pidfd.valid()) {
    auto err = errno_error("pidfd_open");
    kill_and_reap(pid);
    return err;
  }
  // The probe that decides between strategies: can we copy an fd out of
  // this very child? (the child's end of the socketpair is at the same
  // number as ours was before we closed it)
  UniqueFd probe(sys::pidfd_getfd(launched.pidfd.get(), theirs_number, 0));
  int getfd_error = probe.valid() ? 0 : errno;
  probe.reset();

  Result<FilterPlan> plan = choose_plan(getfd_error == 0, getfd_error);
  if (!plan) {
    kill_and_reap(pid);
    return std::unexpected(plan.error());
  }
  if (plan->program.size() > kMaxInstructions) {
    kill_and_reap(pid);
    return std::unexpected(SysError{E2BIG, "seccomp filter"});
  }
  PlanHeader header{static_cast<uint32_t>(plan->program.size()),
                    plan->no_new_privs, plan->wait_killable_recv,
                    plan->fail_open, plan->own_process_group};
  memcpy(buffer.data(), &header, sizeof header);
  memcpy(buffer.data() + sizeof header, plan->program.data(),
         plan->program.size() * sizeof(sock_filter));
  size_t size = sizeof header + plan->program.size() * sizeof(sock_filter);
  if (send(ours.get(), buffer.data(), size, MSG_NOSIGNAL) !=
      static_cast<ssize_t>(size)) {
    auto err = errno_error("sending the filter to the child");
    kill_and_reap(pid);
    return err;
  }

  Result<ReportMessage> report = receive_report(ours.get(), &launched.listener);
  bool unsupervised = report && report->kind == ChildReport::kRunUnsupervised;
  if (unsupervised) launched.install_error = report->value;
  if (!unsupervised && (!report || report->kind != ChildReport::kInstalled ||
                        !launched.listener.valid())) {
    SysError err = !report ? report.error()
                   : report->kind == ChildReport::kInstallFailed
                       ? SysError{report->value, "installing the seccomp filter"}
                       : SysError{EPROTO, "the child exited before installing "
                                          "the seccomp filter"};
    kill_and_reap(pid);
    return std::unexpected(err);
  }
  launched.wait_killable_recv = !unsupervised && report->value != 0;
  return launched;
}

}  // namespace keepalive
