#include "infer/tokenizer/unicode.h"

#include <algorithm>
#include <array>

namespace headroom::infer::unicode {

namespace {

CharClass lookup_class(char32_t cp) {
  const std::uint32_t* begin = detail::kClassRanges;
  const std::uint32_t* end = detail::kClassRanges + detail::kClassRangeCount;
  // The last range whose start is at or below cp.
  const std::uint32_t key = (static_cast<std::uint32_t>(cp) << 3) | 7;
  const std::uint32_t* it = std::upper_bound(begin, end, key);
  return static_cast<CharClass>(*(it - 1) & 7);
}

struct AsciiClasses {
  std::array<CharClass, 128> classes;
  AsciiClasses() {
    for (char32_t cp = 0; cp < 128; ++cp) classes[cp] = lookup_class(cp);
  }
};

struct ByteMapping {
  std::array<char32_t, 256> to_char{};
  std::array<std::int16_t, 512> to_byte{};  // every mapped character is below U+0200
  ByteMapping() {
    to_byte.fill(-1);
    auto printable = [](int b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    char32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = printable(b) ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<std::int16_t>(b);
    }
  }
};

const ByteMapping& byte_mapping() {
  static const ByteMapping mapping;
  return mapping;
}

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

}  // namespace

CharClass char_class(char32_t cp) {
  static const AsciiClasses ascii;
  if (cp < 128) return ascii.classes[cp];
  if (cp > kMaxCodePoint) return CharClass::kOther;
  return lookup_class(cp);
}

Utf8Sequence decode_utf8(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[pos + i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) return {Utf8Status::kValid, 1, lead};

  std::size_t length = 0;
  // The range the second byte must fall in; the later ones are plain continuations.
  unsigned char second_min = 0x80, second_max = 0xBF;
  char32_t cp = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
    cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    cp = lead & 0x0F;
    if (lead == 0xE0) second_min = 0xA0;  // no overlong forms
    if (lead == 0xED) second_max = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    cp = lead & 0x07;
    if (lead == 0xF0) second_min = 0x90;  // no overlong forms
    if (lead == 0xF4) second_max = 0x8F;  // nothing past U+10FFFF
  } else {
    return {Utf8Status::kInvalid, 1, kReplacement};  // a continuation byte, C0, C1 or F5..FF
  }

  const std::size_t available = text.size() - pos;
  for (std::size_t i = 1; i < length; ++i) {
    if (i >= available) return {Utf8Status::kTruncated, available, kReplacement};
    const unsigned char c = byte(i);
    const bool ok = i == 1 ? (c >= second_min && c <= second_max) : is_continuation(c);
    if (!ok) return {Utf8Status::kInvalid, 1, kReplacement};
    cp = (cp << 6) | (c & 0x3F);
  }
  return {Utf8Status::kValid, length, cp};
}

std::vector<char32_t> to_code_points(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Sequence seq = decode_utf8(text, pos);
    if (seq.status == Utf8Status::kValid) {
      out.push_back(seq.cp);
      pos += seq.length;
    } else {
      out.push_back(kReplacement);
      pos += 1;
    }
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp > kMaxCodePoint || (cp >= 0xD800 && cp <= 0xDFFF)) cp = kReplacement;
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t byte_to_char(std::uint8_t byte) { return byte_mapping().to_char[byte]; }

std::optional<std::uint8_t> char_to_byte(char32_t cp) {
  if (cp >= byte_mapping().to_byte.size()) return std::nullopt;
  const std::int16_t byte = byte_mapping().to_byte[cp];
  if (byte < 0) return std::nullopt;
  return static_cast<std::uint8_t>(byte);
}

}  // namespace headroom::infer::unicode
