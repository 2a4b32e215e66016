// SPDX-License-Identifier: Apache-2.0
// fork_exec PROGRAM [ARGS...]
//
// Forks; the child execs PROGRAM with ARGS (its environment, LD_PRELOAD
// included, passes unchanged), the parent waits and exits with the child's
// status (128 + signal if it was killed), the way a shell or a supervisor
// would. Exit 127 if PROGRAM cannot be run, 2 on bad usage.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: fork_exec PROGRAM [ARGS...]\n");
    return 2;
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork_exec: fork");
    return 1;
  }
  if (pid == 0) {
    execv(argv[1], argv + 1);
    perror("fork_exec: execv");
    _exit(127);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) {
    perror("fork_exec: waitpid");
    return 1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
