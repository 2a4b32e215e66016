// SPDX-License-Identifier: Apache-2.0
// The one line the launch child prints when it cannot exec the command.
//
// Runs in that child: raw system calls only, on memory of its own stack
// (see launch.h), so nothing here allocates, locks or touches errno.
#pragma once

#include <cstddef>

#include "common/quote.h"

namespace keepalive {

// Room for the longest line: two quoted names and the words around them.
inline constexpr size_t kExecFailureLineSize = 2 * kQuoteBufferSize + 256;

// Writes to line[*length, size) "keepalive-supervise: NAME: WHY\n" for a
// command `name` whose exec failed with `err` (execvp's errno) after trying
// `candidates` (null-terminated; see CommandPath), and returns the exit
// status: 127 when nothing was found, 126 when it was but cannot run. For
// ENOENT from a file that exists it reads the file and names what is
// missing, as bash does: "NAME: INTERP: bad interpreter: No such file or
// directory" for a "#!" line, or the ELF loader (PT_INTERP) of a program.
// `describe` is strerrordesc_np (bound beforehand: no lazy binding here).
int describe_exec_failure(const char* name, const char* const* candidates,
                          int err, const char* (*describe)(int), char* line,
                          size_t size, size_t* length);

}  // namespace keepalive
