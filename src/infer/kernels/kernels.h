// The numeric kernels of a llama forward pass on the CPU.
//
// Each kernel has a plain portable implementation (Isa::kPortable, the
// reference the tests hold the others to, and the fallback on any CPU) and
// an x86-64 AVX2/FMA/F16C one (Isa::kAvx2), chosen at run time from cpuid;
// Isa::kAvx512 is the AVX2 set with AVX-512 VNNI matmuls of quantized
// weights packed for them (Kernels::pack; kernels_avx512.cpp says why).
// Kernels::best() is the fastest set this CPU runs; Kernels::get(isa) picks
// one explicitly (tests, benchmarks).
//
// Weights are row-major as GGUF stores them: a matrix of `rows` x `cols`
// (ggml's dims[0] = cols) holds each row's `cols` values contiguously, in
// F32, F16, BF16, Q8_0 or Q4_0 (infer/gguf/tensor_types.h). Activations are
// F32, B rows of `cols` values, and matmul computes
//   Y[b][r] = dot(W[r], X[b])        (Y is B rows of `rows` values).
//
// Accuracy of the quantized weights (Q8_0, Q4_0), Precision::kFast (the
// default): as llama.cpp does, each activation row is first quantized to
// Q8_0-style blocks (per 32 values an f32 scale d = max|x| / 127 and 32
// int8 q = round(x / d)), and each block's dot product is an exact integer
// sum scaled by d_w * d_x. The only error beyond float rounding is the
// activations' rounding, |x - d q| <= d / 2, so
//   |Y_fast - Y_exact| <= sum over i of |W[r][i]| * d_x(block of i) / 2,
// which the tests check. In practice the errors are random and mostly
// cancel: on Gaussian activations the RMS error is about 0.5% of Y's RMS
// (d_x / sqrt(12) per value, d_x ~ 2.1 sigma / 127), the largest about 2%
// (bench/kernels_bench prints the measured figures); activations with
// outliers lose more in the blocks that hold them.
// Precision::kExact dequantizes the weights to f32 and keeps the
// activations in f32 (slower: the reference for the fast path).
// F32, F16 and BF16 weights always take f32 activations (F16 and BF16
// widen exactly); only the summation order differs between the ISAs.
//
// Kernels are stateless and thread-safe; a Kernels object is a table of
// function pointers, valid for the life of the process. Pointers are not
// owned; unless a kernel says otherwise, output and input ranges must not
// overlap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "common/status.h"
#include "infer/gguf/tensor_types.h"
#include "infer/kernels/large_buffer.h"
#include "infer/kernels/thread_pool.h"

namespace headroom::infer {

enum class Isa : std::uint8_t {
  kPortable,  // plain C++, any CPU; the reference
  kAvx2,      // x86-64 with AVX2, FMA and F16C
  kAvx512,    // kAvx2 with AVX-512 F, BW, VL and VNNI for the quantized matmuls
};
std::string_view isa_name(Isa isa);  // "portable", "avx2", "avx512"

enum class Precision : std::uint8_t {
  kFast,   // quantized weights: activations quantized to Q8_0 blocks, integer dot products
  kExact,  // quantized weights dequantized to f32, f32 activations
};

inline constexpr std::size_t kMaxHeadDim = 512;  // rope's and attention's largest head
inline constexpr std::size_t kMaxMatmulCols = 1 << 20;

// A quantized matrix's bytes in the order one kernel set's kFast matmul
// reads fastest (Kernels::pack). Not owned.
struct PackedWeights {
  const std::uint8_t* data = nullptr;  // null: not packed
  Isa isa = Isa::kPortable;            // the set that packed them, and the only one that reads them
};

// A weight matrix as GGUF stores it. Not owned.
struct WeightMatrix {
  const void* data = nullptr;
  TensorType type = TensorType::kF32;
  std::size_t rows = 0;
  std::size_t cols = 0;  // a multiple of 32 for Q8_0 and Q4_0
  // The same matrix packed by Kernels::pack, if it was: the set that packed
  // it reads it instead of `data` for kFast; other sets ignore it.
  PackedWeights packed;
  std::size_t row_bytes() const { return cols / block_values(type) * block_bytes(type); }
};

// An activation block of Precision::kFast: x[i] ~= d * q[i].
struct BlockQ8_F32 {
  float d;
  std::int8_t qs[kQuantBlock];
};
static_assert(sizeof(BlockQ8_F32) == 36);

// The rotation of one position for rope(): shared by every head and layer
// of a token, so its sines are computed once per token.
struct RopeAngles {
  std::size_t head_dim = 0;
  float cos[kMaxHeadDim / 2];
  float sin[kMaxHeadDim / 2];
};
// Where attention() finds one sequence's cached keys and values: in pages of
// page_tokens consecutive positions, position t's row at
//   keys[t / page_tokens] + (t % page_tokens) * stride
// (values likewise), each row holding every kv head. A contiguous cache is
// a single page of page_tokens >= its length. The values are `type`'s: F32,
// or F16 (half the memory traffic; for heads whose head_dim is a multiple of
// 8), and offsets and strides count values, not bytes.
struct KvPages {
  const void* const* keys = nullptr;
  const void* const* values = nullptr;
  std::size_t page_tokens = 0;
  std::size_t stride = 0;  // values from one position's row to the next in a page
  TensorType type = TensorType::kF32;
};

// theta_i = pos * base^(-2i / head_dim) for i < head_dim / 2, in double,
// rounded to float. head_dim is even and at most kMaxHeadDim.
RopeAngles rope_angles(std::size_t pos, std::size_t head_dim, float base);

namespace detail {
struct KernelTable;  // kernel_table.h
}  // namespace detail

class Kernels {
 public:
  // The fastest set this CPU runs (decided once, from cpuid).
  static const Kernels& best();
  // The set of `isa`, or nullopt when this CPU (or build) lacks it.
  static std::optional<Kernels> get(Isa isa);
  static Isa best_isa();

  Isa isa() const;

  // Y[b * w.rows + r] = dot(W[r], X[b * w.cols ...]) for b < batch, r < w.rows.
  // Rows are split over `pool` (null: the calling thread alone); with
  // batch > 1 each weight row is read from memory once for the whole batch.
  // Each Y value is computed alone: the same bits whatever the thread count
  // and whatever else is in the batch (for a given ISA). kFast quantizes X
  // into a buffer of the calling thread, kept for its next calls (40 bytes
  // per 32 values of the largest batch * cols seen: the blocks, and their
  // scales again in a row).
  void matmul(const WeightMatrix& w, const float* x, std::size_t batch, float* y, ThreadPool* pool,
              Precision precision = Precision::kFast) const;

  // Several matrices against the same activations (a layer's q, k and v;
  // its gate and up), each into its own Y: the same results as one matmul
  // each. Where the matrices share cols, type and packing (the usual case),
  // the activations are quantized once and the rows of all split over the
  // pool in one dispatch; otherwise (a file may quantize a layer's matrices
  // differently) each goes alone. At most kMaxProducts.
  struct Product {
    const WeightMatrix* w;
    float* y;
  };
  static constexpr std::size_t kMaxProducts = 4;
  void matmul(std::span<const Product> products, const float* x, std::size_t batch, ThreadPool* pool,
              Precision precision = Precision::kFast) const;

  // Packs every matrix of `matrices` that this set has a layout for (on
  // kAvx512, the Q8_0 and Q4_0 ones; no other set has one) into one buffer
  // on huge pages, and points its `packed` at its part. Keep the buffer and
  // each w.data alive as long as the matrices are used: kExact and the other
  // sets still read w.data. The packed results are held to the same
  // reference as the unpacked path's, not bit-identical to it; still, each
  // Y value is computed alone. An empty buffer where nothing was packed;
  // unavailable when the memory cannot be mapped.
  Result<LargeBuffer> pack(std::span<WeightMatrix* const> matrices) const;

  // Q8_0-style quantization of n values (a multiple of 32) into n / 32
  // blocks, as matmul's kFast path does it (round to nearest, ties to even).
  void quantize_activations(const float* x, std::size_t n, BlockQ8_F32* out) const;

  // out = x / sqrt(mean(x^2) + eps) * weight. out may be x.
  void rmsnorm(const float* x, const float* weight, std::size_t n, float eps, float* out) const;
  // x = exp(x - max x) / sum, in place. -inf entries (masked) become 0; at
  // least one entry must be finite.
  void softmax(float* x, std::size_t n) const;
  // out = silu(gate) * up, silu(g) = g / (1 + exp(-g)) (SwiGLU). out may be gate or up.
  void silu_mul(const float* gate, const float* up, std::size_t n, float* out) const;
  // out = a + b. out may be a or b.
  void add(const float* a, const float* b, std::size_t n, float* out) const;
  // out[i] = x[i] as IEEE half, rounded to nearest even (f32_to_f16's bits
  // for every value but NaN, which stays a NaN): the F16 KV cache's stores.
  void to_f16(const float* x, std::size_t n, std::uint16_t* out) const;
  // Rotates, in each of `heads` heads of angles.head_dim values, the pairs
  // (x[2i], x[2i+1]) by theta_i (llama's GGUF layout).
  void rope(float* x, std::size_t heads, const RopeAngles& angles) const;
  // One query head over positions 0 .. n_kv - 1 of a cache: scores[t] =
  // scale * q . k_t, softmax, out = sum_t scores[t] v_t, where k_t is the
  // head_dim values at head_offset in position t's key row (v_t likewise).
  // `scores` (n_kv floats) is scratch, left holding the probabilities.
  // n_kv >= 1. Each score is computed alone, so the result does not depend
  // on how the positions are paged.
  void attention(const float* q, const KvPages& kv, std::size_t head_offset, std::size_t n_kv, std::size_t head_dim,
                 float scale, float* scores, float* out) const;

 private:
  explicit Kernels(const detail::KernelTable* table) : table_(table) {}
  const detail::KernelTable* table_;
};

}  // namespace headroom::infer
