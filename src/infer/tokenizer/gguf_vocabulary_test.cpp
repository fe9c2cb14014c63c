#include "infer/tokenizer/gguf_vocabulary.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "infer/gguf/gguf_writer.h"
#include "infer/tokenizer/detokenizer.h"
#include "infer/tokenizer/tokenizer.h"
#include "infer/gguf/gguf_test_util.h"

namespace headroom::infer {
namespace {

using testing::stories_path;

class Stories260K : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::filesystem::path path = stories_path();
    ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: the repository ships it (models/)";
    Result<std::unique_ptr<GgufFile>> file = GgufFile::open(path.string());
    ASSERT_TRUE(file.is_ok()) << file.status().to_string();
    file_ = std::move(file).value();
  }
  std::unique_ptr<GgufFile> file_;
};

TEST_F(Stories260K, VocabularyAsLlamaCppReadsIt) {
  Result<Vocabulary> vocab = vocabulary_from_gguf(*file_);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().to_string();
  EXPECT_EQ(vocab->kind, VocabKind::kSpm);
  EXPECT_EQ(vocab->tokens.size(), 512u);
  EXPECT_EQ(vocab->scores.size(), 512u);
  EXPECT_EQ(vocab->types.size(), 512u);
  EXPECT_EQ(vocab->bos, 1);
  EXPECT_EQ(vocab->eos, 2);
  EXPECT_EQ(vocab->unk, 0);
  EXPECT_EQ(vocab->pad, std::nullopt);  // the file says 0xFFFFFFFF
  EXPECT_TRUE(vocab->add_bos);
  EXPECT_TRUE(vocab->add_space_prefix);
  EXPECT_EQ(vocab->types[3], TokenType::kByte);  // <0x00>
}

TEST_F(Stories260K, EncodesAsSentencePieceDoes) {
  Result<Vocabulary> vocab = vocabulary_from_gguf(*file_);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().to_string();
  Result<Tokenizer> tokenizer = Tokenizer::create(std::move(vocab).value());
  ASSERT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();

  const std::string text = "Once upon a time, there was a little girl named Lily";
  const std::vector<TokenId> ids = tokenizer->encode(text, AddSpecial::kYes, ParseSpecial::kNo).value();
  // SentencePiece 0.1.97 given this vocabulary (BPE, byte fallback, identity normalizer, dummy prefix):
  // ▁Once ▁upon ▁a ▁time , ▁there ▁was ▁a ▁little ▁g ir l ▁named ▁Lily, after <s>.
  EXPECT_EQ(ids, (std::vector<TokenId>{1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317}));
  EXPECT_EQ(tokenizer->decode(ids), text);

  Detokenizer detokenizer(*tokenizer);
  std::string streamed;
  for (const TokenId id : ids) streamed += detokenizer.push(id);
  streamed += detokenizer.finish();
  EXPECT_EQ(streamed, " " + text);

  // Characters outside its 512 tokens go through byte fallback and come back whole.
  for (const std::string other : {"naïve café, 中文 😀", "  two  spaces\n\n\tend  ", "Lily's mom said, \"Don't!\""}) {
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(other, AddSpecial::kYes, ParseSpecial::kNo).value()), other);
  }
}

TEST(TokenizerMetadataFromGguf, WidensIntegerTypes) {
  GgufWriter writer;
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "▁", "a"};
  const std::vector<std::uint8_t> types = {2, 3, 3, 1, 1};
  const std::vector<double> scores = {0, 0, 0, -1, -2};
  ASSERT_TRUE(writer.add_string("general.architecture", "llama").is_ok());
  ASSERT_TRUE(writer.add_string("tokenizer.ggml.model", "llama").is_ok());
  ASSERT_TRUE(writer.add_string_array("tokenizer.ggml.tokens", tokens).is_ok());
  ASSERT_TRUE(writer.add_array<std::uint8_t>("tokenizer.ggml.token_type", types).is_ok());
  ASSERT_TRUE(writer.add_array<double>("tokenizer.ggml.scores", scores).is_ok());
  ASSERT_TRUE(writer.add<std::uint64_t>("tokenizer.ggml.bos_token_id", 1).is_ok());
  ASSERT_TRUE(writer.add<std::int16_t>("tokenizer.ggml.eos_token_id", 2).is_ok());
  ASSERT_TRUE(writer.add<bool>("tokenizer.ggml.add_bos_token", false).is_ok());
  const std::string bytes = writer.to_bytes();
  Result<std::unique_ptr<GgufFile>> file = GgufFile::parse(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()), "test");
  ASSERT_TRUE(file.is_ok()) << file.status().to_string();

  Result<TokenizerMetadata> metadata = tokenizer_metadata_from_gguf(**file);
  ASSERT_TRUE(metadata.is_ok()) << metadata.status().to_string();
  EXPECT_EQ(metadata->find("general.architecture"), nullptr);  // only tokenizer.ggml.* keys
  Result<Vocabulary> vocab = vocabulary_from_metadata(*metadata);
  ASSERT_TRUE(vocab.is_ok()) << vocab.status().to_string();
  EXPECT_EQ(vocab->types, (std::vector<TokenType>{TokenType::kUnknown, TokenType::kControl, TokenType::kControl,
                                                  TokenType::kNormal, TokenType::kNormal}));
  EXPECT_EQ(vocab->scores[4], -2.0f);
  EXPECT_EQ(vocab->bos, 1);
  EXPECT_EQ(vocab->eos, 2);
  EXPECT_FALSE(vocab->add_bos);
}

}  // namespace
}  // namespace headroom::infer
