#include "infer/kernels/kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/check.h"
#include "infer/kernels/kernel_table.h"

namespace headroom::infer {
namespace {

// A chunk of a parallel matmul reads at least this many weight bytes (times
// the batch): below it the pool's dispatch (about a microsecond) costs more
// than the work it shares.
constexpr std::size_t kMinChunkWeightBytes = 32 * 1024;
// The rows a row kernel works on at once (R in kernels_avx2.cpp): ranges
// of whole groups run at full speed.
constexpr std::size_t kRowGroup = 4;
// Activation rows are quantized in parallel past this many values.
constexpr std::size_t kParallelQuantizeValues = 64 * 1024;

bool cpu_has_avx2() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

bool is_quantized(TensorType type) { return type == TensorType::kQ8_0 || type == TensorType::kQ4_0; }

detail::MatmulRows rows_kernel(const detail::KernelTable& t, TensorType type, Precision precision) {
  switch (type) {
    case TensorType::kF32:
      return t.matmul_f32;
    case TensorType::kF16:
      return t.matmul_f16;
    case TensorType::kBF16:
      return t.matmul_bf16;
    case TensorType::kQ8_0:
      return precision == Precision::kFast ? t.matmul_q8_0_fast : t.matmul_q8_0_exact;
    case TensorType::kQ4_0:
      return precision == Precision::kFast ? t.matmul_q4_0_fast : t.matmul_q4_0_exact;
  }
  CHECK(false) << "unknown tensor type " << static_cast<int>(type);
  return nullptr;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return "portable";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
  }
  return "?";
}

RopeAngles rope_angles(std::size_t pos, std::size_t head_dim, float base) {
  CHECK(head_dim % 2 == 0 && head_dim > 0 && head_dim <= kMaxHeadDim) << "head_dim " << head_dim;
  RopeAngles angles;
  angles.head_dim = head_dim;
  for (std::size_t i = 0; i < head_dim / 2; ++i) {
    const double theta =
        static_cast<double>(pos) *
        std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    angles.cos[i] = static_cast<float>(std::cos(theta));
    angles.sin[i] = static_cast<float>(std::sin(theta));
  }
  return angles;
}

Isa Kernels::best_isa() {
  static const Isa isa = get(Isa::kAvx512) ? Isa::kAvx512 : get(Isa::kAvx2) ? Isa::kAvx2 : Isa::kPortable;
  return isa;
}

const Kernels& Kernels::best() {
  static const Kernels kernels = *get(best_isa());
  return kernels;
}

std::optional<Kernels> Kernels::get(Isa isa) {
  switch (isa) {
    case Isa::kPortable:
      return Kernels(&detail::portable_table());
    case Isa::kAvx2:
      if (!cpu_has_avx2() || detail::avx2_table() == nullptr) return std::nullopt;
      return Kernels(detail::avx2_table());
    case Isa::kAvx512:
      if (!cpu_has_avx512_vnni() || detail::avx512_table() == nullptr) return std::nullopt;
      return Kernels(detail::avx512_table());
  }
  return std::nullopt;
}

Isa Kernels::isa() const { return table_->isa; }

void Kernels::matmul(const WeightMatrix& w, const float* x, std::size_t batch, float* y, ThreadPool* pool,
                     Precision precision) const {
  const Product one[] = {{&w, y}};
  matmul(one, x, batch, pool, precision);
}

void Kernels::matmul(std::span<const Product> products, const float* x, std::size_t batch, ThreadPool* pool,
                     Precision precision) const {
  CHECK(!products.empty() && products.size() <= kMaxProducts) << products.size() << " products";
  if (batch == 0) return;
  const WeightMatrix& first = *products[0].w;
  CHECK(x != nullptr);
  CHECK(first.cols > 0 && first.cols <= kMaxMatmulCols) << "cols " << first.cols;
  CHECK(first.cols % block_values(first.type) == 0)
      << tensor_type_name(first.type) << " rows of " << first.cols << " values";
  const bool fast_quantized = is_quantized(first.type) && precision == Precision::kFast;
  const auto is_packed = [&](const WeightMatrix& w) {
    return fast_quantized && w.packed.data != nullptr && w.packed.isa == isa();
  };
  const bool packed = is_packed(first);
  for (const Product& p : products) {
    CHECK(p.w->data != nullptr && p.y != nullptr);
    if (p.w->cols != first.cols || p.w->type != first.type || is_packed(*p.w) != packed) {
      for (const Product& one : products) matmul(std::span(&one, 1), x, batch, pool, precision);
      return;
    }
  }

  detail::MatmulArgs args;
  args.row_bytes = first.row_bytes();
  args.cols = first.cols;
  args.batch = batch;
  args.x = x;
  args.x_row_bytes = first.cols * sizeof(float);

  if (fast_quantized) {
    // The activations, quantized once for every row of every matrix. Each
    // thread keeps its buffers (grown, never shrunk): decode calls this
    // dozens of times a token.
    thread_local std::vector<BlockQ8_F32> quantized;
    thread_local std::vector<float> scales;
    thread_local std::vector<std::int32_t> sums;
    const std::size_t blocks = first.cols / kQuantBlock;
    if (quantized.size() < batch * blocks) {
      quantized.resize(batch * blocks);
      scales.resize(batch * blocks);
      sums.resize(batch * blocks);
    }
    BlockQ8_F32* xq = quantized.data();
    float* xd = scales.data();
    std::int32_t* xs = sums.data();
    const auto quantize_rows = [&](std::size_t begin, std::size_t end) {
      for (std::size_t b = begin; b < end; ++b) {
        table_->quantize_activations(x + b * first.cols, first.cols, xq + b * blocks);
        for (std::size_t k = b * blocks; k < (b + 1) * blocks; ++k) {
          xd[k] = xq[k].d;
          if (packed) {
            std::int32_t sum = 0;
            for (const std::int8_t q : xq[k].qs) sum += q;
            xs[k] = sum;
          }
        }
      }
    };
    if (pool != nullptr && batch > 1 && batch * first.cols >= kParallelQuantizeValues) {
      pool->parallel_for(batch, quantize_rows);
    } else {
      quantize_rows(0, batch);
    }
    args.x = xq;
    args.x_row_bytes = blocks * sizeof(BlockQ8_F32);
    args.x_scales = xd;
    args.x_sums = xs;
  }

  // The rows of all the matrices, one after another, as units of work
  // (packed matmuls take rows in whole tiles; the row kernels are fastest
  // on whole groups of four, which share each activation load): unit u of
  // product i is unit start[i] + u of the whole.
  const detail::Packing& packing = table_->packing;
  const std::size_t unit_rows = packed ? packing.tile_rows : kRowGroup;
  const detail::MatmulRows kernel = !packed                           ? rows_kernel(*table_, first.type, precision)
                                    : first.type == TensorType::kQ8_0 ? packing.matmul_q8_0
                                                                      : packing.matmul_q4_0;
  std::size_t start[kMaxProducts + 1] = {0};
  for (std::size_t i = 0; i < products.size(); ++i) {
    start[i + 1] = start[i] + (products[i].w->rows + unit_rows - 1) / unit_rows;
  }
  const auto run = [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = 0; i < products.size(); ++i) {
      const std::size_t lo = std::max(begin, start[i]), hi = std::min(end, start[i + 1]);
      if (lo >= hi) continue;
      const WeightMatrix& w = *products[i].w;
      detail::MatmulArgs a = args;
      a.w = packed ? w.packed.data : static_cast<const std::uint8_t*>(w.data);
      a.rows = w.rows;
      a.y = products[i].y;
      kernel(a, (lo - start[i]) * unit_rows, std::min((hi - start[i]) * unit_rows, w.rows));
    }
  };
  const std::size_t units = start[products.size()];
  if (units == 0) return;
  if (pool == nullptr || pool->threads() == 1) {
    run(0, units);
    return;
  }
  const std::size_t bytes_per_unit = args.row_bytes * unit_rows * batch;
  const std::size_t grain = (kMinChunkWeightBytes + bytes_per_unit - 1) / bytes_per_unit;
  pool->parallel_for(units, grain, run);
}

Result<LargeBuffer> Kernels::pack(std::span<WeightMatrix* const> matrices) const {
  const detail::Packing& packing = table_->packing;
  // Each matrix's part, rounded up to a cache line; 0 for one not packed.
  const auto part = [&](const WeightMatrix& w) -> std::size_t {
    if (packing.pack == nullptr || !is_quantized(w.type) || w.rows == 0) return 0;
    CHECK(w.data != nullptr && w.cols > 0 && w.cols <= kMaxMatmulCols && w.cols % kQuantBlock == 0)
        << tensor_type_name(w.type) << " rows of " << w.cols << " values";
    return (packing.size(w) + 63) / 64 * 64;
  };
  std::size_t total = 0;
  for (const WeightMatrix* w : matrices) total += part(*w);
  HR_ASSIGN_OR_RETURN(LargeBuffer buffer, LargeBuffer::map(total));
  std::uint8_t* at = buffer.data();
  for (WeightMatrix* w : matrices) {
    const std::size_t bytes = part(*w);
    if (bytes == 0) continue;
    packing.pack(*w, at);
    w->packed = {.data = at, .isa = isa()};
    at += bytes;
  }
  return buffer;
}

void Kernels::quantize_activations(const float* x, std::size_t n, BlockQ8_F32* out) const {
  CHECK(n % kQuantBlock == 0) << n;
  table_->quantize_activations(x, n, out);
}

void Kernels::rmsnorm(const float* x, const float* weight, std::size_t n, float eps, float* out) const {
  ASSERT(n > 0);
  table_->rmsnorm(x, weight, n, eps, out);
}

void Kernels::softmax(float* x, std::size_t n) const {
  if (n == 0) return;
  table_->softmax(x, n);
}

void Kernels::silu_mul(const float* gate, const float* up, std::size_t n, float* out) const {
  table_->silu_mul(gate, up, n, out);
}

void Kernels::add(const float* a, const float* b, std::size_t n, float* out) const { table_->add(a, b, n, out); }

void Kernels::to_f16(const float* x, std::size_t n, std::uint16_t* out) const { table_->to_f16(x, n, out); }

void Kernels::rope(float* x, std::size_t heads, const RopeAngles& angles) const {
  CHECK(angles.head_dim % 2 == 0 && angles.head_dim <= kMaxHeadDim) << "head_dim " << angles.head_dim;
  table_->rope(x, heads, angles);
}

void Kernels::attention(const float* q, const KvPages& kv, std::size_t head_offset, std::size_t n_kv,
                        std::size_t head_dim, float scale, float* scores, float* out) const {
  CHECK(n_kv >= 1 && head_dim >= 1 && kv.page_tokens >= 1 && kv.stride >= head_dim)
      << "n_kv " << n_kv << " head_dim " << head_dim << " page_tokens " << kv.page_tokens;
  CHECK(kv.type == TensorType::kF32 || (kv.type == TensorType::kF16 && head_dim % 8 == 0))
      << tensor_type_name(kv.type) << " keys and values with head_dim " << head_dim;
  table_->attention(q, kv, head_offset, n_kv, head_dim, scale, scores, out);
}

}  // namespace headroom::infer
