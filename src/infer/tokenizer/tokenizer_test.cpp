#include "infer/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/text.h"
#include "infer/tokenizer/detokenizer.h"
#include "infer/tokenizer/test_vocabularies.h"

namespace headroom::infer {
namespace {

using testing::bpe_vocabulary;
using testing::byte_chars_joined;
using testing::kSpmFirstPiece;
using testing::spm_vocabulary;
using Ids = std::vector<TokenId>;

Tokenizer make(Vocabulary vocab) {
  Result<Tokenizer> tokenizer = Tokenizer::create(std::move(vocab));
  EXPECT_TRUE(tokenizer.is_ok()) << tokenizer.status().to_string();
  return std::move(tokenizer).value();
}

Ids encode(const Tokenizer& t, std::string_view text, AddSpecial add = AddSpecial::kNo,
           ParseSpecial parse = ParseSpecial::kNo) {
  Result<Ids> ids = t.encode(text, add, parse);
  EXPECT_TRUE(ids.is_ok()) << ids.status().to_string();
  return ids.is_ok() ? *ids : Ids{};
}

TokenId byte_token(int byte) { return 3 + byte; }  // in spm_vocabulary
TokenId piece(int index) { return kSpmFirstPiece + index; }

// ---------------------------------------------------------------- SPM

TEST(SpmEncode, MergesHighestScoreFirst) {
  // Scores fall in list order: "▁t" merges first, "▁sat" last.
  const Tokenizer t = make(spm_vocabulary({"▁t", "he", "▁the", "at", "▁c", "▁cat", "▁s", "▁sat"}));
  // "▁the▁cat▁sat": ▁t, he, then ▁the; at (cat, then sat: leftmost first); ▁c, ▁cat; ▁s, ▁sat.
  EXPECT_EQ(encode(t, "the cat sat"), (Ids{piece(2), piece(5), piece(7)}));
  EXPECT_EQ(encode(t, "the cat sat", AddSpecial::kYes), (Ids{1, piece(2), piece(5), piece(7)}));
}

TEST(SpmEncode, ScoreBeatsPosition) {
  // "bc" outscores "ab", so "▁abc" is ▁ a bc, not ▁ ab c.
  const Tokenizer t = make(spm_vocabulary({"bc", "ab", "a", "b", "c", "▁"}));
  EXPECT_EQ(encode(t, "abc"), (Ids{piece(5), piece(2), piece(0)}));
}

TEST(SpmEncode, EqualScoresMergeLeftmostFirst) {
  const Tokenizer t = make(spm_vocabulary({"aa", "a", "▁"}));
  EXPECT_EQ(encode(t, "aaa"), (Ids{piece(2), piece(0), piece(1)}));
}

TEST(SpmEncode, ByteFallbackForCharactersNotInTheVocabulary) {
  const Tokenizer t = make(spm_vocabulary({"▁"}));
  // 中 is E4 B8 AD; 😀 is F0 9F 98 80.
  EXPECT_EQ(encode(t, "中😀"), (Ids{piece(0), byte_token(0xE4), byte_token(0xB8), byte_token(0xAD), byte_token(0xF0),
                                   byte_token(0x9F), byte_token(0x98), byte_token(0x80)}));
  EXPECT_EQ(t.decode(encode(t, "中😀")), "中😀");
}

TEST(SpmEncode, SpacePrefixOnlyWhenTheVocabularyAsksForIt) {
  Vocabulary vocab = spm_vocabulary({"▁", "a", "▁a"});
  const Tokenizer with_prefix = make(vocab);
  EXPECT_EQ(encode(with_prefix, "a a"), (Ids{piece(2), piece(2)}));
  EXPECT_EQ(encode(with_prefix, ""), Ids{});  // no text, no prefix
  EXPECT_EQ(encode(with_prefix, "", AddSpecial::kYes), Ids{1});
  vocab.add_space_prefix = false;
  const Tokenizer without = make(vocab);
  EXPECT_EQ(encode(without, "a a"), (Ids{piece(1), piece(2)}));
  EXPECT_EQ(without.decode(encode(without, "a a")), "a a");
}

TEST(SpmEncode, SpecialTokensParsedOnlyWhenAsked) {
  const Tokenizer t = make(spm_vocabulary({"▁t", "he", "▁the", "▁"}));
  // As llama.cpp: each stretch after a special token gets the space prefix too.
  EXPECT_EQ(encode(t, "<s>the</s>the", AddSpecial::kNo, ParseSpecial::kYes), (Ids{1, piece(2), 2, piece(2)}));
  const Ids plain = encode(t, "<s>the</s>");
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  EXPECT_EQ(t.decode(plain), "<s>the</s>");
}

TEST(SpmEncode, InvalidUtf8RoundTripsThroughByteTokens) {
  const Tokenizer t = make(spm_vocabulary({"▁", "a", "b"}));
  // Each invalid byte is a symbol of its own and goes out as its byte token; "b" is still a piece.
  const std::string text =
      "a\xE4\xFF"
      "b\x80 \xF8 b";
  const Ids ids = encode(t, text);
  EXPECT_EQ(ids, (Ids{piece(0), piece(1), byte_token(0xE4), byte_token(0xFF), piece(2), byte_token(0x80), piece(0),
                      byte_token(0xF8), piece(0), piece(2)}));
  EXPECT_EQ(t.decode(ids), text);
}

TEST(SpmEncode, UnknownTokenWithoutByteTokens) {
  Vocabulary vocab;
  vocab.kind = VocabKind::kSpm;
  vocab.tokens = {"<unk>", "▁", "a"};
  vocab.types = {TokenType::kUnknown, TokenType::kNormal, TokenType::kNormal};
  vocab.unk = 0;
  vocab.add_space_prefix = true;
  const Tokenizer t = make(vocab);
  EXPECT_EQ(encode(t, "a中a"), (Ids{1, 2, 0, 2}));  // one unknown token for the whole character

  vocab.unk.reset();
  vocab.types[0] = TokenType::kNormal;
  const Tokenizer no_unk = make(vocab);
  const Result<Ids> ids = no_unk.encode("a中", AddSpecial::kNo, ParseSpecial::kNo);
  ASSERT_FALSE(ids.is_ok());
  EXPECT_EQ(ids.status().code(), ErrorCode::kInvalidArgument);
}

TEST(SpmDecode, DropsTheOneLeadingSpaceEncodeAdded) {
  const Tokenizer t = make(spm_vocabulary({"▁t", "he", "▁the", "▁"}));
  EXPECT_EQ(t.decode(Ids{piece(2), piece(2)}), "the the");
  EXPECT_EQ(t.decode(Ids{1, piece(2), piece(2)}), "the the");  // after bos too (llama.cpp: " the the")
  EXPECT_EQ(t.decode(Ids{1, piece(2)}, RenderSpecial::kYes), "<s>the");
  EXPECT_EQ(t.decode(Ids{piece(3), piece(2)}), " the");  // text that began with a space keeps it
  EXPECT_EQ(t.token_to_piece(piece(2)), " the");         // pieces keep theirs
  EXPECT_EQ(t.token_to_piece(1), "");
  EXPECT_EQ(t.token_to_piece(1, RenderSpecial::kYes), "<s>");
  EXPECT_EQ(t.token_to_piece(byte_token(0x41)), "A");
}

TEST(SpmDecode, LiteralSpaceMarkReadsAsASpace) {
  // SentencePiece and llama.cpp alike: "▁" in the text is the space mark.
  const Tokenizer t = make(spm_vocabulary({"▁"}));
  EXPECT_EQ(t.decode(encode(t, "a▁b")), "a b");
}

TEST(SpmRoundTrip, VariedText) {
  const Tokenizer t =
      make(spm_vocabulary({"▁t", "he", "▁the", "at",  "▁c", "▁cat", "▁s",    "▁sat", "▁",  "e",  "t",
                           "a",  "▁a", "in",   "▁in", "é",  "▁caf", "▁café", "中",   "文", "▁▁", "▁▁▁▁"}));
  for (const std::string& text : testing::varied_texts()) {
    EXPECT_EQ(t.decode(encode(t, text)), text) << text;
    EXPECT_EQ(t.decode(encode(t, text, AddSpecial::kYes)), text) << text;
  }
}

// ---------------------------------------------------------------- BPE

// Ids: bytes 0..255, then 256 Ġt, 257 he, 258 Ġthe, 259 in, 260 ing.
const std::vector<std::pair<std::string, std::string>> kHandMerges = {
    {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"i", "n"}, {"in", "g"}};

TEST(BpeEncode, MergesByRank) {
  const Tokenizer t = make(bpe_vocabulary(kHandMerges, {}, "qwen2"));
  // "the" | " thing": t·he (no "t he" merge); Ġt, then in, then ing.
  EXPECT_EQ(encode(t, "the thing"), (Ids{'t', 257, 256, 'h', 260}));
  EXPECT_EQ(encode(t, "the the"), (Ids{'t', 257, 258}));
  EXPECT_EQ(t.decode(encode(t, "the thing")), "the thing");
}

TEST(BpeEncode, LowerRankBeatsPosition) {
  // "b c" ranks before "a b": "abc" is a·bc.
  const Tokenizer t = make(bpe_vocabulary({{"b", "c"}, {"a", "b"}}, {}, "qwen2"));
  EXPECT_EQ(encode(t, "abc"), (Ids{'a', 256}));
  EXPECT_EQ(encode(t, "abab"), (Ids{257, 257}));
}

TEST(BpeEncode, Llama3TakesWholeWordTokensOverMerges) {
  Vocabulary vocab = bpe_vocabulary(kHandMerges, {}, "llama-bpe");
  vocab.tokens.push_back("Ġthing");  // 261, reachable by no merge
  vocab.types.push_back(TokenType::kNormal);
  EXPECT_EQ(encode(make(vocab), " thing"), Ids{261});
  vocab.pre = "qwen2";
  EXPECT_EQ(encode(make(vocab), " thing"), (Ids{256, 'h', 260}));
}

TEST(BpeEncode, PreTokenizerBoundsTheMerges) {
  // "a" "1" never merge across the letter/number word boundary.
  const Tokenizer t = make(bpe_vocabulary({{"a", "1"}, {"1", "2"}}, {}, "llama-bpe"));
  EXPECT_EQ(encode(t, "a12"), (Ids{'a', 257}));
  const Tokenizer qwen = make(bpe_vocabulary({{"a", "1"}, {"1", "2"}}, {}, "qwen2"));
  EXPECT_EQ(encode(qwen, "a12"), (Ids{'a', '1', '2'}));  // Qwen2: one digit a word
}

TEST(BpeEncode, SpecialTokens) {
  Vocabulary vocab = bpe_vocabulary(kHandMerges, {"<|begin_of_text|>", "<|eot_id|>", "<|x|>", "<|x|>y"}, "llama-bpe");
  const TokenId bot = 261, eot = 262, x = 263, xy = 264;
  vocab.bos = bot;
  vocab.add_bos = true;
  vocab.tokens.push_back("<tool>");  // 265, user-defined: matched even without ParseSpecial
  vocab.types.push_back(TokenType::kUserDefined);
  const Tokenizer t = make(vocab);

  EXPECT_EQ(encode(t, "the<|eot_id|>", AddSpecial::kYes, ParseSpecial::kYes), (Ids{bot, 't', 257, eot}));
  EXPECT_EQ(encode(t, "<|x|>y<|x|>z", AddSpecial::kNo, ParseSpecial::kYes), (Ids{xy, x, 'z'}));  // longest first
  const Ids plain = encode(t, "<|eot_id|>", AddSpecial::kNo, ParseSpecial::kNo);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), eot), 0);
  EXPECT_EQ(t.decode(plain), "<|eot_id|>");
  EXPECT_EQ(encode(t, "a<tool>b"), (Ids{'a', 265, 'b'}));

  EXPECT_EQ(t.decode(Ids{bot, 't', 257, eot}), "the");
  EXPECT_EQ(t.decode(Ids{bot, 't', 257, eot}, RenderSpecial::kYes), "<|begin_of_text|>the<|eot_id|>");
  EXPECT_EQ(t.decode(Ids{'a', 265, 'b'}), "a<tool>b");
}

TEST(BpeEncode, AddSpecialFollowsTheVocabularyFlags) {
  Vocabulary vocab = bpe_vocabulary({}, {"<s>", "</s>"}, "qwen2");
  vocab.bos = 256;
  vocab.eos = 257;
  const Tokenizer neither = make(vocab);
  EXPECT_EQ(encode(neither, "a", AddSpecial::kYes), Ids{'a'});
  vocab.add_bos = true;
  vocab.add_eos = true;
  const Tokenizer both = make(vocab);
  EXPECT_EQ(encode(both, "a", AddSpecial::kYes), (Ids{256, 'a', 257}));
  EXPECT_EQ(encode(both, "a", AddSpecial::kNo), Ids{'a'});
}

TEST(BpeEncode, InvalidUtf8BecomesReplacementCharacters) {
  const Tokenizer t = make(bpe_vocabulary({}, {}, "llama-bpe"));
  const Ids ids = encode(t,
                         "a\xFF\xC3"
                         "b\xE4\xB8");
  EXPECT_EQ(t.decode(ids),
            "a\xEF\xBF\xBD\xEF\xBF\xBD"
            "b\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(BpeEncode, MissingByteCharacter) {
  Vocabulary vocab = bpe_vocabulary({}, {"<unk>"}, "gpt-2");
  vocab.tokens['z'] = "not z";  // no token for the byte 'z' any more
  vocab.unk = 256;
  EXPECT_EQ(encode(make(vocab), "az"), (Ids{'a', 256}));
  vocab.unk.reset();
  const Result<Ids> ids = make(vocab).encode("az", AddSpecial::kNo, ParseSpecial::kNo);
  ASSERT_FALSE(ids.is_ok());
  EXPECT_EQ(ids.status().code(), ErrorCode::kInvalidArgument);
}

TEST(BpeDecode, PiecesAreBytes) {
  const Tokenizer t = make(bpe_vocabulary(kHandMerges, {}, "qwen2"));
  EXPECT_EQ(t.token_to_piece(256), " t");
  EXPECT_EQ(t.token_to_piece(0xE4), "\xE4");              // half a character: Detokenizer's business
  EXPECT_EQ(t.decode(Ids{256, 257, 99999, -1}), " the");  // ids outside the vocabulary render as nothing
  EXPECT_EQ(t.find(byte_chars_joined(" t")), 256);
  EXPECT_EQ(t.find("nope"), std::nullopt);
}

class BpeRoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(BpeRoundTrip, VariedTextWithLearnedMerges) {
  const std::string pre = GetParam();
  std::string corpus;
  for (const std::string& text : testing::varied_texts()) corpus += text + "\n";
  for (int i = 0; i < 20; ++i) corpus += "the cat sat on the mat. The thing is that the other thing was there. 12345\n";
  const PreTokenizer kind = *pre_tokenizer_from_name(pre);
  const Vocabulary vocab = bpe_vocabulary(testing::learn_merges(corpus, kind, 300), {"<|eot_id|>"}, pre);
  const Tokenizer t = make(vocab);
  for (const std::string& text : testing::varied_texts()) {
    const Ids ids = encode(t, text);
    EXPECT_EQ(t.decode(ids), text) << pre << ": " << text;
    EXPECT_EQ(ids, testing::reference_bpe(vocab, text)) << pre << ": " << text;
    EXPECT_LE(ids.size(), text.size());
  }
  // Learned merges make the corpus's own words short: "the", " cat"... one token each.
  EXPECT_EQ(encode(t, "the cat sat on the mat.").size(), 7u);
}

INSTANTIATE_TEST_SUITE_P(PreTokenizers, BpeRoundTrip,
                         ::testing::Values("llama-bpe", "qwen2", "smollm", "gpt-2", "default"));

// ---------------------------------------------------------------- validation

Status create_status(Vocabulary vocab) { return Tokenizer::create(std::move(vocab)).status(); }

TEST(TokenizerCreate, RejectsBrokenVocabularies) {
  const Vocabulary good = spm_vocabulary({"▁", "a"});
  ASSERT_TRUE(create_status(good).is_ok());

  Vocabulary v = good;
  v.tokens.clear();
  v.types.clear();
  v.scores.clear();
  EXPECT_EQ(create_status(v).code(), ErrorCode::kInvalidArgument);

  v = good;
  v.tokens.back() = "▁";  // duplicate
  EXPECT_NE(create_status(v).message().find("twice"), std::string::npos);

  v = good;
  v.bos = static_cast<TokenId>(v.tokens.size());
  EXPECT_NE(create_status(v).message().find("bos"), std::string::npos);

  v = good;
  v.bos.reset();
  EXPECT_NE(create_status(v).message().find("add_bos"), std::string::npos);

  v = good;
  v.scores.pop_back();
  EXPECT_EQ(create_status(v).code(), ErrorCode::kInvalidArgument);

  v = good;
  v.types.back() = static_cast<TokenType>(7);
  EXPECT_NE(create_status(v).message().find("type 7"), std::string::npos);

  v = good;
  v.types.back() = TokenType::kByte;  // "a" is no <0xXX>
  EXPECT_NE(create_status(v).message().find("<0xXX>"), std::string::npos);

  v = good;
  v.tokens.back() = std::string(kTokenBytesMax + 1, 'x');
  EXPECT_EQ(create_status(v).code(), ErrorCode::kInvalidArgument);
}

TEST(TokenizerCreate, RejectsBrokenMerges) {
  EXPECT_TRUE(create_status(bpe_vocabulary(kHandMerges, {}, "llama-bpe")).is_ok());

  Vocabulary v = bpe_vocabulary(kHandMerges, {}, "llama-bpe");
  v.merges.push_back("Ġthe");  // no space
  EXPECT_NE(create_status(v).message().find("merge 5"), std::string::npos);

  v = bpe_vocabulary(kHandMerges, {}, "llama-bpe");
  v.merges.push_back("x ");
  EXPECT_EQ(create_status(v).code(), ErrorCode::kInvalidArgument);

  v = bpe_vocabulary(kHandMerges, {}, "llama-bpe");
  v.merges.push_back("q z");  // "qz" is no token
  EXPECT_NE(create_status(v).message().find("not all tokens"), std::string::npos);

  v = bpe_vocabulary(kHandMerges, {}, "no-such-pre");
  EXPECT_NE(create_status(v).message().find("pre-tokenizer"), std::string::npos);

  // A repeated merge keeps its first rank.
  v = bpe_vocabulary({{"b", "c"}, {"a", "b"}}, {}, "qwen2");
  v.merges.push_back("b c");
  EXPECT_TRUE(create_status(v).is_ok());
}

TEST(TokenizerEncode, RefusesTextPastTheLimit) {
  const Tokenizer t = make(spm_vocabulary({"▁"}));
  const Result<Ids> ids = t.encode(std::string(kEncodeTextBytesMax + 1, 'a'), AddSpecial::kNo, ParseSpecial::kNo);
  ASSERT_FALSE(ids.is_ok());
  EXPECT_EQ(ids.status().code(), ErrorCode::kPayloadTooLarge);
}

// Random bytes, random UTF-8 and special token texts, mixed: nothing crashes,
// SPM gives the bytes back exactly, BPE gives them back with each invalid
// byte as U+FFFD, and a stream of the ids is valid UTF-8 equal to the same.
TEST(TokenizerEncode, ArbitraryBytesNeverCrash) {
  Vocabulary spm_vocab = spm_vocabulary({"▁t", "he", "▁the", "▁", "e", "中", "é", "<"});
  const Tokenizer spm = make(spm_vocab);
  std::string corpus;
  for (const std::string& text : testing::varied_texts()) corpus += text;
  const Tokenizer bpe = make(
      bpe_vocabulary(testing::learn_merges(corpus, PreTokenizer::kLlama3, 100), {"<|eot_id|>", "<s>"}, "llama-bpe"));
  const std::vector<std::string> fragments = {"<s>",  "</s>",     "<|eot_id|>",   "<unk>", "中",       "😀",
                                              "é",    " ",        "\n",           "the",   "\xF0\x9F", "\xE4",
                                              "\x80", "\xC0\xAF", "\xED\xA0\x80", "'s",    "123"};
  std::mt19937 rng(20240601);
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int parts = static_cast<int>(rng() % 12);
    for (int i = 0; i < parts; ++i) {
      if (rng() % 2 == 0) {
        text += fragments[rng() % fragments.size()];
      } else {
        text.push_back(static_cast<char>(rng() % 256));
      }
    }
    if (text.find("\xE2\x96\x81") != std::string::npos) continue;  // "▁" reads as a space in SPM
    for (const ParseSpecial parse : {ParseSpecial::kNo, ParseSpecial::kYes}) {
      const Result<Ids> spm_ids = spm.encode(text, AddSpecial::kYes, parse);
      const Result<Ids> bpe_ids = bpe.encode(text, AddSpecial::kYes, parse);
      ASSERT_TRUE(spm_ids.is_ok() && bpe_ids.is_ok());
      if (parse == ParseSpecial::kNo) {
        EXPECT_EQ(spm.decode(*spm_ids), text);
        EXPECT_EQ(bpe.decode(*bpe_ids), to_valid_utf8(text));
      }
      Detokenizer stream(bpe, RenderSpecial::kYes);
      std::string streamed;
      for (const TokenId id : *bpe_ids) streamed += stream.push(id);
      streamed += stream.finish();
      EXPECT_EQ(streamed, to_valid_utf8(bpe.decode(*bpe_ids, RenderSpecial::kYes)));
      EXPECT_EQ(to_valid_utf8(streamed), streamed);
    }
  }
}

TEST(TokenizerEncode, LargeInputIsFast) {
  // A megabyte of prose through both kinds: the merge loops are n log n.
  std::string text;
  while (text.size() < 1'000'000) text += "Once upon a time, there was a little girl named Lily. 中文 😀\n";
  const Tokenizer spm = make(spm_vocabulary({"▁t", "he", "▁the", "at", "▁", "e", "a", "▁a", "in"}));
  EXPECT_EQ(spm.decode(encode(spm, text)), text);
  const Tokenizer bpe = make(bpe_vocabulary(kHandMerges, {}, "llama-bpe"));
  EXPECT_EQ(bpe.decode(encode(bpe, text)), text);
}

}  // namespace
}  // namespace headroom::infer
