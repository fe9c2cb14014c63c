// Pre-tokenizers of byte-level BPE vocabularies: they cut text into words
// before merges run, each word merged on its own. Every one is written by hand
// after the regular expression it stands for (no regex engine), following
// llama.cpp's hand-written splitters (unicode.cpp) branch for branch where it
// has them, and the expression's own semantics (leftmost alternative first,
// greedy, backtracking) where llama.cpp falls back to std::regex.
//
//   kLlama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
//            | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   kQwen2   the same with \p{N} (one digit a word) for \p{N}{1,3}
//   kGpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
//   kSmollm  \p{N} first (each number character its own word), then kGpt2
//   kDefault [\p{P}\$\+<=>\^~\|]+, then kGpt2, then \p{N}+, then [0-9][0-9][0-9]
//
// Each later pattern splits the words of the earlier ones; text between two
// matches is a word of its own. The classes come from unicode.h.
// pre_tokenizer_test checks each against Python's `regex` module running the
// original expressions. Known approximations, shared with llama.cpp: (?i:)
// folds ASCII case only (the regex module also folds U+017F "ſ" to "s"), and
// code points assigned after the class table's Unicode version count as
// "other" (not letter, number or whitespace).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace headroom::infer {

enum class PreTokenizer : std::uint8_t { kDefault, kGpt2, kLlama3, kQwen2, kSmollm };

// The pre-tokenizer a tokenizer.ggml.pre value names, as llama.cpp maps them
// (e.g. "llama-bpe" -> kLlama3, "qwen2" -> kQwen2, "smollm" -> kSmollm, "" and
// "default" -> kDefault; the whole table is in the .cpp); nullopt for a name
// outside that table (the tokenizer then refuses the model, naming it).
std::optional<PreTokenizer> pre_tokenizer_from_name(std::string_view name);
std::string_view pre_tokenizer_name(PreTokenizer pre);  // "llama3", "qwen2", "gpt2", "smollm", "default"

// Whether a word that is itself a token skips the merges (Hugging Face's
// ignore_merges, set for Llama 3's tokenizer).
bool pre_tokenizer_ignores_merges(PreTokenizer pre);

// The words of `text`, as lengths in code points, in order; they add up to
// text.size() and none is empty.
std::vector<std::size_t> pre_tokenize(PreTokenizer pre, std::span<const char32_t> text);

}  // namespace headroom::infer
