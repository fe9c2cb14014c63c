// Request metrics in the Prometheus text format: a counter and a latency
// histogram per (route, status), plus build info.
//
// Recording is on every request's path, so it shares nothing between
// threads: each thread writes its own shard with plain relaxed stores, and a
// scrape adds the shards up. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace headroom::api {

class Metrics {
 public:
  // Upper bounds of the latency buckets, in microseconds (then +Inf).
  static constexpr std::array<std::int64_t, 14> kBucketMicros = {50,    100,    250,    500,     1'000,   2'500,  5'000,
                                                                 10'000, 25'000, 50'000, 100'000, 250'000, 1'000'000,
                                                                 5'000'000};
  static constexpr std::size_t kStatusesPerRoute = 16;

  // `routes` are the labels (route patterns) by index; fixed for the
  // lifetime of the Metrics.
  explicit Metrics(std::vector<std::string> routes);
  ~Metrics();

  void record(std::size_t route, int status, std::int64_t latency_micros);

  // The whole exposition, with `extra` (more lines of the format) appended.
  std::string render(std::string_view extra) const;

 private:
  struct Slot {
    std::atomic<int> status{0};
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> sum_micros{0};
    std::array<std::atomic<std::uint64_t>, kBucketMicros.size()> buckets{};
  };
  struct RouteStats {
    std::array<Slot, kStatusesPerRoute> slots;
    std::atomic<std::size_t> used{0};
  };
  struct Shard {
    explicit Shard(std::size_t route_count) : routes(route_count) {}
    std::vector<RouteStats> routes;
    std::mutex grow;  // only when a (route, status) pair is first seen
  };

  Shard& my_shard();

  std::vector<std::string> route_names_;
  mutable std::mutex shards_mutex_;
  std::vector<std::unique_ptr<Shard>> shards_;
  std::uint64_t id_;  // tells this instance's thread-local shards from another's
};

}  // namespace headroom::api
