// SPDX-License-Identifier: Apache-2.0
#include "supervisor/session.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <system_error>

#include "supervisor/detach.h"
#include "supervisor/log.h"
#include "supervisor/supervisor.h"
#include "supervisor/syscalls.h"

namespace keepalive {
namespace {

namespace asio = boost::asio;
using Descriptor = asio::posix::stream_descriptor;

bool is_stop_signal(int sig) {
  return sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU;
}

int status_of(const siginfo_t& info) {
  if (info.si_code == CLD_EXITED) return info.si_status;
  return 128 + info.si_status;  // CLD_KILLED or CLD_DUMPED
}

}  // namespace

ServingThread::ServingThread() : stop_fd_(eventfd(0, EFD_CLOEXEC)) {
  if (!stop_fd_.valid()) {
    throw std::system_error(errno, std::generic_category(),
                            "eventfd (the serving thread's stop signal)");
  }
  pthread_attr_t attr;
  int err = pthread_attr_init(&attr);
  if (err == 0) err = pthread_attr_setstacksize(&attr, kStackSize);
  if (err != 0) {
    throw std::system_error(err, std::generic_category(),
                            "pthread_attr_setstacksize");
  }
  // Every signal stays blocked on the serving thread, so that the forwarded
  // ones reach the signalfd and no other lands there.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = pthread_create(
      &thread_, &attr,
      [](void* self) -> void* {
        static_cast<ServingThread*>(self)->main();
        return nullptr;
      },
      this);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    throw std::system_error(err, std::generic_category(),
                            "starting the notification thread");
  }
  started_ = true;
}

void ServingThread::main() {
  Server* server;
  {
    std::unique_lock lock(mutex_);
    wake_.wait(lock, [this] { return server_ != nullptr || quit_; });
    server = quit_ ? nullptr : server_;
  }
  if (server != nullptr) server->serve(stop_fd_.get());
}

void ServingThread::serve(Server* server) {
  {
    std::lock_guard lock(mutex_);
    server_ = server;
  }
  wake_.notify_one();
}

void ServingThread::stop() noexcept {
  if (!started_) return;
  started_ = false;
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  wake_.notify_one();
  uint64_t one = 1;
  ssize_t ignored = write(stop_fd_.get(), &one, sizeof one);
  (void)ignored;
  pthread_join(thread_, nullptr);
}

Session::Session(asio::io_context& io, Launched launched, UniqueFd signals,
                 HandlerOptions handler_options, SessionOptions options,
                 ServingThread& serving)
    : io_(io),
      pid_(launched.pid),
      options_(options),
      child_(io, launched.pidfd.release()),
      signals_(io, signals.release()),
      serving_(serving) {
  if (launched.listener.valid()) {
    Result<std::unique_ptr<KernelListener>> listener =
        KernelListener::open(launched.listener);
    if (!listener) {
      // The child waits in its first trapped call, if any, for an answer
      // nobody can give, until run() kills it; the listener stays open
      // till then, so that no call fails with ENOSYS meanwhile.
      listener_error_ = listener.error().message();
      unserved_ = std::move(launched.listener);
      return;
    }
    listener_ = std::move(*listener);
    listener_->request_sync_wake_up();  // older kernels refuse, harmlessly
    server_ = std::make_unique<Server>(*listener_, std::move(handler_options));
  }
}

int Session::run() {
  try {
    if (!listener_error_.empty()) {
      kill_child();
      log_line(listener_error_);
      return kExitFailure;
    }
    if (server_) serving_.serve(server_.get());
    wait_child();
    wait_signals();
    io_.run();
  } catch (const std::exception& e) {
    kill_child();
    serving_.stop();
    log_line_noexcept({"the event loop failed: ", e.what(),
                       " (raise the memory or descriptor limits)"});
    return kExitFailure;
  }
  serving_.stop();
  if (status_ && server_) {
    try {
      hand_over(*status_);
    } catch (const std::exception& e) {
      log_line_noexcept({"serving the tasks the command left under the "
                         "filter: ", e.what(),
                         " (their trapped calls now fail with ENOSYS)"});
    }
  }
  return status_.value_or(kExitFailure);
}

void Session::hand_over(int status) {
  // An orphan we have not reaped yet still counts as a user of the filter.
  if (options_.reap_orphans) reap_orphans();
  if (!filter_in_use(listener_->fd())) return;
  std::string exited =
      "the command exited (status " + std::to_string(status) + ")";
  if (!options_.detach) {
    if (options_.verbose) {
      log_line(exited + " and left tasks under the filter; as the supervisor "
                        "exits with it, their trapped calls fail with ENOSYS");
    }
    return;
  }
  // The serving thread has been joined: this is the only thread, as fork
  // requires. Notifications meanwhile wait in the kernel for the server.
  Result<pid_t> server = serve_detached(*server_);
  if (!server) {
    log_line("serving the tasks the command left under the filter: " +
             server.error().message() +
             " (their trapped calls now fail with ENOSYS)");
    return;
  }
  if (options_.verbose) {
    log_line(exited + " and left tasks under the filter; pid " +
             std::to_string(*server) +
             " goes on serving them in the background until the last one "
             "exits");
  }
}

void Session::kill_child() {
  if (status_) return;
  sys::pidfd_send_signal(child_.native_handle(), SIGKILL, nullptr, 0);
  siginfo_t info{};
  while (waitid(static_cast<idtype_t>(P_PIDFD),
                static_cast<id_t>(child_.native_handle()), &info,
                WEXITED) != 0 &&
         errno == EINTR) {
  }
}

void Session::finish(int status) {
  status_ = status;
  io_.stop();
}

void Session::wait_child() {
  child_.async_wait(Descriptor::wait_read, [this](const auto& ec) {
    if (ec) return;
    siginfo_t info{};
    if (waitid(static_cast<idtype_t>(P_PIDFD),
               static_cast<id_t>(child_.native_handle()), &info,
               WEXITED | WNOHANG) != 0 ||
        info.si_pid == 0) {
      return wait_child();
    }
    finish(status_of(info));
  });
}

void Session::wait_signals() {
  signals_.async_wait(Descriptor::wait_read, [this](const auto& ec) {
    if (ec) return;
    on_signals();
    if (!status_) wait_signals();
  });
}

void Session::on_signals() {
  signalfd_siginfo info;
  while (!status_ && read(signals_.native_handle(), &info, sizeof info) ==
                         static_cast<ssize_t>(sizeof info)) {
    int sig = static_cast<int>(info.ssi_signo);
    if (sig == SIGCHLD) {
      reap_orphans();
      continue;
    }
    // Caused by the supervisor itself (SIGPIPE from a log line written to
    // a closed pipe, SIGXFSZ): the command has nothing to do with it.
    if (static_cast<pid_t>(info.ssi_pid) == getpid() &&
        info.ssi_code != SI_KERNEL) {
      continue;
    }
    forward(sig, info.ssi_code);
    if (is_stop_signal(sig)) stop_self(sig);
  }
}

void Session::forward(int sig, int code) {
  pid_t group = getpgid(pid_);
  bool shares_our_group = group == getpgrp();
  // A signal from the terminal (Ctrl-C, Ctrl-Z, window resize) already
  // went to the whole foreground process group, the child included when it
  // shares ours: forwarding it would deliver it twice.
  if (code == SI_KERNEL && shares_our_group) return;
  if (options_.signal_group && group > 0 && !shares_our_group) {
    kill(-group, sig);
    return;
  }
  // ESRCH: the child is exiting; its status is on its way.
  sys::pidfd_send_signal(child_.native_handle(), sig, nullptr, 0);
}

// The job stops as a whole, so that the shell sees it stopped: the signal
// is raised again on this thread and unblocked, so the default action
// stops the supervisor (or nothing happens, in an orphaned process group,
// as for any process). SIGCONT resumes us here. PID 1 is never stopped.
// First the child must take the signal: it may be waiting on us (a trapped
// call, or a vfork whose child's exec is trapped) and could not take it
// while we are stopped, and the SIGCONT that resumes us would then discard
// it, pending, in the child too.
void Session::stop_self(int sig) {
  if (getpid() == 1) return;
  for (int i = 0; i < 200 && child_has_pending(sig); ++i) usleep(1000);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  raise(sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  pthread_sigmask(SIG_BLOCK, &one, nullptr);
}

bool Session::child_has_pending(int sig) const {
  char path[40];
  snprintf(path, sizeof path, "/proc/%d/status", static_cast<int>(pid_));
  UniqueFd status(open(path, O_RDONLY | O_CLOEXEC));
  if (!status.valid()) return false;
  char text[4096];
  ssize_t n = read(status.get(), text, sizeof text - 1);
  if (n <= 0) return false;
  text[n] = '\0';
  for (const char* field : {"\nSigPnd:", "\nShdPnd:"}) {
    const char* at = strstr(text, field);
    if (at == nullptr) continue;
    unsigned long long mask = strtoull(at + strlen(field), nullptr, 16);
    if ((mask >> (sig - 1)) & 1) return true;
  }
  return false;
}

// Reaps every exited child but the main one, which is collected through its
// pidfd so that its status is never lost to a wait for "any child".
void Session::reap_orphans() {
  for (;;) {
    siginfo_t info{};
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        info.si_pid == 0) {
      return;
    }
    if (info.si_pid == pid_) {
      siginfo_t main{};
      if (waitid(static_cast<idtype_t>(P_PIDFD),
                 static_cast<id_t>(child_.native_handle()), &main,
                 WEXITED | WNOHANG) == 0 &&
          main.si_pid != 0) {
        finish(status_of(main));
      }
      return;
    }
    siginfo_t reaped{};
    waitid(P_PID, static_cast<id_t>(info.si_pid), &reaped, WEXITED);
  }
}

}  // namespace keepalive
