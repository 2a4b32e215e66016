// SPDX-License-Identifier: Apache-2.0
#include "tests/support/process.h"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "common/settings.h"

extern char** environ;

namespace keepalive::tests {
namespace {

using Clock = std::chrono::steady_clock;

// Every name the option model looks up, learnt by letting parse_settings
// look them up in an empty environment.
const std::set<std::string>& keepalive_variables() {
  static const std::set<std::string> names = [] {
    std::set<std::string> asked;
    parse_settings(
        [](const char* name, void* ctx) -> const char* {
          static_cast<std::set<std::string>*>(ctx)->insert(name);
          return nullptr;
        },
        &asked, [](const char*, void*) {}, nullptr);
    asked.insert("LD_PRELOAD");
    return asked;
  }();
  return names;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (std::string& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

bool steers_keepalive(const std::string& entry) {
  return keepalive_variables().contains(entry.substr(0, entry.find('=')));
}

std::vector<std::string> clean_environment(
    const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!steers_keepalive(*e)) env.emplace_back(*e);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

bool Outcome::exited() const { return !timed_out && WIFEXITED(status); }

int Outcome::exit_code() const { return exited() ? WEXITSTATUS(status) : -1; }

std::optional<int> Outcome::shell_status() const {
  if (timed_out) return std::nullopt;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

std::vector<std::string> Outcome::out_lines() const {
  return split_lines(out);
}

std::vector<std::string> Outcome::err_lines() const {
  return split_lines(err);
}

std::string Outcome::transcript() const {
  return "--- stdout ---\n" + out + "--- stderr ---\n" + err;
}

std::ostream& operator<<(std::ostream& os, const Outcome& outcome) {
  return os << "status " << outcome.status
            << (outcome.timed_out ? " (timed out)" : "") << "\n"
            << outcome.transcript();
}

Process::Process(const std::vector<std::string>& argv, ProcessOptions options)
    : stdin_data_(std::move(options.stdin_data)),
      close_after_data_(!options.keep_stdin) {
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls.
  std::vector<std::string> args = argv;
  std::vector<std::string> vars = options.whole_env
                                      ? *options.whole_env
                                      : clean_environment(options.env);
  std::vector<char*> arg_ptrs = pointers(args);
  std::vector<char*> env_ptrs = pointers(vars);
  sigset_t blocked;
  sigemptyset(&blocked);
  for (int sig : options.blocked) sigaddset(&blocked, sig);
  // Writing to a program that closed its stdin must not end the test.
  signal(SIGPIPE, SIG_IGN);

  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 ||
      pipe2(err, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << strerror(errno);
    return;
  }
  start_ = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    // Own process group, so that signal_group() and the clean-up reach
    // grandchildren too.
    setpgid(0, 0);
    dup2(in[0], STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    if (options.extra_fd >= 0) {
      dup2(options.extra_fd, 5);
      close_range(3, 4, 0);
      close_range(6, ~0U, 0);
    } else {
      close_range(3, ~0U, 0);
    }
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
    for (int sig : options.ignored) signal(sig, SIG_IGN);
    sigprocmask(SIG_SETMASK, &blocked, nullptr);
    execvpe(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    dprintf(STDERR_FILENO, "exec %s: %s\n", arg_ptrs[0], strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  in_.reset(in[1]);
  out_fd_.reset(out[0]);
  err_fd_.reset(err[0]);
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return;
  }
  setpgid(pid, pid);  // also here, so that it holds before we signal
  pid_ = pid;
  for (int fd : {in_.get(), out_fd_.get(), err_fd_.get()}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  if (stdin_data_.empty() && close_after_data_) in_.reset();
}

Process::~Process() {
  if (pid_ <= 0) return;
  kill(-pid_, SIGKILL);  // the group: stragglers included
  if (!reaped_) {
    kill(pid_, SIGKILL);
    while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
}

void Process::pump(milliseconds timeout) {
  pollfd fds[3];
  int n = 0;
  bool writing = in_.valid() && written_ < stdin_data_.size();
  if (writing) fds[n++] = {in_.get(), POLLOUT, 0};
  if (out_fd_.valid()) fds[n++] = {out_fd_.get(), POLLIN, 0};
  if (err_fd_.valid()) fds[n++] = {err_fd_.get(), POLLIN, 0};
  if (n == 0) {
    if (timeout.count() > 0) poll(nullptr, 0, static_cast<int>(timeout.count()));
    return;
  }
  if (poll(fds, n, static_cast<int>(timeout.count())) <= 0) return;
  for (int i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    if (writing && fds[i].fd == in_.get()) {
      ssize_t w = write(in_.get(), stdin_data_.data() + written_,
                        stdin_data_.size() - written_);
      if (w > 0) written_ += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) {
        in_.reset();
      } else if (written_ == stdin_data_.size() && close_after_data_) {
        in_.reset();
      }
      continue;
    }
    bool is_out = fds[i].fd == out_fd_.get();
    std::string& sink = is_out ? outcome_.out : outcome_.err;
    UniqueFd& owner = is_out ? out_fd_ : err_fd_;
    char buf[65536];
    for (;;) {
      ssize_t r = read(owner.get(), buf, sizeof buf);
      if (r > 0) {
        sink.append(buf, static_cast<size_t>(r));
        continue;
      }
      if (r == 0 || (errno != EAGAIN && errno != EINTR)) owner.reset();
      break;
    }
  }
}

bool Process::wait_for_output(const std::string& needle, milliseconds timeout,
                              Stream stream) {
  const std::string& text =
      stream == Stream::kStdout ? outcome_.out : outcome_.err;
  auto deadline = Clock::now() + timeout;
  while (text.find(needle) == std::string::npos) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || (!out_fd_.valid() && !err_fd_.valid())) {
      return false;
    }
    pump(std::min(left, 50ms));
  }
  return true;
}

std::optional<std::string> Process::wait_line(const std::string& prefix,
                                              milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    // The complete lines not returned yet.
    size_t start = consumed_;
    for (;;) {
      size_t end = outcome_.out.find('\n', start);
      if (end == std::string::npos) break;
      std::string line = outcome_.out.substr(start, end - start);
      start = end + 1;
      if (line.starts_with(prefix)) {
        consumed_ = start;
        return line;
      }
    }
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || (!out_fd_.valid() && !err_fd_.valid())) {
      return std::nullopt;
    }
    pump(std::min(left, 100ms));
  }
}

void Process::write_stdin(const std::string& text) {
  EXPECT_TRUE(in_.valid()) << "stdin is closed: cannot write " << text;
  stdin_data_ += text;
}

void Process::close_stdin() { in_.reset(); }

bool Process::reap(int options) {
  if (pid_ <= 0 || reaped_) return reaped_;
  int status = 0;
  pid_t got;
  do {
    got = waitpid(pid_, &status, options);
  } while (got < 0 && errno == EINTR);
  if (got != pid_) return false;
  outcome_.status = status;
  outcome_.seconds = since(start_);
  reaped_ = true;
  return true;
}

bool Process::running() {
  if (pid_ <= 0) return false;
  pump(0ms);
  return !reap(WNOHANG);
}

void Process::signal_group(int sig) {
  if (pid_ > 0) kill(-pid_, sig);
}

void Process::drain(milliseconds bound) {
  auto deadline = Clock::now() + bound;
  while ((out_fd_.valid() || err_fd_.valid()) && Clock::now() < deadline) {
    size_t before = outcome_.out.size() + outcome_.err.size();
    pump(50ms);
    // Nothing more for a while, and a descendant holds the pipes: enough.
    if (outcome_.out.size() + outcome_.err.size() == before &&
        bound < 1000ms) {
      break;
    }
  }
}

std::optional<int> Process::wait_exit(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (running()) {
    if (Clock::now() >= deadline) return std::nullopt;
    pump(10ms);
  }
  drain(200ms);
  return outcome_.shell_status();
}

Outcome Process::wait(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (running()) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      reap(0);
      outcome_.timed_out = true;
      break;
    }
    pump(std::min(left, 20ms));
  }
  // Descendants left behind would hold the pipes open: none may outlive
  // the wait.
  if (pid_ > 0) kill(-pid_, SIGKILL);
  drain(2000ms);
  return outcome_;
}

Outcome run(const std::vector<std::string>& argv, ProcessOptions options,
            milliseconds timeout) {
  Process process(argv, std::move(options));
  return process.wait(timeout);
}

}  // namespace keepalive::tests
