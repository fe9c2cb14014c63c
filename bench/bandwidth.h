// This machine's memory bandwidth, as the benchmarks of issue 5 print it
// beside their figures (kernels_bench, infer_bench): decode streams every
// weight from memory once a token, so the bandwidth is its physical bound.
//
// A streaming read (16-byte loads, summed so nothing is optimised away, with
// the software prefetch 8 KiB ahead that the matmuls use too) of a buffer
// much larger than the caches, by the calling thread alone or split over a
// ThreadPool (each thread reads its own contiguous part), as one sequential
// stream per thread and as four side by side; the best of the timed passes,
// in GB/s (1e9 bytes). The better of the two stream counts is the bound.
// Header-only, for benchmark programs (x86-64).
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "infer/kernels/thread_pool.h"

namespace headroom::bench {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A buffer of `bytes`, 64-byte aligned, its pages touched.
struct Buffer {
  explicit Buffer(std::size_t n)
      : bytes(n), data(static_cast<std::uint8_t*>(std::aligned_alloc(64, (n + 63) / 64 * 64))) {
    std::memset(data, 1, bytes);
  }
  ~Buffer() { std::free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  std::size_t bytes;
  std::uint8_t* data;
};

inline volatile std::uint64_t bandwidth_sink;

// Sums the buffer as `Streams` sequential streams read side by side (each
// a 1/Streams slice), prefetching 8 KiB ahead in each as the matmuls do:
// more streams keep more cache misses in flight, which some CPUs need to
// reach their bandwidth from one core.
template <int Streams>
std::uint64_t read_stream(const std::uint8_t* p, std::size_t bytes) {
  const std::size_t slice = bytes / Streams / 64 * 64;
  __m128i acc[Streams];
  for (auto& a : acc) a = _mm_setzero_si128();
  for (std::size_t i = 0; i < slice; i += 64) {
    for (int s = 0; s < Streams; ++s) {
      const std::uint8_t* q = p + s * slice + i;
      _mm_prefetch(reinterpret_cast<const char*>(q) + 8192, _MM_HINT_T0);
      const __m128i a = _mm_add_epi64(_mm_load_si128(reinterpret_cast<const __m128i*>(q)),
                                      _mm_load_si128(reinterpret_cast<const __m128i*>(q + 16)));
      const __m128i b = _mm_add_epi64(_mm_load_si128(reinterpret_cast<const __m128i*>(q + 32)),
                                      _mm_load_si128(reinterpret_cast<const __m128i*>(q + 48)));
      acc[s] = _mm_add_epi64(acc[s], _mm_add_epi64(a, b));
    }
  }
  __m128i total = _mm_setzero_si128();
  for (auto& a : acc) total = _mm_add_epi64(total, a);
  return static_cast<std::uint64_t>(_mm_cvtsi128_si64(total)) +
         static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(total, total)));
}

// GB/s of the best pass over the buffer (at least 3 passes, and `seconds`),
// by the calling thread alone (pool null) or split over the pool in
// contiguous parts, one per thread.
template <int Streams>
double bandwidth_gbps(const Buffer& buffer, infer::ThreadPool* pool, double seconds) {
  constexpr std::size_t kChunk = 1 << 20;
  const std::size_t chunks = buffer.bytes / kChunk;
  double best = 1e30;
  const auto start = std::chrono::steady_clock::now();
  for (int pass = 0; pass < 3 || seconds_since(start) < seconds; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    if (pool == nullptr) {
      bandwidth_sink = read_stream<Streams>(buffer.data, chunks * kChunk);
    } else {
      std::vector<std::uint64_t> sums(chunks);
      pool->parallel_for(chunks, (chunks + pool->threads() - 1) / pool->threads(), [&](std::size_t b, std::size_t e) {
        sums[b] = read_stream<Streams>(buffer.data + b * kChunk, (e - b) * kChunk);
      });
      std::uint64_t total = 0;
      for (auto s : sums) total += s;
      bandwidth_sink = total;
    }
    best = std::min(best, seconds_since(t0));
  }
  return static_cast<double>(chunks * kChunk) / best / 1e9;
}

struct Bandwidth {
  double one_stream_gbps = 0;
  double four_streams_gbps = 0;
  double bound_gbps() const { return std::max(one_stream_gbps, four_streams_gbps); }
};

// Both stream counts over `buffer`, on the caller alone or the pool.
inline Bandwidth measure_bandwidth(const Buffer& buffer, infer::ThreadPool* pool, double seconds) {
  return {bandwidth_gbps<1>(buffer, pool, seconds), bandwidth_gbps<4>(buffer, pool, seconds)};
}

}  // namespace headroom::bench
