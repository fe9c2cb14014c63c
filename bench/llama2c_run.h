// The baseline of bench/infer_bench: llama2.c's plain C forward pass
// (github.com/karpathy/llama2.c, run.c, MIT licence, Copyright (c) 2023
// Andrej Karpathy), ported line for line so that the benchmark can run it in
// the same process, on the same weights, with the same compiler flags as the
// engine. What was changed, and only that:
//   - the OpenMP pragmas are gone (the comparison is one thread against one
//     thread; `make run` builds run.c without OpenMP too);
//   - the weights are owned std::vectors filled by the caller (run.c mmaps
//     its own checkpoint format), and the functions live in a namespace;
//   - rope's base is a parameter (run.c hard-codes 10000.0f, which is
//     stories260K's llama.rope.freq_base).
// The arithmetic is run.c's: float accumulators, its loop orders, expf,
// powf, cosf, sinf, sqrtf, rmsnorm's epsilon of 1e-5f. Keep it that way:
// this is the "plain C implementation" the goal is measured against.
#pragma once

#include <cmath>
#include <cstring>
#include <vector>

namespace headroom::bench::llama2c {

struct Config {
  int dim;         // transformer dimension
  int hidden_dim;  // for ffn layers
  int n_layers;    // number of layers
  int n_heads;     // number of query heads
  int n_kv_heads;  // number of key/value heads (can be < query heads because of multiquery)
  int vocab_size;  // vocabulary size
  int seq_len;     // max sequence length
  float rope_base = 10000.0f;
};

// run.c's TransformerWeights, every matrix row-major (out, in) as GGUF stores it.
struct TransformerWeights {
  std::vector<float> token_embedding_table;  // (vocab_size, dim)
  std::vector<float> rms_att_weight;         // (layer, dim) rmsnorm weights
  std::vector<float> rms_ffn_weight;         // (layer, dim)
  std::vector<float> wq;                     // (layer, dim, n_heads * head_size)
  std::vector<float> wk;                     // (layer, dim, n_kv_heads * head_size)
  std::vector<float> wv;                     // (layer, dim, n_kv_heads * head_size)
  std::vector<float> wo;                     // (layer, n_heads * head_size, dim)
  std::vector<float> w1;                     // (layer, hidden_dim, dim)  ffn_gate
  std::vector<float> w2;                     // (layer, dim, hidden_dim)  ffn_down
  std::vector<float> w3;                     // (layer, hidden_dim, dim)  ffn_up
  std::vector<float> rms_final_weight;       // (dim,)
  std::vector<float> wcls;                   // (vocab_size, dim)
};

struct RunState {
  // current wave of activations
  std::vector<float> x;       // activation at current time stamp (dim,)
  std::vector<float> xb;      // same, but inside a residual branch (dim,)
  std::vector<float> xb2;     // an additional buffer just for convenience (dim,)
  std::vector<float> hb;      // buffer for hidden dimension in the ffn (hidden_dim,)
  std::vector<float> hb2;     // buffer for hidden dimension in the ffn (hidden_dim,)
  std::vector<float> q;       // query (dim,)
  std::vector<float> att;     // buffer for scores/attention values (n_heads, seq_len)
  std::vector<float> logits;  // output logits
  // kv cache
  std::vector<float> key_cache;    // (layer, seq_len, dim)
  std::vector<float> value_cache;  // (layer, seq_len, dim)
};

inline void malloc_run_state(RunState* s, const Config* p) {
  const int kv_dim = (p->dim * p->n_kv_heads) / p->n_heads;
  s->x.assign(p->dim, 0.0f);
  s->xb.assign(p->dim, 0.0f);
  s->xb2.assign(p->dim, 0.0f);
  s->hb.assign(p->hidden_dim, 0.0f);
  s->hb2.assign(p->hidden_dim, 0.0f);
  s->q.assign(p->dim, 0.0f);
  s->key_cache.assign(static_cast<std::size_t>(p->n_layers) * p->seq_len * kv_dim, 0.0f);
  s->value_cache.assign(static_cast<std::size_t>(p->n_layers) * p->seq_len * kv_dim, 0.0f);
  s->att.assign(static_cast<std::size_t>(p->n_heads) * p->seq_len, 0.0f);
  s->logits.assign(p->vocab_size, 0.0f);
}

// ----------------------------------------------------------------------------
// neural net blocks; the dynamics of the Transformer

inline void rmsnorm(float* o, const float* x, const float* weight, int size) {
  // calculate sum of squares
  float ss = 0.0f;
  for (int j = 0; j < size; j++) {
    ss += x[j] * x[j];
  }
  ss /= size;
  ss += 1e-5f;
  ss = 1.0f / sqrtf(ss);
  // normalize and scale
  for (int j = 0; j < size; j++) {
    o[j] = weight[j] * (ss * x[j]);
  }
}

inline void softmax(float* x, int size) {
  // find max value (for numerical stability)
  float max_val = x[0];
  for (int i = 1; i < size; i++) {
    if (x[i] > max_val) {
      max_val = x[i];
    }
  }
  // exp and sum
  float sum = 0.0f;
  for (int i = 0; i < size; i++) {
    x[i] = expf(x[i] - max_val);
    sum += x[i];
  }
  // normalize
  for (int i = 0; i < size; i++) {
    x[i] /= sum;
  }
}

inline void matmul(float* xout, const float* x, const float* w, int n, int d) {
  // W (d,n) @ x (n,) -> xout (d,)
  // by far the most amount of time is spent inside this little function
  for (int i = 0; i < d; i++) {
    float val = 0.0f;
    for (int j = 0; j < n; j++) {
      val += w[static_cast<std::size_t>(i) * n + j] * x[j];
    }
    xout[i] = val;
  }
}

inline float* forward(const Config* p, const TransformerWeights* w, RunState* s, int token, int pos) {
  // a few convenience variables
  float* x = s->x.data();
  int dim = p->dim;
  int kv_dim = (p->dim * p->n_kv_heads) / p->n_heads;
  int kv_mul = p->n_heads / p->n_kv_heads;  // integer multiplier of the kv sharing in multiquery
  int hidden_dim = p->hidden_dim;
  int head_size = dim / p->n_heads;

  // copy the token embedding into x
  const float* content_row = w->token_embedding_table.data() + static_cast<std::size_t>(token) * dim;
  memcpy(x, content_row, dim * sizeof(*x));

  // forward all the layers
  for (unsigned long long l = 0; l < static_cast<unsigned long long>(p->n_layers); l++) {
    // attention rmsnorm
    rmsnorm(s->xb.data(), x, w->rms_att_weight.data() + l * dim, dim);

    // key and value point to the kv cache
    std::size_t loff = l * p->seq_len * kv_dim;  // kv cache layer offset for convenience
    float* k = s->key_cache.data() + loff + pos * kv_dim;
    float* v = s->value_cache.data() + loff + pos * kv_dim;

    // qkv matmuls for this position
    matmul(s->q.data(), s->xb.data(), w->wq.data() + l * dim * dim, dim, dim);
    matmul(k, s->xb.data(), w->wk.data() + l * dim * kv_dim, dim, kv_dim);
    matmul(v, s->xb.data(), w->wv.data() + l * dim * kv_dim, dim, kv_dim);

    // RoPE relative positional encoding: complex-valued rotate q and k in each head
    for (int i = 0; i < dim; i += 2) {
      int head_dim = i % head_size;
      float freq = 1.0f / powf(p->rope_base, head_dim / (float)head_size);
      float val = pos * freq;
      float fcr = cosf(val);
      float fci = sinf(val);
      int rotn = i < kv_dim ? 2 : 1;  // how many vectors? 2 = q & k, 1 = q only
      for (int vi = 0; vi < rotn; vi++) {
        float* vec = vi == 0 ? s->q.data() : k;  // the vector to rotate (query or key)
        float v0 = vec[i];
        float v1 = vec[i + 1];
        vec[i] = v0 * fcr - v1 * fci;
        vec[i + 1] = v0 * fci + v1 * fcr;
      }
    }

    // multihead attention. iterate over all heads
    for (int h = 0; h < p->n_heads; h++) {
      // get the query vector for this head
      float* q = s->q.data() + h * head_size;
      // attention scores for this head
      float* att = s->att.data() + h * p->seq_len;
      // iterate over all timesteps, including the current one
      for (int t = 0; t <= pos; t++) {
        // get the key vector for this head and at this timestep
        float* kt = s->key_cache.data() + loff + t * kv_dim + (h / kv_mul) * head_size;
        // calculate the attention score as the dot product of q and k
        float score = 0.0f;
        for (int i = 0; i < head_size; i++) {
          score += q[i] * kt[i];
        }
        score /= sqrtf(head_size);
        // save the score to the attention buffer
        att[t] = score;
      }

      // softmax the scores to get attention weights, from 0..pos inclusively
      softmax(att, pos + 1);

      // weighted sum of the values, store back into xb
      float* xb = s->xb.data() + h * head_size;
      memset(xb, 0, head_size * sizeof(float));
      for (int t = 0; t <= pos; t++) {
        // get the value vector for this head and at this timestep
        float* vt = s->value_cache.data() + loff + t * kv_dim + (h / kv_mul) * head_size;
        // get the attention weight for this timestep
        float a = att[t];
        // accumulate the weighted value into xb
        for (int i = 0; i < head_size; i++) {
          xb[i] += a * vt[i];
        }
      }
    }

    // final matmul to get the output of the attention
    matmul(s->xb2.data(), s->xb.data(), w->wo.data() + l * dim * dim, dim, dim);

    // residual connection back into x
    for (int i = 0; i < dim; i++) {
      x[i] += s->xb2[i];
    }

    // ffn rmsnorm
    rmsnorm(s->xb.data(), x, w->rms_ffn_weight.data() + l * dim, dim);

    // Now for FFN in PyTorch we have: self.w2(F.silu(self.w1(x)) * self.w3(x))
    // first calculate self.w1(x) and self.w3(x)
    matmul(s->hb.data(), s->xb.data(), w->w1.data() + l * dim * hidden_dim, dim, hidden_dim);
    matmul(s->hb2.data(), s->xb.data(), w->w3.data() + l * dim * hidden_dim, dim, hidden_dim);

    // SwiGLU non-linearity
    for (int i = 0; i < hidden_dim; i++) {
      float val = s->hb[i];
      // silu(x)=x*σ(x), where σ(x) is the logistic sigmoid
      val *= (1.0f / (1.0f + expf(-val)));
      // elementwise multiply with w3(x)
      val *= s->hb2[i];
      s->hb[i] = val;
    }

    // final matmul to get the output of the ffn
    matmul(s->xb.data(), s->hb.data(), w->w2.data() + l * dim * hidden_dim, hidden_dim, dim);

    // residual connection
    for (int i = 0; i < dim; i++) {
      x[i] += s->xb[i];
    }
  }

  // final rmsnorm
  rmsnorm(x, x, w->rms_final_weight.data(), dim);

  // classifier into logits
  matmul(s->logits.data(), x, w->wcls.data(), p->dim, p->vocab_size);
  return s->logits.data();
}

// run.c's sample_argmax: the greedy choice (temperature 0).
inline int sample_argmax(const float* probabilities, int n) {
  int max_i = 0;
  float max_p = probabilities[0];
  for (int i = 1; i < n; i++) {
    if (probabilities[i] > max_p) {
      max_i = i;
      max_p = probabilities[i];
    }
  }
  return max_i;
}

}  // namespace headroom::bench::llama2c
