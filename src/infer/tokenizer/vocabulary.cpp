#include "infer/tokenizer/vocabulary.h"

#include <string>
#include <utility>

#include "infer/tokenizer/pre_tokenizer.h"

namespace headroom::infer {

namespace {

std::string quoted(std::string_view key) {
  std::string out;
  out.reserve(key.size() + 2);
  out.push_back('\'');
  out.append(key);
  out.push_back('\'');
  return out;
}

Status wrong_type(std::string_view key, std::string_view expected) {
  return Status::invalid_argument("gguf key " + quoted(key) + " is not " + std::string(expected));
}

// A key's value as T; nullptr when absent, an error when of another type.
template <typename T>
Result<const T*> get(const TokenizerMetadata& metadata, std::string_view key, std::string_view type_name) {
  const MetadataValue* value = metadata.find(key);
  if (value == nullptr) return static_cast<const T*>(nullptr);
  if (const T* typed = std::get_if<T>(value)) return typed;
  return wrong_type(key, type_name);
}

// The token id a key names, or else `fallback`: as llama.cpp, an id outside
// the vocabulary (files write 0xFFFFFFFF for "none") counts as absent, and a
// fallback outside it as none.
Result<std::optional<TokenId>> special_id(const TokenizerMetadata& metadata, std::string_view key,
                                          std::optional<TokenId> fallback, std::size_t n_tokens) {
  HR_ASSIGN_OR_RETURN(const std::int64_t* id, get<std::int64_t>(metadata, key, "an integer"));
  if (id != nullptr && *id >= 0 && static_cast<std::uint64_t>(*id) < n_tokens) {
    return std::optional<TokenId>(static_cast<TokenId>(*id));
  }
  if (fallback && *fallback >= 0 && static_cast<std::size_t>(*fallback) < n_tokens) return fallback;
  return std::optional<TokenId>();
}

}  // namespace

Result<Vocabulary> vocabulary_from_metadata(const TokenizerMetadata& metadata) {
  Vocabulary vocab;

  HR_ASSIGN_OR_RETURN(const std::string* model, get<std::string>(metadata, gguf_keys::kModel, "a string"));
  if (model == nullptr) return Status::invalid_argument("gguf key " + quoted(gguf_keys::kModel) + " is missing");
  if (*model == "llama") {
    vocab.kind = VocabKind::kSpm;
  } else if (*model == "gpt2") {
    vocab.kind = VocabKind::kBpe;
  } else {
    return Status::invalid_argument("tokenizer model '" + *model + "' is not supported (only llama and gpt2)");
  }

  HR_ASSIGN_OR_RETURN(const std::string* pre, get<std::string>(metadata, gguf_keys::kPre, "a string"));
  if (vocab.kind == VocabKind::kBpe) {
    vocab.pre = pre != nullptr ? *pre : "";
    if (!pre_tokenizer_from_name(vocab.pre)) {
      return Status::invalid_argument("pre-tokenizer '" + vocab.pre + "' is not supported");
    }
  }

  HR_ASSIGN_OR_RETURN(const std::vector<std::string>* tokens,
                      get<std::vector<std::string>>(metadata, gguf_keys::kTokens, "an array of strings"));
  if (tokens == nullptr) return Status::invalid_argument("gguf key " + quoted(gguf_keys::kTokens) + " is missing");
  if (tokens->size() > kVocabTokensMax) {
    return Status::invalid_argument("vocabulary of " + std::to_string(tokens->size()) +
                                    " tokens is past the limit of " + std::to_string(kVocabTokensMax));
  }
  vocab.tokens = *tokens;
  const std::size_t n_tokens = vocab.tokens.size();

  // Scores: f32[], or i32[] as llama.cpp also accepts.
  if (const MetadataValue* scores = metadata.find(gguf_keys::kScores)) {
    if (const auto* floats = std::get_if<std::vector<float>>(scores)) {
      vocab.scores = *floats;
    } else if (const auto* ints = std::get_if<std::vector<std::int32_t>>(scores)) {
      vocab.scores.assign(ints->begin(), ints->end());
    } else {
      return wrong_type(gguf_keys::kScores, "an array of numbers");
    }
    if (vocab.scores.size() < n_tokens) {
      return Status::invalid_argument("gguf key " + quoted(gguf_keys::kScores) + " has " +
                                      std::to_string(vocab.scores.size()) + " entries for " + std::to_string(n_tokens) +
                                      " tokens");
    }
    vocab.scores.resize(n_tokens);
  }

  HR_ASSIGN_OR_RETURN(const std::vector<std::int32_t>* types,
                      get<std::vector<std::int32_t>>(metadata, gguf_keys::kTokenType, "an array of int32"));
  if (types != nullptr) {
    if (types->size() < n_tokens) {
      return Status::invalid_argument("gguf key " + quoted(gguf_keys::kTokenType) + " has " +
                                      std::to_string(types->size()) + " entries for " + std::to_string(n_tokens) +
                                      " tokens");
    }
    vocab.types.reserve(n_tokens);
    for (std::size_t id = 0; id < n_tokens; ++id) vocab.types.push_back(static_cast<TokenType>((*types)[id]));
  }

  if (vocab.kind == VocabKind::kBpe) {
    HR_ASSIGN_OR_RETURN(const std::vector<std::string>* merges,
                        get<std::vector<std::string>>(metadata, gguf_keys::kMerges, "an array of strings"));
    if (merges == nullptr) return Status::invalid_argument("gguf key " + quoted(gguf_keys::kMerges) + " is missing");
    vocab.merges = *merges;
  }

  const bool spm = vocab.kind == VocabKind::kSpm;
  const auto spm_default = [&](TokenId id) { return spm ? std::optional<TokenId>(id) : std::nullopt; };
  HR_ASSIGN_OR_RETURN(vocab.bos, special_id(metadata, gguf_keys::kBosId, spm_default(1), n_tokens));
  HR_ASSIGN_OR_RETURN(vocab.eos, special_id(metadata, gguf_keys::kEosId, spm_default(2), n_tokens));
  HR_ASSIGN_OR_RETURN(vocab.unk, special_id(metadata, gguf_keys::kUnkId, spm_default(0), n_tokens));
  HR_ASSIGN_OR_RETURN(vocab.pad, special_id(metadata, gguf_keys::kPadId, std::nullopt, n_tokens));

  const bool llama3_pre = !spm && pre_tokenizer_from_name(vocab.pre) == PreTokenizer::kLlama3;
  HR_ASSIGN_OR_RETURN(const bool* add_bos, get<bool>(metadata, gguf_keys::kAddBos, "a bool"));
  HR_ASSIGN_OR_RETURN(const bool* add_eos, get<bool>(metadata, gguf_keys::kAddEos, "a bool"));
  HR_ASSIGN_OR_RETURN(const bool* add_space_prefix, get<bool>(metadata, gguf_keys::kAddSpacePrefix, "a bool"));
  vocab.add_bos = add_bos != nullptr ? *add_bos : (spm || llama3_pre);
  vocab.add_eos = add_eos != nullptr && *add_eos;
  vocab.add_space_prefix = add_space_prefix != nullptr ? *add_space_prefix : spm;
  return vocab;
}

}  // namespace headroom::infer
