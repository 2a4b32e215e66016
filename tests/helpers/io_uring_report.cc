// SPDX-License-Identifier: Apache-2.0
// io_uring_report [COUNT]
//
// Calls io_uring_setup(1, ...) COUNT times (default 1) with a raw syscall,
// as a runtime probing for io_uring would, and prints one line per call:
// "io_uring_setup ok" or "io_uring_setup ERRNO_NAME". Exit status 0.
#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char** argv) {
  int count = argc > 1 ? atoi(argv[1]) : 1;
  for (int i = 0; i < count; ++i) {
    io_uring_params params;
    memset(&params, 0, sizeof params);
    long fd = syscall(SYS_io_uring_setup, 1, &params);
    if (fd >= 0) {
      printf("io_uring_setup ok\n");
      close(static_cast<int>(fd));
    } else {
      const char* name = strerrorname_np(errno);
      printf("io_uring_setup %s\n", name != nullptr ? name : "?");
    }
  }
  return 0;
}
