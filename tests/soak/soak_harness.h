// SPDX-License-Identifier: Apache-2.0
// What the soak tests share: which form runs (KEEPALIVE_SOAK), samples of a
// long-running process's descriptors and memory, and the check that they
// stay flat.
//
// The short form is what ctest runs in CI; KEEPALIVE_SOAK=long selects the
// long form of the same tests (the numbers a developer runs before a
// release). Either way each test prints one line of figures.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "tests/common/scratch_dir.h"

namespace keepalive::tests {

// KEEPALIVE_SOAK: unset, empty or "short" for the short form, "long" for
// the long one; nullopt (after a test failure naming it) for anything else,
// so that a misspelt request never passes as a short run.
std::optional<bool> long_form();

// `short_value` or `long_value`, as the form asks.
inline long scaled(bool is_long, long short_value, long long_value) {
  return is_long ? long_value : short_value;
}

// The seed of soak.`test`'s random choices: KEEPALIVE_SOAK_SEED when set,
// else a random one; printed either way, so that a run can be repeated.
unsigned seed_for(const std::string& test);

// One look at a process: its open descriptors (/proc/PID/fd) and resident
// memory (VmRSS of /proc/PID/status, KiB); -1 where it could not be read.
struct Sample {
  int fds = -1;
  long rss_kib = -1;
};
Sample sample_of(pid_t pid);

// sample_of(pid), taken again (for up to about 200 ms) while its fd count
// differs from `want`: a descriptor held for a call in flight (the task
// cache's pidfd of a new thread, a /proc file, the copy of a call just
// answered) closes within that, a leaked one stays. want < 0: the first
// fd count that five looks 10 ms apart agree on, within about 400 ms (a
// baseline taken just as a call ends would otherwise count its
// descriptor).
Sample settled_sample(pid_t pid, int want);

// "fds=[a,b,...] rss_kib=[x,y,...]".
std::string describe(const std::vector<Sample>& samples);

// How much the resident memory may grow from the second sample to the
// last: room for the allocator's fluctuation, far below what a leak per
// call or per target would add over a run.
inline constexpr long kRssGrowthBoundKib = 512;

// AddressSanitizer keeps freed memory in quarantine: an RSS bound means
// nothing in a sanitizer build (the descriptor counts still do).
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// Fails the test unless every sample holds as many fds as the first, and
// (outside sanitizer builds) the RSS grew by less than kRssGrowthBoundKib
// from the second sample to the last. `who` names the process.
void expect_flat(const std::vector<Sample>& samples, const std::string& who);

// The same for a run sampled twice, before and after (`samples` holds the
// two): the fds equal, and (outside sanitizer builds) the RSS grown by less
// than kRssGrowthBoundKib from the first to the second. `detail` follows
// the figures in a failure.
void expect_same_before_after(const std::vector<Sample>& samples,
                              const std::string& who,
                              const std::string& detail = "");

// The value of KEY=VALUE in `line`, as a double (NaN when absent).
double figure(const std::string& line, const std::string& key);

// The fixture of the soak suite (its name is the ctest prefix "soak.").
class soak : public ScratchDirTest {};

}  // namespace keepalive::tests
