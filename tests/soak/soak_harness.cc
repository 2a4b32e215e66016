// SPDX-License-Identifier: Apache-2.0
#include "tests/soak/soak_harness.h"

#include <stdlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

namespace keepalive::tests {

std::optional<bool> long_form() {
  const char* value = getenv("KEEPALIVE_SOAK");
  std::string form = value == nullptr ? "" : value;
  if (form.empty() || form == "short") return false;
  if (form == "long") return true;
  ADD_FAILURE() << "KEEPALIVE_SOAK=" << form
                << ": expected long or short (or unset)";
  return std::nullopt;
}

unsigned seed_for(const std::string& test) {
  const char* text = getenv("KEEPALIVE_SOAK_SEED");
  unsigned seed = text != nullptr ? static_cast<unsigned>(atol(text))
                                  : std::random_device{}();
  std::cout << "soak." << test << ": KEEPALIVE_SOAK_SEED=" << seed
            << std::endl;
  return seed;
}

Sample sample_of(pid_t pid) {
  Sample sample;
  std::string proc = "/proc/" + std::to_string(pid);
  std::error_code error;
  int fds = 0;
  for (std::filesystem::directory_iterator it(proc + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    ++fds;
  }
  if (!error) sample.fds = fds;
  std::ifstream status(proc + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) sample.rss_kib = atol(line.c_str() + 6);
  }
  return sample;
}

Sample settled_sample(pid_t pid, int want) {
  Sample sample = sample_of(pid);
  if (want >= 0) {
    for (int i = 0; i < 20 && sample.fds != want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      sample = sample_of(pid);
    }
    return sample;
  }
  // No count to expect: one that holds for five looks 10 ms apart, so that
  // a descriptor held for a moment (a socket's copy being handed over, a
  // pidfd of a task that just exited) is not taken for the baseline.
  for (int i = 0, same = 1; i < 40 && same < 5; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    Sample again = sample_of(pid);
    same = again.fds == sample.fds ? same + 1 : 1;
    sample = again;
  }
  return sample;
}

std::string describe(const std::vector<Sample>& samples) {
  std::string fds, rss;
  for (const Sample& sample : samples) {
    fds += (fds.empty() ? "" : ",") + std::to_string(sample.fds);
    rss += (rss.empty() ? "" : ",") + std::to_string(sample.rss_kib);
  }
  return "fds=[" + fds + "] rss_kib=[" + rss + "]";
}

void expect_flat(const std::vector<Sample>& samples, const std::string& who) {
  ASSERT_GE(samples.size(), 2u) << who << ": too few samples";
  for (size_t i = 0; i < samples.size(); ++i) {
    EXPECT_GE(samples[i].fds, 0)
        << who << " sample " << i + 1 << ": /proc could not be read";
    EXPECT_EQ(samples[i].fds, samples[0].fds)
        << who << " holds a different number of fds at sample " << i + 1 << ": "
        << describe(samples);
  }
  if (!kSanitized) {
    EXPECT_LT(samples.back().rss_kib - samples[1].rss_kib, kRssGrowthBoundKib)
        << who << "'s RSS grew from the second sample to the last (KiB): "
        << describe(samples);
  }
}

void expect_same_before_after(const std::vector<Sample>& samples,
                              const std::string& who,
                              const std::string& detail) {
  ASSERT_EQ(samples.size(), 2u) << who << ": not two samples";
  EXPECT_EQ(samples[1].fds, samples[0].fds)
      << who << "'s fds before and after: " << describe(samples) << detail;
  if (!kSanitized) {
    EXPECT_LT(samples[1].rss_kib - samples[0].rss_kib, kRssGrowthBoundKib)
        << who << "'s RSS before and after (KiB): " << describe(samples);
  }
}

double figure(const std::string& line, const std::string& key) {
  std::istringstream words(line);
  for (std::string word; words >> word;) {
    if (word.starts_with(key + "=")) {
      return strtod(word.c_str() + key.size() + 1, nullptr);
    }
  }
  return std::nan("");
}

}  // namespace keepalive::tests
