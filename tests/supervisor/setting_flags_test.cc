// SPDX-License-Identifier: Apache-2.0
// parse_option_words: the per-container options keepalive-agent reads from
// a profile's listenerMetadata or an annotation, in command-line syntax.
#include "supervisor/setting_flags.h"

#include <gtest/gtest.h>

#include <string>

namespace keepalive {
namespace {

TEST(OptionWordsTest, SetsWhatItNamesOverTheBase) {
  WorkloadOptions base;
  base.settings = base.settings.with_value(Option::kKeepCnt, 4);
  auto got = parse_option_words(
      "  --keepidle=30\t--mode connect --user-timeout=-1 --syncnt=2\n", base);
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(got->mode, Mode::kConnect);
  EXPECT_EQ(got->settings.value(Option::kKeepIdle), 30);
  EXPECT_EQ(got->settings.value(Option::kKeepCnt), 4);  // the base's
  EXPECT_EQ(got->settings.value(Option::kKeepIntvl), 15);
  EXPECT_EQ(got->settings.value(Option::kSynCnt), 2);
  EXPECT_EQ(got->settings.value(Option::kUserTimeout), kDeriveUserTimeout);
}

// An annotation written with CRLF line ends (or tabs, form feeds) means
// what one written with spaces means.
TEST(OptionWordsTest, AnyWhiteSpaceSeparatesWords) {
  auto got = parse_option_words("--keepidle=31\r\n\v--keepcnt=4\f\r",
                                WorkloadOptions{});
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(got->settings.value(Option::kKeepIdle), 31);
  EXPECT_EQ(got->settings.value(Option::kKeepCnt), 4);
}

TEST(OptionWordsTest, NothingLeavesTheBase) {
  WorkloadOptions base;
  base.mode = Mode::kListen;
  auto got = parse_option_words("   ", base);
  ASSERT_TRUE(got) << got.error();
  EXPECT_EQ(got->mode, Mode::kListen);
  EXPECT_EQ(got->settings.value(Option::kKeepIdle), 15);
}

TEST(OptionWordsTest, RefusesWithOneLineNamingTheWord) {
  struct Case {
    const char* text;
    const char* says;
  };
  const Case cases[] = {
      {"--keepidle=abc", "--keepidle: invalid value 'abc' (expected"},
      {"--keepidle=0x10", "invalid value '0x10'"},
      {"--keepidle", "'--keepidle' needs a value"},
      {"--keepidle=", "'--keepidle' needs a value"},
      {"keepidle=3", "unexpected word 'keepidle=3'"},
      {"--", "unexpected word '--'"},
      {"--keep=3", "unknown option '--keep=3'"},
      {"--strategy=emulate", "unknown option '--strategy=emulate'"},
      {"--mode=all", "--mode: invalid value 'all'"},
      {"--keepidle=3 --keepidle=4", "'--keepidle' given more than once"},
      {"--keepcnt=999", "--keepcnt: invalid value '999'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto got = parse_option_words(c.text, WorkloadOptions{});
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().find(c.says), std::string::npos) << got.error();
    EXPECT_EQ(got.error().find('\n'), std::string::npos) << got.error();
  }
  std::string nul("--keepidle=3\0 9", 15);
  auto got = parse_option_words(nul, WorkloadOptions{});
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().find("NUL"), std::string::npos) << got.error();
  // A hostile value is shown bounded and on one line.
  std::string huge = "--keepidle=" + std::string(5000, '\x01');
  got = parse_option_words(huge, WorkloadOptions{});
  ASSERT_FALSE(got);
  EXPECT_LT(got.error().size(), 400u);
}

}  // namespace
}  // namespace keepalive
