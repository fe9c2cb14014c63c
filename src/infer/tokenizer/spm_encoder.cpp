// SentencePiece-style BPE, after llama.cpp's llm_tokenizer_spm_session: the
// text starts as one symbol per UTF-8 character (per byte where invalid); the adjacent pair whose
// concatenation is the best-scored token is merged, again and again, until no
// adjacent pair is a token. Symbols that are not tokens fall back to bytes.
//
// llama.cpp also records each merge so that a final symbol that is not a token
// can be split back ("resegment"); every merged symbol is a token, so only the
// unmerged single characters ever reach that path, and for them it is the
// byte fallback below.
#include <cstdint>
#include <queue>
#include <vector>

#include "infer/tokenizer/tokenizer_impl.h"
#include "infer/tokenizer/unicode.h"

namespace headroom::infer {

namespace {

struct Symbol {
  std::uint32_t start;   // byte offset in the text
  std::uint32_t length;  // bytes; 0 once merged into its left neighbour
  std::int32_t prev;
  std::int32_t next;
};

struct Bigram {
  float score;
  std::int32_t left;
  std::int32_t right;
  std::uint32_t length;  // of both symbols together when queued: a later change makes it stale

  // Highest score first; on a tie, the leftmost pair.
  bool operator<(const Bigram& other) const {
    return score < other.score || (score == other.score && left > other.left);
  }
};

}  // namespace

Status spm_encode(const Tokenizer::Impl& impl, std::string_view text, std::vector<TokenId>& out) {
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (std::size_t offset = 0; offset < text.size();) {
    // One symbol per character; each byte of invalid UTF-8 a symbol of its own. (llama.cpp and
    // SentencePiece trust the lead byte's length, so "\xF8 " swallows the escaped space after it
    // and decodes as "\xF8▁"; valid text splits the same either way.)
    const unicode::Utf8Sequence seq = unicode::decode_utf8(text, offset);
    const std::size_t length = seq.status == unicode::Utf8Status::kValid ? seq.length : 1;
    const auto index = static_cast<std::int32_t>(symbols.size());
    symbols.push_back({static_cast<std::uint32_t>(offset), static_cast<std::uint32_t>(length), index - 1,
                       offset + length == text.size() ? -1 : index + 1});
    offset += length;
  }
  if (symbols.empty()) return Status::ok();

  std::priority_queue<Bigram> queue;
  const auto try_add = [&](std::int32_t left, std::int32_t right) {
    if (left < 0 || right < 0) return;
    const std::uint32_t length = symbols[left].length + symbols[right].length;
    const TokenId id = impl.lookup(text.substr(symbols[left].start, length));
    if (id == kNoToken) return;
    queue.push({impl.score(id), left, right, length});
  };
  for (std::size_t i = 1; i < symbols.size(); ++i) {
    try_add(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
  }

  while (!queue.empty()) {
    const Bigram bigram = queue.top();
    queue.pop();
    Symbol& left = symbols[bigram.left];
    Symbol& right = symbols[bigram.right];
    // Symbols only grow, so an unchanged total length means neither changed.
    if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.length) continue;

    left.length += right.length;
    right.length = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = bigram.left;

    try_add(left.prev, bigram.left);
    try_add(bigram.left, left.next);
  }

  for (std::int32_t i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = text.substr(symbols[i].start, symbols[i].length);
    if (const TokenId id = impl.lookup(piece); id != kNoToken) {
      out.push_back(id);
      continue;
    }
    // Byte fallback: every byte's token, or one unknown token for the character.
    bool all_bytes = true;
    for (const char c : piece) all_bytes = all_bytes && impl.byte_tokens[static_cast<unsigned char>(c)] != kNoToken;
    if (all_bytes) {
      for (const char c : piece) out.push_back(impl.byte_tokens[static_cast<unsigned char>(c)]);
    } else if (impl.vocab.unk) {
      out.push_back(*impl.vocab.unk);
    } else {
      return Status::invalid_argument(
          "the text has a character the vocabulary cannot encode (no byte tokens, no unknown token)");
    }
  }
  return Status::ok();
}

}  // namespace headroom::infer
