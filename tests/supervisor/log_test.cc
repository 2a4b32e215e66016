// SPDX-License-Identifier: Apache-2.0
// RateLimitedLog: a storm of warnings of one kind prints a bounded number
// of lines, and every suppressed warning is counted in a later line.
#include "supervisor/log.h"

#include <gtest/gtest.h>

#include <string>

namespace keepalive {
namespace {

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST(RateLimitedLogTest, BurstThenOnePerIntervalWithTheCount) {
  RateLimitedLog log;
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 1000; ++i)
    log.warn_at("identity", "pid " + std::to_string(i), 0);
  log.warn_at("identity", "pid late", RateLimitedLog::kIntervalMs);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_of(err, "\n"),
            static_cast<size_t>(RateLimitedLog::kBurst) + 1)
      << err;
  EXPECT_NE(err.find("pid late (995 similar warnings suppressed)"),
            std::string::npos)
      << err;
}

TEST(RateLimitedLogTest, KindsHaveTheirOwnBudget) {
  RateLimitedLog log;
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 10; ++i) log.warn_at("a", "from a", 0);
  log.warn_at("b", "from b", 0);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_of(err, "from b"), 1u) << err;
}

TEST(RateLimitedLogTest, FlushReportsWhatIsLeft) {
  RateLimitedLog log;
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 8; ++i) log.warn_at("k", "w" + std::to_string(i), 0);
  log.flush();
  log.flush();  // nothing left the second time
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(count_of(err, "\n"),
            static_cast<size_t>(RateLimitedLog::kBurst) + 1)
      << err;
  EXPECT_NE(err.find("keepalive-supervise: w7 (2 similar warnings suppressed)"),
            std::string::npos)
      << err;
}

}  // namespace
}  // namespace keepalive
