// What the three preload libraries share: settings parsed once per process,
// the real libc function resolved once, and the call that puts the options
// on a TCP socket without disturbing the caller.
#pragma once

#include "common/settings.h"

namespace keepalive::preload {

// Applies the process's settings to `fd` if it is a TCP socket. Never fails
// and never changes errno. Does nothing in a setuid/setgid (AT_SECURE)
// process or when KEEPALIVE=off.
void apply_if_tcp(int fd, Mode mode);

// The next definition of `name` after this library (libc's), looked up once
// and cached in `*slot`; nullptr (after one message on stderr) if the
// dynamic loader cannot find it.
void* resolve_next(const char* name, void** slot);

}  // namespace keepalive::preload
