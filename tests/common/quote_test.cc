// SPDX-License-Identifier: Apache-2.0
// quote_value: what a message shows of a value taken from the user.
#include "common/quote.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace keepalive {
namespace {

std::string shown(const std::string& value, size_t size = kQuoteBufferSize) {
  std::string out(size, '#');
  size_t n = quote_value(value.data(), value.size(), out.data(), out.size());
  EXPECT_LT(n, size);
  EXPECT_EQ(out[n], '\0');
  out.resize(n);
  return out;
}

TEST(QuoteTest, PlainTextIsUnchanged) {
  EXPECT_EQ(shown("abc"), "abc");
  EXPECT_EQ(shown(""), "");
  EXPECT_EQ(shown("it's \"x\" ~"), "it's \"x\" ~");
}

TEST(QuoteTest, ControlCharactersAreEscaped) {
  EXPECT_EQ(shown("a\nb"), "a\\nb");
  EXPECT_EQ(shown("a\tb\r"), "a\\tb\\r");
  EXPECT_EQ(shown("a\\n"), "a\\\\n");  // a backslash cannot fake an escape
  EXPECT_EQ(shown(std::string("\x1b[2J\x7f", 5)), "\\x1b[2J\\x7f");
  EXPECT_EQ(shown(std::string("a\0b", 3)), "a\\x00b");
}

TEST(QuoteTest, ValidUtf8PassesInvalidBytesAreEscaped) {
  EXPECT_EQ(shown("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"),
            "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(shown("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(shown("\xc3"), "\\xc3");          // cut short
  EXPECT_EQ(shown("\xc0\xaf"), "\\xc0\\xaf");  // overlong '/'
  EXPECT_EQ(shown("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a surrogate
  EXPECT_EQ(shown("\xc2\x9b"), "\\xc2\\x9b");  // C1 control (CSI)
}

TEST(QuoteTest, LongValuesAreCutAndSayTheirLength) {
  std::string value(131072, 'a');
  EXPECT_EQ(shown(value),
            std::string(kQuoteShownBytes, 'a') + "... (131072 bytes)");
  // Exactly the shown length: nothing to say.
  EXPECT_EQ(shown(std::string(kQuoteShownBytes, 'b')),
            std::string(kQuoteShownBytes, 'b'));
}

TEST(QuoteTest, NeverHalfACharacter) {
  // 63 ASCII bytes, then a 2-byte character across the limit.
  std::string value(kQuoteShownBytes - 1, 'a');
  value += "\xc3\xa9zz";
  EXPECT_EQ(shown(value), std::string(kQuoteShownBytes - 1, 'a') +
                               "... (" + std::to_string(value.size()) +
                               " bytes)");
}

TEST(QuoteTest, TheWorstCaseFitsTheBuffer) {
  std::string value(1 << 20, '\x01');
  std::string out = shown(value);
  EXPECT_NE(out.find("... (1048576 bytes)"), std::string::npos) << out;
  EXPECT_EQ(out.size(), 4 * kQuoteShownBytes + strlen("... (1048576 bytes)"));
}

TEST(QuoteTest, ASmallBufferDropsWholeEscapesAndStaysTerminated) {
  // Room for "ab" and the NUL only: the escape is left off whole.
  EXPECT_EQ(shown("ab\ncd", 4), "ab");
  EXPECT_EQ(shown("abc", 1), "");
  char none = '#';
  EXPECT_EQ(quote_value("abc", 3, &none, 0), 0u);
  EXPECT_EQ(none, '#');
}

TEST(QuoteTest, NulTerminatedForm) {
  char out[kQuoteBufferSize];
  EXPECT_EQ(quote_value("x\ny", out, sizeof out), 4u);
  EXPECT_STREQ(out, "x\\ny");
  quote_value(nullptr, out, sizeof out);
  EXPECT_STREQ(out, "(null)");
}

}  // namespace
}  // namespace keepalive
