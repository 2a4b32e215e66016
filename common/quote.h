// SPDX-License-Identifier: Apache-2.0
// Quoting a value taken from the user (a flag, its value, an environment
// variable, a command name) for a one-line message, so that no input can
// make a message long or break it into several lines.
//
// Pure code without allocation, locks, errno or any libc call: the preload
// libraries use it (no libstdc++), and so does the launch child (raw system
// calls only, on the parent's memory).
#pragma once

#include <cstddef>

namespace keepalive {

// How many bytes of a value a message shows.
inline constexpr size_t kQuoteShownBytes = 64;

// A buffer this size holds any quoted value: each shown byte takes at most
// four characters ("\xNN"), then "... (N bytes)" with N up to 20 digits,
// then the NUL.
inline constexpr size_t kQuoteBufferSize = 4 * kQuoteShownBytes + 32;

// Writes `text[0, length)` into `out` (`size` bytes, NUL-terminated when
// size > 0) as printable ASCII and valid UTF-8 only: "\n", "\t", "\r" and
// "\\" for those bytes, "\xNN" for other control characters, DEL, C1
// controls and bytes that are not valid UTF-8. A value longer than
// kQuoteShownBytes shows its first bytes (never half a character) followed
// by "... (N bytes)", N being its full length. An escape is never cut: what
// does not fit in `out` is left off whole. Returns the length written.
size_t quote_value(const char* text, size_t length, char* out, size_t size);

// The same for a NUL-terminated `text` (null is written as "(null)").
size_t quote_value(const char* text, char* out, size_t size);

}  // namespace keepalive
