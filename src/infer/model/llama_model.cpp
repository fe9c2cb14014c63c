#include "infer/model/llama_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace headroom::infer {
namespace {

// A hyperparameter that must be present and in [1, max].
Result<std::size_t> required_count(const GgufFile& file, const std::string& key, std::uint64_t max) {
  HR_ASSIGN_OR_RETURN(std::uint64_t value, file.get_unsigned(key));
  if (value == 0 || value > max) {
    return Status::invalid_argument(file.name() + ": " + key + " is " + std::to_string(value) + ", must be in [1, " +
                                    std::to_string(max) + "]");
  }
  return static_cast<std::size_t>(value);
}

Result<WeightMatrix> matrix(const GgufFile& file, const std::string& name, std::size_t cols, std::size_t rows) {
  HR_ASSIGN_OR_RETURN(TensorView view, file.tensor(name, {cols, rows}));
  return WeightMatrix{view.data, view.type, rows, cols};
}

Result<const float*> norm(const GgufFile& file, const std::string& name, std::size_t dim) {
  HR_ASSIGN_OR_RETURN(TensorView view, file.tensor(name, {dim}));
  if (view.type != TensorType::kF32) {
    return Status::invalid_argument(file.name() + ": tensor " + name + " is " +
                                    std::string(tensor_type_name(view.type)) + ", norm weights must be f32");
  }
  // The mapping is aligned to the file's alignment (>= 8), so f32 data is aligned.
  return reinterpret_cast<const float*>(view.data);
}

// Sizes a scratch vector for at least n values (it only grows).
template <typename T>
T* grow(std::vector<T>& v, std::size_t n) {
  if (v.size() < n) v.resize(n);
  return v.data();
}

}  // namespace

KvCache::KvCache(const LlamaConfig& config, std::size_t context_tokens)
    : context_tokens_(context_tokens),
      pool_(KvPool::create(config, (context_tokens + kKvPageTokens - 1) / kKvPageTokens).value()),
      sequence_(*pool_) {
  CHECK(sequence_.reserve(context_tokens));
}

Result<std::unique_ptr<LlamaModel>> LlamaModel::load(const GgufFile& file, LlamaModelOptions options) {
  HR_ASSIGN_OR_RETURN(std::string_view architecture, file.get_string("general.architecture"));
  if (architecture != "llama") {
    return Status::invalid_argument(file.name() + ": general.architecture is '" + std::string(architecture) +
                                    "', the engine runs llama");
  }
  constexpr std::uint64_t kMaxDim = 1 << 16;
  constexpr std::uint64_t kMaxLayers = 1024;
  LlamaConfig c;
  HR_ASSIGN_OR_RETURN(c.dim, required_count(file, "llama.embedding_length", kMaxDim));
  HR_ASSIGN_OR_RETURN(c.hidden_dim, required_count(file, "llama.feed_forward_length", kMaxDim * 8));
  HR_ASSIGN_OR_RETURN(c.n_layers, required_count(file, "llama.block_count", kMaxLayers));
  HR_ASSIGN_OR_RETURN(c.n_heads, required_count(file, "llama.attention.head_count", c.dim));
  c.n_kv_heads = c.n_heads;
  if (file.has("llama.attention.head_count_kv")) {
    HR_ASSIGN_OR_RETURN(c.n_kv_heads, required_count(file, "llama.attention.head_count_kv", c.n_heads));
  }
  HR_ASSIGN_OR_RETURN(c.context_length, required_count(file, "llama.context_length", std::uint64_t{1} << 24));
  if (file.has("llama.rope.freq_base")) {
    HR_ASSIGN_OR_RETURN(double base, file.get_real("llama.rope.freq_base"));
    if (!(base > 1.0) || !std::isfinite(base)) {
      return Status::invalid_argument(file.name() + ": llama.rope.freq_base is " + std::to_string(base) +
                                      ", must be a finite number > 1");
    }
    c.rope_base = static_cast<float>(base);
  }
  HR_ASSIGN_OR_RETURN(double eps, file.get_real("llama.attention.layer_norm_rms_epsilon"));
  if (!(eps > 0.0) || !(eps < 1.0)) {
    return Status::invalid_argument(file.name() + ": llama.attention.layer_norm_rms_epsilon is " + std::to_string(eps) +
                                    ", must be in (0, 1)");
  }
  c.rms_epsilon = static_cast<float>(eps);
  if (c.dim % c.n_heads != 0) {
    return Status::invalid_argument(file.name() + ": llama.attention.head_count " + std::to_string(c.n_heads) +
                                    " does not divide llama.embedding_length " + std::to_string(c.dim));
  }
  if (c.n_heads % c.n_kv_heads != 0) {
    return Status::invalid_argument(file.name() + ": llama.attention.head_count_kv " + std::to_string(c.n_kv_heads) +
                                    " does not divide llama.attention.head_count " + std::to_string(c.n_heads));
  }
  c.head_dim = c.dim / c.n_heads;
  if (c.head_dim % 2 != 0 || c.head_dim > kMaxHeadDim) {
    return Status::invalid_argument(file.name() + ": head dimension " + std::to_string(c.head_dim) +
                                    " (embedding_length / head_count) must be even and at most " +
                                    std::to_string(kMaxHeadDim));
  }
  c.kv_dim = c.n_kv_heads * c.head_dim;
  // Partial rotary embeddings (fewer rotated dimensions than a head) are
  // another architecture: refuse them rather than rotate the wrong pairs.
  if (file.has("llama.rope.dimension_count")) {
    HR_ASSIGN_OR_RETURN(std::uint64_t rope_dims, file.get_unsigned("llama.rope.dimension_count"));
    if (rope_dims != c.head_dim) {
      return Status::invalid_argument(file.name() + ": llama.rope.dimension_count is " + std::to_string(rope_dims) +
                                      ", the engine rotates whole heads of " + std::to_string(c.head_dim));
    }
  }

  HR_ASSIGN_OR_RETURN(TensorView embd, file.tensor("token_embd.weight"));
  if (embd.n_dims != 2 || embd.dims[0] != c.dim) {
    return Status::invalid_argument(file.name() + ": tensor token_embd.weight has shape " + format_shape(embd.shape()) +
                                    ", expected [" + std::to_string(c.dim) + ", vocab]");
  }
  c.vocab = static_cast<std::size_t>(embd.dims[1]);

  auto model = std::unique_ptr<LlamaModel>(new LlamaModel());
  model->token_embd_ = WeightMatrix{embd.data, embd.type, c.vocab, c.dim};
  HR_ASSIGN_OR_RETURN(model->output_norm_, norm(file, "output_norm.weight", c.dim));
  c.tied_output = file.find("output.weight") == nullptr;
  if (c.tied_output) {
    model->output_ = model->token_embd_;
  } else {
    HR_ASSIGN_OR_RETURN(model->output_, matrix(file, "output.weight", c.dim, c.vocab));
  }
  model->layers_.resize(c.n_layers);
  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer& L = model->layers_[l];
    HR_ASSIGN_OR_RETURN(L.attn_norm, norm(file, p + "attn_norm.weight", c.dim));
    HR_ASSIGN_OR_RETURN(L.wq, matrix(file, p + "attn_q.weight", c.dim, c.dim));
    HR_ASSIGN_OR_RETURN(L.wk, matrix(file, p + "attn_k.weight", c.dim, c.kv_dim));
    HR_ASSIGN_OR_RETURN(L.wv, matrix(file, p + "attn_v.weight", c.dim, c.kv_dim));
    HR_ASSIGN_OR_RETURN(L.wo, matrix(file, p + "attn_output.weight", c.dim, c.dim));
    HR_ASSIGN_OR_RETURN(L.ffn_norm, norm(file, p + "ffn_norm.weight", c.dim));
    HR_ASSIGN_OR_RETURN(L.w_gate, matrix(file, p + "ffn_gate.weight", c.dim, c.hidden_dim));
    HR_ASSIGN_OR_RETURN(L.w_up, matrix(file, p + "ffn_up.weight", c.dim, c.hidden_dim));
    HR_ASSIGN_OR_RETURN(L.w_down, matrix(file, p + "ffn_down.weight", c.hidden_dim, c.dim));
  }
  // Every type GgufFile opens (F32, F16, BF16, Q8_0, Q4_0) is one the
  // kernels multiply, and it has already checked that each row is whole
  // blocks; nothing more to check on the types of the matrices.
  const auto quantized = [](const WeightMatrix& w) { return w.type == TensorType::kQ8_0 || w.type == TensorType::kQ4_0; };
  const bool quantized_kv = std::all_of(model->layers_.begin(), model->layers_.end(),
                                        [&](const Layer& L) { return quantized(L.wk) && quantized(L.wv); });
  if (options.precision == Precision::kFast && quantized_kv && c.head_dim % 8 == 0) c.kv_type = TensorType::kF16;
  model->config_ = c;
  // Every matrix a step reads (the embedding only a row per token).
  std::vector<WeightMatrix*> matrices;
  for (Layer& L : model->layers_) {
    for (WeightMatrix* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) matrices.push_back(w);
  }
  matrices.push_back(&model->output_);
  for (const WeightMatrix* w : matrices) model->step_weight_bytes_ += w->rows * w->row_bytes();
  model->kernels_ = options.kernels != nullptr ? options.kernels : &Kernels::best();
  model->precision_ = options.precision;
  // The kernels' own layout of the quantized matrices, where they have one
  // (AVX-512's): every kFast product reads it instead of the file's bytes.
  if (model->precision_ == Precision::kFast) {
    Result<LargeBuffer> packed = model->kernels_->pack(matrices);
    if (!packed.is_ok()) return packed.status().with_context(file.name() + ": packing the weights: ");
    model->packed_ = std::move(packed).value();
  }
  return model;
}

KvCache LlamaModel::new_cache(std::size_t context_tokens) const {
  if (context_tokens == 0) context_tokens = config_.context_length;
  return KvCache(config_, std::min(context_tokens, kMaxContextTokens));
}

void LlamaModel::embed(std::int32_t token, float* out) const {
  const auto* row = static_cast<const std::uint8_t*>(token_embd_.data) + token_embd_.row_bytes() * token;
  dequantize(token_embd_.type, row, config_.dim, out);
}

Status LlamaModel::forward(std::int32_t token, std::size_t pos, KvCache& cache, std::span<float> logits,
                           ThreadPool* pool) const {
  return forward(std::span<const std::int32_t>(&token, 1), pos, cache, logits, pool);
}

Status LlamaModel::forward(std::span<const std::int32_t> tokens, std::size_t start_pos, KvCache& cache,
                           std::span<float> logits, ThreadPool* pool) const {
  if (start_pos + tokens.size() > cache.context_tokens()) {
    return Status::invalid_argument("positions up to " + std::to_string(start_pos + tokens.size() - 1) +
                                    " do not fit a cache of " + std::to_string(cache.context_tokens()));
  }
  if (logits.size() != config_.vocab) {
    return Status::invalid_argument("logits hold " + std::to_string(logits.size()) + " values, the vocabulary " +
                                    std::to_string(config_.vocab));
  }
  const SequenceSlice slice{&cache.sequence_, tokens, start_pos, logits};
  return forward(std::span(&slice, 1), cache.scratch_, pool);
}

Status LlamaModel::forward(std::span<const SequenceSlice> slices, ForwardScratch& scratch, ThreadPool* pool) const {
  const LlamaConfig& c = config_;
  std::size_t batch = 0, n_logits = 0;
  for (const SequenceSlice& slice : slices) {
    if (slice.kv == nullptr || slice.tokens.empty()) {
      return Status::invalid_argument("a forward slice needs a sequence and at least one token");
    }
    batch += slice.tokens.size();
    if (slice.start_pos + slice.tokens.size() > slice.kv->capacity()) {
      return Status::invalid_argument("positions up to " + std::to_string(slice.start_pos + slice.tokens.size() - 1) +
                                      " do not fit the sequence's " + std::to_string(slice.kv->capacity()));
    }
    if (!slice.logits.empty()) {
      if (slice.logits.size() != c.vocab) {
        return Status::invalid_argument("logits hold " + std::to_string(slice.logits.size()) +
                                        " values, the vocabulary " + std::to_string(c.vocab));
      }
      ++n_logits;
    }
    for (std::int32_t token : slice.tokens) {
      if (token < 0 || static_cast<std::size_t>(token) >= c.vocab) {
        return Status::invalid_argument("token " + std::to_string(token) + " is outside the vocabulary of " +
                                        std::to_string(c.vocab));
      }
    }
  }
  if (batch == 0 || batch > kMaxBatchTokens) {
    return Status::invalid_argument("a forward batch holds 1 to " + std::to_string(kMaxBatchTokens) + " tokens, got " +
                                    std::to_string(batch));
  }
  const Kernels& k = *kernels_;
  const std::size_t dim = c.dim, hd = c.head_dim, kv_dim = c.kv_dim;
  float* x = grow(scratch.x_, batch * dim);
  float* h = grow(scratch.h_, batch * dim);
  float* q = grow(scratch.q_, batch * dim);
  float* keys = grow(scratch.k_, batch * kv_dim);
  float* values = grow(scratch.v_, batch * kv_dim);
  float* attended = grow(scratch.attended_, batch * dim);
  float* out = grow(scratch.out_, batch * dim);
  float* gate = grow(scratch.gate_, batch * c.hidden_dim);
  float* up = grow(scratch.up_, batch * c.hidden_dim);
  RopeAngles* angles = grow(scratch.angles_, batch);
  // Row r of the batch belongs to slice row_slice[r], at position row_pos[r].
  std::uint32_t* row_slice = grow(scratch.row_slice_, batch);
  std::size_t* row_pos = grow(scratch.row_pos_, batch);
  for (std::size_t s = 0, r = 0; s < slices.size(); ++s) {
    const SequenceSlice& slice = slices[s];
    for (std::size_t i = 0; i < slice.tokens.size(); ++i, ++r) {
      row_slice[r] = static_cast<std::uint32_t>(s);
      row_pos[r] = slice.start_pos + i;
      embed(slice.tokens[i], x + r * dim);
      angles[r] = rope_angles(row_pos[r], hd, c.rope_base);
    }
  }
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  const std::size_t group = c.n_heads / c.n_kv_heads;
  // Attention is split over the pool only when there is enough of it: a
  // small model's few positions take less than waking the workers does.
  constexpr std::size_t kParallelAttentionMacs = std::size_t{1} << 16;
  std::size_t attention_macs = 0;
  for (std::size_t r = 0; r < batch; ++r) attention_macs += (row_pos[r] + 1) * 2 * c.n_heads * hd;
  ThreadPool* attention_pool = attention_macs >= kParallelAttentionMacs ? pool : nullptr;
  // The per-row work between the matmuls (norms, rotary, cache stores,
  // SwiGLU, residual adds) is split over the pool by rows once a batch has
  // enough of it: run on the calling thread alone, it left the workers
  // spinning for about a tenth of a 16-sequence step (110M, Q4_0). Every
  // value is computed alone, so the split does not change a bit.
  constexpr std::size_t kParallelRowValues = std::size_t{1} << 13;
  ThreadPool* row_pool = batch > 1 && batch * dim >= kParallelRowValues ? pool : nullptr;
  const auto for_rows = [row_pool, batch](auto&& fn) {
    if (row_pool != nullptr) {
      row_pool->parallel_for(batch, fn);
    } else {
      fn(std::size_t{0}, batch);
    }
  };

  for (std::size_t l = 0; l < c.n_layers; ++l) {
    const Layer& L = layers_[l];
    for_rows([&](std::size_t begin, std::size_t end) {
      for (std::size_t r = begin; r < end; ++r) k.rmsnorm(x + r * dim, L.attn_norm, dim, c.rms_epsilon, h + r * dim);
    });
    const Kernels::Product qkv[] = {{&L.wq, q}, {&L.wk, keys}, {&L.wv, values}};
    k.matmul(qkv, h, batch, pool, precision_);
    // Rows of one slice are positions of one sequence, each stored in its
    // own place: rows may go to any thread.
    for_rows([&](std::size_t begin, std::size_t end) {
      for (std::size_t r = begin; r < end; ++r) {
        k.rope(q + r * dim, c.n_heads, angles[r]);
        k.rope(keys + r * kv_dim, c.n_kv_heads, angles[r]);
        slices[row_slice[r]].kv->store(l, row_pos[r], keys + r * kv_dim, values + r * kv_dim, k);
      }
    });
    auto attend = [&](std::size_t begin, std::size_t end) {
      thread_local std::vector<float> scores;
      for (std::size_t task = begin; task < end; ++task) {
        const std::size_t r = task / c.n_heads, head = task % c.n_heads;
        const SequenceSlice& slice = slices[row_slice[r]];
        const std::size_t n_kv = row_pos[r] + 1;  // the positions it sees, itself included
        if (scores.size() < n_kv) scores.resize(n_kv);
        const std::size_t offset = slice.kv->head_offset(l, head / group);
        k.attention(q + r * dim + head * hd, slice.kv->pages(), offset, n_kv, hd, scale, scores.data(),
                    attended + r * dim + head * hd);
      }
    };
    if (attention_pool != nullptr) {
      attention_pool->parallel_for(batch * c.n_heads, attend);
    } else {
      attend(0, batch * c.n_heads);
    }
    k.matmul(L.wo, attended, batch, out, pool, precision_);
    for_rows([&](std::size_t begin, std::size_t end) {
      k.add(x + begin * dim, out + begin * dim, (end - begin) * dim, x + begin * dim);
      for (std::size_t r = begin; r < end; ++r) k.rmsnorm(x + r * dim, L.ffn_norm, dim, c.rms_epsilon, h + r * dim);
    });
    const Kernels::Product gate_up[] = {{&L.w_gate, gate}, {&L.w_up, up}};
    k.matmul(gate_up, h, batch, pool, precision_);
    for_rows([&](std::size_t begin, std::size_t end) {
      const std::size_t n = c.hidden_dim;
      k.silu_mul(gate + begin * n, up + begin * n, (end - begin) * n, gate + begin * n);
    });
    k.matmul(L.w_down, gate, batch, out, pool, precision_);
    for_rows([&](std::size_t begin, std::size_t end) {
      k.add(x + begin * dim, out + begin * dim, (end - begin) * dim, x + begin * dim);
    });
  }

  // The logits, for the last row of each slice that asks: one matmul for all.
  if (n_logits == 0) return Status::ok();
  float* logits = grow(scratch.logits_, n_logits * c.vocab);
  std::size_t n = 0;
  for (std::size_t s = 0, end = 0; s < slices.size(); ++s) {
    end += slices[s].tokens.size();
    if (!slices[s].logits.empty()) k.rmsnorm(x + (end - 1) * dim, output_norm_, dim, c.rms_epsilon, h + n++ * dim);
  }
  k.matmul(output_, h, n_logits, logits, pool, precision_);
  n = 0;
  for (const SequenceSlice& slice : slices) {
    if (!slice.logits.empty()) std::memcpy(slice.logits.data(), logits + n++ * c.vocab, c.vocab * sizeof(float));
  }
  return Status::ok();
}

}  // namespace headroom::infer
