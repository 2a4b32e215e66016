// SPDX-License-Identifier: Apache-2.0
// choose_strategy for every (requested, mode, pidfd_getfd permitted or
// not) combination.
#include "supervisor/strategy.h"

#include <errno.h>
#include <gtest/gtest.h>
#include <string.h>

#include <string>
#include <tuple>

namespace keepalive {
namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

using Combination = std::tuple<Strategy, Mode, bool>;

class StrategyTest : public ::testing::TestWithParam<Combination> {};

TEST_P(StrategyTest, Choice) {
  const auto [requested, mode, permitted] = GetParam();
  const int getfd_error = permitted ? 0 : EPERM;
  StrategyChoice c = choose_strategy(requested, mode, permitted, getfd_error);

  if (requested == Strategy::kContinue && !permitted) {
    // Refused, saying why and what to do instead.
    EXPECT_FALSE(c.ok);
    EXPECT_TRUE(contains(c.error, "--strategy continue")) << c.error;
    EXPECT_TRUE(contains(c.error, "pidfd_getfd")) << c.error;
    EXPECT_TRUE(contains(c.error, strerror(EPERM))) << c.error;
    EXPECT_TRUE(contains(c.error, "emulate")) << c.error;
    EXPECT_EQ(c.error.find('\n'), std::string::npos);
    return;
  }
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_FALSE(c.reason.empty());
  EXPECT_EQ(c.reason.find('\n'), std::string::npos);
  EXPECT_EQ(c.degraded.find('\n'), std::string::npos);

  Strategy expected;
  bool degraded;
  switch (requested) {
    case Strategy::kEmulate:
      expected = Strategy::kEmulate;
      // Emulation cannot tell client from server sockets.
      degraded = mode != Mode::kSocket;
      EXPECT_EQ(c.reason, "requested");
      break;
    case Strategy::kContinue:
      expected = Strategy::kContinue;
      degraded = false;
      EXPECT_EQ(c.reason, "requested");
      break;
    case Strategy::kAuto:
    default:
      if (mode == Mode::kSocket) {
        // The cheapest: one trap per TCP socket, nothing else.
        expected = Strategy::kEmulate;
        degraded = false;
      } else if (permitted) {
        expected = Strategy::kContinue;
        degraded = false;
      } else {
        // Docker's default profile: emulate, and say what is lost.
        expected = Strategy::kEmulate;
        degraded = true;
        EXPECT_TRUE(contains(c.reason, "pidfd_getfd")) << c.reason;
        EXPECT_TRUE(contains(c.reason, strerror(EPERM))) << c.reason;
      }
      break;
  }
  EXPECT_EQ(c.strategy, expected) << "got " << strategy_name(c.strategy)
                                  << ", expected " << strategy_name(expected);
  EXPECT_EQ(!c.degraded.empty(), degraded)
      << "degraded: '" << c.degraded << "'";
  if (degraded) {
    EXPECT_TRUE(contains(c.degraded, mode_name(mode))) << c.degraded;
  }
}

INSTANTIATE_TEST_SUITE_P(
    All, StrategyTest,
    ::testing::Combine(::testing::Values(Strategy::kAuto, Strategy::kEmulate,
                                         Strategy::kContinue),
                       ::testing::Values(Mode::kSocket, Mode::kConnect,
                                         Mode::kListen),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<Combination>& param) {
      return std::string(strategy_name(std::get<0>(param.param))) + "_" +
             mode_name(std::get<1>(param.param)) + "_" +
             (std::get<2>(param.param) ? "getfd_permitted" : "getfd_refused");
    });

// Where emulation can leak fds (no WAIT_KILLABLE_RECV), auto takes continue
// in socket mode when pidfd_getfd allows it, and says why; otherwise it
// emulates still and names both reasons.
TEST(StrategyTest, AutoPrefersContinueWhereEmulationCanLeak) {
  StrategyChoice c =
      choose_strategy(Strategy::kAuto, Mode::kSocket, true, 0, true);
  ASSERT_TRUE(c.ok);
  EXPECT_EQ(c.strategy, Strategy::kContinue);
  EXPECT_TRUE(contains(c.reason, "WAIT_KILLABLE_RECV")) << c.reason;
  EXPECT_TRUE(c.degraded.empty()) << c.degraded;

  c = choose_strategy(Strategy::kAuto, Mode::kSocket, false, EPERM, true);
  ASSERT_TRUE(c.ok);
  EXPECT_EQ(c.strategy, Strategy::kEmulate);
  EXPECT_TRUE(contains(c.reason, "WAIT_KILLABLE_RECV")) << c.reason;
  EXPECT_TRUE(contains(c.reason, "pidfd_getfd")) << c.reason;

  // An explicit choice is honoured.
  c = choose_strategy(Strategy::kEmulate, Mode::kSocket, true, 0, true);
  EXPECT_EQ(c.strategy, Strategy::kEmulate);
  for (Mode mode : {Mode::kConnect, Mode::kListen}) {
    c = choose_strategy(Strategy::kAuto, mode, true, 0, true);
    EXPECT_EQ(c.strategy, Strategy::kContinue);
  }
}

TEST(StrategyNameTest, Names) {
  EXPECT_STREQ(strategy_name(Strategy::kAuto), "auto");
  EXPECT_STREQ(strategy_name(Strategy::kEmulate), "emulate");
  EXPECT_STREQ(strategy_name(Strategy::kContinue), "continue");
}

TEST(StrategyTest, RefusalNamesTheActualErrno) {
  // Yama or dumpability refuse with EPERM too, but a missing syscall (old
  // kernel) is ENOSYS: the message must say which.
  StrategyChoice c =
      choose_strategy(Strategy::kContinue, Mode::kConnect, false, ENOSYS);
  ASSERT_FALSE(c.ok);
  EXPECT_TRUE(contains(c.error, strerror(ENOSYS))) << c.error;
}

}  // namespace
}  // namespace keepalive
