// Small vocabularies the tokenizer tests build: an SPM one with all 256 byte
// tokens and a few scored pieces, and byte-level BPE ones, hand-written or
// with merges learned from a corpus. For tests only.
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "infer/tokenizer/pre_tokenizer.h"
#include "infer/tokenizer/unicode.h"
#include "infer/tokenizer/vocabulary.h"

namespace headroom::infer::testing {

inline std::string hex_byte_token(int byte) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("<0x") + kHex[byte >> 4] + kHex[byte & 15] + ">";
}

// Ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then `pieces` in order,
// scored -1, -2, ... so that earlier pieces merge first.
inline Vocabulary spm_vocabulary(const std::vector<std::string>& pieces) {
  Vocabulary v;
  v.kind = VocabKind::kSpm;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  v.scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(hex_byte_token(b));
    v.types.push_back(TokenType::kByte);
    v.scores.push_back(0);
  }
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    v.tokens.push_back(pieces[i]);
    v.types.push_back(TokenType::kNormal);
    v.scores.push_back(-1.0f - static_cast<float>(i));
  }
  v.bos = 1;
  v.eos = 2;
  v.unk = 0;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

inline constexpr int kSpmFirstPiece = 259;

// A word in GPT-2's byte characters, one string per byte.
inline std::vector<std::string> byte_chars(std::string_view bytes) {
  std::vector<std::string> out;
  for (const char c : bytes) {
    std::string ch;
    unicode::append_utf8(ch, unicode::byte_to_char(static_cast<unsigned char>(c)));
    out.push_back(ch);
  }
  return out;
}

inline std::string byte_chars_joined(std::string_view bytes) {
  std::string out;
  for (const std::string& ch : byte_chars(bytes)) out += ch;
  return out;
}

// Ids 0..255: each byte's GPT-2 character, in byte order; then one token per
// merge (its concatenation), in merge order; then `specials` as control tokens.
inline Vocabulary bpe_vocabulary(const std::vector<std::pair<std::string, std::string>>& merges,
                                 const std::vector<std::string>& specials, std::string pre) {
  Vocabulary v;
  v.kind = VocabKind::kBpe;
  v.pre = std::move(pre);
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_chars(std::string(1, static_cast<char>(b)))[0]);
  v.types.assign(256, TokenType::kNormal);
  for (const auto& [left, right] : merges) {
    v.merges.push_back(left + " " + right);
    if (std::find(v.tokens.begin(), v.tokens.end(), left + right) == v.tokens.end()) {
      v.tokens.push_back(left + right);
      v.types.push_back(TokenType::kNormal);
    }
  }
  for (const std::string& special : specials) {
    v.tokens.push_back(special);
    v.types.push_back(TokenType::kControl);
  }
  return v;
}

// Learns `n_merges` merges from `corpus` the textbook way: pre-tokenize, count
// adjacent pairs over all words, merge the most frequent (ties: the smallest
// pair), repeat.
inline std::vector<std::pair<std::string, std::string>> learn_merges(std::string_view corpus, PreTokenizer pre,
                                                                     std::size_t n_merges) {
  const std::vector<char32_t> cps = unicode::to_code_points(corpus);
  std::map<std::vector<std::string>, int> words;
  std::size_t begin = 0;
  for (const std::size_t length : pre_tokenize(pre, cps)) {
    std::string bytes;
    for (std::size_t i = begin; i < begin + length; ++i) unicode::append_utf8(bytes, cps[i]);
    begin += length;
    ++words[byte_chars(bytes)];
  }
  std::vector<std::pair<std::string, std::string>> merges;
  while (merges.size() < n_merges) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& [symbols, count] : words) {
      for (std::size_t i = 1; i < symbols.size(); ++i) counts[{symbols[i - 1], symbols[i]}] += count;
    }
    if (counts.empty()) break;
    auto best = counts.begin();
    for (auto it = counts.begin(); it != counts.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    merges.push_back(best->first);
    std::map<std::vector<std::string>, int> merged;
    for (const auto& [symbols, count] : words) {
      std::vector<std::string> next;
      for (std::size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == best->first.first && symbols[i + 1] == best->first.second) {
          next.push_back(symbols[i] + symbols[i + 1]);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      merged[next] += count;
    }
    words = std::move(merged);
  }
  return merges;
}

// Byte-level BPE the slow, textbook way, as a reference: pre-tokenize, then
// for each merge in rank order join every occurrence in the word, left to
// right; a word that is a token skips the merges when the pre-tokenizer says so.
inline std::vector<TokenId> reference_bpe(const Vocabulary& vocab, std::string_view text) {
  const PreTokenizer pre = *pre_tokenizer_from_name(vocab.pre);
  std::map<std::string, TokenId> ids;
  for (std::size_t id = 0; id < vocab.tokens.size(); ++id) ids.emplace(vocab.tokens[id], static_cast<TokenId>(id));
  const std::vector<char32_t> cps = unicode::to_code_points(text);
  std::vector<TokenId> out;
  std::size_t begin = 0;
  for (const std::size_t length : pre_tokenize(pre, cps)) {
    std::string bytes;
    for (std::size_t i = begin; i < begin + length; ++i) unicode::append_utf8(bytes, cps[i]);
    begin += length;
    if (pre_tokenizer_ignores_merges(pre) && ids.count(byte_chars_joined(bytes)) > 0) {
      out.push_back(ids.at(byte_chars_joined(bytes)));
      continue;
    }
    std::vector<std::string> symbols = byte_chars(bytes);
    for (const std::string& merge : vocab.merges) {
      const std::size_t space = merge.find(' ', 1);
      const std::string left = merge.substr(0, space), right = merge.substr(space + 1);
      std::vector<std::string> next;
      for (std::size_t i = 0; i < symbols.size(); ++i) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          next.push_back(left + right);
          ++i;
        } else {
          next.push_back(symbols[i]);
        }
      }
      symbols = std::move(next);
    }
    for (const std::string& symbol : symbols) out.push_back(ids.at(symbol));
  }
  return out;
}

// Text in many scripts and shapes, for round trips.
inline std::vector<std::string> varied_texts() {
  return {
      "",
      "Hello, world!",
      "Once upon a time, there was a little girl named Lily.",
      "don't I'm we'll THEY'RE you've",
      "naïve café résumé Ångström façade",
      "e\xCC\x81 combining acute, n\xCC\x83 tilde",
      "中文字符测试，东京タワー、한국어",
      "emoji 😀 👍🏽 👨‍👩‍👧 🇫🇷 ❤️",
      "   leading spaces",
      "trailing spaces   ",
      "tabs\tand\t\ttabs",
      "lines\nand\n\nmore\r\nlines\n",
      "  \n \t \n  ",
      " ",
      "no-break\xC2\xA0space and ideographic\xE3\x80\x80space",
      "numbers 0 12 345 6789 3.14159 1,000,000",
      "Arabic ١٢٣ مرحبا and Hindi नमस्ते and Thai สวัสดี",
      "symbols $+<=>^~| `@# {}[]() \\ / * & % !",
      "mixed: x=1+2; // ok\r\n\tif (a && b) { return \"str\"; }",
      "Ελληνικά κείμενο και кириллица текст",
      "<0x41> and <s> written out",
  };
}

}  // namespace headroom::infer::testing
