// SPDX-License-Identifier: Apache-2.0
// The option model without a kernel: parsing the environment, validation,
// the derived user timeout, the original libkeepalive's names.
#include "common/settings.h"

#include <gtest/gtest.h>
#include <limits.h>

#include <map>
#include <string>
#include <vector>

namespace keepalive {
namespace {

// A fake environment and a warning collector for parse_settings.
class FakeEnv {
 public:
  FakeEnv& set(const std::string& name, const std::string& value) {
    vars_[name] = value;
    return *this;
  }

  Settings parse() {
    warnings_.clear();
    return parse_settings(&FakeEnv::lookup, this, &FakeEnv::collect, this);
  }

  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  static const char* lookup(const char* name, void* ctx) {
    auto& vars = static_cast<FakeEnv*>(ctx)->vars_;
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  }
  static void collect(const char* line, void* ctx) {
    static_cast<FakeEnv*>(ctx)->warnings_.emplace_back(line);
  }

  std::map<std::string, std::string> vars_;
  std::vector<std::string> warnings_;
};

struct Variable {
  const char* env_name;
  Option option;
  const char* valid_text;  // a valid, non-default value
  int valid_value;
};

// Every TCP_* variable with one valid value of its own.
const Variable kVariables[] = {
    {"TCP_KEEPIDLE", Option::kKeepIdle, "40", 40},
    {"TCP_KEEPCNT", Option::kKeepCnt, "4", 4},
    {"TCP_KEEPINTVL", Option::kKeepIntvl, "7", 7},
    {"TCP_USER_TIMEOUT", Option::kUserTimeout, "2000", 2000},
    {"TCP_SYNCNT", Option::kSynCnt, "3", 3},
    {"TCP_DEFER_ACCEPT", Option::kDeferAccept, "10", 10},
    {"TCP_MAXSEG", Option::kMaxSeg, "1400", 1400},
    {"TCP_WINDOW_CLAMP", Option::kWindowClamp, "9999", 9999},
};

std::string PrintVariable(const testing::TestParamInfo<Variable>& info) {
  return info.param.env_name;
}

TEST(SettingsTest, DefaultsAreUpstreams) {
  Settings settings = FakeEnv().parse();
  EXPECT_EQ(settings.value(Option::kKeepAlive), 1);
  EXPECT_EQ(settings.value(Option::kKeepIdle), 15);
  EXPECT_EQ(settings.value(Option::kKeepCnt), 9);
  EXPECT_EQ(settings.value(Option::kKeepIntvl), 15);
  EXPECT_EQ(settings.value(Option::kUserTimeout), kDeriveUserTimeout);
  EXPECT_EQ(settings.value(Option::kSynCnt), 0);
  EXPECT_EQ(settings.value(Option::kDeferAccept), 0);
  EXPECT_EQ(settings.value(Option::kMaxSeg), 0);
  EXPECT_EQ(settings.value(Option::kWindowClamp), 0);
  EXPECT_TRUE(settings.enabled());
  EXPECT_FALSE(settings.debug());
}

TEST(SettingsTest, DefaultConstructedAgreesWithOptionInfo) {
  Settings settings;
  for (int i = 0; i < kOptionCount; ++i) {
    Option option = static_cast<Option>(i);
    EXPECT_EQ(settings.value(option), option_info(option).default_value)
        << option_info(option).sockopt_name;
  }
}

TEST(SettingsTest, EnvNamesMatchSockoptNames) {
  EXPECT_EQ(option_info(Option::kKeepAlive).env_name, nullptr);
  for (const Variable& v : kVariables) {
    EXPECT_STREQ(option_info(v.option).env_name, v.env_name);
    EXPECT_STREQ(option_info(v.option).sockopt_name, v.env_name);
  }
}

TEST(SettingsTest, NullLookupGivesDefaultsAndNullSinkIsSafe) {
  Settings settings = parse_settings(nullptr, nullptr, nullptr, nullptr);
  EXPECT_EQ(settings.value(Option::kKeepIdle), 15);
  auto lookup = [](const char*, void*) -> const char* { return "abc"; };
  settings = parse_settings(lookup, nullptr, nullptr, nullptr);
  EXPECT_EQ(settings.value(Option::kKeepIdle), 0);
}

TEST(SettingsTest, WithValueLeavesTheOriginalUnchanged) {
  Settings original;
  Settings changed = original.with_value(Option::kKeepIdle, 99)
                         .with_enabled(false)
                         .with_debug(true);
  EXPECT_EQ(original.value(Option::kKeepIdle), 15);
  EXPECT_TRUE(original.enabled());
  EXPECT_FALSE(original.debug());
  EXPECT_EQ(changed.value(Option::kKeepIdle), 99);
  EXPECT_FALSE(changed.enabled());
  EXPECT_TRUE(changed.debug());
}

class VariableTest : public testing::TestWithParam<Variable> {};

TEST_P(VariableTest, ValidValueIsUsedWithoutWarning) {
  const Variable& v = GetParam();
  FakeEnv env;
  Settings settings = env.set(v.env_name, v.valid_text).parse();
  EXPECT_EQ(settings.value(v.option), v.valid_value);
  EXPECT_TRUE(env.warnings().empty());
  // The other options keep their defaults.
  for (int i = 0; i < kOptionCount; ++i) {
    Option other = static_cast<Option>(i);
    if (other == v.option) continue;
    EXPECT_EQ(settings.value(other), option_info(other).default_value);
  }
}

TEST_P(VariableTest, ZeroMeansSystemDefault) {
  const Variable& v = GetParam();
  FakeEnv env;
  EXPECT_EQ(env.set(v.env_name, "0").parse().value(v.option), 0);
  EXPECT_TRUE(env.warnings().empty());
}

TEST_P(VariableTest, LeadingZerosAreDecimal) {
  const Variable& v = GetParam();
  FakeEnv env;
  std::string text = std::string("00") + v.valid_text;
  EXPECT_EQ(env.set(v.env_name, text).parse().value(v.option), v.valid_value);
  EXPECT_TRUE(env.warnings().empty());
}

// Forms atoi() would have accepted (or turned into something else).
const char* const kGarbage[] = {
    "abc", "20x", "0x10", "", " 5", "5 ", "+5", "-5", "1.5", "1e3", "٥",
};

TEST_P(VariableTest, GarbageGivesOneWarningAndTheSystemDefault) {
  const Variable& v = GetParam();
  for (const char* text : kGarbage) {
    SCOPED_TRACE(std::string("value \"") + text + "\"");
    FakeEnv env;
    Settings settings = env.set(v.env_name, text).parse();
    EXPECT_EQ(settings.value(v.option), 0);
    ASSERT_EQ(env.warnings().size(), 1u);
    const std::string& line = env.warnings()[0];
    EXPECT_NE(line.find(v.env_name), std::string::npos) << line;
    EXPECT_NE(line.find(std::string("\"") + text + "\""), std::string::npos)
        << line;
    EXPECT_NE(line.find("system default"), std::string::npos) << line;
    EXPECT_EQ(line.find('\n'), std::string::npos) << "one line: " << line;
  }
}

TEST_P(VariableTest, IntOverflowIsRejectedNotWrapped) {
  const Variable& v = GetParam();
  // 4294967311 wraps to 15 in 32 bits; 2^64 + 15 wraps to 15 in 64 bits.
  for (const char* text :
       {"2147483648", "4294967296", "4294967311", "18446744073709551631",
        "99999999999999999999999999999999"}) {
    SCOPED_TRACE(text);
    FakeEnv env;
    EXPECT_EQ(env.set(v.env_name, text).parse().value(v.option), 0);
    EXPECT_EQ(env.warnings().size(), 1u);
  }
}

INSTANTIATE_TEST_SUITE_P(AllVariables, VariableTest,
                         testing::ValuesIn(kVariables), PrintVariable);

struct Edge {
  Option option;
  const char* text;
  bool ok;
  int value;
};

class RangeEdgeTest : public testing::TestWithParam<Edge> {};

// E.g. "TCP_MAXSEG_87", "TCP_USER_TIMEOUT_minus1".
std::string PrintEdge(const testing::TestParamInfo<Edge>& info) {
  std::string name = option_info(info.param.option).sockopt_name;
  name += '_';
  for (const char* p = info.param.text; *p != '\0'; ++p) {
    name += *p == '-' ? std::string("minus") : std::string(1, *p);
  }
  return name;
}

TEST_P(RangeEdgeTest, MatchesTheKernelsRange) {
  const Edge& e = GetParam();
  ParsedValue parsed = parse_option_value(e.option, e.text);
  EXPECT_EQ(parsed.ok, e.ok)
      << option_info(e.option).sockopt_name << "=" << e.text;
  if (e.ok) {
    EXPECT_EQ(parsed.value, e.value);
  } else {
    ASSERT_NE(parsed.expected, nullptr);
    EXPECT_NE(std::string(parsed.expected), "");
  }
}

INSTANTIATE_TEST_SUITE_P(
    Edges, RangeEdgeTest,
    testing::Values(Edge{Option::kKeepIdle, "0", true, 0},
                    Edge{Option::kKeepIdle, "1", true, 1},
                    Edge{Option::kKeepIdle, "32767", true, 32767},
                    Edge{Option::kKeepIdle, "32768", false, 0},
                    Edge{Option::kKeepIntvl, "0", true, 0},
                    Edge{Option::kKeepIntvl, "1", true, 1},
                    Edge{Option::kKeepIntvl, "32767", true, 32767},
                    Edge{Option::kKeepIntvl, "32768", false, 0},
                    Edge{Option::kKeepCnt, "1", true, 1},
                    Edge{Option::kKeepCnt, "127", true, 127},
                    Edge{Option::kKeepCnt, "128", false, 0},
                    Edge{Option::kSynCnt, "1", true, 1},
                    Edge{Option::kSynCnt, "127", true, 127},
                    Edge{Option::kSynCnt, "128", false, 0},
                    Edge{Option::kMaxSeg, "87", false, 0},
                    Edge{Option::kMaxSeg, "88", true, 88},
                    Edge{Option::kMaxSeg, "32767", true, 32767},
                    Edge{Option::kMaxSeg, "32768", false, 0},
                    Edge{Option::kUserTimeout, "-1", true, kDeriveUserTimeout},
                    Edge{Option::kUserTimeout, "-2", false, 0},
                    Edge{Option::kUserTimeout, "-0", false, 0},
                    Edge{Option::kUserTimeout, "-1x", false, 0},
                    Edge{Option::kUserTimeout, "-10", false, 0},
                    Edge{Option::kUserTimeout, "1", true, 1},
                    Edge{Option::kUserTimeout, "2147483647", true, INT_MAX},
                    Edge{Option::kUserTimeout, "2147483648", false, 0},
                    Edge{Option::kDeferAccept, "2147483647", true, INT_MAX},
                    Edge{Option::kDeferAccept, "2147483648", false, 0},
                    Edge{Option::kWindowClamp, "2147483647", true, INT_MAX},
                    Edge{Option::kWindowClamp, "2147483648", false, 0},
                    // -1 means "derive" for the user timeout only.
                    Edge{Option::kKeepIdle, "-1", false, 0},
                    Edge{Option::kSynCnt, "-1", false, 0}),
    PrintEdge);

TEST(ParseOptionValueTest, NullTextIsInvalid) {
  EXPECT_FALSE(parse_option_value(Option::kKeepIdle, nullptr).ok);
}

TEST(SettingsTest, UserTimeoutMinusOneStaysDerived) {
  FakeEnv env;
  Settings settings = env.set("TCP_USER_TIMEOUT", "-1").parse();
  EXPECT_EQ(settings.value(Option::kUserTimeout), kDeriveUserTimeout);
  EXPECT_TRUE(env.warnings().empty());
}

TEST(SettingsTest, OneWarningPerBadVariable) {
  FakeEnv env;
  env.set("TCP_KEEPIDLE", "abc")
      .set("TCP_KEEPCNT", "128")
      .set("TCP_MAXSEG", "87")
      .set("TCP_KEEPINTVL", "20");
  Settings settings = env.parse();
  ASSERT_EQ(env.warnings().size(), 3u);
  EXPECT_NE(env.warnings()[0].find("TCP_KEEPIDLE=\"abc\""), std::string::npos);
  EXPECT_NE(env.warnings()[1].find("TCP_KEEPCNT=\"128\""), std::string::npos);
  EXPECT_NE(env.warnings()[2].find("TCP_MAXSEG=\"87\""), std::string::npos);
  EXPECT_EQ(settings.value(Option::kKeepIntvl), 20);
}

TEST(SettingsTest, LongValueIsQuotedOnOneBoundedLine) {
  FakeEnv env;
  env.set("TCP_KEEPIDLE", std::string(5000, '7'));
  env.parse();
  ASSERT_EQ(env.warnings().size(), 1u);
  EXPECT_LT(env.warnings()[0].size(), 512u);
  EXPECT_NE(env.warnings()[0].find("system default"), std::string::npos);
}

TEST(DeriveUserTimeoutTest, DefaultsGive150Seconds) {
  EXPECT_EQ(derive_user_timeout(15, 15, 9), 150000);
}

TEST(DeriveUserTimeoutTest, IsIdlePlusIntervalTimesCount) {
  EXPECT_EQ(derive_user_timeout(1, 1, 1), 2000);
  EXPECT_EQ(derive_user_timeout(7200, 75, 9), 7875000);
  EXPECT_EQ(derive_user_timeout(0, 0, 0), 0);
  EXPECT_EQ(derive_user_timeout(10, 0, 0), 10000);
}

TEST(DeriveUserTimeoutTest, SaturatesAtIntMax) {
  // 2147483 s still fits as milliseconds; one more second does not.
  EXPECT_EQ(derive_user_timeout(2147483, 0, 0), 2147483000);
  EXPECT_EQ(derive_user_timeout(2147484, 0, 0), INT_MAX);
  // The kernel maxima: (32767 + 32767 * 127) s overflows 32-bit ms.
  EXPECT_EQ(derive_user_timeout(32767, 32767, 127), INT_MAX);
  EXPECT_EQ(derive_user_timeout(INT_MAX, INT_MAX, INT_MAX), INT_MAX);
}

TEST(DeriveUserTimeoutTest, NegativeInputsCountAsZero) {
  EXPECT_EQ(derive_user_timeout(-5, 15, 9), 135000);
  EXPECT_EQ(derive_user_timeout(15, -1, 9), 15000);
  EXPECT_EQ(derive_user_timeout(INT_MIN, INT_MIN, INT_MIN), 0);
}

TEST(LegacyNamesTest, KeepaliveOffDisablesEverything) {
  for (const char* off : {"off", "OFF", "Off"}) {
    FakeEnv env;
    Settings settings = env.set("KEEPALIVE", off).parse();
    EXPECT_FALSE(settings.enabled()) << off;
    EXPECT_TRUE(env.warnings().empty());
  }
}

TEST(LegacyNamesTest, KeepaliveOnKeepsItOn) {
  FakeEnv env;
  EXPECT_TRUE(env.set("KEEPALIVE", "on").parse().enabled());
  EXPECT_TRUE(env.warnings().empty());
}

TEST(LegacyNamesTest, KeepaliveGarbageWarnsOnceAndStaysOn) {
  for (const char* text : {"yes", "0", "", "offf"}) {
    FakeEnv env;
    Settings settings = env.set("KEEPALIVE", text).parse();
    EXPECT_TRUE(settings.enabled()) << text;
    ASSERT_EQ(env.warnings().size(), 1u) << text;
    EXPECT_NE(env.warnings()[0].find(std::string("KEEPALIVE=\"") + text + "\""),
              std::string::npos)
        << env.warnings()[0];
  }
}

TEST(LegacyNamesTest, LegacyNamesApplyWhenTcpNamesAreUnset) {
  FakeEnv env;
  Settings settings = env.set("KEEPIDLE", "30")
                          .set("KEEPCNT", "4")
                          .set("KEEPINTVL", "5")
                          .parse();
  EXPECT_EQ(settings.value(Option::kKeepIdle), 30);
  EXPECT_EQ(settings.value(Option::kKeepCnt), 4);
  EXPECT_EQ(settings.value(Option::kKeepIntvl), 5);
  EXPECT_TRUE(env.warnings().empty());
}

// Only the old names: what Debian's libkeepalive0 did with them, SO_KEEPALIVE
// and the values given, nothing else, no user timeout.
TEST(LegacyNamesTest, OnlyOldNamesMeanLibkeepalive0sSemantics) {
  FakeEnv env;
  Settings settings = env.set("KEEPIDLE", "600").parse();
  EXPECT_TRUE(settings.libkeepalive0_order());
  EXPECT_EQ(settings.value(Option::kKeepAlive), 1);
  EXPECT_EQ(settings.value(Option::kKeepIdle), 600);
  for (Option unset : {Option::kKeepCnt, Option::kKeepIntvl,
                       Option::kUserTimeout, Option::kSynCnt}) {
    EXPECT_EQ(settings.value(unset), 0) << static_cast<int>(unset);
  }
  FakeEnv on;
  settings = on.set("KEEPALIVE", "on").parse();
  EXPECT_TRUE(settings.enabled());
  EXPECT_EQ(settings.value(Option::kKeepIdle), 0);
  EXPECT_EQ(settings.value(Option::kUserTimeout), 0);
}

// Any TCP_* name: the project's own defaults, with the old names filling in.
TEST(LegacyNamesTest, AnyTcpNameKeepsTheProjectsDefaults) {
  FakeEnv env;
  Settings settings = env.set("KEEPIDLE", "600").set("TCP_KEEPCNT", "4").parse();
  EXPECT_FALSE(settings.libkeepalive0_order());
  EXPECT_EQ(settings.value(Option::kKeepIdle), 600);
  EXPECT_EQ(settings.value(Option::kKeepCnt), 4);
  EXPECT_EQ(settings.value(Option::kKeepIntvl), 15);
  EXPECT_EQ(settings.value(Option::kUserTimeout), kDeriveUserTimeout);
  EXPECT_FALSE(FakeEnv().parse().libkeepalive0_order());
}

TEST(LegacyNamesTest, TcpNameWinsWhenSet) {
  FakeEnv env;
  Settings settings = env.set("TCP_KEEPIDLE", "40")
                          .set("KEEPIDLE", "30")
                          .set("TCP_KEEPCNT", "3")
                          .set("KEEPCNT", "abc")
                          .parse();
  EXPECT_EQ(settings.value(Option::kKeepIdle), 40);
  EXPECT_EQ(settings.value(Option::kKeepCnt), 3);
  // The shadowed legacy value is not even looked at.
  EXPECT_TRUE(env.warnings().empty());
}

TEST(LegacyNamesTest, InvalidTcpNameStillWinsOverValidLegacyName) {
  FakeEnv env;
  Settings settings =
      env.set("TCP_KEEPIDLE", "abc").set("KEEPIDLE", "30").parse();
  EXPECT_EQ(settings.value(Option::kKeepIdle), 0);
  ASSERT_EQ(env.warnings().size(), 1u);
  EXPECT_NE(env.warnings()[0].find("TCP_KEEPIDLE=\"abc\""), std::string::npos);
}

TEST(LegacyNamesTest, InvalidLegacyValueNamesTheLegacyVariable) {
  FakeEnv env;
  Settings settings = env.set("KEEPINTVL", "20x").parse();
  EXPECT_EQ(settings.value(Option::kKeepIntvl), 0);
  ASSERT_EQ(env.warnings().size(), 1u);
  const std::string& line = env.warnings()[0];
  EXPECT_EQ(line.rfind("KEEPINTVL=\"20x\"", 0), 0u) << line;
  EXPECT_NE(line.find("system default"), std::string::npos) << line;
}

TEST(LegacyNamesTest, OnlyTheThreeKeepaliveOptionsHaveLegacyNames) {
  EXPECT_STREQ(legacy_env_name(Option::kKeepIdle), "KEEPIDLE");
  EXPECT_STREQ(legacy_env_name(Option::kKeepCnt), "KEEPCNT");
  EXPECT_STREQ(legacy_env_name(Option::kKeepIntvl), "KEEPINTVL");
  for (Option option :
       {Option::kKeepAlive, Option::kUserTimeout, Option::kSynCnt,
        Option::kDeferAccept, Option::kMaxSeg, Option::kWindowClamp}) {
    EXPECT_EQ(legacy_env_name(option), nullptr);
  }
  FakeEnv env;
  EXPECT_EQ(env.set("SYNCNT", "3").parse().value(Option::kSynCnt), 0);
}

TEST(DebugTest, UnsetIsOffSetIsOnEvenEmpty) {
  EXPECT_FALSE(FakeEnv().parse().debug());
  EXPECT_TRUE(FakeEnv().set("LIBKEEPALIVE_DEBUG", "").parse().debug());
  EXPECT_TRUE(FakeEnv().set("LIBKEEPALIVE_DEBUG", "1").parse().debug());
  FakeEnv env;
  env.set("LIBKEEPALIVE_DEBUG", "0").parse();
  EXPECT_TRUE(env.warnings().empty());
}

TEST(ModeTest, SynCntAndDeferAcceptApplyOnlyWhereUpstreamSetsThem) {
  EXPECT_TRUE(option_applies(Option::kSynCnt, Mode::kConnect));
  EXPECT_FALSE(option_applies(Option::kSynCnt, Mode::kListen));
  EXPECT_TRUE(option_applies(Option::kSynCnt, Mode::kSocket));
  EXPECT_FALSE(option_applies(Option::kDeferAccept, Mode::kConnect));
  EXPECT_TRUE(option_applies(Option::kDeferAccept, Mode::kListen));
  EXPECT_TRUE(option_applies(Option::kDeferAccept, Mode::kSocket));
  for (Option option : {Option::kKeepAlive, Option::kKeepIdle, Option::kKeepCnt,
                        Option::kKeepIntvl, Option::kUserTimeout,
                        Option::kMaxSeg, Option::kWindowClamp}) {
    for (Mode mode : {Mode::kConnect, Mode::kListen, Mode::kSocket}) {
      EXPECT_TRUE(option_applies(option, mode));
    }
  }
}

TEST(ModeTest, Names) {
  EXPECT_STREQ(mode_name(Mode::kConnect), "connect");
  EXPECT_STREQ(mode_name(Mode::kListen), "listen");
  EXPECT_STREQ(mode_name(Mode::kSocket), "socket");
}

}  // namespace
}  // namespace keepalive
