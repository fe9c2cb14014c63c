// GPT-2 byte-level BPE, after llama.cpp's llm_tokenizer_bpe_session: the text
// is cut into words by the pre-tokenizer; each word's bytes become GPT-2's
// byte characters, one symbol each; the adjacent pair with the best-ranked
// merge is merged, again and again, until no adjacent pair has a merge.
//
// llama.cpp looks merges up by the symbols' text; here each symbol carries
// its token id and merges are looked up by id pair. Tokenizer::create checks
// that both sides of every merge and their concatenation are tokens, so the
// two agree: a symbol's text is always its token's text.
#include <cstdint>
#include <queue>
#include <vector>

#include "infer/tokenizer/tokenizer_impl.h"
#include "infer/tokenizer/unicode.h"

namespace headroom::infer {

namespace {

struct Symbol {
  TokenId id;            // the token of the symbol's text; kNoToken for a byte the vocabulary lacks
  std::uint32_t length;  // bytes of the word; 0 once merged into its left neighbour
  std::int32_t prev;
  std::int32_t next;
};

struct Bigram {
  std::int32_t rank;
  std::int32_t left;
  std::int32_t right;
  std::uint32_t left_length;  // both lengths when queued: a later change makes it stale
  std::uint32_t right_length;

  // Lowest rank first; on a tie, the leftmost pair (a max-heap, so inverted).
  bool operator<(const Bigram& other) const { return rank > other.rank || (rank == other.rank && left > other.left); }
};

// Merges one word (its raw bytes) and appends its tokens.
Status merge_word(const Tokenizer::Impl& impl, std::string_view word, std::vector<Symbol>& symbols,
                  std::vector<TokenId>& out) {
  symbols.clear();
  if (word.empty()) return Status::ok();
  for (std::size_t i = 0; i < word.size(); ++i) {
    const auto index = static_cast<std::int32_t>(i);
    symbols.push_back({impl.byte_char_tokens[static_cast<unsigned char>(word[i])], 1, index - 1,
                       i + 1 == word.size() ? -1 : index + 1});
  }

  std::priority_queue<Bigram> queue;
  const auto try_add = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right < 0) return;
    if (symbols[left].id == kNoToken || symbols[right].id == kNoToken) return;
    auto it = impl.merges.find(Tokenizer::Impl::merge_key(symbols[left].id, symbols[right].id));
    if (it == impl.merges.end()) return;
    queue.push({it->second.rank, left, right, symbols[left].length, symbols[right].length});
  };
  for (std::size_t i = 1; i < symbols.size(); ++i) {
    try_add(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
  }

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    // Symbols only grow, so unchanged lengths mean an unchanged pair.
    if (left.length != bigram.left_length || right.length != bigram.right_length) continue;

    left.id = impl.merges.at(Tokenizer::Impl::merge_key(left.id, right.id)).result;
    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;

    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (std::int32_t i = 0; i != -1; i = symbols[i].next) {
    if (symbols[i].id != kNoToken) {
      out.push_back(symbols[i].id);
    } else if (impl.vocab.unk) {
      out.push_back(*impl.vocab.unk);
    } else {
      return Status::invalid_argument(
          "the text has a byte the vocabulary cannot encode (no token for it, no unknown token)");
    }
  }
  return Status::ok();
}

}  // namespace

Status bpe_encode(const Tokenizer::Impl& impl, std::string_view text, std::vector<TokenId>& out) {
  const std::vector<char32_t> cps = unicode::to_code_points(text);
  const std::vector<std::size_t> words = pre_tokenize(impl.pre, cps);
  const bool ignore_merges = pre_tokenizer_ignores_merges(impl.pre);

  std::string bytes;    // the word as UTF-8 (invalid input already replaced)
  std::string encoded;  // the word in GPT-2's byte characters, as the vocabulary writes it
  std::vector<Symbol> symbols;
  std::size_t begin = 0;
  for (const std::size_t length : words) {
    bytes.clear();
    for (std::size_t i = begin; i < begin + length; ++i) unicode::append_utf8(bytes, cps[i]);
    begin += length;

    if (ignore_merges) {
      encoded.clear();
      for (const char c : bytes) unicode::append_utf8(encoded, unicode::byte_to_char(static_cast<unsigned char>(c)));
      if (const TokenId id = impl.lookup(encoded); id != kNoToken) {
        out.push_back(id);
        continue;
      }
    }
    HR_RETURN_IF_ERROR(merge_word(impl, bytes, symbols, out));
  }
  return Status::ok();
}

}  // namespace headroom::infer
