// Limits of the GGUF loader, writer and model generator. They sit beside
// common/limits.h in the same namespace, so code reads limits::kGgufTensors
// the way it reads limits::kHttpBodyBytes. Every count, length and size a
// GGUF file declares is checked against one of these and against the bytes
// left in the file before anything is allocated or read.
#pragma once

#include <cstddef>
#include <cstdint>

namespace headroom::limits {

// GGUF files (gguf_file.h). Real llama-family files stay far below these:
// a 405B model has ~1,150 tensors and ~50 metadata entries, the largest
// vocabularies ~260,000 tokens, the longest chat templates ~100 KiB.
inline constexpr std::uint64_t kGgufTensors = 65'536;                // tensor infos in one file
inline constexpr std::uint64_t kGgufMetadataEntries = 65'536;        // key-value pairs in one file
inline constexpr std::size_t kGgufKeyBytes = 1'024;                  // a metadata key (the spec allows 65,535)
inline constexpr std::uint64_t kGgufStringBytes = 16 * 1024 * 1024;  // one string value
inline constexpr std::uint64_t kGgufArrayLength = 16 * 1024 * 1024;  // elements of one array value
inline constexpr std::size_t kGgufTensorNameBytes = 256;             // a tensor's name (ggml itself takes 63)
inline constexpr std::uint32_t kGgufDims = 4;                        // dimensions of a tensor (GGML_MAX_DIMS)
inline constexpr std::uint32_t kGgufAlignmentMin = 8;                // general.alignment: the spec's "multiple of 8"
inline constexpr std::uint32_t kGgufAlignmentMax = 64 * 1024;        // ... and a power of two up to this
inline constexpr std::uint32_t kGgufDefaultAlignment = 32;           // when general.alignment is absent
inline constexpr std::uint64_t kGgufDimMax = 9'223'372'036'854'775'807ULL;  // a dimension (ggml reads int64)

static_assert(kGgufDefaultAlignment >= kGgufAlignmentMin && kGgufDefaultAlignment <= kGgufAlignmentMax);
static_assert((kGgufAlignmentMin & (kGgufAlignmentMin - 1)) == 0 && (kGgufAlignmentMax & (kGgufAlignmentMax - 1)) == 0,
              "alignments are powers of two");
static_assert(kGgufAlignmentMin % 8 == 0, "8-byte alignment lets kernels read any element type in place");
static_assert(kGgufKeyBytes <= 65'535, "the spec's bound on keys");

// The random llama generator (random_llama.h): bounds on the shape it accepts,
// so that a typo on its command line is an error, not a disk filled.
inline constexpr std::uint32_t kRandomLlamaVocab = 1 << 20;         // tokens
inline constexpr std::uint32_t kRandomLlamaDim = 65'536;            // embedding_length
inline constexpr std::uint32_t kRandomLlamaHiddenDim = 262'144;     // feed_forward_length
inline constexpr std::uint32_t kRandomLlamaLayers = 1'024;          // block_count
inline constexpr std::uint32_t kRandomLlamaContext = 1 << 24;       // context_length
inline constexpr std::size_t kRandomLlamaTokenBytes = 16;           // a synthetic vocabulary piece, at most
inline constexpr std::uint64_t kRandomLlamaTensors = 3 + 9ULL * kRandomLlamaLayers;  // embd, norm, output, 9 per layer

static_assert(kRandomLlamaTensors <= kGgufTensors, "a generated model fits the loader's tensor limit");
static_assert(kRandomLlamaVocab <= kGgufArrayLength, "a generated vocabulary fits the loader's array limit");
static_assert(kRandomLlamaTokenBytes <= kGgufStringBytes);

}  // namespace headroom::limits
