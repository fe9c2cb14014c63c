// Streaming decoding: token ids in, one at a time, as a model produces them;
// text out, only ever whole UTF-8 characters.
//
// A character may be split across tokens: an emoji as four SentencePiece
// byte-fallback tokens (<0xF0><0x9F><0x98><0x80>), a CJK character as two
// byte-level BPE tokens. push() holds back the bytes of a character begun but
// not finished (three at most) and emits them with the token that completes
// it. A byte that cannot begin or continue a character is emitted as U+FFFD,
// one per byte, as unicode.h decodes; so is a character still unfinished at
// finish(). Everything emitted is valid UTF-8, whatever the ids.
//
// Pieces are rendered as Tokenizer::token_to_piece renders them, leading
// spaces included: the stream continues a prompt, so "▁world" after "Hello"
// is " world". (Tokenizer::decode, for whole texts, drops the one leading
// space SentencePiece's add_space_prefix adds.)
//
// A Detokenizer serves one stream and is not thread-safe; the Tokenizer it
// reads must outlive it.
#pragma once

#include <cstddef>
#include <string>

#include "infer/tokenizer/tokenizer.h"

namespace headroom::infer {

class Detokenizer {
 public:
  explicit Detokenizer(const Tokenizer& tokenizer, RenderSpecial render = RenderSpecial::kNo)
      : tokenizer_(&tokenizer), render_(render) {}

  // The text that token `id` completes: possibly empty, always valid UTF-8.
  // An id outside the vocabulary adds nothing.
  std::string push(TokenId id);

  // The text still held back, each unfinished character as U+FFFD; the
  // Detokenizer is then empty, ready for another stream.
  std::string finish();

  // Bytes held back, waiting for the rest of a character (0..3).
  std::size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  RenderSpecial render_;
  std::string pending_;  // the start of an unfinished character
};

}  // namespace headroom::infer
