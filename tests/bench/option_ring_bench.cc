// SPDX-License-Identifier: Apache-2.0
// option_ring_bench [SOCKETS] [ROUNDS]
//
// What one emulated socket() costs the supervisor in syscalls of its own:
// socket(), its options, close(). Three ways take turns in every round
// (SOCKETS sockets each, default 20000; ROUNDS rounds, default 15):
//   bare      socket + close, no options
//   apply_to  one setsockopt per option
//   ring      OptionRing: one io_uring_enter for all of them
// once with the default settings in connect mode (5 options) and once with
// every option in socket mode (9). Prints the median, min and max time per
// socket, the ring's time as a ratio of apply_to's from the same run, and
// what setting up the ring added to the resident set.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "common/settings.h"
#include "common/socket_options.h"
#include "supervisor/option_ring.h"
#include "tests/common/every_option.h"

namespace {

using keepalive::Mode;
using keepalive::Option;
using keepalive::OptionRing;
using keepalive::Settings;

double now_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) * 1e9 + static_cast<double>(t.tv_nsec);
}

long rss_kib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return atol(line.c_str() + 6);
  }
  return -1;
}

enum Way { kBare, kApplyTo, kRing, kWays };
const char* const kWayNames[kWays] = {"bare", "apply_to", "ring"};

// Microseconds per socket for one batch.
double run(Way way, OptionRing& ring, const Settings& settings, Mode mode,
           int sockets) {
  double start = now_ns();
  for (int i = 0; i < sockets; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      perror("socket");
      exit(1);
    }
    keepalive::ApplyReport report;
    if (way == kApplyTo) report = keepalive::apply_to(fd, settings, mode);
    if (way == kRing) report = ring.apply(fd, settings, mode);
    if (report.any_failed()) {
      fprintf(stderr, "%s: an option failed\n", kWayNames[way]);
      exit(1);
    }
    close(fd);
  }
  return (now_ns() - start) / sockets / 1000;
}

struct Stats {
  double median, min, max;
};

Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v.front(), v.back()};
}

void bench(const char* title, OptionRing& ring, const Settings& settings,
           Mode mode, int sockets, int rounds) {
  std::vector<double> times[kWays];
  run(kRing, ring, settings, mode, sockets / 10);  // warm up
  run(kApplyTo, ring, settings, mode, sockets / 10);
  for (int r = 0; r < rounds; ++r) {
    // Rotate the order so that no way always runs first or last.
    for (int k = 0; k < kWays; ++k) {
      Way way = static_cast<Way>((r + k) % kWays);
      times[way].push_back(run(way, ring, settings, mode, sockets));
    }
  }
  Stats s[kWays];
  for (int w = 0; w < kWays; ++w) s[w] = stats_of(times[w]);
  printf("%s\n", title);
  for (int w = 0; w < kWays; ++w) {
    printf("  %-9s %6.2f us/socket (min %.2f, max %.2f)\n", kWayNames[w],
           s[w].median, s[w].min, s[w].max);
  }
  double options_apply_to = s[kApplyTo].median - s[kBare].median;
  double options_ring = s[kRing].median - s[kBare].median;
  printf("  ring / apply_to: %.2f per socket, %.2f for the options alone\n",
         s[kRing].median / s[kApplyTo].median, options_ring / options_apply_to);
}

}  // namespace

int main(int argc, char** argv) {
  int sockets = argc > 1 ? atoi(argv[1]) : 20000;
  int rounds = argc > 2 ? atoi(argv[2]) : 15;
  if (sockets < 10 || rounds < 1) {
    fprintf(stderr, "usage: option_ring_bench [SOCKETS>=10] [ROUNDS>=1]\n");
    return 2;
  }
  OptionRing ring;
  long before = rss_kib();
  OptionRing::Path path = ring.prepare();
  long after = rss_kib();
  printf("path: %s%s%s\n", keepalive::path_name(path),
         ring.fallback_reason().empty() ? "" : ": ",
         ring.fallback_reason().c_str());
  printf("resident set: %ld KiB before the ring, %ld KiB after\n", before,
         after);
  printf("%d rounds of %d sockets per way, medians over rounds\n", rounds,
         sockets);
  bench("defaults, connect mode (5 options)", ring, Settings(), Mode::kConnect,
        sockets, rounds);
  bench("every option, socket mode (9 options)", ring,
        keepalive::every_option_set(), Mode::kSocket, sockets, rounds);
  return 0;
}
