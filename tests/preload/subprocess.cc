#include "tests/preload/subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

extern char** environ;

namespace keepalive::tests {
namespace {

using Clock = std::chrono::steady_clock;

// Variables that change what the libraries do; never inherited from the
// shell that runs the tests.
bool steers_libraries(const std::string& entry) {
  std::string name = entry.substr(0, entry.find('='));
  return name == "LD_PRELOAD" || name == "LIBKEEPALIVE_DEBUG" ||
         name.rfind("TCP_", 0) == 0 || name.rfind("KEEP", 0) == 0;
}

std::vector<std::string> child_environment(
    const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!steers_libraries(*e)) env.emplace_back(*e);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

std::vector<char*> pointers(std::vector<std::string>& strings) {
  std::vector<char*> result;
  for (std::string& s : strings) result.push_back(s.data());
  result.push_back(nullptr);
  return result;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

}  // namespace

bool RunResult::exited() const { return !timed_out && WIFEXITED(status); }

int RunResult::exit_code() const { return exited() ? WEXITSTATUS(status) : -1; }

std::vector<std::string> RunResult::err_lines() const {
  return split_lines(err);
}

std::vector<std::string> RunResult::out_lines() const {
  return split_lines(out);
}

Subprocess::Subprocess(const std::vector<std::string>& argv,
                       const std::vector<std::string>& env) {
  // Everything the child needs is prepared before fork(): after it, only
  // async-signal-safe calls.
  std::vector<std::string> args = argv;
  std::vector<std::string> vars = child_environment(env);
  std::vector<char*> arg_ptrs = pointers(args);
  std::vector<char*> env_ptrs = pointers(vars);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << strerror(errno);
    return;
  }
  UniqueFd out_write(out_pipe[1]), err_write(err_pipe[1]);
  out_ = UniqueFd(out_pipe[0]);
  err_ = UniqueFd(err_pipe[0]);
  start_ = Clock::now();
  pid_ = fork();
  if (pid_ < 0) {
    ADD_FAILURE() << "fork: " << strerror(errno);
    return;
  }
  if (pid_ == 0) {
    // Own process group, so that kill_group() also reaches grandchildren.
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY);
    dup2(null, STDIN_FILENO);
    dup2(out_write.get(), STDOUT_FILENO);
    dup2(err_write.get(), STDERR_FILENO);
    execvpe(arg_ptrs[0], arg_ptrs.data(), env_ptrs.data());
    dprintf(STDERR_FILENO, "exec %s: %s\n", arg_ptrs[0], strerror(errno));
    _exit(127);
  }
  // Also in the parent, so that kill_group() cannot race the child's setpgid.
  setpgid(pid_, pid_);
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) wait(milliseconds(0));
}

void Subprocess::pump(milliseconds timeout) {
  pollfd fds[2] = {{out_.get(), POLLIN, 0}, {err_.get(), POLLIN, 0}};
  if (!out_.valid() && !err_.valid()) return;
  if (poll(fds, 2, static_cast<int>(timeout.count())) <= 0) return;
  UniqueFd* owners[2] = {&out_, &err_};
  std::string* sinks[2] = {&result_.out, &result_.err};
  for (int i = 0; i < 2; ++i) {
    if (fds[i].revents == 0) continue;
    char buf[4096];
    ssize_t n = read(fds[i].fd, buf, sizeof buf);
    if (n > 0) {
      sinks[i]->append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      owners[i]->reset();  // EOF: poll() ignores the -1 from now on
    }
  }
}

bool Subprocess::wait_for_output(const std::string& needle,
                                 milliseconds timeout, bool in_stdout) {
  const std::string& text = in_stdout ? result_.out : result_.err;
  auto deadline = Clock::now() + timeout;
  while (text.find(needle) == std::string::npos) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0 || (!out_.valid() && !err_.valid())) return false;
    pump(std::min(left, milliseconds(50)));
  }
  return true;
}

bool Subprocess::running() {
  if (pid_ <= 0 || reaped_) return false;
  pump(milliseconds(0));
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
  result_.status = status;
  result_.seconds =
      std::chrono::duration<double>(Clock::now() - start_).count();
  reaped_ = true;
  return false;
}

void Subprocess::kill_group() {
  if (pid_ > 0) ::kill(-pid_, SIGKILL);
}

RunResult Subprocess::wait(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (running()) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      kill_group();
      int status = 0;
      waitpid(pid_, &status, 0);
      result_.status = status;
      result_.timed_out = true;
      result_.seconds =
          std::chrono::duration<double>(Clock::now() - start_).count();
      reaped_ = true;
      break;
    }
    pump(std::min(left, milliseconds(20)));
  }
  // Grandchildren left behind would hold the pipes open; none may outlive
  // the test.
  kill_group();
  auto drain_deadline = Clock::now() + milliseconds(1000);
  while ((out_.valid() || err_.valid()) && Clock::now() < drain_deadline) {
    pump(milliseconds(50));
  }
  return result_;
}

RunResult run(const std::vector<std::string>& argv,
              const std::vector<std::string>& env, milliseconds timeout) {
  Subprocess child(argv, env);
  return child.wait(timeout);
}

}  // namespace keepalive::tests
