#include "llamatron/utf8.h"

namespace llamatron {

char32_t utf8_next(std::string_view s, size_t& i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) return ++i, b0;
  int len;
  char32_t c;
  unsigned char lo = 0x80, hi = 0xBF;  // the second byte's range (Table 3-7)
  if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, c = b0 & 0x1F;
  else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3, c = b0 & 0x0F, lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
  else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4, c = b0 & 0x07, lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
  else return ++i, kReplacementChar;  // a continuation byte, C0, C1 or F5..FF
  ++i;
  for (int k = 1; k < len; ++k, ++i) {
    const unsigned char lower = k == 1 ? lo : 0x80, upper = k == 1 ? hi : 0xBF;
    if (i >= s.size() || byte(i) < lower || byte(i) > upper) return kReplacementChar;  // the subpart read so far
    c = (c << 6) | (byte(i) & 0x3F);
  }
  return c;
}

bool utf8_valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t at = i;
    if (utf8_next(s, i) == kReplacementChar && s.compare(at, 3, "\xEF\xBF\xBD") != 0) return false;
  }
  return true;
}

char* utf8_put(char* o, char32_t c) {
  if (c < 0x80) {
    *o++ = static_cast<char>(c);
  } else if (c < 0x800) {
    *o++ = static_cast<char>(0xC0 | (c >> 6));
    *o++ = static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    *o++ = static_cast<char>(0xE0 | (c >> 12));
    *o++ = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    *o++ = static_cast<char>(0x80 | (c & 0x3F));
  } else {
    *o++ = static_cast<char>(0xF0 | (c >> 18));
    *o++ = static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    *o++ = static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    *o++ = static_cast<char>(0x80 | (c & 0x3F));
  }
  return o;
}

void utf8_append(std::string& out, char32_t c) {
  char bytes[4];
  out.append(bytes, static_cast<size_t>(utf8_put(bytes, c) - bytes));
}

std::string utf8_repair(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) utf8_append(out, utf8_next(s, i));
  return out;
}

}  // namespace llamatron
