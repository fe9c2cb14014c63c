#include "infer/tokenizer/pre_tokenizer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "infer/tokenizer/unicode.h"

namespace headroom::infer {
namespace {

// The words pre_tokenize cuts `text` into, as UTF-8 strings.
std::vector<std::string> words_of(PreTokenizer pre, std::string_view text) {
  const std::vector<char32_t> cps = unicode::to_code_points(text);
  std::vector<std::string> words;
  std::size_t begin = 0;
  for (const std::size_t length : pre_tokenize(pre, cps)) {
    EXPECT_GT(length, 0u);
    std::string word;
    for (std::size_t i = begin; i < begin + length; ++i) unicode::append_utf8(word, cps[i]);
    words.push_back(word);
    begin += length;
  }
  EXPECT_EQ(begin, cps.size());
  return words;
}

struct Case {
  PreTokenizer pre;
  std::string text;
  std::vector<std::string> words;
};

// Each expectation is what Python's `regex` module gives for the Hugging Face
// expression (or chain of expressions) the pre-tokenizer stands for; a random
// differential test of 15,000 strings over the same alphabet agreed too.
TEST(PreTokenize, MatchesTheReferenceExpressions) {
  const std::vector<Case> cases = {
      {PreTokenizer::kLlama3,
       "Hello world! I'm 12345 years old.",
       {"Hello", " world", "!", " I", "'m", " ", "123", "45", " years", " old", "."}},
      {PreTokenizer::kLlama3, "  two  spaces\n\n\tend  ", {" ", " two", " ", " spaces", "\n\n", "\tend", "  "}},
      {PreTokenizer::kLlama3, "DON'T we'LL", {"DON", "'T", " we", "'LL"}},
      {PreTokenizer::kLlama3, "naïve café, 東京タワー 😀👍", {"naïve", " café", ",", " 東京タワー", " 😀👍"}},
      {PreTokenizer::kLlama3, "x=1+2;  // ok\r\n", {"x", "=", "1", "+", "2", ";", " ", " //", " ok", "\r\n"}},
      {PreTokenizer::kLlama3, "3.14159 ٣٤٥ ²", {"3", ".", "141", "59", " ", "٣٤٥", " ", "²"}},
      {PreTokenizer::kQwen2,
       "Hello world! I'm 12345 years old.",
       {"Hello", " world", "!", " I", "'m", " ", "1", "2", "3", "4", "5", " years", " old", "."}},
      {PreTokenizer::kQwen2, "  two  spaces\n\n\tend  ", {" ", " two", " ", " spaces", "\n\n", "\tend", "  "}},
      {PreTokenizer::kQwen2, "DON'T we'LL", {"DON", "'T", " we", "'LL"}},
      {PreTokenizer::kQwen2, "naïve café, 東京タワー 😀👍", {"naïve", " café", ",", " 東京タワー", " 😀👍"}},
      {PreTokenizer::kQwen2, "x=1+2;  // ok\r\n", {"x", "=", "1", "+", "2", ";", " ", " //", " ok", "\r\n"}},
      {PreTokenizer::kQwen2, "3.14159 ٣٤٥ ²", {"3", ".", "1", "4", "1", "5", "9", " ", "٣", "٤", "٥", " ", "²"}},
      {PreTokenizer::kGpt2,
       "Hello world! I'm 12345 years old.",
       {"Hello", " world", "!", " I", "'m", " 12345", " years", " old", "."}},
      {PreTokenizer::kGpt2, "  two  spaces\n\n\tend  ", {" ", " two", " ", " spaces", "\n\n", "\t", "end", "  "}},
      {PreTokenizer::kGpt2, "DON'T we'LL", {"DON", "'", "T", " we", "'", "LL"}},
      {PreTokenizer::kGpt2, "naïve café, 東京タワー 😀👍", {"naïve", " café", ",", " 東京タワー", " 😀👍"}},
      {PreTokenizer::kGpt2, "x=1+2;  // ok\r\n", {"x", "=", "1", "+", "2", ";", " ", " //", " ok", "\r\n"}},
      {PreTokenizer::kGpt2, "3.14159 ٣٤٥ ²", {"3", ".", "14159", " ٣٤٥", " ²"}},
      {PreTokenizer::kSmollm,
       "Hello world! I'm 12345 years old.",
       {"Hello", " world", "!", " I", "'m", " ", "1", "2", "3", "4", "5", " years", " old", "."}},
      {PreTokenizer::kSmollm, "  two  spaces\n\n\tend  ", {" ", " two", " ", " spaces", "\n\n", "\t", "end", "  "}},
      {PreTokenizer::kSmollm, "DON'T we'LL", {"DON", "'", "T", " we", "'", "LL"}},
      {PreTokenizer::kSmollm, "naïve café, 東京タワー 😀👍", {"naïve", " café", ",", " 東京タワー", " 😀👍"}},
      {PreTokenizer::kSmollm, "x=1+2;  // ok\r\n", {"x", "=", "1", "+", "2", ";", " ", " //", " ok", "\r\n"}},
      {PreTokenizer::kSmollm, "3.14159 ٣٤٥ ²", {"3", ".", "1", "4", "1", "5", "9", " ", "٣", "٤", "٥", " ", "²"}},
      {PreTokenizer::kDefault,
       "Hello world! I'm 12345 years old.",
       {"Hello", " world", "!", " I", "'", "m", " ", "123", "45", " years", " old", "."}},
      {PreTokenizer::kDefault, "  two  spaces\n\n\tend  ", {" ", " two", " ", " spaces", "\n\n", "\t", "end", "  "}},
      {PreTokenizer::kDefault, "DON'T we'LL", {"DON", "'", "T", " we", "'", "LL"}},
      {PreTokenizer::kDefault, "naïve café, 東京タワー 😀👍", {"naïve", " café", ",", " 東京タワー", " 😀👍"}},
      {PreTokenizer::kDefault, "x=1+2;  // ok\r\n", {"x", "=", "1", "+", "2", ";", "  ", "//", " ok", "\r\n"}},
      {PreTokenizer::kDefault, "3.14159 ٣٤٥ ²", {"3", ".", "141", "59", " ", "٣٤٥", " ", "²"}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(words_of(c.pre, c.text), c.words) << pre_tokenizer_name(c.pre) << ": " << c.text;
  }
}

TEST(PreTokenize, EmptyTextHasNoWords) {
  for (PreTokenizer pre : {PreTokenizer::kDefault, PreTokenizer::kGpt2, PreTokenizer::kLlama3, PreTokenizer::kQwen2,
                           PreTokenizer::kSmollm}) {
    EXPECT_TRUE(pre_tokenize(pre, {}).empty());
  }
}

TEST(PreTokenize, LongRunsStayLinear) {
  // One long word and one long whitespace run: each is a single word.
  const std::string letters(100000, 'a');
  EXPECT_EQ(words_of(PreTokenizer::kLlama3, letters).size(), 1u);
  const std::string spaces(100000, ' ');
  EXPECT_EQ(words_of(PreTokenizer::kLlama3, spaces).size(), 1u);
  // Digits in threes.
  EXPECT_EQ(words_of(PreTokenizer::kLlama3, std::string(3000, '7')).size(), 1000u);
}

TEST(PreTokenizerNames, AsLlamaCppMapsThem) {
  EXPECT_EQ(pre_tokenizer_from_name("llama-bpe"), PreTokenizer::kLlama3);
  EXPECT_EQ(pre_tokenizer_from_name("llama3"), PreTokenizer::kLlama3);
  EXPECT_EQ(pre_tokenizer_from_name("qwen2"), PreTokenizer::kQwen2);
  EXPECT_EQ(pre_tokenizer_from_name("smollm"), PreTokenizer::kSmollm);
  EXPECT_EQ(pre_tokenizer_from_name("gpt-2"), PreTokenizer::kGpt2);
  EXPECT_EQ(pre_tokenizer_from_name("default"), PreTokenizer::kDefault);
  EXPECT_EQ(pre_tokenizer_from_name(""), PreTokenizer::kDefault);
  EXPECT_EQ(pre_tokenizer_from_name("deepseek-coder"), std::nullopt);
  EXPECT_TRUE(pre_tokenizer_ignores_merges(PreTokenizer::kLlama3));
  EXPECT_FALSE(pre_tokenizer_ignores_merges(PreTokenizer::kQwen2));
}

}  // namespace
}  // namespace headroom::infer
