#include "infer/tokenizer/vocabulary.h"

#include <gtest/gtest.h>

#include "infer/tokenizer/tokenizer.h"

namespace headroom::infer {
namespace {

TokenizerMetadata llama_metadata() {
  TokenizerMetadata m;
  m.set(gguf_keys::kModel, std::string("llama"));
  m.set(gguf_keys::kTokens, std::vector<std::string>{"<unk>", "<s>", "</s>", "<0x0A>", "▁", "a", "▁a"});
  m.set(gguf_keys::kScores, std::vector<float>{0, 0, 0, 0, -1, -2, -3});
  m.set(gguf_keys::kTokenType, std::vector<std::int32_t>{2, 3, 3, 6, 1, 1, 1});
  return m;
}

TEST(VocabularyFromMetadata, LlamaDefaultsAsLlamaCpp) {
  Result<Vocabulary> vocab = vocabulary_from_metadata(llama_metadata());
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().to_string();
  EXPECT_EQ(vocab->kind, VocabKind::kSpm);
  EXPECT_EQ(vocab->tokens.size(), 7u);
  EXPECT_EQ(vocab->types[3], TokenType::kByte);
  EXPECT_EQ(vocab->scores[6], -3.0f);
  EXPECT_EQ(vocab->bos, 1);
  EXPECT_EQ(vocab->eos, 2);
  EXPECT_EQ(vocab->unk, 0);
  EXPECT_EQ(vocab->pad, std::nullopt);
  EXPECT_TRUE(vocab->add_bos);
  EXPECT_FALSE(vocab->add_eos);
  EXPECT_TRUE(vocab->add_space_prefix);
  EXPECT_TRUE(vocab->merges.empty());

  Result<Tokenizer> tokenizer = Tokenizer::create(std::move(vocab).value());
  ASSERT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
  EXPECT_EQ(tokenizer->encode("a a", AddSpecial::kYes, ParseSpecial::kNo).value(), (std::vector<TokenId>{1, 6, 6}));
}

TEST(VocabularyFromMetadata, ExplicitKeysOverrideDefaults) {
  TokenizerMetadata m = llama_metadata();
  m.set(gguf_keys::kBosId, std::int64_t{2});
  m.set(gguf_keys::kEosId, std::int64_t{1});
  m.set(gguf_keys::kPadId, std::int64_t{0});
  m.set(gguf_keys::kAddBos, false);
  m.set(gguf_keys::kAddEos, true);
  m.set(gguf_keys::kAddSpacePrefix, false);
  m.set(gguf_keys::kScores, std::vector<std::int32_t>{0, 0, 0, 0, -1, -2, -3, -4});  // i32, one too many: cut
  Result<Vocabulary> vocab = vocabulary_from_metadata(m);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().to_string();
  EXPECT_EQ(vocab->bos, 2);
  EXPECT_EQ(vocab->eos, 1);
  EXPECT_EQ(vocab->pad, 0);
  EXPECT_FALSE(vocab->add_bos);
  EXPECT_TRUE(vocab->add_eos);
  EXPECT_FALSE(vocab->add_space_prefix);
  EXPECT_EQ(vocab->scores.size(), 7u);
  EXPECT_EQ(vocab->scores[6], -3.0f);
}

TEST(VocabularyFromMetadata, DefaultIdsOutsideASmallVocabularyAreDropped) {
  TokenizerMetadata m;
  m.set(gguf_keys::kModel, std::string("llama"));
  m.set(gguf_keys::kTokens, std::vector<std::string>{"<unk>", "a"});
  Result<Vocabulary> vocab = vocabulary_from_metadata(m);
  ASSERT_TRUE(vocab.is_ok());
  EXPECT_EQ(vocab->bos, 1);
  EXPECT_EQ(vocab->eos, std::nullopt);  // the default 2 is past the end
  EXPECT_EQ(vocab->unk, 0);
}

TEST(VocabularyFromMetadata, IdsOutsideTheVocabularyCountAsAbsent) {
  TokenizerMetadata m = llama_metadata();
  m.set(gguf_keys::kPadId, std::int64_t{0xFFFFFFFF});  // how files say "no padding token"
  m.set(gguf_keys::kBosId, std::int64_t{7});           // past the end: the default stays
  m.set(gguf_keys::kUnkId, std::int64_t{-1});
  Result<Vocabulary> vocab = vocabulary_from_metadata(m);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().to_string();
  EXPECT_EQ(vocab->pad, std::nullopt);
  EXPECT_EQ(vocab->bos, 1);
  EXPECT_EQ(vocab->unk, 0);
}

TEST(VocabularyFromMetadata, Gpt2WithTheLlama3PreTokenizer) {
  TokenizerMetadata m;
  m.set(gguf_keys::kModel, std::string("gpt2"));
  m.set(gguf_keys::kPre, std::string("llama-bpe"));
  m.set(gguf_keys::kTokens, std::vector<std::string>{"a", "b", "ab", "<|begin_of_text|>"});
  m.set(gguf_keys::kTokenType, std::vector<std::int32_t>{1, 1, 1, 3});
  m.set(gguf_keys::kMerges, std::vector<std::string>{"a b"});
  m.set(gguf_keys::kBosId, std::int64_t{3});
  Result<Vocabulary> vocab = vocabulary_from_metadata(m);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().to_string();
  EXPECT_EQ(vocab->kind, VocabKind::kBpe);
  EXPECT_EQ(vocab->pre, "llama-bpe");
  EXPECT_TRUE(vocab->add_bos);  // Llama 3's default
  EXPECT_FALSE(vocab->add_space_prefix);
  EXPECT_EQ(vocab->eos, std::nullopt);  // no default for gpt2 (llama.cpp's is 11)
  EXPECT_EQ(vocab->unk, std::nullopt);
  EXPECT_EQ(vocab->merges, std::vector<std::string>{"a b"});

  m.set(gguf_keys::kPre, std::string("qwen2"));
  EXPECT_FALSE(vocabulary_from_metadata(m)->add_bos);
}

TEST(VocabularyFromMetadata, ClearErrors) {
  const auto error_of = [](const TokenizerMetadata& m) { return vocabulary_from_metadata(m).status().message(); };

  TokenizerMetadata m = llama_metadata();
  m.values.erase(std::string(gguf_keys::kModel));
  EXPECT_NE(error_of(m).find("tokenizer.ggml.model' is missing"), std::string::npos);

  m = llama_metadata();
  m.set(gguf_keys::kModel, std::string("bert"));
  EXPECT_NE(error_of(m).find("'bert' is not supported"), std::string::npos);

  m = llama_metadata();
  m.set(gguf_keys::kModel, std::int64_t{1});
  EXPECT_NE(error_of(m).find("is not a string"), std::string::npos);

  m = llama_metadata();
  m.values.erase(std::string(gguf_keys::kTokens));
  EXPECT_NE(error_of(m).find("tokens' is missing"), std::string::npos);

  m = llama_metadata();
  m.set(gguf_keys::kTokenType, std::vector<std::int32_t>{1, 1});
  EXPECT_NE(error_of(m).find("has 2 entries for 7 tokens"), std::string::npos);

  m = llama_metadata();
  m.set(gguf_keys::kAddBos, std::int64_t{1});
  EXPECT_NE(error_of(m).find("is not a bool"), std::string::npos);

  m = llama_metadata();
  m.set(gguf_keys::kModel, std::string("gpt2"));
  EXPECT_NE(error_of(m).find("merges' is missing"), std::string::npos);

  m.set(gguf_keys::kMerges, std::vector<std::string>{});
  m.set(gguf_keys::kPre, std::string("tekken"));
  EXPECT_NE(error_of(m).find("'tekken' is not supported"), std::string::npos);
}

}  // namespace
}  // namespace headroom::infer
