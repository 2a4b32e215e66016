// SPDX-License-Identifier: Apache-2.0
// Where execvp(3) would look for a command, worked out before the launcher's
// child exists: the child shares the supervisor's memory and may neither
// allocate nor touch errno, so it cannot call execvp and walks this list
// with plain execve calls instead.
#pragma once

#include <errno.h>

#include <string>
#include <vector>

namespace keepalive {

struct CommandPath {
  // The files to execve, in order.
  std::vector<std::string> candidates;
  // Whether this is a PATH search: then an error meaning "not here" (see
  // search_goes_on) moves on to the next candidate, and EACCES is remembered
  // and reported if nothing is found. A name with a slash is tried alone.
  bool search = false;
  // Nonzero if the name cannot be run at all (an empty name: ENOENT; a name
  // to search that is NAME_MAX long or longer: ENAMETOOLONG). No candidates
  // then.
  int error = 0;
};

// glibc's rules (posix/execvpe.c): a name containing '/' is used as it is;
// any other is tried in each directory of `path_env` (PATH) in turn, or of
// "/bin:/usr/bin" when PATH is unset (null), an empty element meaning the
// current directory.
CommandPath command_path(const std::string& file, const char* path_env);

// Whether an exec error met during a PATH search means the command is not in
// that directory, so the search goes on (as glibc: ENOENT, ENOTDIR, EACCES,
// ESTALE, ENODEV, ETIMEDOUT), rather than that it was found and failed.
constexpr bool search_goes_on(int err) {
  switch (err) {
    case EACCES:
    case ENOENT:
    case ESTALE:
    case ENOTDIR:
    case ENODEV:
    case ETIMEDOUT:
      return true;
    default:
      return false;
  }
}

}  // namespace keepalive
