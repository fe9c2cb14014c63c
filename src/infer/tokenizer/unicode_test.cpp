#include "infer/tokenizer/unicode.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace headroom::infer::unicode {
namespace {

TEST(CharClass, AsciiAndBeyond) {
  EXPECT_EQ(char_class('a'), CharClass::kLetter);
  EXPECT_EQ(char_class('Z'), CharClass::kLetter);
  EXPECT_EQ(char_class('7'), CharClass::kNumber);
  EXPECT_EQ(char_class(','), CharClass::kPunctuation);
  EXPECT_EQ(char_class('_'), CharClass::kPunctuation);
  EXPECT_EQ(char_class('$'), CharClass::kOther);  // a symbol, \p{S}
  EXPECT_EQ(char_class('`'), CharClass::kOther);
  EXPECT_EQ(char_class(' '), CharClass::kWhitespace);
  EXPECT_EQ(char_class('\t'), CharClass::kWhitespace);
  EXPECT_EQ(char_class('\n'), CharClass::kWhitespace);
  EXPECT_EQ(char_class(0x0B), CharClass::kWhitespace);
  EXPECT_EQ(char_class(0x1F), CharClass::kOther);          // a control, not White_Space
  EXPECT_EQ(char_class(0x00E9), CharClass::kLetter);       // é
  EXPECT_EQ(char_class(0x0301), CharClass::kOther);        // combining acute: a mark, not a letter
  EXPECT_EQ(char_class(0x4E2D), CharClass::kLetter);       // 中
  EXPECT_EQ(char_class(0x3042), CharClass::kLetter);       // あ
  EXPECT_EQ(char_class(0x0663), CharClass::kNumber);       // Arabic-Indic three
  EXPECT_EQ(char_class(0x00B2), CharClass::kNumber);       // superscript two (No)
  EXPECT_EQ(char_class(0x2163), CharClass::kNumber);       // Roman numeral four (Nl)
  EXPECT_EQ(char_class(0x00A0), CharClass::kWhitespace);   // no-break space
  EXPECT_EQ(char_class(0x3000), CharClass::kWhitespace);   // ideographic space
  EXPECT_EQ(char_class(0x200B), CharClass::kOther);        // zero width space is not White_Space
  EXPECT_EQ(char_class(0x3002), CharClass::kPunctuation);  // 。
  EXPECT_EQ(char_class(0x1F600), CharClass::kOther);       // 😀
  EXPECT_EQ(char_class(0x10FFFF), CharClass::kOther);
  EXPECT_EQ(char_class(0x110000), CharClass::kOther);
}

TEST(DecodeUtf8, ValidSequencesOfEachLength) {
  const std::string text = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  Utf8Sequence seq = decode_utf8(text, 0);
  EXPECT_EQ(seq.status, Utf8Status::kValid);
  EXPECT_EQ(seq.cp, U'a');
  seq = decode_utf8(text, 1);
  EXPECT_EQ(seq.length, 2u);
  EXPECT_EQ(seq.cp, 0xE9u);
  seq = decode_utf8(text, 3);
  EXPECT_EQ(seq.length, 3u);
  EXPECT_EQ(seq.cp, 0x4E2Du);
  seq = decode_utf8(text, 6);
  EXPECT_EQ(seq.length, 4u);
  EXPECT_EQ(seq.cp, 0x1F600u);
}

TEST(DecodeUtf8, TruncatedAtTheEndIsNotInvalid) {
  EXPECT_EQ(decode_utf8("\xF0\x9F\x98", 0).status, Utf8Status::kTruncated);
  EXPECT_EQ(decode_utf8("\xF0\x9F\x98", 0).length, 3u);
  EXPECT_EQ(decode_utf8("\xE4", 0).status, Utf8Status::kTruncated);
  // A bad second byte is invalid even before the end.
  EXPECT_EQ(decode_utf8("\xE4\x41", 0).status, Utf8Status::kInvalid);
  EXPECT_EQ(decode_utf8("\xF0\x80", 0).status, Utf8Status::kInvalid);  // overlong, seen at the second byte
}

TEST(DecodeUtf8, RejectsWhatUnicodeForbids) {
  for (const std::string bad : {"\x80", "\xBF", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80",
                                "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xFF"}) {
    const Utf8Sequence seq = decode_utf8(bad, 0);
    EXPECT_EQ(seq.status, Utf8Status::kInvalid) << testing::PrintToString(bad);
    EXPECT_EQ(seq.length, 1u);
    EXPECT_EQ(seq.cp, kReplacement);
  }
  EXPECT_EQ(decode_utf8("\xED\x9F\xBF", 0).cp, 0xD7FFu);        // the last code point before the surrogates
  EXPECT_EQ(decode_utf8("\xF4\x8F\xBF\xBF", 0).cp, 0x10FFFFu);  // the last code point
}

TEST(ToCodePoints, OneReplacementPerBadByte) {
  // A truncated 3-byte sequence then 'A': two bad bytes, as llama.cpp counts them.
  EXPECT_EQ(to_code_points("\xE4\xB8"
                           "A"),
            (std::vector<char32_t>{kReplacement, kReplacement, U'A'}));
  EXPECT_EQ(to_code_points(""), std::vector<char32_t>{});
  EXPECT_EQ(to_code_points("\xC3\xA9t\xC3\xA9"), (std::vector<char32_t>{0xE9, U't', 0xE9}));
}

TEST(AppendUtf8, RoundTripsEveryScalarValueSampled) {
  for (char32_t cp : {0x0u, 0x7Fu, 0x80u, 0x7FFu, 0x800u, 0xFFFFu, 0x10000u, 0x1F600u, 0x10FFFFu}) {
    std::string out;
    append_utf8(out, cp);
    const Utf8Sequence seq = decode_utf8(out, 0);
    EXPECT_EQ(seq.status, Utf8Status::kValid);
    EXPECT_EQ(seq.cp, cp);
    EXPECT_EQ(seq.length, out.size());
  }
  std::string out;
  append_utf8(out, 0xD800);  // a surrogate is not a scalar value
  EXPECT_EQ(out, "\xEF\xBF\xBD");
}

TEST(ByteMapping, Gpt2Characters) {
  EXPECT_EQ(byte_to_char('A'), U'A');
  EXPECT_EQ(byte_to_char(' '), 0x120u);   // Ġ
  EXPECT_EQ(byte_to_char('\n'), 0x10Au);  // Ċ
  EXPECT_EQ(byte_to_char(0x00), 0x100u);
  EXPECT_EQ(byte_to_char(0xAD), 0x143u);  // the soft hyphen is remapped too
  EXPECT_EQ(byte_to_char(0xE9), 0xE9u);
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    const char32_t c = byte_to_char(static_cast<std::uint8_t>(b));
    EXPECT_TRUE(seen.insert(c).second) << b;
    EXPECT_EQ(char_to_byte(c), static_cast<std::uint8_t>(b));
  }
  EXPECT_EQ(char_to_byte(U' '), std::nullopt);  // the space itself is not a mapped character
  EXPECT_EQ(char_to_byte(0x4E2D), std::nullopt);
}

}  // namespace
}  // namespace headroom::infer::unicode
