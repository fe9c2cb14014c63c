#include "common/text.h"

namespace headroom {

std::string to_valid_utf8(std::string_view text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    std::size_t length = 0;
    std::uint32_t min = 0;
    if (c < 0x80) length = 1;
    else if ((c & 0xE0) == 0xC0) { length = 2; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { length = 3; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { length = 4; min = 0x10000; }
    bool ok = length != 0 && i + length <= text.size();
    std::uint32_t code = length <= 1 ? c : c & (0x3F >> (length - 1));  // length 0: invalid, no shift
    for (std::size_t k = 1; ok && k < length; ++k) {
      unsigned char next = static_cast<unsigned char>(text[i + k]);
      ok = (next & 0xC0) == 0x80;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid too.
    ok = ok && code >= min && code <= 0x10FFFF && !(code >= 0xD800 && code <= 0xDFFF);
    if (ok) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out.append(kReplacement);
      ++i;
    }
  }
  return out;
}

}  // namespace headroom
