// A straightforward llama forward pass in plain float loops, kept beside the
// engine as the reference its tests compare against (and the benchmark's
// "plain C" baseline: it is llama2.c's algorithm, one token at a time, one
// thread). It is written for clarity, not speed: no SIMD, no batching, no
// quantized arithmetic. Weights come in as float matrices, already
// dequantized by the caller.
//
// The llama architecture as GGUF llama models store it:
//   x = token_embd[token]
//   per layer:
//     h = rmsnorm(x) * attn_norm
//     q = Wq h, k = Wk h, v = Wv h            (q: n_heads x head_dim; k, v: n_kv_heads x head_dim)
//     rotate q and k: each adjacent pair (2i, 2i+1) of a head by pos * base^(-2i / head_dim)
//     per query head, over the key/value head it shares (grouped-query attention):
//       a = softmax(q . k[0..pos] / sqrt(head_dim)) . v[0..pos]
//     x += Wo a
//     h = rmsnorm(x) * ffn_norm
//     x += Wdown (silu(Wgate h) * (Wup h))
//   logits = output (rmsnorm(x) * output_norm)    (output = token_embd when tied)
// A matrix W of `rows` x `cols` is stored row-major (GGUF's dims[0] = cols).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "infer/gguf/tensor_types.h"

namespace headroom::infer::reference {

struct Config {
  int dim = 0;         // embedding length
  int hidden_dim = 0;  // feed-forward length
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int vocab = 0;
  int context = 0;  // positions the KV cache holds
  float rope_base = 10000.0f;
  float rms_epsilon = 1e-5f;
  // The engine's cache of F16 keys and values (LlamaConfig::kv_type): each
  // key and value rounded to IEEE half as it is cached.
  bool f16_cache = false;
};

struct Layer {
  std::vector<float> attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
};

struct Weights {
  std::vector<float> token_embd;  // vocab x dim
  std::vector<Layer> layers;
  std::vector<float> output_norm;
  std::vector<float> output;  // vocab x dim; empty: tied to token_embd
};

class Llama {
 public:
  Llama(Config config, Weights weights) : c_(config), w_(std::move(weights)) {
    const int kv_dim = c_.n_kv_heads * head_dim();
    key_cache_.assign(static_cast<std::size_t>(c_.n_layers) * c_.context * kv_dim, 0.0f);
    value_cache_.assign(key_cache_.size(), 0.0f);
  }

  int head_dim() const { return c_.dim / c_.n_heads; }

  // The logits after `token` at position `pos` (positions 0, 1, 2... in order).
  std::vector<float> forward(int token, int pos) {
    const int hd = head_dim();
    const int kv_dim = c_.n_kv_heads * hd;
    const int group = c_.n_heads / c_.n_kv_heads;
    std::vector<float> x(w_.token_embd.begin() + static_cast<std::ptrdiff_t>(token) * c_.dim,
                         w_.token_embd.begin() + static_cast<std::ptrdiff_t>(token + 1) * c_.dim);
    std::vector<float> h(c_.dim), q(c_.dim), attended(c_.dim), out(c_.dim);
    std::vector<float> gate(c_.hidden_dim), up(c_.hidden_dim);
    std::vector<float> scores(static_cast<std::size_t>(pos) + 1);
    for (int l = 0; l < c_.n_layers; ++l) {
      const Layer& L = w_.layers[l];
      float* k = &key_cache_[(static_cast<std::size_t>(l) * c_.context + pos) * kv_dim];
      float* v = &value_cache_[(static_cast<std::size_t>(l) * c_.context + pos) * kv_dim];
      rmsnorm(h.data(), x.data(), L.attn_norm.data(), c_.dim);
      matvec(q.data(), L.wq.data(), h.data(), c_.dim, c_.dim);
      matvec(k, L.wk.data(), h.data(), kv_dim, c_.dim);
      matvec(v, L.wv.data(), h.data(), kv_dim, c_.dim);
      rope(q.data(), c_.dim, pos);
      rope(k, kv_dim, pos);
      if (c_.f16_cache) {
        for (int i = 0; i < kv_dim; ++i) {
          k[i] = f16_to_f32(f32_to_f16(k[i]));
          v[i] = f16_to_f32(f32_to_f16(v[i]));
        }
      }
      for (int head = 0; head < c_.n_heads; ++head) {
        const float* qh = &q[static_cast<std::size_t>(head) * hd];
        const int kv_head = head / group;
        for (int t = 0; t <= pos; ++t) {
          const float* kt = &key_cache_[(static_cast<std::size_t>(l) * c_.context + t) * kv_dim + kv_head * hd];
          double dot = 0;
          for (int i = 0; i < hd; ++i) dot += static_cast<double>(qh[i]) * kt[i];
          scores[t] = static_cast<float>(dot / std::sqrt(static_cast<double>(hd)));
        }
        softmax(scores.data(), pos + 1);
        float* ah = &attended[static_cast<std::size_t>(head) * hd];
        for (int i = 0; i < hd; ++i) {
          double sum = 0;
          for (int t = 0; t <= pos; ++t) {
            sum += static_cast<double>(scores[t]) *
                   value_cache_[(static_cast<std::size_t>(l) * c_.context + t) * kv_dim + kv_head * hd + i];
          }
          ah[i] = static_cast<float>(sum);
        }
      }
      matvec(out.data(), L.wo.data(), attended.data(), c_.dim, c_.dim);
      for (int i = 0; i < c_.dim; ++i) x[i] += out[i];
      rmsnorm(h.data(), x.data(), L.ffn_norm.data(), c_.dim);
      matvec(gate.data(), L.w_gate.data(), h.data(), c_.hidden_dim, c_.dim);
      matvec(up.data(), L.w_up.data(), h.data(), c_.hidden_dim, c_.dim);
      for (int i = 0; i < c_.hidden_dim; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
      matvec(out.data(), L.w_down.data(), gate.data(), c_.dim, c_.hidden_dim);
      for (int i = 0; i < c_.dim; ++i) x[i] += out[i];
    }
    rmsnorm(h.data(), x.data(), w_.output_norm.data(), c_.dim);
    std::vector<float> logits(c_.vocab);
    const std::vector<float>& output = w_.output.empty() ? w_.token_embd : w_.output;
    matvec(logits.data(), output.data(), h.data(), c_.vocab, c_.dim);
    return logits;
  }

 private:
  // Sums in double: the reference should be the more exact side.
  static void matvec(float* y, const float* w, const float* x, int rows, int cols) {
    for (int r = 0; r < rows; ++r) {
      double sum = 0;
      const float* row = w + static_cast<std::size_t>(r) * cols;
      for (int i = 0; i < cols; ++i) sum += static_cast<double>(row[i]) * x[i];
      y[r] = static_cast<float>(sum);
    }
  }

  void rmsnorm(float* out, const float* x, const float* weight, int n) const {
    double ss = 0;
    for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    const double scale = 1.0 / std::sqrt(ss / n + c_.rms_epsilon);
    for (int i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * scale * weight[i]);
  }

  static void softmax(float* x, int n) {
    float max = x[0];
    for (int i = 1; i < n; ++i) max = std::max(max, x[i]);
    double sum = 0;
    for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(x[i]) - max);
    for (int i = 0; i < n; ++i) x[i] = static_cast<float>(std::exp(static_cast<double>(x[i]) - max) / sum);
  }

  // Adjacent pairs of each head, as GGUF llama models store Q and K.
  void rope(float* x, int n, int pos) const {
    const int hd = head_dim();
    for (int i = 0; i < n; i += 2) {
      const int pair = (i % hd) / 2;
      const double angle = pos * std::pow(static_cast<double>(c_.rope_base), -2.0 * pair / hd);
      const double c = std::cos(angle), s = std::sin(angle);
      const double a = x[i], b = x[i + 1];
      x[i] = static_cast<float>(a * c - b * s);
      x[i + 1] = static_cast<float>(a * s + b * c);
    }
  }

  Config c_;
  Weights w_;
  std::vector<float> key_cache_, value_cache_;  // [layer][pos][kv_dim]
};

}  // namespace headroom::infer::reference
