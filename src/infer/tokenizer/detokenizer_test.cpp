#include "infer/tokenizer/detokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "infer/tokenizer/test_vocabularies.h"

namespace headroom::infer {
namespace {

using Ids = std::vector<TokenId>;

Tokenizer make(Vocabulary vocab) {
  Result<Tokenizer> tokenizer = Tokenizer::create(std::move(vocab));
  EXPECT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
  return std::move(tokenizer).value();
}

TokenId byte_token(int byte) { return 3 + byte; }  // in testing::spm_vocabulary

// Each push's output, then finish's.
std::vector<std::string> stream(const Tokenizer& t, const Ids& ids, RenderSpecial render = RenderSpecial::kNo) {
  Detokenizer detokenizer(t, render);
  std::vector<std::string> out;
  for (const TokenId id : ids) out.push_back(detokenizer.push(id));
  out.push_back(detokenizer.finish());
  EXPECT_EQ(detokenizer.pending_bytes(), 0u);
  return out;
}

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (const std::string& part : parts) out += part;
  return out;
}

TEST(Detokenizer, HoldsAnEmojiSplitAcrossByteTokensUntilItIsWhole) {
  const Tokenizer t = make(testing::spm_vocabulary({"▁", "a"}));
  // 😀 = F0 9F 98 80, then "a".
  const Ids ids = {byte_token(0xF0), byte_token(0x9F), byte_token(0x98), byte_token(0x80), testing::kSpmFirstPiece + 1};
  EXPECT_EQ(stream(t, ids), (std::vector<std::string>{"", "", "", "😀", "a", ""}));

  Detokenizer detokenizer(t);
  EXPECT_EQ(detokenizer.push(byte_token(0xF0)), "");
  EXPECT_EQ(detokenizer.pending_bytes(), 1u);
  EXPECT_EQ(detokenizer.push(byte_token(0x9F)), "");
  EXPECT_EQ(detokenizer.pending_bytes(), 2u);
}

TEST(Detokenizer, CjkSplitAcrossByteLevelBpeTokens) {
  // 中 = E4 B8 AD, 文 = E6 96 87; a merge joins AD with E6, so a token spans two characters.
  const std::string b_ad = testing::byte_chars_joined("\xAD"), b_e6 = testing::byte_chars_joined("\xE6");
  const Tokenizer t = make(testing::bpe_vocabulary({{b_ad, b_e6}}, {}, "qwen2"));
  const Ids ids = t.encode("中文", AddSpecial::kNo, ParseSpecial::kNo).value();
  ASSERT_EQ(ids, (Ids{0xE4, 0xB8, 256, 0x96, 0x87}));
  EXPECT_EQ(stream(t, ids), (std::vector<std::string>{"", "", "中", "", "文", ""}));
}

TEST(Detokenizer, InvalidBytesBecomeReplacementCharacters) {
  const Tokenizer t = make(testing::spm_vocabulary({"▁", "a"}));
  const TokenId a = testing::kSpmFirstPiece + 1;
  // A stray continuation byte; a lead byte interrupted by "a"; a lead byte left at the end.
  EXPECT_EQ(stream(t, {byte_token(0x80), a}), (std::vector<std::string>{"\xEF\xBF\xBD", "a", ""}));
  EXPECT_EQ(stream(t, {byte_token(0xE4), a}), (std::vector<std::string>{"",
                                                                        "\xEF\xBF\xBD"
                                                                        "a",
                                                                        ""}));
  EXPECT_EQ(stream(t, {a, byte_token(0xE4), byte_token(0xB8)}),
            (std::vector<std::string>{"a", "", "", "\xEF\xBF\xBD\xEF\xBF\xBD"}));
  // Overlong and surrogate forms are refused as they arrive.
  EXPECT_EQ(joined(stream(t, {byte_token(0xC0), byte_token(0x80)})), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(joined(stream(t, {byte_token(0xED), byte_token(0xA0), byte_token(0x80)})),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Detokenizer, KeepsLeadingSpacesAndHidesControlTokens) {
  const Tokenizer t = make(testing::spm_vocabulary({"▁t", "he", "▁the"}));
  const TokenId the = testing::kSpmFirstPiece + 2;
  EXPECT_EQ(joined(stream(t, {1, the, the, 2})), " the the");
  EXPECT_EQ(joined(stream(t, {1, the, 2}, RenderSpecial::kYes)), "<s> the</s>");
  EXPECT_EQ(joined(stream(t, {the, 123456, -5})), " the");  // ids outside the vocabulary add nothing
}

TEST(Detokenizer, StreamsWhatDecodeGivesForVariedText) {
  const Tokenizer spm = make(testing::spm_vocabulary({"▁t", "he", "▁the", "▁", "e", "中", "é"}));
  std::string corpus;
  for (const std::string& text : testing::varied_texts()) corpus += text;
  const Tokenizer bpe =
      make(testing::bpe_vocabulary(testing::learn_merges(corpus, PreTokenizer::kLlama3, 200), {}, "llama-bpe"));
  for (const std::string& text : testing::varied_texts()) {
    const Ids spm_ids = spm.encode(text, AddSpecial::kYes, ParseSpecial::kNo).value();
    // The stream keeps the space SentencePiece put in front of the text.
    const std::string spm_text = joined(stream(spm, spm_ids));
    EXPECT_EQ(spm_text, text.empty() ? "" : " " + text) << text;
    const Ids bpe_ids = bpe.encode(text, AddSpecial::kNo, ParseSpecial::kNo).value();
    EXPECT_EQ(joined(stream(bpe, bpe_ids)), text) << text;
  }
}

TEST(Detokenizer, ReusableAfterFinish) {
  const Tokenizer t = make(testing::spm_vocabulary({"▁", "a"}));
  Detokenizer detokenizer(t);
  EXPECT_EQ(detokenizer.push(byte_token(0xE4)), "");
  EXPECT_EQ(detokenizer.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(detokenizer.push(testing::kSpmFirstPiece + 1), "a");
  EXPECT_EQ(detokenizer.finish(), "");
}

}  // namespace
}  // namespace headroom::infer
