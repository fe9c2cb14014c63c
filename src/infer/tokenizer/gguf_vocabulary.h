// The vocabulary of a GGUF model file: its tokenizer.ggml.* metadata (the
// keys vocabulary.h lists) handed to vocabulary_from_metadata.
#pragma once

#include "common/status.h"
#include "infer/gguf/gguf_file.h"
#include "infer/tokenizer/vocabulary.h"

namespace headroom::infer {

// The tokenizer.ggml.* entries of `file`, widened as TokenizerMetadata
// holds them: any integer as int64, float32/64 as double, integer arrays as
// int32 arrays (an element that does not fit is an error), float arrays as
// float arrays. Other keys are left out.
Result<TokenizerMetadata> tokenizer_metadata_from_gguf(const GgufFile& file);

// tokenizer_metadata_from_gguf, then vocabulary_from_metadata.
Result<Vocabulary> vocabulary_from_gguf(const GgufFile& file);

}  // namespace headroom::infer
