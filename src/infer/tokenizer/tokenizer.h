// Text to token ids and back, for the vocabularies llama-family GGUF files
// carry: SentencePiece-style BPE (tokenizer.ggml.model = "llama") and GPT-2
// byte-level BPE ("gpt2", with the Llama 3, Qwen2, SmolLM, GPT-2 and default
// pre-tokenizers). The algorithms follow llama.cpp's (llama-vocab.cpp) so that
// the same text gives the same ids; the known differences are listed at the
// end of this comment.
//
// Encoding, both kinds:
//   1. With ParseSpecial::kYes, control and unknown tokens written in the text
//      ("<s>", "<|eot_id|>") become those tokens; user-defined tokens always
//      do. Longer token texts are cut out first, each at every place it
//      occurs, left to right; the text between is encoded as below.
//   2. SPM: each stretch of text gets a leading space when add_space_prefix is
//      set and it starts the text or follows a special token; spaces become
//      U+2581 ("▁"). The stretch is split into UTF-8 characters (each byte
//      of invalid UTF-8 on its own) and adjacent pairs whose
//      concatenation is a token are merged, highest score first (leftmost on
//      a tie), until no pair is a token. A character that is not a token
//      becomes its bytes' <0xXX> tokens (byte fallback), or one unknown token
//      when some byte has none.
//   3. BPE: the stretch is decoded as UTF-8 (each invalid byte becomes U+FFFD),
//      cut into words by the pre-tokenizer (pre_tokenizer.h), and each word's
//      bytes are mapped to GPT-2's byte characters. With the Llama 3
//      pre-tokenizer a word that is itself a token is taken whole. Otherwise
//      adjacent pairs are merged by the merge list, lowest rank first
//      (leftmost on a tie).
//   4. AddSpecial::kYes puts bos first when add_bos is set and eos last when
//      add_eos is set.
//
// Decoding renders each token as its piece (token_to_piece): SPM normal tokens
// with "▁" turned back into spaces, BPE normal tokens mapped back from GPT-2's
// byte characters to bytes, byte tokens as their byte, user-defined tokens as
// written, control and unknown tokens as nothing (or their text with
// RenderSpecial::kYes), unused tokens as nothing. Pieces may split a UTF-8
// character between tokens; Detokenizer (detokenizer.h) streams them safely.
//
// Differences from llama.cpp, all on inputs or vocabularies outside the usual:
//   - Invalid UTF-8, SPM: each invalid byte is a symbol of its own, so any
//     bytes round-trip; llama.cpp trusts the lead byte's announced length,
//     so "\xF8 b" makes one symbol of "\xF8" and the escaped space and
//     decodes as "\xF8▁b". Valid UTF-8 splits the same in both.
//   - Invalid UTF-8, BPE: overlong forms and surrogates become U+FFFD here;
//     llama.cpp decodes them leniently. Either way one U+FFFD per bad byte.
//   - A byte with no token: one unknown token (SPM: per character), or an
//     error when the vocabulary has no unknown token; llama.cpp throws (SPM)
//     or drops the byte (BPE).
//   - decode() drops the leading space of the first token that is not a
//     control or unknown token (SPM with add_space_prefix), so decoding
//     [bos, "▁Hello"] gives "Hello" as Hugging Face does; llama.cpp strips it
//     from the first token only, so its bos swallows the strip (" Hello").
//   - decode() does not apply llama.cpp's clean_spaces pass (" ," -> ","...,
//     on by default for BPE), which would break round trips.
//   - Special tokens of equal length are cut out in id order; llama.cpp's
//     order among them is unspecified (std::sort).
//   - No per-model token attributes (llama.cpp's lstrip/rstrip for a few
//     models), no text-based detection of control tokens llama.cpp forces
//     (<|eot_id|>, <|im_end|>... typed normal in the file), no end-of-
//     generation set: those belong to the model and the sampler.
//   - A BPE piece character outside GPT-2's mapping renders as its UTF-8;
//     llama.cpp renders "[UNK_BYTE_0x...]".
//   - Construction is stricter (Tokenizer::create lists the checks);
//     llama.cpp renames empty tokens "[EMPTY_i]", keeps unknown token types
//     and silently keeps merges of unknown tokens.
//
// A Tokenizer is immutable once created and safe to use from many threads at
// once; copies share their tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "infer/tokenizer/pre_tokenizer.h"
#include "infer/tokenizer/vocabulary.h"

namespace headroom::infer {

// Whether encode() adds bos and eos as the vocabulary's add_bos and add_eos
// say (llama.cpp's add_special).
enum class AddSpecial : std::uint8_t { kNo, kYes };
// Whether control and unknown tokens written in the text ("<s>") are read as
// those tokens, or as plain text (llama.cpp's parse_special).
enum class ParseSpecial : std::uint8_t { kNo, kYes };
// Whether control and unknown tokens render as their text, or as nothing.
enum class RenderSpecial : std::uint8_t { kNo, kYes };

class Tokenizer {
 public:
  // Checks the vocabulary and builds the lookup tables. Errors
  // (invalid_argument, each naming the offending id or entry): no tokens, or
  // more than kVocabTokensMax; a token longer than kTokenBytesMax; the same
  // text at two ids; scores or types present but not one per token; a type
  // outside 1..6; a byte-type token whose text is not <0xXX>; bos, eos, unk
  // or pad outside the vocabulary; add_bos without bos or add_eos without
  // eos; (BPE) an unsupported pre-tokenizer name, more than kVocabMergesMax
  // merges, or a merge that is not "left right" with left, right and their
  // concatenation all tokens. A merge repeated keeps its first (best) rank.
  static Result<Tokenizer> create(Vocabulary vocabulary);

  // The ids of `text`. Errors: payload_too_large past kEncodeTextBytesMax
  // bytes; invalid_argument when a byte has no token and the vocabulary no
  // unknown token. Invalid UTF-8 is not an error (see above). The result has
  // at most text.size() + 3 ids.
  Result<std::vector<TokenId>> encode(std::string_view text, AddSpecial add_special, ParseSpecial parse_special) const;

  // The bytes of the pieces of `ids`, concatenated; for SPM with
  // add_space_prefix, less the leading space encode() added. Ids outside the
  // vocabulary render as nothing (a model's output layer may be wider than
  // its vocabulary). The result is valid UTF-8 when the ids came from valid
  // UTF-8 text; a model's ids need not be: see Detokenizer.
  std::string decode(std::span<const TokenId> ids, RenderSpecial render = RenderSpecial::kNo) const;

  // The bytes one token stands for (see above); empty for an id outside the
  // vocabulary. The view lives as long as any copy of this Tokenizer.
  std::string_view token_to_piece(TokenId id, RenderSpecial render = RenderSpecial::kNo) const;

  std::size_t n_tokens() const;
  bool contains(TokenId id) const { return id >= 0 && static_cast<std::size_t>(id) < n_tokens(); }
  // The token whose text is exactly `text` (its vocabulary form: "▁the", "Ġthe").
  std::optional<TokenId> find(std::string_view text) const;
  TokenType token_type(TokenId id) const;           // id must be in the vocabulary
  const std::string& token_text(TokenId id) const;  // id must be in the vocabulary
  VocabKind kind() const;
  PreTokenizer pre_tokenizer() const;  // kDefault for SPM
  std::optional<TokenId> bos() const;
  std::optional<TokenId> eos() const;
  std::optional<TokenId> unk() const;
  std::optional<TokenId> pad() const;
  const Vocabulary& vocabulary() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

  std::shared_ptr<const Impl> impl_;
};

}  // namespace headroom::infer
