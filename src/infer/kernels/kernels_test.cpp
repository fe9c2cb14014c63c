// Each optimised kernel against the portable reference (and the reference
// against double-precision arithmetic written out here), on random inputs
// across sizes (odd tails included), weight types, batches and thread counts.
//
// Tolerances, per type:
//   F32, F16, BF16 weights, and Q8_0/Q4_0 with either precision, one ISA
//     against the other: |dY| <= 1e-5 * sum_i |W_i X_i| (the ISAs only sum
//     in another order; the quantized kFast paths compute the same integer
//     block sums, so the same bound holds over the blocks' products).
//   Q8_0/Q4_0 kFast against kExact: |dY| <= sum_i |W_i| d_x(i) / 2, plus the
//     float term above (the activations' rounding, kernels.h).
//   Activation quantization: bit-identical across ISAs.
//   rmsnorm, add, rope, silu_mul, softmax, attention: |d| <= 1e-5 * |ref| +
//     a floor per kernel (vectorised exp is within 2 ulp of expf).
#include "infer/kernels/kernels.h"
#include "infer/kernels/large_buffer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace headroom::infer {
namespace {

constexpr TensorType kAllTypes[] = {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                                    TensorType::kQ4_0};

bool is_quantized(TensorType type) { return type == TensorType::kQ8_0 || type == TensorType::kQ4_0; }

std::vector<float> random_floats(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(rng);
  return v;
}

// A weight matrix in `type`, and the float values it actually holds.
struct TestMatrix {
  std::vector<std::uint8_t> bytes;
  std::vector<float> values;  // dequantized / widened: rows * cols
  WeightMatrix view;
};

TestMatrix make_matrix(TensorType type, std::size_t rows, std::size_t cols, std::mt19937& rng) {
  const std::vector<float> source = random_floats(rows * cols, rng);
  TestMatrix m;
  m.view = {.data = nullptr, .type = type, .rows = rows, .cols = cols};
  m.bytes.resize(rows * m.view.row_bytes());
  m.values.resize(rows * cols);
  for (std::size_t r = 0; r < rows; ++r) {
    std::uint8_t* row = m.bytes.data() + r * m.view.row_bytes();
    const float* src = source.data() + r * cols;
    float* out = m.values.data() + r * cols;
    for (std::size_t i = 0; i < cols; i += block_values(type)) {
      switch (type) {
        case TensorType::kF32:
          std::memcpy(row + 4 * i, src + i, 4);
          out[i] = src[i];
          break;
        case TensorType::kF16: {
          const std::uint16_t h = f32_to_f16(src[i]);
          std::memcpy(row + 2 * i, &h, 2);
          out[i] = f16_to_f32(h);
          break;
        }
        case TensorType::kBF16: {
          const std::uint16_t h = f32_to_bf16(src[i]);
          std::memcpy(row + 2 * i, &h, 2);
          out[i] = bf16_to_f32(h);
          break;
        }
        case TensorType::kQ8_0: {
          auto* block = reinterpret_cast<BlockQ8_0*>(row + i / kQuantBlock * sizeof(BlockQ8_0));
          quantize_q8_0(src + i, *block);
          dequantize_q8_0(*block, out + i);
          break;
        }
        case TensorType::kQ4_0: {
          auto* block = reinterpret_cast<BlockQ4_0*>(row + i / kQuantBlock * sizeof(BlockQ4_0));
          quantize_q4_0(src + i, *block);
          dequantize_q4_0(*block, out + i);
          break;
        }
      }
    }
  }
  m.view.data = m.bytes.data();
  return m;
}

// A matrix as `kernels` multiplies it fastest: packed where it has a
// layout for it (AVX-512, quantized types), the bytes kept beside the view.
struct Prepared {
  WeightMatrix view;
  LargeBuffer packed;
};
Prepared prepare(const Kernels& kernels, const WeightMatrix& w) {
  Prepared p{w, {}};
  WeightMatrix* const one[] = {&p.view};
  p.packed = kernels.pack(one).value();
  return p;
}

const Kernels& portable() {
  static const Kernels kernels = *Kernels::get(Isa::kPortable);
  return kernels;
}

// The optimised sets this CPU runs (empty on a CPU without AVX2: those tests then check nothing).
std::vector<Kernels> optimised() {
  std::vector<Kernels> sets;
  if (auto avx2 = Kernels::get(Isa::kAvx2)) sets.push_back(*avx2);
  if (auto avx512 = Kernels::get(Isa::kAvx512)) sets.push_back(*avx512);
  return sets;
}

// sum_i |W[r][i] X[b][i]| for every (b, r): the scale of a dot product's rounding.
std::vector<double> magnitudes(const TestMatrix& m, const std::vector<float>& x, std::size_t batch) {
  const std::size_t rows = m.view.rows, cols = m.view.cols;
  std::vector<double> out(batch * rows);
  for (std::size_t b = 0; b < batch; ++b) {
    for (std::size_t r = 0; r < rows; ++r) {
      double sum = 0;
      for (std::size_t i = 0; i < cols; ++i) sum += std::fabs(double{m.values[r * cols + i]} * x[b * cols + i]);
      out[b * rows + r] = sum;
    }
  }
  return out;
}

std::string describe(TensorType type, std::size_t rows, std::size_t cols, std::size_t batch, std::size_t threads) {
  return std::string(tensor_type_name(type)) + " " + std::to_string(rows) + "x" + std::to_string(cols) + " batch " +
         std::to_string(batch) + " threads " + std::to_string(threads);
}

struct Shape {
  std::size_t rows, cols;
};
constexpr Shape kQuantizedShapes[] = {{1, 32}, {3, 64}, {4, 96}, {5, 160}, {17, 256}, {64, 512}, {33, 1024}, {7, 4096}};
constexpr Shape kFloatOnlyShapes[] = {{1, 1}, {2, 7}, {5, 9}, {3, 15}, {6, 17}, {9, 33}, {11, 100}, {4, 1001}};

TEST(Matmul, PortableReferenceMatchesDoubleArithmetic) {
  // The reference itself: exact path (and f32/f16/bf16) against double sums.
  std::mt19937 rng(1);
  for (TensorType type : kAllTypes) {
    for (const Shape& s : kQuantizedShapes) {
      const std::size_t batch = 3;
      const TestMatrix m = make_matrix(type, s.rows, s.cols, rng);
      const std::vector<float> x = random_floats(batch * s.cols, rng);
      std::vector<float> y(batch * s.rows);
      portable().matmul(m.view, x.data(), batch, y.data(), nullptr, Precision::kExact);
      const std::vector<double> scale = magnitudes(m, x, batch);
      for (std::size_t b = 0; b < batch; ++b) {
        for (std::size_t r = 0; r < s.rows; ++r) {
          double want = 0;
          for (std::size_t i = 0; i < s.cols; ++i) want += double{m.values[r * s.cols + i]} * x[b * s.cols + i];
          ASSERT_NEAR(y[b * s.rows + r], want, 1e-5 * scale[b * s.rows + r] + 1e-30)
              << describe(type, s.rows, s.cols, batch, 1) << " at " << b << "," << r;
        }
      }
    }
  }
}

TEST(Matmul, OptimisedMatchesPortableAcrossTypesShapesBatchesAndThreads) {
  std::mt19937 rng(2);
  ThreadPool pools[] = {ThreadPool({.threads = 1}), ThreadPool({.threads = 2}), ThreadPool({.threads = 3})};
  for (const Kernels& fast : optimised()) {
    for (TensorType type : kAllTypes) {
      std::vector<Shape> shapes(std::begin(kQuantizedShapes), std::end(kQuantizedShapes));
      if (!is_quantized(type)) shapes.insert(shapes.end(), std::begin(kFloatOnlyShapes), std::end(kFloatOnlyShapes));
      shapes.push_back({515, 256});  // enough rows to be split over the threads
      // Over 1 MiB in f32 and f16: a lone activation row takes the AVX2 float kernels' one-row path.
      shapes.push_back({2100, 256});
      for (const Shape& s : shapes) {
        const TestMatrix m = make_matrix(type, s.rows, s.cols, rng);
        const Prepared prepared = prepare(fast, m.view);  // AVX-512's packed quantized weights
        const WeightMatrix& view = prepared.view;
        for (std::size_t batch : {1u, 2u, 3u, 8u, 13u}) {
          const std::vector<float> x = random_floats(batch * s.cols, rng, 2.0f);
          for (Precision precision : {Precision::kFast, Precision::kExact}) {
            if (!is_quantized(type) && precision == Precision::kExact) continue;  // one path
            std::vector<float> want(batch * s.rows);
            portable().matmul(m.view, x.data(), batch, want.data(), nullptr, precision);
            std::vector<float> alone(batch * s.rows);
            fast.matmul(view, x.data(), batch, alone.data(), nullptr, precision);
            const std::vector<double> scale = magnitudes(m, x, batch);
            for (std::size_t i = 0; i < want.size(); ++i) {
              // kFast sums the blocks of activations rounded to int8: bound it by their magnitudes,
              // which exceed the unrounded ones by at most 1% (the rounding is d/2 of max 127 d).
              const double bound = 1e-5 * scale[i] * (precision == Precision::kFast ? 1.02 : 1.0) + 1e-30;
              ASSERT_NEAR(alone[i], want[i], bound)
                  << describe(type, s.rows, s.cols, batch, 1) << " at " << i << " precision " << int(precision);
            }
            // Each (row, batch row) is computed alone, so results do not depend on the thread
            // count, nor on what else is in the batch.
            for (std::size_t b = 0; b < batch; ++b) {
              std::vector<float> single(s.rows);
              fast.matmul(view, x.data() + b * s.cols, 1, single.data(), nullptr, precision);
              ASSERT_EQ(std::memcmp(single.data(), alone.data() + b * s.rows, s.rows * sizeof(float)), 0)
                  << describe(type, s.rows, s.cols, batch, 1) << " batch row " << b;
            }
            for (ThreadPool& pool : pools) {
              std::vector<float> shared(batch * s.rows, std::nanf(""));
              fast.matmul(view, x.data(), batch, shared.data(), &pool, precision);
              ASSERT_EQ(std::memcmp(shared.data(), alone.data(), alone.size() * sizeof(float)), 0)
                  << describe(type, s.rows, s.cols, batch, pool.threads());
            }
          }
        }
      }
    }
  }
}

// The AVX-512 table's float matmul blocks a batch in registers its own way,
// but adds each product where the AVX2 one does: the same bits, so a model
// answers the same tokens on either.
TEST(Matmul, Avx512FloatHasTheBitsOfAvx2) {
  auto avx2 = Kernels::get(Isa::kAvx2);
  auto avx512 = Kernels::get(Isa::kAvx512);
  if (!avx2 || !avx512) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(7);
  std::vector<Shape> shapes(std::begin(kFloatOnlyShapes), std::end(kFloatOnlyShapes));
  shapes.insert(shapes.end(), {{8, 16}, {12, 24}, {7, 40}, {64, 64}, {13, 768}, {2100, 256}});
  for (const Shape& s : shapes) {
    const TestMatrix m = make_matrix(TensorType::kF32, s.rows, s.cols, rng);
    for (std::size_t batch : {1u, 2u, 3u, 4u, 5u, 7u, 9u, 16u}) {
      const std::vector<float> x = random_floats(batch * s.cols, rng, 2.0f);
      std::vector<float> want(batch * s.rows), got(batch * s.rows, std::nanf(""));
      avx2->matmul(m.view, x.data(), batch, want.data(), nullptr, Precision::kFast);
      avx512->matmul(m.view, x.data(), batch, got.data(), nullptr, Precision::kFast);
      ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << describe(TensorType::kF32, s.rows, s.cols, batch, 1);
    }
  }
}

TEST(Matmul, Q8_0WeightsOfMinus128) {
  // ggml never writes -128 into a Q8_0 block, but a file may hold one; the
  // int8 tricks of the optimised dot product must not overflow on it.
  std::mt19937 rng(11);
  TestMatrix m = make_matrix(TensorType::kQ8_0, 9, 256, rng);
  auto* blocks = reinterpret_cast<BlockQ8_0*>(m.bytes.data());
  for (std::size_t k = 0; k < 9 * 256 / kQuantBlock; ++k) {
    for (std::size_t i = 0; i < kQuantBlock; i += 3) blocks[k].qs[i] = i % 2 ? -128 : 127;
    dequantize_q8_0(blocks[k], m.values.data() + k * kQuantBlock);
  }
  const std::vector<float> x = random_floats(2 * 256, rng);
  const std::vector<double> scale = magnitudes(m, x, 2);
  for (Precision precision : {Precision::kFast, Precision::kExact}) {
    std::vector<float> want(2 * 9);
    portable().matmul(m.view, x.data(), 2, want.data(), nullptr, precision);
    for (const Kernels& fast : optimised()) {
      const Prepared prepared = prepare(fast, m.view);
      std::vector<float> got(2 * 9);
      fast.matmul(prepared.view, x.data(), 2, got.data(), nullptr, precision);
      for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1.02e-5 * scale[i]) << i;
    }
  }
}

TEST(Matmul, PackedWeightsAreReadInsteadOfTheOriginal) {
  // Only AVX-512 packs, and only quantized types.
  std::mt19937 rng(12);
  const TestMatrix q8 = make_matrix(TensorType::kQ8_0, 16, 64, rng);
  const Prepared portable_q8 = prepare(portable(), q8.view);
  EXPECT_EQ(portable_q8.view.packed.data, nullptr);
  EXPECT_EQ(portable_q8.packed.size(), 0u);
  if (auto avx2 = Kernels::get(Isa::kAvx2)) {
    EXPECT_EQ(prepare(*avx2, q8.view).view.packed.data, nullptr);
  }
  auto avx512 = Kernels::get(Isa::kAvx512);
  if (!avx512) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  EXPECT_EQ(prepare(*avx512, make_matrix(TensorType::kF16, 16, 64, rng).view).view.packed.data, nullptr);
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0}) {
    TestMatrix m = make_matrix(type, 37, 96, rng);
    const std::vector<float> x = random_floats(5 * 96, rng);
    std::vector<float> want(5 * 37), got(5 * 37);
    portable().matmul(m.view, x.data(), 5, want.data(), nullptr);
    const Prepared prepared = prepare(*avx512, m.view);
    ASSERT_NE(prepared.view.packed.data, nullptr);
    EXPECT_EQ(prepared.view.packed.isa, Isa::kAvx512);
    // The original overwritten: kFast still reads the packed copy.
    std::fill(m.bytes.begin(), m.bytes.end(), std::uint8_t{0x7f});
    avx512->matmul(prepared.view, x.data(), 5, got.data(), nullptr);
    const std::vector<double> scale = magnitudes(m, x, 5);
    for (std::size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1.02e-5 * scale[i]) << i;
    // Another set ignores the packed copy and reads the (now changed) original.
    if (auto avx2 = Kernels::get(Isa::kAvx2)) {
      avx2->matmul(prepared.view, x.data(), 5, got.data(), nullptr);
      EXPECT_NE(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
    }
  }
}

TEST(Matmul, SeveralProductsEqualOneMatmulEach) {
  std::mt19937 rng(13);
  std::vector<Kernels> sets = optimised();
  sets.push_back(portable());
  ThreadPool pools[] = {ThreadPool({.threads = 1}), ThreadPool({.threads = 2}), ThreadPool({.threads = 3})};
  for (const Kernels& kernels : sets) {
    for (TensorType type : kAllTypes) {
      const TestMatrix a = make_matrix(type, 37, 96, rng), b = make_matrix(type, 16, 96, rng),
                       c = make_matrix(type, 5, 96, rng);
      const Prepared pa = prepare(kernels, a.view), pb = prepare(kernels, b.view), pc = prepare(kernels, c.view);
      for (std::size_t batch : {1u, 7u}) {
        const std::vector<float> x = random_floats(batch * 96, rng);
        for (ThreadPool& pool : pools) {
          std::vector<float> ya(batch * 37), yb(batch * 16), yc(batch * 5);
          const Kernels::Product products[] = {{&pa.view, ya.data()}, {&pb.view, yb.data()}, {&pc.view, yc.data()}};
          kernels.matmul(products, x.data(), batch, &pool);
          for (const auto& [w, y] : products) {
            std::vector<float> alone(batch * w->rows);
            kernels.matmul(*w, x.data(), batch, alone.data(), &pool);
            ASSERT_EQ(std::memcmp(alone.data(), y, alone.size() * sizeof(float)), 0)
                << isa_name(kernels.isa()) << " " << describe(type, w->rows, 96, batch, pool.threads());
          }
        }
      }
    }
  }
}

TEST(Matmul, ProductsOfDifferentTypesGoOneByOne) {
  std::mt19937 rng(14);
  for (const Kernels& kernels : optimised()) {
    const TestMatrix a = make_matrix(TensorType::kQ8_0, 21, 64, rng), b = make_matrix(TensorType::kQ4_0, 9, 64, rng);
    const Prepared pa = prepare(kernels, a.view), pb = prepare(kernels, b.view);
    const std::vector<float> x = random_floats(3 * 64, rng);
    std::vector<float> ya(3 * 21), yb(3 * 9), want_a(3 * 21), want_b(3 * 9);
    const Kernels::Product products[] = {{&pa.view, ya.data()}, {&pb.view, yb.data()}};
    kernels.matmul(products, x.data(), 3, nullptr);
    kernels.matmul(pa.view, x.data(), 3, want_a.data(), nullptr);
    kernels.matmul(pb.view, x.data(), 3, want_b.data(), nullptr);
    EXPECT_EQ(ya, want_a) << isa_name(kernels.isa());
    EXPECT_EQ(yb, want_b) << isa_name(kernels.isa());
  }
}

TEST(Matmul, QuantizedFastIsWithinTheActivationRoundingOfExact) {
  std::mt19937 rng(3);
  std::vector<Kernels> sets = optimised();
  sets.push_back(portable());
  ThreadPool pool({.threads = 2});
  for (const Kernels& kernels : sets) {
    for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0}) {
      for (const Shape& s : kQuantizedShapes) {
        const std::size_t batch = 2;
        const TestMatrix m = make_matrix(type, s.rows, s.cols, rng);
        const Prepared prepared = prepare(kernels, m.view);
        const std::vector<float> x = random_floats(batch * s.cols, rng, 3.0f);
        std::vector<float> fast(batch * s.rows), exact(batch * s.rows);
        kernels.matmul(prepared.view, x.data(), batch, fast.data(), &pool, Precision::kFast);
        kernels.matmul(m.view, x.data(), batch, exact.data(), &pool, Precision::kExact);
        std::vector<BlockQ8_F32> xq(batch * s.cols / kQuantBlock);
        kernels.quantize_activations(x.data(), batch * s.cols, xq.data());
        const std::vector<double> scale = magnitudes(m, x, batch);
        for (std::size_t b = 0; b < batch; ++b) {
          for (std::size_t r = 0; r < s.rows; ++r) {
            double rounding = 0;
            for (std::size_t i = 0; i < s.cols; ++i) {
              rounding += std::fabs(m.values[r * s.cols + i]) * xq[(b * s.cols + i) / kQuantBlock].d / 2;
            }
            const std::size_t at = b * s.rows + r;
            ASSERT_NEAR(fast[at], exact[at], rounding * (1 + 1e-6) + 2e-5 * scale[at])
                << isa_name(kernels.isa()) << " " << describe(type, s.rows, s.cols, batch, 2) << " at " << at;
          }
        }
      }
    }
  }
}

TEST(QuantizeActivations, OptimisedIsBitIdenticalAndWithinHalfAStep) {
  std::mt19937 rng(4);
  for (std::size_t n : {32u, 64u, 96u, 4096u}) {
    std::vector<float> x = random_floats(n, rng, 5.0f);
    // Ties, zeros and a block of all zeros.
    x[0] = 0;
    x[1] = 127.0f;
    x[2] = 0.5f;
    x[3] = -1.5f;
    if (n >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
    std::vector<BlockQ8_F32> want(n / kQuantBlock);
    portable().quantize_activations(x.data(), n, want.data());
    for (std::size_t k = 0; k < want.size(); ++k) {
      float amax = 0;
      for (std::size_t i = 0; i < kQuantBlock; ++i) amax = std::max(amax, std::fabs(x[k * kQuantBlock + i]));
      EXPECT_EQ(want[k].d, amax / 127.0f);
      for (std::size_t i = 0; i < kQuantBlock; ++i) {
        EXPECT_LE(std::fabs(x[k * kQuantBlock + i] - want[k].d * want[k].qs[i]), want[k].d * 0.5f * (1 + 1e-5f));
      }
    }
    for (const Kernels& fast : optimised()) {
      std::vector<BlockQ8_F32> got(n / kQuantBlock);
      fast.quantize_activations(x.data(), n, got.data());
      ASSERT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(BlockQ8_F32)), 0) << n;
    }
  }
}

constexpr std::size_t kLengths[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100, 768, 1001, 4096};

void expect_close(const std::vector<float>& got, const std::vector<float>& want, double relative, double floor,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], relative * std::fabs(want[i]) + floor) << what << " at " << i;
  }
}

TEST(Elementwise, RmsnormMatchesReferenceAndDouble) {
  std::mt19937 rng(5);
  for (std::size_t n : kLengths) {
    const std::vector<float> x = random_floats(n, rng, 3.0f), w = random_floats(n, rng);
    std::vector<float> want(n);
    portable().rmsnorm(x.data(), w.data(), n, 1e-5f, want.data());
    double sum = 0;
    for (float v : x) sum += double{v} * v;
    const double scale = 1.0 / std::sqrt(sum / static_cast<double>(n) + 1e-5);
    std::vector<float> exact(n);
    for (std::size_t i = 0; i < n; ++i) exact[i] = static_cast<float>(x[i] * scale * w[i]);
    expect_close(want, exact, 1e-5, 1e-30, "portable rmsnorm n " + std::to_string(n));
    for (const Kernels& fast : optimised()) {
      std::vector<float> got = x;  // in place
      fast.rmsnorm(got.data(), w.data(), n, 1e-5f, got.data());
      expect_close(got, want, 1e-5, 1e-30, "rmsnorm n " + std::to_string(n));
    }
  }
}

TEST(Elementwise, SoftmaxMatchesReferenceAndIsStable) {
  std::mt19937 rng(6);
  for (std::size_t n : kLengths) {
    std::vector<float> x = random_floats(n, rng, 10.0f);
    if (n > 3) {
      x[1] = -std::numeric_limits<float>::infinity();  // a masked position
      x[2] = 1000.0f;                                  // e^1000 would overflow without the max
    }
    std::vector<float> want = x;
    portable().softmax(want.data(), n);
    double total = 0;
    for (float p : want) total += p;
    EXPECT_NEAR(total, 1.0, 1e-5) << n;
    if (n > 3) {
      EXPECT_EQ(want[1], 0.0f);
    }
    for (const Kernels& fast : optimised()) {
      std::vector<float> got = x;
      fast.softmax(got.data(), n);
      expect_close(got, want, 1e-5, 1e-12, "softmax n " + std::to_string(n));
      if (n > 3) {
        EXPECT_EQ(got[1], 0.0f);
      }
    }
  }
}

TEST(Elementwise, SiluMulMatchesReference) {
  std::mt19937 rng(7);
  for (std::size_t n : kLengths) {
    std::vector<float> gate = random_floats(n, rng, 4.0f), up = random_floats(n, rng);
    if (n > 4) {
      gate[0] = -100.0f;  // e^100 past float
      gate[1] = 100.0f;
      gate[2] = 0.0f;
      gate[3] = -87.5f;
    }
    std::vector<float> want(n);
    portable().silu_mul(gate.data(), up.data(), n, want.data());
    for (std::size_t i = 0; i < n; ++i) {
      const double g = gate[i];
      ASSERT_NEAR(want[i], g / (1 + std::exp(-g)) * up[i], 1e-6 * std::fabs(want[i]) + 1e-30) << i;
    }
    for (const Kernels& fast : optimised()) {
      std::vector<float> got = gate;  // in place over gate
      fast.silu_mul(got.data(), up.data(), n, got.data());
      expect_close(got, want, 1e-5, 1e-30, "silu_mul n " + std::to_string(n));
    }
  }
}

// The F16 KV cache's stores round as f32_to_f16 does (the reference model
// rounds its cache with it): the same bits for every value but NaN.
TEST(Elementwise, ToF16HasF32ToF16sBits) {
  std::mt19937 rng(12);
  std::vector<float> x = random_floats(1000, rng, 70000.0f);
  for (float v : random_floats(200, rng, 1e-4f)) x.push_back(v);  // subnormal halves
  const float edges[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 5.96e-8f, 2.98e-8f, 2.99e-8f,
                         6.1e-5f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, INFINITY, -INFINITY, std::nanf("")};
  x.insert(x.end(), std::begin(edges), std::end(edges));
  std::vector<std::uint16_t> want(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) want[i] = f32_to_f16(x[i]);
  for (const Kernels& fast : optimised()) {
    for (std::size_t n : {x.size(), std::size_t{7}, std::size_t{13}}) {  // whole vectors and tails
      std::vector<std::uint16_t> got(n);
      fast.to_f16(x.data(), n, got.data());
      for (std::size_t i = 0; i < n; ++i) {
        if (std::isnan(x[i])) {
          EXPECT_TRUE(std::isnan(f16_to_f32(got[i])));
        } else {
          ASSERT_EQ(got[i], want[i]) << isa_name(fast.isa()) << " " << x[i];
        }
      }
    }
  }
}

TEST(Elementwise, AddIsExact) {
  std::mt19937 rng(8);
  for (std::size_t n : kLengths) {
    const std::vector<float> a = random_floats(n, rng), b = random_floats(n, rng);
    std::vector<float> want(n);
    portable().add(a.data(), b.data(), n, want.data());
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(want[i], a[i] + b[i]);
    for (const Kernels& fast : optimised()) {
      std::vector<float> got = b;
      fast.add(a.data(), got.data(), n, got.data());
      ASSERT_EQ(got, want) << n;
    }
  }
}

TEST(Rope, AnglesAreLlamas) {
  const RopeAngles angles = rope_angles(7, 64, 10000.0f);
  EXPECT_EQ(angles.head_dim, 64u);
  for (std::size_t i = 0; i < 32; ++i) {
    const double theta = 7 * std::pow(10000.0, -2.0 * static_cast<double>(i) / 64);
    EXPECT_FLOAT_EQ(angles.cos[i], static_cast<float>(std::cos(theta)));
    EXPECT_FLOAT_EQ(angles.sin[i], static_cast<float>(std::sin(theta)));
  }
  const RopeAngles zero = rope_angles(0, 8, 10000.0f);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(zero.cos[i], 1.0f);
    EXPECT_EQ(zero.sin[i], 0.0f);
  }
}

TEST(Rope, RotatesAdjacentPairsLikeTheReference) {
  std::mt19937 rng(9);
  for (std::size_t head_dim : {2u, 6u, 8u, 10u, 64u, 128u, 256u}) {
    for (std::size_t pos : {0u, 1u, 17u, 4095u}) {
      const std::size_t heads = 3;
      const RopeAngles angles = rope_angles(pos, head_dim, 10000.0f);
      const std::vector<float> x = random_floats(heads * head_dim, rng);
      std::vector<float> want = x;
      portable().rope(want.data(), heads, angles);
      for (std::size_t h = 0; h < heads; ++h) {
        for (std::size_t i = 0; i < head_dim / 2; ++i) {
          const std::size_t at = h * head_dim + 2 * i;
          const double theta = static_cast<double>(pos) * std::pow(10000.0, -2.0 * static_cast<double>(i) / head_dim);
          const double x0 = x[at], x1 = x[at + 1];
          const double floor = 1e-5 * (std::fabs(x0) + std::fabs(x1));  // angle rounded to float: 6e-8 relative
          ASSERT_NEAR(want[at], x0 * std::cos(theta) - x1 * std::sin(theta), floor) << head_dim << " " << pos;
          ASSERT_NEAR(want[at + 1], x0 * std::sin(theta) + x1 * std::cos(theta), floor) << head_dim << " " << pos;
        }
      }
      for (const Kernels& fast : optimised()) {
        std::vector<float> got = x;
        fast.rope(got.data(), heads, angles);
        for (std::size_t i = 0; i < got.size(); i += 2) {
          const float size = std::fabs(x[i]) + std::fabs(x[i + 1]);
          ASSERT_NEAR(got[i], want[i], 1e-6f * size) << head_dim << " " << pos << " at " << i;
          ASSERT_NEAR(got[i + 1], want[i + 1], 1e-6f * size) << head_dim << " " << pos << " at " << i;
        }
      }
    }
  }
}

// A cache's values as one KvPages type stores them: F32, or rounded to F16.
struct CacheValues {
  TensorType type;
  std::vector<float> f32;
  std::vector<std::uint16_t> f16;

  CacheValues(TensorType t, const std::vector<float>& values) : type(t) {
    if (type == TensorType::kF32) {
      f32 = values;
    } else {
      for (float v : values) f16.push_back(f32_to_f16(v));
    }
  }
  CacheValues(TensorType t, std::size_t n) : type(t) {
    if (type == TensorType::kF32) {
      f32.resize(n);
    } else {
      f16.resize(n);
    }
  }
  // Value i, widened: what attention reads.
  double at(std::size_t i) const { return type == TensorType::kF32 ? f32[i] : f16_to_f32(f16[i]); }
  const void* data(std::size_t i = 0) const {
    return type == TensorType::kF32 ? static_cast<const void*>(f32.data() + i) : f16.data() + i;
  }
  void copy_from(const CacheValues& from, std::size_t at_from, std::size_t n, std::size_t to) {
    if (type == TensorType::kF32) {
      std::copy_n(from.f32.data() + at_from, n, f32.data() + to);
    } else {
      std::copy_n(from.f16.data() + at_from, n, f16.data() + to);
    }
  }
};

// F16 caches hold heads of whole vectors of 8 (Kernels::attention).
bool cache_holds(TensorType type, std::size_t head_dim) { return type == TensorType::kF32 || head_dim % 8 == 0; }

TEST(Attention, MatchesReferenceAndDouble) {
  std::mt19937 rng(10);
  for (TensorType type : {TensorType::kF32, TensorType::kF16}) {
    for (std::size_t head_dim : {1u, 5u, 8u, 17u, 64u, 128u}) {
      if (!cache_holds(type, head_dim)) continue;
      for (std::size_t n_kv : {1u, 2u, 9u, 100u, 513u}) {
        // A GQA-style cache: each position holds 2 heads; ours is the second.
        const std::size_t stride = 2 * head_dim;
        const std::vector<float> q = random_floats(head_dim, rng);
        const CacheValues cache_k(type, random_floats(n_kv * stride, rng));
        const CacheValues cache_v(type, random_floats(n_kv * stride, rng));
        const void* k_page = cache_k.data();
        const void* v_page = cache_v.data();
        const KvPages contiguous{
            .keys = &k_page, .values = &v_page, .page_tokens = n_kv, .stride = stride, .type = type};
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        std::vector<float> scores(n_kv), want(head_dim);
        portable().attention(q.data(), contiguous, head_dim, n_kv, head_dim, scale, scores.data(), want.data());

        const std::string what = std::string(tensor_type_name(type)) + " " + std::to_string(head_dim) + " " +
                                 std::to_string(n_kv);
        std::vector<double> p(n_kv);
        double max = -1e300, total = 0;
        for (std::size_t t = 0; t < n_kv; ++t) {
          double dot = 0;
          for (std::size_t i = 0; i < head_dim; ++i) dot += double{q[i]} * cache_k.at(t * stride + head_dim + i);
          p[t] = dot * scale;
          max = std::max(max, p[t]);
        }
        for (double& x : p) total += (x = std::exp(x - max));
        for (std::size_t i = 0; i < head_dim; ++i) {
          double sum = 0;
          for (std::size_t t = 0; t < n_kv; ++t) sum += p[t] / total * cache_v.at(t * stride + head_dim + i);
          ASSERT_NEAR(want[i], sum, 1e-5) << what << " at " << i;
        }

        for (const Kernels& fast : optimised()) {
          std::vector<float> got_scores(n_kv), got(head_dim);
          fast.attention(q.data(), contiguous, head_dim, n_kv, head_dim, scale, got_scores.data(), got.data());
          expect_close(got_scores, scores, 1e-5, 1e-9, "attention probabilities " + what);
          expect_close(got, want, 1e-5, 1e-6, "attention " + what);
        }
      }
    }
  }
}

// The same positions copied into pages of a few tokens, in scrambled page
// order, give the same bits as the contiguous cache. Heads of 8 and 16 sum
// the values in several sets by position (AVX2), 24 in one.
TEST(Attention, PagedEqualsContiguous) {
  std::mt19937 rng(11);
  for (TensorType type : {TensorType::kF32, TensorType::kF16})
    for (std::size_t head_dim : {8u, 16u, 24u})
      for (std::size_t page_tokens : {1u, 3u, 16u}) {
        const std::size_t stride = 3 * head_dim, offset = head_dim;
        for (std::size_t n_kv : {1u, 16u, 47u}) {
          const std::vector<float> q = random_floats(head_dim, rng);
          const CacheValues keys(type, random_floats(n_kv * stride, rng));
          const CacheValues values(type, random_floats(n_kv * stride, rng));
          const std::size_t n_pages = (n_kv + page_tokens - 1) / page_tokens;
          CacheValues page_k(type, n_pages * page_tokens * stride), page_v(type, n_pages * page_tokens * stride);
          std::vector<const void*> k_pages(n_pages), v_pages(n_pages);
          for (std::size_t p = 0; p < n_pages; ++p) {
            const std::size_t slot = (p * 7 + 3) % n_pages;  // pages lie anywhere in the pool
            k_pages[p] = page_k.data(slot * page_tokens * stride);
            v_pages[p] = page_v.data(slot * page_tokens * stride);
            for (std::size_t j = 0; j < page_tokens && p * page_tokens + j < n_kv; ++j) {
              const std::size_t t = p * page_tokens + j;
              page_k.copy_from(keys, t * stride, stride, (slot * page_tokens + j) * stride);
              page_v.copy_from(values, t * stride, stride, (slot * page_tokens + j) * stride);
            }
          }
          const void* k_page = keys.data();
          const void* v_page = values.data();
          const KvPages contiguous{
              .keys = &k_page, .values = &v_page, .page_tokens = n_kv, .stride = stride, .type = type};
          const KvPages paged{.keys = k_pages.data(),
                              .values = v_pages.data(),
                              .page_tokens = page_tokens,
                              .stride = stride,
                              .type = type};
          std::vector<Kernels> sets = optimised();
          sets.push_back(portable());
          for (const Kernels& kernels : sets) {
            std::vector<float> scores(n_kv), want(head_dim), got(head_dim);
            kernels.attention(q.data(), contiguous, offset, n_kv, head_dim, 0.2f, scores.data(), want.data());
            kernels.attention(q.data(), paged, offset, n_kv, head_dim, 0.2f, scores.data(), got.data());
            EXPECT_EQ(got, want) << isa_name(kernels.isa()) << " " << tensor_type_name(type) << " pages of "
                                 << page_tokens << ", " << n_kv;
          }
        }
      }
}

TEST(Kernels, BestIsTheFastestThisCpuRuns) {
  const Kernels& best = Kernels::best();
  EXPECT_EQ(best.isa(), Kernels::best_isa());
  EXPECT_EQ(Kernels::get(Isa::kPortable)->isa(), Isa::kPortable);
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  if (avx512) {
    EXPECT_EQ(best.isa(), Isa::kAvx512);
  } else if (avx2) {
    EXPECT_EQ(best.isa(), Isa::kAvx2);
  }
#endif
}

}  // namespace
}  // namespace headroom::infer
