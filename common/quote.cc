// SPDX-License-Identifier: Apache-2.0
#include "common/quote.h"

namespace keepalive {
namespace {

// Runs in the launch child too, on the parent's memory, where no sanitizer
// runtime may run; so it calls nothing, not even a memcpy or strlen that the
// compiler would make of a loop (and a sanitizer would intercept).
#define KEEPALIVE_PURE_CODE                         \
  __attribute__((no_sanitize("address", "undefined"), \
                 optimize("no-tree-loop-distribute-patterns")))

// Appends text[0, n) whole to out if it fits (leaving room for the NUL).
KEEPALIVE_PURE_CODE bool put(char* out, size_t size, size_t* used,
                             const char* text, size_t n) {
  if (size == 0 || *used + n + 1 > size) return false;
  for (size_t i = 0; i < n; ++i) out[(*used)++] = text[i];
  return true;
}

// The length of the valid UTF-8 sequence at text[0, length), or 0 if it is
// not one (overlong forms, surrogates and code points past U+10FFFF
// included). C1 controls (U+0080 to U+009F) count as invalid: a terminal
// may act on them.
KEEPALIVE_PURE_CODE size_t utf8_sequence(const unsigned char* text,
                                         size_t length) {
  unsigned char lead = text[0];
  size_t n;
  unsigned min;
  unsigned code;
  if (lead >= 0xc2 && lead <= 0xdf) {
    n = 2, min = 0xa0, code = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    n = 3, min = 0x800, code = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    n = 4, min = 0x10000, code = lead & 0x07;
  } else {
    return 0;
  }
  if (length < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((text[i] & 0xc0) != 0x80) return 0;
    code = (code << 6) | (text[i] & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) {
    return 0;
  }
  return n;
}

}  // namespace

KEEPALIVE_PURE_CODE size_t quote_value(const char* text, size_t length,
                                       char* out, size_t size) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t used = 0;
  const auto* bytes = reinterpret_cast<const unsigned char*>(text);
  size_t shown = length < kQuoteShownBytes ? length : kQuoteShownBytes;
  size_t i = 0;
  while (i < shown) {
    unsigned char c = bytes[i];
    char escape[4] = {'\\', 0, 0, 0};
    const char* piece = escape;
    size_t n = 2;
    if (c == '\n') {
      escape[1] = 'n';
    } else if (c == '\t') {
      escape[1] = 't';
    } else if (c == '\r') {
      escape[1] = 'r';
    } else if (c == '\\') {
      escape[1] = '\\';
    } else if (c >= 0x20 && c < 0x7f) {
      piece = text + i, n = 1;
    } else if (size_t seq = c >= 0x80 ? utf8_sequence(bytes + i, length - i) : 0;
               seq != 0) {
      if (i + seq > shown) break;  // never half a character
      piece = text + i, n = seq;
    } else {
      escape[1] = 'x';
      escape[2] = kHex[c >> 4];
      escape[3] = kHex[c & 0xf];
      n = 4;
    }
    if (!put(out, size, &used, piece, n)) break;
    i += piece == escape ? 1 : n;
  }
  if (i < length) {
    // "... (N bytes)", whole or not at all. No initialised arrays: the
    // compiler could fill them with a call to memset or memcpy.
    char note[48];
    size_t n = 0;
    for (const char* s = "... ("; *s != '\0'; ++s) note[n++] = *s;
    char digits[24];
    size_t d = 0;
    size_t value = length;
    do {
      digits[d++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    while (d > 0) note[n++] = digits[--d];
    for (const char* s = " bytes)"; *s != '\0'; ++s) note[n++] = *s;
    put(out, size, &used, note, n);
  }
  if (size > 0) out[used] = '\0';
  return used;
}

KEEPALIVE_PURE_CODE size_t quote_value(const char* text, char* out,
                                       size_t size) {
  if (text == nullptr) return quote_value("(null)", 6, out, size);
  size_t length = 0;
  while (text[length] != '\0') ++length;
  return quote_value(text, length, out, size);
}

}  // namespace keepalive
