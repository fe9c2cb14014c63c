#include "infer/gguf/random_llama.h"

#include <cmath>
#include <unordered_set>

#include <fmt/format.h>

#include "infer/gguf/gguf_limits.h"

namespace headroom::infer {
namespace {

constexpr std::uint32_t kSpecialTokens = 3;  // <unk>, <s>, </s>
constexpr std::uint32_t kByteTokens = 256;
constexpr std::uint32_t kFirstNormalToken = kSpecialTokens + kByteTokens;

// llama.cpp's token types (llama_token_type).
constexpr std::int32_t kTokenNormal = 1;
constexpr std::int32_t kTokenUnknown = 2;
constexpr std::int32_t kTokenControl = 3;
constexpr std::int32_t kTokenByte = 6;

// The characters of the synthetic vocabulary, the most frequent first.
const std::vector<std::string>& alphabet() {
  static const std::vector<std::string> chars = [] {
    std::vector<std::string> out = {"\xe2\x96\x81"};  // ▁
    for (char c : std::string_view("etaoinshrdlucmfwypvbgkjqxzETAOINSHRDLUCMFWYPVBGKJQXZ0123456789.,!?'\"-:;()")) {
      out.emplace_back(1, c);
    }
    return out;
  }();
  return chars;
}

// splitmix64: fast and reproducible.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [-1, 1), a multiple of 2^-23.
  float uniform() { return static_cast<float>(next() >> 40) * 0x1p-23f - 1.0f; }

 private:
  std::uint64_t state_;
};

std::uint64_t fnv1a(std::string_view text) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ULL;
  return hash;
}

Rng tensor_rng(std::uint64_t seed, std::string_view name) {
  Rng mix(seed ^ fnv1a(name));
  return Rng(mix.next());
}

// Values of one tensor, produced row by row in element order.
class TensorValues {
 public:
  TensorValues(std::uint64_t seed, std::string_view name, RandomTensorKind kind, std::uint64_t row_values)
      : rng_(tensor_rng(seed, name)),
        kind_(kind),
        scale_(kind == RandomTensorKind::kNorm ? 0.1f : std::sqrt(3.0f / static_cast<float>(row_values))) {}
  float next() {
    const float u = rng_.uniform();
    return kind_ == RandomTensorKind::kNorm ? 1.0f + scale_ * u : scale_ * u;
  }

 private:
  Rng rng_;
  RandomTensorKind kind_;
  float scale_;
};

// Writes `values` (a multiple of the type's block) as `type` into `out`.
void convert(std::span<const float> values, TensorType type, std::uint8_t* out) {
  switch (type) {
    case TensorType::kF32: std::memcpy(out, values.data(), values.size_bytes()); return;
    case TensorType::kF16:
    case TensorType::kBF16:
      for (std::size_t i = 0; i < values.size(); ++i) {
        const std::uint16_t h = type == TensorType::kF16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
        std::memcpy(out + 2 * i, &h, sizeof h);
      }
      return;
    case TensorType::kQ8_0:
      for (std::size_t b = 0; b < values.size() / kQuantBlock; ++b) {
        BlockQ8_0 block;
        quantize_q8_0(values.data() + b * kQuantBlock, block);
        std::memcpy(out + b * sizeof block, &block, sizeof block);
      }
      return;
    case TensorType::kQ4_0:
      for (std::size_t b = 0; b < values.size() / kQuantBlock; ++b) {
        BlockQ4_0 block;
        quantize_q4_0(values.data() + b * kQuantBlock, block);
        std::memcpy(out + b * sizeof block, &block, sizeof block);
      }
      return;
  }
  CHECK(false) << "tensor type " << static_cast<std::uint32_t>(type);
}

// llama.cpp's general.file_type (llama_ftype) of a model whose matrices are `type`.
std::uint32_t file_type(TensorType type) {
  switch (type) {
    case TensorType::kF32: return 0;
    case TensorType::kF16: return 1;
    case TensorType::kQ4_0: return 2;
    case TensorType::kQ8_0: return 7;
    case TensorType::kBF16: return 32;
  }
  return 0;
}

bool is_quantized(TensorType type) { return block_values(type) > 1; }

Status add_every_value_type(GgufWriter& w) {
  HR_RETURN_IF_ERROR(w.add<std::uint8_t>("headroom.sample.uint8", 200));
  HR_RETURN_IF_ERROR(w.add<std::int8_t>("headroom.sample.int8", -100));
  HR_RETURN_IF_ERROR(w.add<std::uint16_t>("headroom.sample.uint16", 60000));
  HR_RETURN_IF_ERROR(w.add<std::int16_t>("headroom.sample.int16", -30000));
  HR_RETURN_IF_ERROR(w.add<std::uint32_t>("headroom.sample.uint32", 4000000000u));
  HR_RETURN_IF_ERROR(w.add<std::int32_t>("headroom.sample.int32", -2000000000));
  HR_RETURN_IF_ERROR(w.add<float>("headroom.sample.float32", 0.1f));
  HR_RETURN_IF_ERROR(w.add<bool>("headroom.sample.bool", true));
  HR_RETURN_IF_ERROR(w.add_string("headroom.sample.string", "h\xc3\xa9" "adroom"));
  HR_RETURN_IF_ERROR(w.add<std::uint64_t>("headroom.sample.uint64", 1ULL << 63));
  HR_RETURN_IF_ERROR(w.add<std::int64_t>("headroom.sample.int64", -(1LL << 62)));
  HR_RETURN_IF_ERROR(w.add<double>("headroom.sample.float64", 1e-300));
  const std::uint8_t u8s[] = {0, 1, 255};
  HR_RETURN_IF_ERROR(w.add_array<std::uint8_t>("headroom.sample.array.uint8", u8s));
  const std::int8_t i8s[] = {-128, 0, 127};
  HR_RETURN_IF_ERROR(w.add_array<std::int8_t>("headroom.sample.array.int8", i8s));
  const std::uint16_t u16s[] = {1, 65535};
  HR_RETURN_IF_ERROR(w.add_array<std::uint16_t>("headroom.sample.array.uint16", u16s));
  const std::int16_t i16s[] = {-1, 1};
  HR_RETURN_IF_ERROR(w.add_array<std::int16_t>("headroom.sample.array.int16", i16s));
  const std::uint32_t u32s[] = {7, 8, 9};
  HR_RETURN_IF_ERROR(w.add_array<std::uint32_t>("headroom.sample.array.uint32", u32s));
  const std::int32_t i32s[] = {-7};
  HR_RETURN_IF_ERROR(w.add_array<std::int32_t>("headroom.sample.array.int32", i32s));
  const float f32s[] = {1.5f, -0.0f};
  HR_RETURN_IF_ERROR(w.add_array<float>("headroom.sample.array.float32", f32s));
  const bool bools[] = {true, false};
  HR_RETURN_IF_ERROR(w.add_array<bool>("headroom.sample.array.bool", bools));
  const std::vector<std::string> strings = {"a", "", "\xe2\x96\x81" "b"};
  HR_RETURN_IF_ERROR(w.add_string_array("headroom.sample.array.string", strings));
  const std::uint64_t u64s[] = {1ULL << 40};
  HR_RETURN_IF_ERROR(w.add_array<std::uint64_t>("headroom.sample.array.uint64", u64s));
  const std::int64_t i64s[] = {-1, 1};
  HR_RETURN_IF_ERROR(w.add_array<std::int64_t>("headroom.sample.array.int64", i64s));
  const double f64s[] = {2.5};
  HR_RETURN_IF_ERROR(w.add_array<double>("headroom.sample.array.float64", f64s));
  return w.add_array<double>("headroom.sample.array.empty", std::span<const double>());
}

}  // namespace

std::vector<float> random_tensor_values(std::uint64_t seed, std::string_view name, RandomTensorKind kind,
                                        std::uint64_t row_values, std::uint64_t elements) {
  TensorValues values(seed, name, kind, row_values);
  std::vector<float> out(elements);
  for (float& value : out) value = values.next();
  return out;
}

RandomVocab random_vocab(std::uint32_t vocab_size, std::uint64_t seed) {
  CHECK(vocab_size >= kFirstNormalToken && vocab_size <= limits::kRandomLlamaVocab) << "vocab_size " << vocab_size;
  RandomVocab vocab;
  vocab.tokens.reserve(vocab_size);
  vocab.tokens = {"<unk>", "<s>", "</s>"};
  vocab.token_types = {kTokenUnknown, kTokenControl, kTokenControl};
  for (std::uint32_t byte = 0; byte < kByteTokens; ++byte) {
    vocab.tokens.push_back(fmt::format("<0x{:02X}>", byte));
    vocab.token_types.push_back(kTokenByte);
  }
  vocab.scores.assign(kFirstNormalToken, 0.0f);

  const std::vector<std::string>& chars = alphabet();
  const std::uint32_t normal = vocab_size - kFirstNormalToken;
  const std::size_t n_chars = std::min<std::size_t>(normal, chars.size());
  const std::size_t n_merges = normal - n_chars;

  // Merged pieces: an earlier piece (a character or a merge) and a character
  // other than ▁, chosen at random; a bounded number of draws, then the first
  // new candidate in a fixed scan, so that the loop ends for any vocabulary.
  std::vector<std::string> pieces(chars.begin(), chars.begin() + static_cast<std::ptrdiff_t>(n_chars));
  std::unordered_set<std::string> seen(pieces.begin(), pieces.end());
  for (const std::string& token : vocab.tokens) seen.insert(token);
  Rng rng(tensor_rng(seed, "tokenizer.ggml.tokens").next());
  std::size_t scan_left = 0, scan_right = 1;
  constexpr int kDraws = 16;
  auto usable = [&](const std::string& candidate) {
    return candidate.size() <= limits::kRandomLlamaTokenBytes && !seen.contains(candidate);
  };
  for (std::size_t m = 0; m < n_merges; ++m) {
    std::string piece;
    for (int draw = 0; draw < kDraws && piece.empty() && n_chars > 1; ++draw) {
      std::string candidate = pieces[rng.next() % pieces.size()] + chars[1 + rng.next() % (n_chars - 1)];
      if (usable(candidate)) piece = std::move(candidate);
    }
    while (piece.empty()) {
      CHECK(n_chars > 1 && scan_left < pieces.size()) << "the scan always finds a new piece";
      std::string candidate = pieces[scan_left] + chars[scan_right];
      if (++scan_right == n_chars) {
        scan_right = 1;
        ++scan_left;
      }
      if (usable(candidate)) piece = std::move(candidate);
    }
    seen.insert(piece);
    pieces.push_back(std::move(piece));
  }
  // Written as stories260K's vocabulary is: the merges by rank, then the characters.
  for (std::size_t i = 0; i < n_merges; ++i) vocab.tokens.push_back(pieces[n_chars + i]);
  for (std::size_t i = 0; i < n_chars; ++i) vocab.tokens.push_back(pieces[i]);
  for (std::uint32_t i = 0; i < normal; ++i) {
    vocab.scores.push_back(-static_cast<float>(i));
    vocab.token_types.push_back(kTokenNormal);
  }
  CHECK(vocab.tokens.size() == vocab_size && vocab.scores.size() == vocab_size &&
        vocab.token_types.size() == vocab_size);
  return vocab;
}

Status validate(const RandomLlamaOptions& o) {
  auto out_of_range = [](std::string_view what, std::uint64_t value, std::uint64_t min, std::uint64_t max) {
    return Status::invalid_argument(fmt::format("{} is {}, not {} to {}", what, value, min, max));
  };
  if (o.vocab_size < kFirstNormalToken || o.vocab_size > limits::kRandomLlamaVocab) {
    return out_of_range("vocab_size", o.vocab_size, kFirstNormalToken, limits::kRandomLlamaVocab);
  }
  if (o.dim < 1 || o.dim > limits::kRandomLlamaDim) return out_of_range("dim", o.dim, 1, limits::kRandomLlamaDim);
  if (o.hidden_dim < 1 || o.hidden_dim > limits::kRandomLlamaHiddenDim) {
    return out_of_range("hidden_dim", o.hidden_dim, 1, limits::kRandomLlamaHiddenDim);
  }
  if (o.n_layers < 1 || o.n_layers > limits::kRandomLlamaLayers) {
    return out_of_range("n_layers", o.n_layers, 1, limits::kRandomLlamaLayers);
  }
  if (o.context_length < 1 || o.context_length > limits::kRandomLlamaContext) {
    return out_of_range("context_length", o.context_length, 1, limits::kRandomLlamaContext);
  }
  if (o.n_heads < 1 || o.dim % o.n_heads != 0 || (o.dim / o.n_heads) % 2 != 0) {
    return Status::invalid_argument(
        fmt::format("n_heads is {}: it must divide dim ({}) into heads of an even size (rope rotates pairs)",
                    o.n_heads, o.dim));
  }
  if (o.n_kv_heads < 1 || o.n_heads % o.n_kv_heads != 0) {
    return Status::invalid_argument(
        fmt::format("n_kv_heads is {}: it must divide n_heads ({})", o.n_kv_heads, o.n_heads));
  }
  if (!std::isfinite(o.rope_freq_base) || o.rope_freq_base <= 0) {
    return Status::invalid_argument(fmt::format("rope_freq_base is {}, not a positive number", o.rope_freq_base));
  }
  if (!std::isfinite(o.rms_norm_eps) || o.rms_norm_eps <= 0) {
    return Status::invalid_argument(fmt::format("rms_norm_eps is {}, not a positive number", o.rms_norm_eps));
  }
  if (!tensor_type_of(static_cast<std::uint32_t>(o.weight_type))) {
    return Status::invalid_argument(fmt::format("weight type {} is not one the engine reads",
                                                static_cast<std::uint32_t>(o.weight_type)));
  }
  if (is_quantized(o.weight_type)) {
    const std::uint32_t block = static_cast<std::uint32_t>(block_values(o.weight_type));
    if (o.dim % block != 0) {
      return Status::invalid_argument(fmt::format("dim is {}: {} weights need a multiple of {} (token_embd.weight's rows)",
                                                  o.dim, tensor_type_name(o.weight_type), block));
    }
    if (o.hidden_dim % block != 0) {
      return Status::invalid_argument(
          fmt::format("hidden_dim is {}: {} weights need a multiple of {} (blk.0.ffn_down.weight's rows)",
                      o.hidden_dim, tensor_type_name(o.weight_type), block));
    }
  }
  if (o.name.size() > limits::kGgufStringBytes) {
    return Status::invalid_argument(fmt::format("name is {} bytes, more than {}", o.name.size(),
                                                limits::kGgufStringBytes));
  }
  return Status::ok();
}

Result<GgufWriter> random_llama(const RandomLlamaOptions& o) {
  HR_RETURN_IF_ERROR(validate(o));
  GgufWriter writer(o.format);
  const RandomVocab vocab = random_vocab(o.vocab_size, o.seed);
  const std::uint32_t head_dim = o.dim / o.n_heads;

  // Metadata in stories260K's order, then the keys it lacks.
  HR_RETURN_IF_ERROR(writer.add_string_array("tokenizer.ggml.tokens", vocab.tokens));
  HR_RETURN_IF_ERROR(writer.add_array<float>("tokenizer.ggml.scores", vocab.scores));
  HR_RETURN_IF_ERROR(writer.add_array<std::int32_t>("tokenizer.ggml.token_type", vocab.token_types));
  HR_RETURN_IF_ERROR(writer.add_string("tokenizer.ggml.model", "llama"));
  HR_RETURN_IF_ERROR(writer.add_string("general.architecture", "llama"));
  HR_RETURN_IF_ERROR(writer.add_string("general.name", o.name));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("tokenizer.ggml.unknown_token_id", 0));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("tokenizer.ggml.bos_token_id", 1));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("tokenizer.ggml.eos_token_id", 2));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("llama.context_length", o.context_length));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("llama.embedding_length", o.dim));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("llama.feed_forward_length", o.hidden_dim));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("llama.attention.head_count", o.n_heads));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("llama.attention.head_count_kv", o.n_kv_heads));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("llama.block_count", o.n_layers));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("llama.rope.dimension_count", head_dim));
  HR_RETURN_IF_ERROR(writer.add<float>("llama.attention.layer_norm_rms_epsilon", o.rms_norm_eps));
  HR_RETURN_IF_ERROR(writer.add<float>("llama.rope.freq_base", o.rope_freq_base));
  HR_RETURN_IF_ERROR(writer.add<std::uint32_t>("general.file_type", file_type(o.weight_type)));
  if (o.extra == ExtraMetadata::kEveryValueType) HR_RETURN_IF_ERROR(add_every_value_type(writer));

  auto add = [&](const std::string& name, RandomTensorKind kind, TensorType type,
                 std::vector<std::uint64_t> dims) -> Status {
    const std::uint64_t row_values = dims[0];
    const std::uint64_t seed = o.seed;
    return writer.add_tensor(name, type, dims, [=](std::span<std::uint8_t> out) {
      TensorValues values(seed, name, kind, row_values);
      const std::uint64_t row_bytes = row_values / block_values(type) * block_bytes(type);
      CHECK(out.size() % row_bytes == 0);
      std::vector<float> row(row_values);
      for (std::uint64_t offset = 0; offset < out.size(); offset += row_bytes) {
        for (float& value : row) value = values.next();
        convert(row, type, out.data() + offset);
      }
    });
  };
  const std::uint64_t dim = o.dim, hidden = o.hidden_dim, vocab_size = o.vocab_size;
  const std::uint64_t kv_dim = std::uint64_t{o.n_kv_heads} * head_dim;
  const TensorType w = o.weight_type;
  const RandomTensorKind matrix = RandomTensorKind::kMatrix, norm = RandomTensorKind::kNorm;
  HR_RETURN_IF_ERROR(add("token_embd.weight", matrix, w, {dim, vocab_size}));
  HR_RETURN_IF_ERROR(add("output_norm.weight", norm, TensorType::kF32, {dim}));
  if (o.output == OutputWeights::kSeparate) HR_RETURN_IF_ERROR(add("output.weight", matrix, w, {dim, vocab_size}));
  for (std::uint32_t layer = 0; layer < o.n_layers; ++layer) {
    auto name = [layer](std::string_view part) { return fmt::format("blk.{}.{}.weight", layer, part); };
    HR_RETURN_IF_ERROR(add(name("attn_q"), matrix, w, {dim, dim}));
    HR_RETURN_IF_ERROR(add(name("attn_k"), matrix, w, {dim, kv_dim}));
    HR_RETURN_IF_ERROR(add(name("attn_v"), matrix, w, {dim, kv_dim}));
    HR_RETURN_IF_ERROR(add(name("attn_output"), matrix, w, {dim, dim}));
    HR_RETURN_IF_ERROR(add(name("attn_norm"), norm, TensorType::kF32, {dim}));
    HR_RETURN_IF_ERROR(add(name("ffn_gate"), matrix, w, {dim, hidden}));
    HR_RETURN_IF_ERROR(add(name("ffn_down"), matrix, w, {hidden, dim}));
    HR_RETURN_IF_ERROR(add(name("ffn_up"), matrix, w, {dim, hidden}));
    HR_RETURN_IF_ERROR(add(name("ffn_norm"), norm, TensorType::kF32, {dim}));
  }
  return writer;
}

Status write_random_llama(const RandomLlamaOptions& options, const std::string& path) {
  HR_ASSIGN_OR_RETURN(GgufWriter writer, random_llama(options));
  return writer.write_file(path);
}

}  // namespace headroom::infer
