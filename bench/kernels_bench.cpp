// Issue 5, Benchmark: the CPU kernels beside this machine's memory bandwidth.
//
//   kernels_bench [--buffer-mib N] [--model-mib N] [--seconds S]
//     (defaults: a 1024 MiB bandwidth buffer, 256 MiB of weights per type,
//     at least 0.5 s per figure)
//
// Memory bandwidth: bench/bandwidth.h's streaming read of a buffer much
// larger than the caches, by the calling thread alone and by a ThreadPool of
// 2, as one sequential stream per thread and as four side by side; the
// better of the two is the bound.
//
// Matvec: one activation vector times a weight matrix of the 110M model's
// FFN size, 3072 rows x 768 cols (ffn_up and ffn_gate; ggml dims [768, 3072]),
// in each type, by the best kernels of this CPU and by the portable
// reference, on 1 and 2 threads. "From DRAM": copies of the matrix filling
// --model-mib are multiplied in turn, as decode walks a model larger than
// the last-level cache, so each call streams its weights from memory;
// GB/s = weight bytes read per second, and "of bw" is its ratio to the
// streaming-read bandwidth at the same thread count. "Cached": one matrix,
// multiplied over and over (it fits in L2/L3). The goal: single-
// stream decode of a 110M Q8_0 model at >= 70% of the bandwidth bound, so
// the Q8_0 matvec from DRAM must stream near the bandwidth.
//
// Also: the ThreadPool's dispatch latency (an empty parallel_for, workers
// spinning and sleeping), batched Q8_0 matmuls (each weight row reused by
// the whole batch), and the kFast paths' measured error against kExact.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bandwidth.h"
#include "infer/kernels/kernels.h"
#include "infer/kernels/large_buffer.h"

namespace {

using namespace headroom::infer;
using Clock = std::chrono::steady_clock;
using headroom::bench::Buffer;
using headroom::bench::seconds_since;

struct Options {
  std::size_t buffer_mib = 1024;
  std::size_t model_mib = 256;
  double seconds = 0.5;
};

volatile std::uint64_t sink;

// A weight matrix's bytes in `type`, from normal values.
std::vector<std::uint8_t> make_weights(TensorType type, std::size_t rows, std::size_t cols, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.02f);
  const WeightMatrix shape{.data = nullptr, .type = type, .rows = rows, .cols = cols};
  std::vector<std::uint8_t> bytes(rows * shape.row_bytes());
  std::vector<float> row(cols);
  for (std::size_t r = 0; r < rows; ++r) {
    for (auto& v : row) v = normal(rng);
    std::uint8_t* out = bytes.data() + r * shape.row_bytes();
    for (std::size_t i = 0; i < cols; i += block_values(type)) {
      switch (type) {
        case TensorType::kF32:
          std::memcpy(out + 4 * i, &row[i], 4);
          break;
        case TensorType::kF16: {
          const std::uint16_t h = f32_to_f16(row[i]);
          std::memcpy(out + 2 * i, &h, 2);
          break;
        }
        case TensorType::kBF16: {
          const std::uint16_t h = f32_to_bf16(row[i]);
          std::memcpy(out + 2 * i, &h, 2);
          break;
        }
        case TensorType::kQ8_0:
          quantize_q8_0(&row[i], *reinterpret_cast<BlockQ8_0*>(out + i / kQuantBlock * sizeof(BlockQ8_0)));
          break;
        case TensorType::kQ4_0:
          quantize_q4_0(&row[i], *reinterpret_cast<BlockQ4_0*>(out + i / kQuantBlock * sizeof(BlockQ4_0)));
          break;
      }
    }
  }
  return bytes;
}

// Packs every matrix of `all` for `kernels` where it has a packed layout
// (AVX-512's, for Q8_0 and Q4_0), as LlamaModel does on load: returns the
// buffer `all` now points into (empty where there is no layout).
LargeBuffer pack_all(const Kernels& kernels, std::vector<WeightMatrix>& all) {
  std::vector<WeightMatrix*> matrices;
  for (WeightMatrix& w : all) matrices.push_back(&w);
  return kernels.pack(matrices).value();
}

// Seconds per matmul call, cycling over `copies` matrices (1: cached).
double seconds_per_call(const Kernels& kernels, const std::vector<WeightMatrix>& copies, const float* x,
                        std::size_t batch, float* y, ThreadPool* pool, Precision precision, double seconds) {
  for (const auto& w : copies) kernels.matmul(w, x, batch, y, pool, precision);  // warm up
  std::size_t calls = 0;
  const auto start = Clock::now();
  do {
    for (const auto& w : copies) kernels.matmul(w, x, batch, y, pool, precision);
    calls += copies.size();
  } while (seconds_since(start) < seconds || calls < 8);
  return seconds_since(start) / static_cast<double>(calls);
}

void print_dispatch_latency(double seconds) {
  std::printf("\nThreadPool dispatch: one empty parallel_for of 2 chunks, round trip\n");
  std::printf("  %-44s %10s\n", "pool", "ns/call");
  struct Case {
    const char* name;
    ThreadPoolOptions options;
  };
  const Case cases[] = {
      {"1 thread (the caller alone; a function call)", {.threads = 1}},
      {"2 threads, worker spinning (decode)", {.threads = 2, .spin_us = 200}},
      {"2 threads, worker asleep (futex wake)", {.threads = 2, .spin_us = 0}},
  };
  for (const Case& c : cases) {
    ThreadPool pool(c.options);
    std::uint64_t work = 0;
    std::size_t calls = 0;
    const auto start = Clock::now();
    do {
      for (int i = 0; i < 1000; ++i) {
        pool.parallel_for(2, [&](std::size_t b, std::size_t) { __atomic_fetch_add(&work, b, __ATOMIC_RELAXED); });
      }
      calls += 1000;
    } while (seconds_since(start) < seconds);
    sink = work;
    std::printf("  %-44s %10.0f\n", c.name, seconds_since(start) / static_cast<double>(calls) * 1e9);
  }
}

void print_accuracy(const Kernels& kernels, std::mt19937& rng) {
  constexpr std::size_t kRows = 3072, kCols = 768;
  std::printf("\nAccuracy of kFast (activations quantized to Q8_0 blocks) against kExact, %zux%zu, x ~ N(0, 1)\n",
              kRows, kCols);
  std::printf("  %-6s %22s %22s\n", "type", "rms error / rms |y|", "max error / rms |y|");
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(kCols);
  for (auto& v : x) v = normal(rng);
  for (TensorType type : {TensorType::kQ8_0, TensorType::kQ4_0}) {
    const std::vector<std::uint8_t> bytes = make_weights(type, kRows, kCols, rng);
    const WeightMatrix w{.data = bytes.data(), .type = type, .rows = kRows, .cols = kCols};
    std::vector<float> fast(kRows), exact(kRows);
    kernels.matmul(w, x.data(), 1, fast.data(), nullptr, Precision::kFast);
    kernels.matmul(w, x.data(), 1, exact.data(), nullptr, Precision::kExact);
    double err2 = 0, y2 = 0, max_err = 0;
    for (std::size_t r = 0; r < kRows; ++r) {
      const double e = double{fast[r]} - exact[r];
      err2 += e * e;
      y2 += double{exact[r]} * exact[r];
      max_err = std::max(max_err, std::fabs(e));
    }
    const double rms_y = std::sqrt(y2 / kRows);
    std::printf("  %-6s %21.3f%% %21.3f%%\n", std::string(tensor_type_name(type)).c_str(),
                100 * std::sqrt(err2 / kRows) / rms_y, 100 * max_err / rms_y);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--buffer-mib") {
      options.buffer_mib = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--model-mib") {
      options.model_mib = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (flag == "--seconds") {
      options.seconds = std::strtod(argv[i + 1], nullptr);
    } else {
      std::fprintf(stderr, "usage: kernels_bench [--buffer-mib N] [--model-mib N] [--seconds S]\n");
      return 2;
    }
  }
  const Kernels& best = Kernels::best();
  const Kernels portable = *Kernels::get(Isa::kPortable);
  ThreadPool pool2({.threads = 2});
  std::printf("kernels: best ISA on this CPU: %s; %u hardware threads\n", std::string(isa_name(best.isa())).c_str(),
              std::thread::hardware_concurrency());

  // The bound: the better of one stream and four per thread.
  double bandwidth[3] = {0, 0, 0};  // by thread count
  std::printf("\nMemory bandwidth: streaming read of %zu MiB, best pass, GB/s\n", options.buffer_mib);
  std::printf("  %-10s %9s %9s %9s\n", "threads", "1 stream", "4 streams", "bound");
  {
    Buffer buffer(options.buffer_mib << 20);
    for (std::size_t threads : {1u, 2u}) {
      ThreadPool* pool = threads == 1 ? nullptr : &pool2;
      const headroom::bench::Bandwidth measured = headroom::bench::measure_bandwidth(buffer, pool, options.seconds);
      bandwidth[threads] = measured.bound_gbps();
      std::printf("  %-10zu %9.1f %9.1f %9.1f\n", threads, measured.one_stream_gbps, measured.four_streams_gbps,
                  bandwidth[threads]);
    }
  }

  constexpr std::size_t kRows = 3072, kCols = 768;
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(64 * 3072);
  for (auto& v : x) v = normal(rng);
  std::vector<float> y(64 * kRows);

  std::printf("\nMatvec, %zu rows x %zu cols (the 110M model's ffn_up), batch 1\n", kRows, kCols);
  std::printf("  %-6s %-5s %-9s %-8s %7s | %9s %8s %7s | %9s %8s\n", "type", "prec", "kernels", "threads", "KiB",
              "DRAM us", "GB/s", "of bw", "cached us", "GB/s");
  struct Row {
    TensorType type;
    Precision precision;
  };
  const Row rows[] = {{TensorType::kF32, Precision::kFast},  {TensorType::kF16, Precision::kFast},
                      {TensorType::kBF16, Precision::kFast}, {TensorType::kQ8_0, Precision::kFast},
                      {TensorType::kQ4_0, Precision::kFast}, {TensorType::kQ8_0, Precision::kExact},
                      {TensorType::kQ4_0, Precision::kExact}};
  for (const Row& row : rows) {
    const std::vector<std::uint8_t> one = make_weights(row.type, kRows, kCols, rng);
    const std::size_t copies = std::max<std::size_t>(1, (options.model_mib << 20) / one.size());
    Buffer model(copies * one.size());
    std::vector<WeightMatrix> all;
    for (std::size_t c = 0; c < copies; ++c) {
      std::memcpy(model.data + c * one.size(), one.data(), one.size());
      all.push_back({.data = model.data + c * one.size(), .type = row.type, .rows = kRows, .cols = kCols});
    }
    // The best set's packed layout; the portable set ignores it.
    const LargeBuffer packed = pack_all(best, all);
    const std::vector<WeightMatrix> cached = {all.front()};
    const bool quantized = row.type == TensorType::kQ8_0 || row.type == TensorType::kQ4_0;
    for (const Kernels* kernels : {&best, &portable}) {
      if (kernels != &best && kernels->isa() == best.isa()) continue;
      for (std::size_t threads : {1u, 2u}) {
        ThreadPool* pool = threads == 1 ? nullptr : &pool2;
        // The portable kernels are the baseline: one short look is enough.
        const double seconds = kernels == &best ? options.seconds : options.seconds / 4;
        const double dram = seconds_per_call(*kernels, all, x.data(), 1, y.data(), pool, row.precision, seconds);
        const double hot = seconds_per_call(*kernels, cached, x.data(), 1, y.data(), pool, row.precision, seconds);
        const double gbps = static_cast<double>(one.size()) / dram / 1e9;
        std::printf("  %-6s %-5s %-9s %-8zu %7zu | %9.1f %8.1f %6.0f%% | %9.1f %8.1f\n",
                    std::string(tensor_type_name(row.type)).c_str(),
                    !quantized                          ? "-"
                    : row.precision == Precision::kFast ? "fast"
                                                        : "exact",
                    std::string(isa_name(kernels->isa())).c_str(), threads, one.size() / 1024, dram * 1e6, gbps,
                    100 * gbps / bandwidth[threads], hot * 1e6, static_cast<double>(one.size()) / hot / 1e9);
      }
    }
  }

  {
    // ffn_down's shape, and batches: each weight row is read once per call
    // and reused for every batch row (prefill, batched decode).
    std::printf("\nQ8_0 (fast, %s, 2 threads): batches reuse each weight row; weights from DRAM\n",
                std::string(isa_name(best.isa())).c_str());
    std::printf("  %-18s %6s %10s %12s %10s\n", "shape", "batch", "us/call", "us/batch row", "GMAC/s");
    struct Shape {
      const char* name;
      std::size_t rows, cols;
    };
    for (const Shape& s : {Shape{"3072x768 ffn_up", 3072, 768}, Shape{"768x3072 ffn_down", 768, 3072}}) {
      const std::vector<std::uint8_t> one = make_weights(TensorType::kQ8_0, s.rows, s.cols, rng);
      const std::size_t copies = std::max<std::size_t>(1, (options.model_mib << 20) / one.size());
      Buffer model(copies * one.size());
      std::vector<WeightMatrix> all;
      for (std::size_t c = 0; c < copies; ++c) {
        std::memcpy(model.data + c * one.size(), one.data(), one.size());
        all.push_back({.data = model.data + c * one.size(), .type = TensorType::kQ8_0, .rows = s.rows, .cols = s.cols});
      }
      const LargeBuffer packed = pack_all(best, all);
      for (std::size_t batch : {1u, 4u, 16u, 64u}) {
        const double t =
            seconds_per_call(best, all, x.data(), batch, y.data(), &pool2, Precision::kFast, options.seconds / 2);
        std::printf("  %-18s %6zu %10.1f %12.2f %10.1f\n", s.name, batch, t * 1e6, t * 1e6 / static_cast<double>(batch),
                    static_cast<double>(s.rows * s.cols * batch) / t / 1e9);
      }
    }
  }

  print_dispatch_latency(options.seconds);
  print_accuracy(best, rng);
  return 0;
}
