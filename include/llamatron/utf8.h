// UTF-8 as Unicode defines it (Table 3-7: no overlongs, no surrogates, nothing above U+10FFFF).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace llamatron {

constexpr char32_t kReplacementChar = 0xFFFD;

// The code point at s[i], advancing i past it; an ill-formed sequence yields U+FFFD and advances
// past its maximal subpart (Unicode's "best practice", which Python's decode(errors="replace") follows).
char32_t utf8_next(std::string_view s, size_t& i);
bool utf8_valid(std::string_view s);
// Every ill-formed subsequence replaced by U+FFFD.
std::string utf8_repair(std::string_view s);
void utf8_append(std::string& out, char32_t c);
// Writes the 1 to 4 bytes of c at o; returns the byte after them.
char* utf8_put(char* o, char32_t c);

// Unicode's White_Space property (PropList.txt), spelled out so that words are split the same way
// everywhere (the filter's word count, dedup's normalisation, the tests' Python reference).
constexpr bool is_white_space(char32_t c) {
  if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
  return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

}  // namespace llamatron
