// Private to the tokenizer: the tables Tokenizer::create builds, and the two
// encoders that read them (spm_encoder.cpp, bpe_encoder.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "infer/tokenizer/tokenizer.h"

namespace headroom::infer {

inline constexpr TokenId kNoToken = -1;

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

struct Tokenizer::Impl {
  Vocabulary vocab;
  PreTokenizer pre = PreTokenizer::kDefault;

  // Text -> id, for every non-empty token of any type (llama.cpp matches
  // merges against all of them too).
  std::unordered_map<std::string, TokenId, StringHash, std::equal_to<>> ids;
  // Each token's piece with RenderSpecial::kYes, and whether it is hidden
  // (control, unknown) with RenderSpecial::kNo.
  std::vector<std::string> pieces;
  std::vector<bool> hidden;
  // Control, unknown and user-defined tokens, longest text first (then by id).
  std::vector<TokenId> specials;

  // SPM: the byte-fallback token of each byte ("<0xXX>", else the one-byte
  // token), kNoToken where there is neither.
  std::array<TokenId, 256> byte_tokens{};

  // BPE: the token of each byte's GPT-2 character, kNoToken where missing;
  // and the merges, (left id, right id) -> rank and merged id.
  std::array<TokenId, 256> byte_char_tokens{};
  struct Merge {
    std::int32_t rank;
    TokenId result;
  };
  std::unordered_map<std::uint64_t, Merge> merges;

  static std::uint64_t merge_key(TokenId left, TokenId right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) | static_cast<std::uint32_t>(right);
  }
  TokenId lookup(std::string_view text) const {
    auto it = ids.find(text);
    return it == ids.end() ? kNoToken : it->second;
  }
  float score(TokenId id) const { return vocab.scores.empty() ? 0.0f : vocab.scores[id]; }
  TokenType type(TokenId id) const { return vocab.types.empty() ? TokenType::kNormal : vocab.types[id]; }
};

// Appends the tokens of one stretch of text with no special tokens in it.
// SPM takes the text already escaped (prefix space added, spaces as "▁").
// Both fail only when a byte has no token and there is no unknown token.
Status spm_encode(const Tokenizer::Impl& impl, std::string_view escaped, std::vector<TokenId>& out);
Status bpe_encode(const Tokenizer::Impl& impl, std::string_view text, std::vector<TokenId>& out);

}  // namespace headroom::infer
